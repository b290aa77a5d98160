"""starnode.aavso.submission: report rows, sanitising, outbox files, exactly-once keys, binning,
modes; the measurement read as a typed record (night and site from it, never from the frame)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import starnode
from aavso_helpers import JD0, at, data_lines, make_config, make_result
from starnode.aavso import (
    AavsoError,
    SubmitStatus,
    flush,
    outbox_files,
    report_text,
    submit,
    validate_file,
    validate_text,
)
from starnode.aavso.spec import FIELDS
from starnode.config import Config
from starnode.frame.timesite import night_of
from starnode.records import Measurement

REPO = Path(__file__).resolve().parents[2]


def shared_check(shared: Path, path: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(shared / "aavso" / "aavso_validate.py"),
                           "--errors-only", str(path)], capture_output=True, text=True,
                          check=False)


# ---------------------------------------------------------------------------------------------
# the file
# ---------------------------------------------------------------------------------------------

def test_report_file_format(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    answer = submit(make_result(), cfg)
    assert answer["status"] == "queued", answer
    assert set(answer) >= {"status", "message", "report_path", "rows", "accepted", "rejected"}
    path = Path(answer["report_path"])
    assert path.parent.parent == tmp_path / "data" / "outbox"
    assert path.name == "2025-05-01_SS_Cyg_ZZA.txt"  # 00:17 UTC at 10 deg E: evening of 05-01
    text = path.read_text()
    assert text.splitlines()[:6] == [
        "#TYPE=EXTENDED", "#OBSCODE=ZZA", f"#SOFTWARE={starnode.SOFTWARE}", "#DELIM=,",
        "#DATE=HJD", "#OBSTYPE=CCD"]
    (row,) = data_lines(path)
    assert answer["rows"] == [row]
    f = dict(zip(FIELDS, row.split(","), strict=True))
    assert f["STARID"] == "SS Cyg"
    assert f["DATE"] == f"{JD0 + 0.003333:.6f}" and len(f["DATE"]) <= 16
    assert (f["MAGNITUDE"], f["MAGERR"], f["FILTER"]) == ("11.234", "0.021", "TG")
    assert (f["TRANSFORMED"], f["MTYPE"], f["CNAME"], f["CMAG"]) == ("NO", "STD", "ENSEMBLE", "na")
    assert (f["KNAME"], f["KMAG"], f["AIRMASS"], f["GROUP"]) == ("000-BCP-221", "11.420",
                                                                 "1.234", "na")
    assert f["CHART"] == "X41941HP"
    for sub in ("|VMAGINS=-8.765", "|KMAGINS=-8.580", "|KREFMAG=11.400", "|NCOMP=4",
                "|FRAME=Light_SS Cyg_10.0s_IRCUT_20250501-001741.fit"):
        assert sub in f["NOTES"]
    assert validate_file(path).ok


def test_written_files_pass_the_shared_validator(tmp_path: Path, shared: Path) -> None:
    cfg = make_config(tmp_path)
    single = make_result(comparison_stars=1, comps=[{
        "name": "C", "auid": "000-BCP-105", "label": "105", "catalog_mag": 10.5,
        "catalog_err": 0.01, "instrumental_mag": -9.512, "residual": 0.0, "used": True}])
    answers = [
        submit(at(0), cfg),
        submit(at(1, airmass=None), cfg),
        submit(at(2, sequence_source="gaia-dr3", chart_id=None), cfg),
        submit(at(3, **{k: v for k, v in single.items() if k.startswith("comp")}), cfg),
        submit(at(4, target_name="T CrB", filter="TG"), cfg),
        submit(at(5), {**cfg, "aavso": {**cfg["aavso"], "date_type": "JD"}}),
    ]
    assert [a["status"] for a in answers] == ["queued"] * 6, answers
    files = {a["report_path"] for a in answers}
    assert len(files) == 2
    for path in files:
        proc = shared_check(shared, path)
        assert proc.returncode == 0, proc.stdout
        assert validate_file(path).ok
    rows = data_lines(answers[0]["report_path"])
    assert len(rows) == 5
    assert ",na,na,X41941HP," in rows[1]                       # no airmass
    assert ",Gaia DR3," in rows[2] and "Gaia DR3" in rows[2].split(",")[-1]
    assert ",000-BCP-105,-9.512,000-BCP-221," in rows[3]       # single comparison star
    text = Path(answers[0]["report_path"]).read_text()
    assert "#DATE=JD" in text.splitlines()[7:]                  # the JD row switches #DATE
    assert f",{JD0 + 5 / 1440:.6f}," in rows[4]


def test_observer_code_required(tmp_path: Path) -> None:
    for code in (None, "", "XXXX", "A,B"):
        cfg = make_config(tmp_path, observer_code=code)
        answer = submit(make_result(), cfg)
        assert answer["status"] == "error"
        assert "observer_code" in answer["message"]
    assert not (tmp_path / "data" / "outbox").exists() or outbox_files(Config(cfg)) == []


@pytest.mark.parametrize("name", [
    "SS Cyg, Seestar run 3", "SS Cyg|VMAGINS=1.0", "SS Cyg#", "SS Cyg\nZZ Cyg,2460000.5",
    "SS Cyg\r", "V1500 Cyg \u2013 nova", "ASASSN-V J185256.94+581259.1 (extra)", "", None,
])
def test_injected_target_names_are_recorded_skips(tmp_path: Path, name: Any) -> None:
    cfg = make_config(tmp_path)
    assert submit(make_result(), cfg)["status"] == "queued"
    path = Path(outbox_files(Config(cfg))[0]["path"])
    before = path.read_bytes()
    answer = submit(at(1, target_name=name, object=name), cfg)
    assert answer["status"] == "skipped", answer
    assert "STARID" in answer["message"] or "target_name" in answer["message"]
    assert path.read_bytes() == before
    assert len(outbox_files(Config(cfg))) == 1


def test_fits_text_is_sanitised(tmp_path: Path, shared: Path) -> None:
    cfg = make_config(tmp_path)
    evil = "/x/Light_SS Cyg, run|3 #A=B\nZZ Cyg,2460000.1,1.0\u00e9.fit"
    answer = submit(make_result(file=evil, object="SS Cyg,\n#OBSCODE=EVIL"), cfg)
    assert answer["status"] == "queued", answer
    text = Path(answer["report_path"]).read_text()
    (row,) = data_lines(answer["report_path"])
    assert len(row.split(",")) == 15
    assert "EVIL" not in text and "ZZ Cyg," not in text
    assert "FRAME=Light_SS Cyg_ run_3 _A_B_ZZ Cyg_2460000.1_1.0_.fit" in row
    assert shared_check(shared, answer["report_path"]).returncode == 0


@pytest.mark.parametrize(("override", "word"), [
    ({"check_star": {"name": "K", "label": "114,5", "auid": "000-BCP-221,x", "mag": 11.4,
                     "catalog_mag": 11.4, "deviation": 0.0}}, "KNAME"),
    ({"chart_id": "X41941HP-and-far-too-long"}, "CHART"),
    ({"chart_id": "X41941|HP"}, "CHART"),
    ({"magnitude": float("nan")}, "magnitude"),
    ({"magnitude": 123456.5}, "MAGNITUDE"),
    ({"uncertainty": 0.0}, "uncertainty"),
    ({"uncertainty": 123.4567}, "MAGERR"),
    ({"filter": "G"}, "filter"),
    ({"airmass": 0.5}, "airmass"),
    ({"jd": 60797.01}, "Julian"),
    ({"sequence_source": "vsp", "chart_id": None}, "chart_id"),
])
def test_values_that_do_not_fit_are_recorded_skips(tmp_path: Path, override: dict[str, Any],
                                                   word: str) -> None:
    answer = submit(make_result(**override), make_config(tmp_path))
    assert answer["status"] == "skipped", answer
    assert word in answer["message"]
    assert answer["report_path"] is None


def test_night_definition() -> None:
    # 2025-05-02 00:17 UTC: the evening of 1 May in Europe and in California
    assert night_of(JD0, 10.0) == "2025-05-01"
    assert night_of(JD0, -120.0) == "2025-05-01"
    assert night_of(JD0 + 0.5, 10.0) == "2025-05-02"      # 12:17 UTC, 12:57 local: next night
    # 2025-05-01 13:00 UTC is after local noon in Europe (new night) but before it in Hawaii
    jd = 2460797.0 + 1 / 24
    assert night_of(jd, 10.0) == "2025-05-01"
    assert night_of(jd, -155.0) == "2025-04-30"
    assert night_of(jd, 205.0) == night_of(jd, -155.0)   # 0..360 east longitudes
    assert night_of(jd, None) == "2025-05-01"             # no longitude: Greenwich


# ---------------------------------------------------------------------------------------------
# gates, modes, exactly once
# ---------------------------------------------------------------------------------------------

def test_quality_and_check_star_gates(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    poor = submit(at(0, quality_flag="poor"), cfg)
    assert poor["status"] == "skipped" and "poor" in poor["message"]
    check = dict(make_result()["check_star"], mag=11.70, deviation=0.30)
    off = submit(at(1, check_star=check), cfg)
    assert off["status"] == "skipped" and "max_check_deviation" in off["message"]
    none = submit(at(2, check_star=None), cfg)
    assert none["status"] == "skipped" and "check star" in none["message"]
    assert outbox_files(Config(cfg)) == []
    cfg_poor = make_config(tmp_path, submit_poor_quality=True, max_check_deviation=0.5)
    assert submit(at(0, quality_flag="poor"), cfg_poor)["status"] == "queued"
    assert submit(at(1, check_star=check), cfg_poor)["status"] == "queued"
    events = (tmp_path / "data" / "outbox" / "audit" / "events.jsonl").read_text().splitlines()
    assert [json.loads(e)["event"] for e in events] == ["skipped"] * 3


def test_duplicates_in_one_process(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    first = submit(make_result(), cfg)
    again = submit(make_result(), cfg)
    assert again["status"] == "duplicate"
    assert again["rows"] == first["rows"] and again["report_path"] == first["report_path"]
    # the same frame measured again (a slightly different magnitude) is still the same key
    assert submit(make_result(magnitude=11.3, jd=JD0 + 1e-7), cfg)["status"] == "duplicate"
    assert len(data_lines(first["report_path"])) == 1


_CHILD = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {tests!r})
    from aavso_helpers import make_result, make_config
    from pathlib import Path
    from starnode.aavso import submit
    print(json.dumps(submit(make_result(), make_config(Path({tmp!r})))["status"]))
""")


def test_duplicates_across_processes(tmp_path: Path) -> None:
    code = _CHILD.format(tests=str(REPO / "tests"), tmp=str(tmp_path))
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    statuses = sorted(json.loads(p.communicate(timeout=120)[0]) for p in procs)
    assert statuses == ["duplicate", "queued"]
    # a restart: this process, new connections to the same SQLite file
    assert submit(make_result(), make_config(tmp_path))["status"] == "duplicate"
    (entry,) = outbox_files(Config(make_config(tmp_path)))
    assert entry["rows"] == 1 and len(data_lines(entry["path"])) == 1


def test_dry_run_marks_nothing(tmp_path: Path, shared: Path) -> None:
    dry = submit(make_result(), make_config(tmp_path, mode="dry_run"))
    assert dry["status"] == "dry_run"
    assert "/dry_run/" in dry["report_path"] and shared_check(shared, dry["report_path"]) \
        .returncode == 0
    assert submit(make_result(), make_config(tmp_path, mode="dry_run"))["status"] == "duplicate"
    real = submit(make_result(), make_config(tmp_path))
    assert real["status"] == "queued" and real["report_path"] != dry["report_path"]
    assert submit(make_result(), make_config(tmp_path))["status"] == "duplicate"
    flags = sorted(e["dry_run"] for e in outbox_files(Config(make_config(tmp_path))))
    assert flags == [False, True]


def test_audit_record(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    answer = submit(make_result(), cfg)
    submit(at(1), cfg)
    path = Path(answer["report_path"])
    audit = tmp_path / "data" / "outbox" / "audit" / path.parent.name / (path.stem + ".jsonl")
    records = [json.loads(x) for x in audit.read_text().splitlines()]
    assert [r["event"] for r in records] == ["measurement", "measurement"]
    import hashlib

    # the first row wrote the file, the second was appended: the audit proves both
    assert records[0]["write"] == "rewrite" and records[-1]["write"] == "append"
    assert records[-1]["size"] == path.stat().st_size
    assert records[-1]["sha256_row"] == hashlib.sha256(
        (records[-1]["row"] + "\n").encode()).hexdigest()
    assert path.read_text().endswith(records[-1]["row"] + "\n")
    assert records[0]["measurement"]["magnitude"] == 11.234
    assert records[0]["row"] == answer["rows"][0]
    assert records[0]["validator"]["ok"] is True
    assert not list(path.parent.glob(".*tmp"))  # no temp file left behind


def test_report_text_and_outbox_listing(tmp_path: Path, shared: Path) -> None:
    cfg = make_config(tmp_path)
    submit(at(0), cfg)
    submit(at(1, target_name="T CrB"), cfg)
    submit(at(1500), cfg)  # next night
    files = outbox_files(Config(cfg))
    assert [(f["night"], f["target"], f["rows"]) for f in files] == [
        ("2025-05-01", "SS Cyg", 1), ("2025-05-01", "T CrB", 1), ("2025-05-02", "SS Cyg", 1)]
    assert all(f["states"] == {"manual": 1} and f["exists"] for f in files)
    whole = report_text(Config(cfg))
    assert len([ln for ln in whole.splitlines() if not ln.startswith("#")]) == 3
    assert validate_text(whole).ok
    one = report_text(Config(cfg), night="2025-05-01", target="ss  cyg")
    assert len([ln for ln in one.splitlines() if not ln.startswith("#")]) == 1
    out = tmp_path / "r.txt"
    out.write_text(one)
    assert shared_check(shared, out).returncode == 0
    with pytest.raises(AavsoError):
        report_text(Config(cfg), night="2020-01-01")


# ---------------------------------------------------------------------------------------------
# binning
# ---------------------------------------------------------------------------------------------

def test_binning_weighted_mean_and_honest_error(tmp_path: Path, shared: Path) -> None:
    cfg = make_config(tmp_path, bin_minutes=5)
    start = (math.floor(JD0 * 288) + 1) / 288 - JD0  # first 5-min grid line after JD0 (days)
    mags = [11.20, 11.30, 11.25, 11.40]
    errs = [0.02, 0.02, 0.04, 0.02]
    answers = [submit(at(start * 1440 + 0.5 + i, magnitude=m, uncertainty=e), cfg)
               for i, (m, e) in enumerate(zip(mags, errs, strict=True))]
    assert [a["status"] for a in answers] == ["queued"] * 4
    assert "still open" in answers[-1]["message"]
    (row,) = data_lines(answers[0]["report_path"])
    w = [1 / e**2 for e in errs]
    mean = sum(wi * m for wi, m in zip(w, mags, strict=True)) / sum(w)
    formal = 1 / math.sqrt(sum(w))
    scatter = math.sqrt(sum(wi * (m - mean) ** 2 for wi, m in zip(w, mags, strict=True))
                        / (3 * sum(w)))
    assert scatter > formal
    f = dict(zip(FIELDS, row.split(","), strict=True))
    assert f["MAGNITUDE"] == f"{mean:.3f}" and f["MAGERR"] == f"{scatter:.3f}"
    hjd_mid = JD0 + 0.003333 + (start * 1440 + 0.5 + 1.5) / 1440
    assert f["DATE"] == f"{hjd_mid:.6f}"
    assert "|NBIN=4|" in f["NOTES"]
    assert "still open" in Path(answers[0]["report_path"]).read_text()
    # duplicates inside a bin, and a new bin when a frame falls outside the first one
    assert submit(at(start * 1440 + 0.5 + 1, magnitude=11.30, uncertainty=0.02), cfg)[
        "status"] == "duplicate"
    nxt = submit(at(start * 1440 + 5.5), cfg)
    assert nxt["status"] == "queued"
    assert len(data_lines(nxt["report_path"])) == 2
    states = outbox_files(Config(cfg))[0]
    assert states["rows"] == 2 and states["open_bins"] == 1
    assert flush(Config(cfg))["closed"] == 1
    assert outbox_files(Config(cfg))[0]["open_bins"] == 0
    assert "still open" not in Path(nxt["report_path"]).read_text()
    assert shared_check(shared, nxt["report_path"]).returncode == 0


def test_bins_survive_a_restart_and_keep_one_row(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, bin_minutes=10)
    base = (math.floor(JD0 * 144) + 1) / 144 - JD0
    for i in range(3):
        submit(at(base * 1440 + 1 + i), cfg)
    # "restart": nothing kept in memory; new connections to the same database
    code = _CHILD.replace("submit(make_result(), make_config(Path({tmp!r})))",
                          "submit(make_result(jd={jd}, hjd={jd} + 0.003333), "
                          "make_config(Path({tmp!r}), bin_minutes=10))")
    jd = JD0 + (base * 1440 + 4) / 1440
    out = subprocess.run([sys.executable, "-c", code.format(tests=str(REPO / "tests"),
                                                            tmp=str(tmp_path), jd=jd)],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == "queued"
    (entry,) = outbox_files(Config(cfg))
    (row,) = data_lines(entry["path"])
    assert "|NBIN=4|" in row


def test_config_section_is_strict(tmp_path: Path) -> None:
    answer = submit(make_result(), {"data_dir": str(tmp_path), "aavso": {"modee": "webobs"}})
    assert answer["status"] == "error" and "aavso.mode" in answer["message"]


def test_a_row_that_would_not_validate_is_never_written(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import starnode.aavso.submission as aavso

    cfg = make_config(tmp_path)
    good = submit(at(0), cfg)
    before = Path(good["report_path"]).read_bytes()
    real = aavso.format_row
    monkeypatch.setattr(aavso, "format_row",
                        lambda members, dt: real(members, dt).replace(",11.234,", ",11,"))
    bad = submit(at(1), cfg)
    assert bad["status"] == "error" and "D03" in bad["message"]
    assert Path(good["report_path"]).read_bytes() == before   # the valid file is untouched
    monkeypatch.setattr(aavso, "format_row", real)
    assert submit(at(1), cfg)["status"] == "queued"           # nothing was recorded: retry works


def test_a_typed_measurement_is_accepted_and_equals_its_dict(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    typed = submit(Measurement.from_dict(at(0)), cfg)
    assert typed["status"] == SubmitStatus.QUEUED == "queued"
    again = submit(at(0), cfg)                       # the same measurement as a seed-API dict
    assert again["status"] == "duplicate" and again["rows"] == typed["rows"]


def test_night_and_site_come_from_the_measurement(tmp_path: Path) -> None:
    """The report's night is the measurement's own; the frame is never re-opened for it."""
    cfg = make_config(tmp_path)                       # site.longitude 10: night 2025-05-01
    frame = tmp_path / "gone.fit"                     # the frame no longer exists
    m = Measurement.from_dict(make_result(file=str(frame), night="2025-04-30",
                                          site_longitude=-155.0))
    answer = submit(m, cfg)
    assert answer["night"] == "2025-04-30", answer
    assert Path(answer["report_path"]).name == "2025-04-30_SS_Cyg_ZZA.txt"
    # a 0.1.0 dict without a night: from its JD and the longitude it carries
    old = at(5, site_longitude=-155.0)
    assert submit(old, cfg)["night"] == night_of(old["jd"], -155.0) == "2025-05-01"


def test_not_a_measurement_is_an_error_not_an_exception(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    for bad in ("a string", {"target_name": "SS Cyg"}, 42):
        answer = submit(bad, cfg)  # type: ignore[arg-type]
        assert answer["status"] == "error" and answer["report_path"] is None
