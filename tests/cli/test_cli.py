"""The command line: parsing and --help everywhere, configuration errors, every command on
real files (one small real-pipeline archive run), config.example.yaml kept in step."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from starnode.cli import build_parser, load_config, main
from starnode.config import Config, example_yaml
from starnode.store import Ledger, make_owner
from starnode.synthetic import DEMO_SEQUENCE_FILE, make_sub, write_frame

REPO = Path(__file__).resolve().parents[2]
COMMANDS = ["run", "process", "status", "report", "lightcurve", "validate", "doctor", "demo",
            "config"]


def test_example_config_is_current() -> None:
    text = (REPO / "config.example.yaml").read_text()
    assert text == example_yaml(), "regenerate: starnode config --example > config.example.yaml"
    Config.load(REPO / "config.example.yaml")  # and it loads


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_everywhere(command: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"] if command is None else [command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--config" in out and "--data-dir" in out


def test_global_options_before_or_after(tmp_path: Path) -> None:
    p = build_parser()
    a = p.parse_args(["--data-dir", "x", "status"])
    b = p.parse_args(["status", "--data-dir", "x", "--config", "c.yaml"])
    assert a.data_dir == b.data_dir == "x" and b.config == "c.yaml" and a.config is None


def test_default_config_and_data_dir_override(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text("aavso:\n  observer_code: ABC1\n")
    cfg = load_config(None, str(tmp_path / "d"))
    assert cfg.source == "config.yaml" and cfg.aavso.observer_code == "ABC1"
    assert cfg.data_dir == tmp_path / "d" and cfg.db_path.parent == tmp_path / "d"


def test_config_error_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("watch:\n  debounce_dealy: 2\n")
    assert main(["--config", str(bad), "status"]) == 2
    err = capsys.readouterr().err
    assert "watch.debounce_dealy" in err and "did you mean 'watch.debounce_delay'" in err
    bad.write_text("workers: 0\n")
    assert main(["--config", str(bad), "status"]) == 2
    assert "workers: must be >= 1" in capsys.readouterr().err


def test_validate_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.txt"
    good.write_text("#TYPE=EXTENDED\n#OBSCODE=DEMO\n#SOFTWARE=starnode test\n#DELIM=,\n"
                    "#DATE=JD\n#OBSTYPE=CCD\n"
                    "SS Cyg,2460933.37506,11.821,0.035,TG,NO,STD,ENSEMBLE,na,000-BCP-241,"
                    "11.434,1.019,na,X41941HP,na\n")
    bad = tmp_path / "bad.txt"
    bad.write_text("#TYPE=EXTENDED\nSTARID,DATE\n\n")
    assert main(["validate", str(good)]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["validate", str(bad)]) == 1
    assert "REJECTED" in capsys.readouterr().out
    assert main(["validate", str(tmp_path / "missing.txt")]) == 1


def test_validate_shared_examples(shared: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ex = shared / "aavso" / "examples"
    for f in sorted(ex.glob("good_*")):
        assert main(["validate", str(f)]) == 0, capsys.readouterr().out
    for f in sorted(ex.glob("bad_*")):
        assert main(["validate", str(f)]) == 1, f


def _fill_ledger(cfg: Config) -> None:
    """Ledger rows as the node leaves them (measured results, a skip, a failure)."""
    me = make_owner()
    folder = cfg.data_dir.parent / "frames"
    folder.mkdir(parents=True, exist_ok=True)
    with Ledger(cfg) as led:
        for i in range(12):
            p = folder / f"Light_SS Cyg_{i:02d}.fit"
            p.write_text(str(i))
            fid, _ = led.add(p)
            led.claim(me, ids=[fid])
            jd = 2460933.35 + i * 0.02
            mag = 11.9 - 1.2 / (1 + 2.718 ** (-(i - 6)))
            led.record_measured(fid, me, {
                "magnitude": mag, "uncertainty": 0.01 + 0.002 * i, "target_name": "SS Cyg",
                "hjd": jd, "jd": jd, "filter": "TG", "chart_id": "X41941HP",
                "quality_flag": "good" if i % 4 else "acceptable", "comparison_stars": 12,
                "check_star": {"label": "114", "mag": 11.41 + 0.01 * (i % 3),
                               "catalog_mag": 11.413, "error": 0.015},
                "comps": [{"catalog_mag": 10.2, "used": True},
                          {"catalog_mag": 13.1, "used": True},
                          {"catalog_mag": 9.0, "used": False}]})
            if i % 2:
                led.record_submission(fid, {"status": "queued", "report_path": "x/r.txt"})
        p = folder / "Light_dark.fit"
        p.write_text("d")
        fid, _ = led.add(p)
        led.claim(me, ids=[fid])
        led.record_skipped(fid, me, "IMAGETYP='Dark' is not a light frame", "not_light")


def test_status_and_lightcurve_from_ledger(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    dd = tmp_path / "data"
    assert main(["status", "--data-dir", str(dd)]) == 0
    assert "no ledger yet" in capsys.readouterr().out
    _fill_ledger(Config({"data_dir": str(dd)}))
    assert main(["status", "--data-dir", str(dd)]) == 0
    out = capsys.readouterr().out
    assert "6 reported" in out and "6 measured" in out and "1 skipped" in out
    assert "[not_light] IMAGETYP='Dark' is not a light frame" in out
    assert main(["status", "--data-dir", str(dd), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["counts"]["reported"] == 6 and data["targets"][0]["target"] == "SS Cyg"
    png = tmp_path / "lc.png"
    assert main(["lightcurve", "ss cyg", "--out", str(png), "--data-dir", str(dd)]) == 0
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    assert main(["lightcurve", "RR Lyr", "--data-dir", str(dd)]) == 1
    assert "measured targets: SS Cyg (12)" in capsys.readouterr().err


@pytest.mark.slow
def test_process_report_and_retry_real_pipeline(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    arc = tmp_path / "archive" / "SS Cyg_sub"
    for i, mag in enumerate((11.6, 11.4)):
        hdul, _ = make_sub(target_mag=mag, seed=40 + i, site=(48.85, 2.35),
                           date_obs=f"2025-09-14T21:{10 * i:02d}:00")
        write_frame(arc / f"Light_SS Cyg_10.0s_IRCUT_20250914-21{10 * i:02d}00.fit", hdul)
    (arc / "Light_SS Cyg_broken.fit").write_bytes(b"SIMPLE  = T" + b"\0" * 100)
    cfg = tmp_path / "config.yaml"
    common = (f"data_dir: {tmp_path / 'data'}\n"
              f"photometry:\n  offline: true\n  sequence_file: {DEMO_SEQUENCE_FILE}\n")
    cfg.write_text(common)  # no observer code yet: measured, warned, every report fails
    base = ["--config", str(cfg)]
    assert main([*base, "process", str(tmp_path / "archive"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "3 frame(s)" in err and "2 measured" in err and "0 reported" in err
    assert "aavso.observer_code is not set" in err and "no measurement could be reported" in err
    cfg.write_text(common + "aavso:\n  observer_code: DEMO\n")
    assert main([*base, "process", str(tmp_path / "archive"), "--quiet"]) == 0
    err = capsys.readouterr().err  # the 2 measured earlier are reported now, and said so
    assert "2 reported" in err and "1 skipped" not in err and "3 already done" in err
    # synthetic frames (issue 16): never "for you to upload", and said to be SYNTHETIC
    assert "2 row(s) written from SYNTHETIC frames (not observations: never upload)" in err
    assert "for you to upload" not in err and "outbox" in err
    assert "accepted by WebObs" not in err  # outbox mode: nothing went to WebObs
    assert main([*base, "process", str(tmp_path / "archive")]) == 0  # nothing redone
    err = capsys.readouterr().err
    assert "3 already done" in err and "queued" not in err
    out = tmp_path / "reports" / "night.txt"  # a missing folder is created
    assert main([*base, "report", "--night", "2025-09-14", "--out", str(out)]) == 0
    rows = [ln for ln in out.read_text().splitlines() if not ln.startswith("#")]
    assert len(rows) == 2 and all(r.startswith("SS Cyg,") for r in rows)
    assert main(["validate", str(out)]) == 0
    said = capsys.readouterr().out
    assert "X09" in said and "OK (" in said and "SYNTHETIC DATA, not observations" in said
    assert main([*base, "report", "--night", "2024-01-01"]) == 1
    capsys.readouterr()
    assert main([*base, "process", "--retry-skipped", "--quiet"]) == 0
    assert "1 frame(s)" in capsys.readouterr().err


def test_python_dash_m_and_console_script() -> None:
    r = subprocess.run([sys.executable, "-m", "starnode", "--version"], capture_output=True,
                       text=True, check=True)
    assert r.stdout.startswith("starnode ")
    script = Path(sys.executable).parent / "starnode"
    if script.exists():
        r = subprocess.run([str(script), "config", "--example"], capture_output=True,
                           text=True, check=True)
        assert r.stdout.startswith("# starnode configuration")
        assert "observer_code" in r.stdout


def test_deploy_files() -> None:
    cfg = Config.load(REPO / "deploy" / "config.node.yaml")
    assert cfg.watch.path == "/mnt/seestar/MyWorks" and cfg.watch.recursive
    unit = (REPO / "deploy" / "starnode.service").read_text()
    assert "starnode --config /etc/starnode/config.yaml run" in unit
    assert "KillMode=mixed" in unit
    mount = (REPO / "deploy" / "mnt-seestar.mount").read_text()
    assert "What=//seestar.local/EMMC Images" in mount and "Options=ro," in mount
    assert "EMMC\\040Images" in (REPO / "deploy" / "fstab.example").read_text()


def test_progress_bar_only_on_a_terminal() -> None:
    import io

    from starnode.cli import Progress

    buf = io.StringIO()
    bar = Progress(stream=buf)  # StringIO is not a TTY: silent
    bar.update(2, 4, {})
    bar.close()
    assert buf.getvalue() == ""
    bar = Progress(stream=buf, enabled=True)
    bar.update(2, 4, {"skipped": 1})
    bar.close()
    assert "2/4" in buf.getvalue() and "1 skipped" in buf.getvalue()


# ---------------------------------------------------------------- issue 10, items 17 19 20 21
def test_run_refuses_to_start_without_an_observer_code(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    watch = tmp_path / "MyWorks"
    watch.mkdir()
    base = ["--data-dir", str(tmp_path / "data"), "run", "--watch", str(watch)]
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "aavso.observer_code" in err and "observer_code:" in err
    cfg = tmp_path / "c.yaml"
    cfg.write_text("aavso:\n  observer_code: my code\n")
    assert main(["--config", str(cfg), *base]) == 2
    assert "'my code' is not an AAVSO observer code" in capsys.readouterr().err
    assert not (tmp_path / "data" / "starnode.sqlite3").exists()  # refused before starting


@pytest.mark.parametrize("command", [["report"], ["summary"], ["lightcurve", "SS Cyg"]])
def test_wrong_night_format_is_named(tmp_path: Path, command: list[str],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--data-dir", str(tmp_path), *command, "--night", "14/09/2025"])
    assert exc.value.code == 2
    assert "expected YYYY-MM-DD" in capsys.readouterr().err


def test_lightcurve_refuses_an_unknown_extension(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    dd = tmp_path / "data"
    _fill_ledger(Config({"data_dir": str(dd)}))
    assert main(["lightcurve", "SS Cyg", "--out", str(tmp_path / "x.txt"),
                 "--data-dir", str(dd)]) == 2
    assert ".png" in capsys.readouterr().err and not (tmp_path / "x.txt").exists()
    png = tmp_path / "new" / "folder" / "lc.png"  # a missing folder is created
    assert main(["lightcurve", "SS Cyg", "--out", str(png), "--data-dir", str(dd)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_process_a_missing_path_exits_1(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data-dir", str(tmp_path / "d"), "process", str(tmp_path / "nope"),
                 "--quiet"]) == 1
    assert "nope: no such file or folder" in capsys.readouterr().err


def test_process_says_how_many_files_watch_include_excluded(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arc = tmp_path / "archive"
    arc.mkdir()
    for i in range(3):
        (arc / f"Stacked_{i}_SS Cyg.fit").write_bytes(b"x")
    (arc / "notes.txt").write_text("not a frame")
    assert main(["--data-dir", str(tmp_path / "d"), "process", str(arc), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "0 frame(s)" in err and "3 FITS file(s) excluded by watch.include ['Light_*']" in err
    assert "watch:\n  include:" in err or "watch.include" in err


def test_progress_shows_no_eta_before_three_frames() -> None:
    import io

    from starnode.cli import Progress

    buf = io.StringIO()
    bar = Progress(stream=buf, enabled=True)
    bar.update(1, 20, {})
    first = buf.getvalue()
    bar.update(4, 20, {"failed": 1})
    later = buf.getvalue()[len(first):]
    bar.close()
    assert "ETA" not in first and "?" not in first.split("/20")[-1]
    assert "ETA" in later and "1 failed" in later
