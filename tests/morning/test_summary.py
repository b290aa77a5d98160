"""The morning summary: a real night measured by ``starnode process``, told in sentences."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from morning_night import GOOD, make_night
from starnode.config import Config
from starnode.morning.summary import (
    FrameRecord,
    Snapshot,
    build_night,
    night_summary,
    render_html,
    render_json,
    render_text,
)
from starnode.records import Measurement
from starnode.store import Ledger

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Config:
    return make_night(tmp_path_factory.mktemp("morning"))


def test_summary_of_a_real_night(night: Config) -> None:
    with Ledger(night) as led:
        measured = led.measurements("SS Cyg")
        skipped = led.frames(states=["skipped"])
    assert len(measured) == len(GOOD) and len(skipped) == 2
    s = night_summary(night)
    assert s.night == "2025-09-14" and [t.name for t in s.targets] == ["SS Cyg"]
    text = render_text(s, width=10_000)
    assert "The night of Sunday 14 September 2025. The telescope took six frames" in text
    assert "Six frames of SS Cyg were taken: four frames measured, two frames skipped." in text
    assert "One frame was not a picture of the sky (a dark, flat or bias frame)." in text
    assert "One frame was a damaged or incomplete file that could not be read." in text
    faint = max(f.magnitude for f in measured)
    bright = min(f.magnitude for f in measured)
    assert f"from magnitude {faint:.2f} at its faintest to {bright:.2f} at its brightest" in text
    assert "It brightened by about 1." in text  # 11.9 -> 10.7
    poor = [f for f in measured if f.quality == "poor"]
    reported = [f for f in measured if f.state == "reported"]
    assert poor and reported, "the night must have both reported and held-back points"
    words = ("zero", "one", "two", "three", "four")
    assert f"{words[len(reported)].capitalize()} measurement" in text
    assert "reported under observer code DEMO in the report file 2025-09-14_SS_Cyg_DEMO.txt" \
        in text
    # synthetic frames (issue 16): never "for you to upload", said to be SYNTHETIC instead
    assert "for you to upload" not in text
    assert "in the outbox, made from SYNTHETIC frames" in text
    assert "held back: the measurement was flagged poor." in text
    assert "The check star" in text and "label" in text
    assert "never upload them" in text
    assert "the higher it sounds, the brighter the star" in text
    # rounded the way an observer says them: no long decimals anywhere
    numbers = re.findall(r"\d+\.\d+", text.replace(".txt", ""))
    assert numbers and all(len(n.split(".")[1]) <= 2 for n in numbers), numbers


def test_summary_formats_from_the_command_line(night: Config) -> None:
    base = [sys.executable, "-m", "starnode", "summary", "--data-dir", str(night.data_dir)]
    out = subprocess.run([*base, "--format", "json"], capture_output=True, text=True,
                         check=True).stdout
    data = json.loads(out)
    assert data["night"] == "2025-09-14" and data["targets"][0]["measured"] == len(GOOD)
    assert data["sections"][0]["heading"] == "Overview" and "SS Cyg" in data["text"]
    # issue 16: each point's time is the JD (UTC) of mid-exposure, and says so
    assert {p["scale"] for p in data["targets"][0]["points"]} == {"UTC"}
    assert "keys" not in data["targets"][0]
    page = subprocess.run([*base, "--format", "html", "--target", "ss cyg"],
                          capture_output=True, text=True, check=True).stdout

    class Tags(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: list[str] = []

        def handle_starttag(self, tag: str, attrs: list) -> None:
            self.tags.append(tag)

    p = Tags()
    p.feed(page)
    assert "table" not in p.tags and p.tags.count("h2") >= 2 and "html" in p.tags
    assert '<html lang="en">' in page and "SS Cyg" in page
    bad = subprocess.run([*base, "--night", "1999-01-01"], capture_output=True, text=True)
    assert bad.returncode == 1 and "nights: 2025-09-14" in bad.stderr


def _rec(name: str, state: str = "reported", *, mag: float | None = None, jd: float | None = None,
         err: float = 0.02, category: str | None = None, quality: str = "good",
         check: float | None = 0.01, sub: str | None = "queued", msg: str | None = None,
         ) -> FrameRecord:
    measured = state in ("measured", "reported")
    return FrameRecord(name=name, path="/x/" + name, state=state, category=category,
                       reason=None if measured else "why", target="RR Lyr" if measured else None,
                       jd=jd, magnitude=mag, uncertainty=err if measured else None,
                       quality=quality if measured else None, filter="TG",
                       check_label="120" if measured and check is not None else None,
                       check_deviation=check if measured else None, comp_min=9.0,
                       comp_max=12.0, submission_status=sub if measured else None,
                       submission_message=msg)


def _snap(frames: list[FrameRecord]) -> Snapshot:
    return Snapshot("/data", frames, [], None)


JD0 = 2460933.40  # 2025-09-14 21:36 UTC


def test_words_for_a_fading_star_cloudy_frames_and_a_bad_check_star() -> None:
    frames = [_rec(f"Light_RR Lyr_10.0s_IRCUT_20250914-2{i}0000.fit", mag=8.0 + 0.1 * i,
                   jd=JD0 + i / 48, check=0.3 if i == 3 else 0.01) for i in range(4)]
    frames += [_rec(f"Light_RR Lyr_10.0s_IRCUT_20250914-23{i}000.fit", "skipped",
                    category="low_snr") for i in range(3)]
    frames.append(_rec("Light_RR Lyr_10.0s_IRCUT_20250914-235000.fit", "measured", mag=8.4,
                       jd=JD0 + 0.1, sub="skipped",
                       msg="check star 120 is +0.300 mag off its catalogue value"))
    text = render_text(build_night(_snap(frames)), width=10_000)
    assert "Three frames were too faint to measure: cloudy or out of focus." in text
    assert "It faded by about" in text
    assert "The check star (label 120) was unhealthy in one frame" in text, text
    assert "One measurement was held back: the check star was too far from its catalogue " \
        "value." in text


def test_no_clear_change_is_said_with_the_error() -> None:
    frames = [_rec(f"f{i}.fit", mag=10.0 + (0.01 if i % 2 else 0.0), jd=JD0 + i / 48, err=0.05)
              for i in range(4)]
    text = render_text(build_night(_snap(frames)), width=10_000)
    assert "It stayed about the same over the night" in text
    assert "within the measurement error of about 0.07" in text  # hypot(0.05, 0.05)


def test_nights_frames_without_a_star_and_an_empty_ledger() -> None:
    assert "No observations yet" in render_text(build_night(_snap([])))
    frames = [_rec("a.fit", mag=10.0, jd=JD0, check=None),
              _rec("b.fit", mag=10.1, jd=JD0 + 2.0),  # two nights later
              _rec("junk_20250914-220000.fit", "skipped", category="unreadable")]
    s = build_night(_snap(frames))
    assert s.nights == ["2025-09-14", "2025-09-16"] and s.night == "2025-09-16"
    first = build_night(_snap(frames), "2025-09-14")
    text = render_text(first, width=10_000)
    assert "There was no check star" in text
    assert "One frame could not be tied to a star." in text
    assert "One frame was a damaged or incomplete file" in text
    assert "The ledger also has the nights of Tuesday 16 September 2025." in text
    assert json.loads(render_json(first))["other_frames"] == 1
    assert "<h2" in render_html(first) and "<table" not in render_html(first)


def test_summary_on_a_data_dir_without_ledger(tmp_path: Path) -> None:
    s = night_summary(Config({"data_dir": str(tmp_path / "none")}))
    assert s.night is None and not (tmp_path / "none" / "starnode.sqlite3").exists()


def test_the_night_of_a_frame_is_the_measurement_night_and_the_stamp_for_skipped(
        tmp_path: Path) -> None:
    """A measured frame belongs to its measurement's ``night`` (the report's rule at its site,
    150 E: 11:00 UTC is 21:00 local, the evening of the 14th, though the configuration has no
    site, whose UTC rule says the 13th); a skipped frame to its file-name stamp."""
    cfg = Config({"data_dir": str(tmp_path / "data")})
    folder = tmp_path / "frames"
    folder.mkdir()
    measured = folder / "Light_RR Lyr_10.0s_IRCUT_20250914-210000.fit"
    skipped = folder / "Light_RR Lyr_10.0s_IRCUT_20250914-221000.fit"
    for f in (measured, skipped):
        f.write_bytes(b"x" * 2880)
    m = Measurement(magnitude=8.1, uncertainty=0.02, quality_flag="good", target_name="RR Lyr",
                    filter="TG", jd=2460932.958, hjd=2460932.958, night="2025-09-14",
                    site_longitude=150.0)  # 2025-09-14 11:00 UTC = 21:00 local at 150 E
    with Ledger(cfg) as led:
        a, _ = led.add(measured)
        b, _ = led.add(skipped)
        owner = "test:1:x"
        assert {f.id for f in led.claim(owner, limit=2)} == {a, b}
        assert led.record_measured(a, owner, m)
        assert led.record_skipped(b, owner, "IMAGETYP='Dark'", "not_light")
    s = night_summary(cfg)
    assert s.nights == ["2025-09-14"], s.nights  # not 2025-09-13, the UTC rule (no site)
    text = render_text(s, width=10_000)
    assert "Two frames of RR Lyr were taken: one frame measured, one frame skipped." in text
    assert "One frame was not a picture of the sky" in text
