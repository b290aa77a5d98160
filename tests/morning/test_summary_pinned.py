"""The morning summary's words for a rich hand-made night, pinned byte for byte.

Why: the summary's model and words were split into small helpers (issue 18, radon complexity);
this night walks every branch of them (copies, every skip kind, held back for each reason, not
reported yet, two report files under two codes, synthetic rows, frames tied to no star, other
nights), so any change in what is counted or said shows here. The pinned words in
``data/summary_words_pinned.json`` were written by the code before the split.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from starnode.morning.summary import FrameRecord, Snapshot, build_night, render_text
from starnode.morning.summary.words import sections

PINNED = Path(__file__).parent.parent / "data" / "summary_words_pinned.json"

JD0 = 2460933.40  # 2025-09-14 21:36 UTC


def frames_and_outbox(FrameRecord: Any) -> tuple[list[Any], list[dict[str, Any]]]:
    def rec(name: str, state: str, target: str | None, stamp: str = "20250914-230000",
            **kw: Any) -> Any:
        if state not in ("measured", "reported"):  # their night is the name's time stamp
            name = name.replace(".fit", f"_{stamp}.fit")
        base: dict[str, Any] = {"category": None, "reason": None, "jd": None, "magnitude": None,
                                "uncertainty": None, "quality": None}
        base.update(kw)
        return FrameRecord(name=name, path="/x/" + name, state=state, target=target, **base)

    frames = [
        # RR Lyr: reported (two report files, two codes), a copy, held back, not yet, skips
        *(rec(f"rr{i}.fit", "reported", "RR Lyr", jd=JD0 + i / 48, magnitude=8.0 + 0.05 * i,
              uncertainty=0.02, quality="good", filter="TG", check_label="120",
              check_deviation=0.01 + 0.01 * i, comp_min=7.5 + 0.1 * i, comp_max=9.5 - 0.1 * i,
              key=f"k{i}", night="2025-09-14") for i in range(4)),
        rec("rr0-copy.fit", "reported", "RR Lyr", jd=JD0, magnitude=8.0, uncertainty=0.02,
            quality="good", key="k0", night="2025-09-14"),
        rec("rr-poor.fit", "measured", "RR Lyr", jd=JD0 + 0.2, magnitude=8.6, uncertainty=0.2,
            quality="poor", quality_reasons=("low S/N",), filter="V", key="kp",
            submission_status="skipped", submission_message="quality poor",
            night="2025-09-14"),
        rec("rr-check.fit", "measured", "RR Lyr", jd=JD0 + 0.21, magnitude=8.2,
            uncertainty=0.03, quality="acceptable", check_label="121", check_deviation=0.4,
            key="kc", submission_status="rejected",
            submission_message="check star 121 off", night="2025-09-14"),
        rec("rr-new.fit", "measured", "RR Lyr", hjd=JD0 + 0.22, magnitude=8.25,
            uncertainty=None, quality=None, key=None, night="2025-09-14"),
        rec("rr-syn.fit", "measured", "RR Lyr", jd=JD0 + 0.23, magnitude=8.3,
            uncertainty=0.02, quality="good", key="ks", submission_status="skipped",
            submission_message="synthetic", synthetic=True, night="2025-09-14"),
        *(rec(f"rr-snr{i}.fit", "skipped", "RR Lyr", category="low_snr", night="2025-09-14")
          for i in range(2)),
        rec("rr-odd.fit", "skipped", "RR Lyr", category="a_new_category", night="2025-09-14"),
        rec("rr-why.fit", "skipped", "RR Lyr", reason="the dome was shut",
            night="2025-09-14"),
        rec("rr-none.fit", "skipped", "RR Lyr", night="2025-09-14"),
        rec("rr-fail.fit", "failed", "RR Lyr", category="error", night="2025-09-14"),
        rec("rr-wait.fit", "pending", "RR Lyr", night="2025-09-14"),
        rec("rr-proc.fit", "processing", "RR Lyr", night="2025-09-14"),
        # SS Cyg: measured, never reported; T Cep: only skipped
        rec("ss1.fit", "measured", "SS Cyg", jd=JD0 + 0.05, magnitude=11.0, uncertainty=0.05,
            quality="acceptable", night="2025-09-14"),
        rec("ss2.fit", "measured", "ss cyg", jd=JD0 + 0.06, magnitude=11.4, uncertainty=0.05,
            quality="acceptable", night="2025-09-14"),
        rec("tc1.fit", "skipped", "T Cep", category="low_snr", night="2025-09-14"),
        # frames tied to no star
        rec("junk1.fit", "skipped", None, category="unreadable", night="2025-09-14"),
        rec("junk2.fit", "failed", None, night="2025-09-14"),
        rec("junk3.fit", "pending", None, night="2025-09-14"),
        # other nights
        rec("old.fit", "measured", "RR Lyr", jd=JD0 - 3, magnitude=8.1, uncertainty=0.02,
            quality="good", night="2025-09-11"),
        rec("older.fit", "skipped", "RR Lyr", category="low_snr", stamp="20250902-010000"),
    ]
    outbox = [
        {"night": "2025-09-14", "target": "RR Lyr", "path": "/o/2025-09-14_RRLyr_ABC.txt",
         "rows": 3, "obscode": "ABC", "states": {"queued": 2, "uploaded": 1}},
        {"night": "2025-09-14", "target": "rr lyr", "path": "/o/2025-09-14_RRLyr_DEMO.txt",
         "rows": 1, "obscode": "DEMO", "states": {"queued": 1}},
        {"night": "2025-09-11", "target": "RR Lyr", "path": "/o/old.txt", "rows": 1,
         "obscode": "OLD"},
        {"night": "2025-09-14", "target": "Nobody", "path": "/o/x.txt", "rows": 1,
         "obscode": "XYZ"},
    ]
    return frames, outbox


#: case -> (night, target, without the synthetic frame)
CASES: dict[str, tuple[str | None, str | None, bool]] = {
    "latest night": (None, None, False),
    "no synthetic row": (None, None, True),
    "one star": ("2025-09-14", "SS_CYG", False),
    "an older night": ("2025-09-11", None, False),
    "a night of skips only": ("2025-09-01", None, False),
    "no such night": ("2024-01-01", None, False),
}


def words(case: str) -> list[Any]:
    """The case's sections, as JSON lists."""
    night, target, no_synthetic = CASES[case]
    frames, outbox = frames_and_outbox(FrameRecord)
    if no_synthetic:
        frames = [f for f in frames if not f.synthetic]
    s = build_night(Snapshot("/data", frames, outbox, None), night, target)
    return [[head, paras] for head, paras in sections(s)]


@pytest.mark.parametrize("case", list(CASES))
def test_the_words_of_a_rich_night_are_unchanged(case: str) -> None:
    pinned = json.loads(PINNED.read_text(encoding="utf-8"))
    assert words(case) == pinned[case]


def test_the_model_of_the_rich_night() -> None:
    frames, outbox = frames_and_outbox(FrameRecord)
    s = build_night(Snapshot("/data", frames, outbox, None))
    assert s.night == "2025-09-14" and s.nights == ["2025-09-01", "2025-09-11", "2025-09-14"]
    assert s.observer_codes == ["ABC", "DEMO"]
    assert (s.other_frames, s.other_skipped) == (3, {"unreadable": 1, "error": 1})
    rr = s.targets[0]
    assert (rr.name, rr.frames, rr.measured, rr.copies, rr.failed, rr.waiting) == \
        ("RR Lyr", 16, 8, 1, 1, 2)
    assert (rr.reported, rr.not_yet, sum(rr.held_back.values())) == (4, 1, 3)
    assert rr.skipped == {"low_snr": 2, "a_new_category": 1}
    assert rr.skipped_other == ["the dome was shut", "no reason recorded"]
    assert (rr.comp_min, rr.comp_max, rr.filters) == (7.5, 9.5, ["TG", "V"])
    assert [p.scale for p in rr.points].count("HJD") == 1
    assert [len(t.report_files) for t in s.targets] == [2, 0, 0]
    assert "16 frames of RR Lyr were taken" in render_text(s, width=10_000)
