"""``starnode demo``: a short synthetic night through the real node, outbox only."""

from __future__ import annotations

import io
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from starnode.cli import main
from starnode.config import Config
from starnode.demo import demo_config, night_plan, run_demo
from starnode.store import Ledger

pytestmark = pytest.mark.slow


def test_night_plan_has_good_and_bad_frames_in_time_order() -> None:
    plan = night_plan(6)
    kinds = [p["kind"] for p in plan]
    assert kinds.count("good") == 6 and {"corrupt", "dark", "elsewhere"} <= set(kinds)
    assert [p["date_obs"] for p in plan] == sorted(p["date_obs"] for p in plan)
    mags = [p["mag"] for p in plan if p["kind"] == "good"]
    assert mags[0] > mags[-1] + 0.8  # SS Cyg brightens over the night


def test_demo_config_never_uploads(tmp_path: Path) -> None:
    cfg = Config(demo_config(tmp_path / "d", tmp_path / "w", 1))
    assert cfg.aavso.mode == "outbox" and cfg.aavso.observer_code == "DEMO"
    assert cfg.catalogs.offline


def test_demo_night(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    status = run_demo(frames=4, data_dir=str(tmp_path / "demo"), interval=0.05, out=out,
                      workers=1)
    text = out.getvalue()
    assert status == 0, text
    assert "4 measured and reported" in text and "3 skipped" in text
    assert "[not_light]" in text and "[unreadable]" in text and "[no_target]" in text
    assert "validator: valid" in text and "4 row(s)" in text
    assert "SYNTHETIC DATA, never upload" in text
    # --data-dir DIR is the data_dir itself (issue 10, item 21): 'status --data-dir DIR' works
    png = tmp_path / "demo" / "lightcurves" / "SS_Cyg.png"
    assert png.exists() and f"light curve: {png}" in text
    with Ledger(Config({"data_dir": str(tmp_path / "demo")})) as led:
        assert all(f.measure_count == 1 for f in led.frames(states=["reported"]))
    assert main(["status", "--data-dir", str(tmp_path / "demo")]) == 0
    said = capsys.readouterr().out
    assert "no ledger yet" not in said
    # issue 16: synthetic frames and their rows are marked, never "for you to upload"
    assert "SYNTHETIC: 4 measured frame(s) are made-up demo frames" in said
    assert "SYNTHETIC: 4 row(s) from made-up demo frames" in said
    assert "for you to upload" not in said
    # issue 16: the closing hints are commands that run as printed (from this folder)
    hint = text.split("ledger and logs: ", 1)[1].split("'")[1]
    r = subprocess.run(shlex.split(hint), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "frames: 7" in r.stdout, (hint, r.stderr)
    serve = text.split("see it as a page: ", 1)[1].split("  (then open", 1)[0]
    assert shlex.split(serve)[:-2] == [*shlex.split(hint)[:-3], "serve"]
    # the frames folder was a temporary one, removed
    assert not (tmp_path / "demo" / "MyWorks").exists()


def test_demo_refuses_a_real_data_dir(tmp_path: Path) -> None:
    real = tmp_path / "real"
    with Ledger(Config({"data_dir": str(real)})) as led:
        led.counts()
    with pytest.raises(RuntimeError, match="not made by 'starnode demo'"):
        run_demo(frames=1, data_dir=str(real), out=io.StringIO())
    assert (real / "starnode.sqlite3").exists()


def test_demo_command_line_help() -> None:
    r = subprocess.run([sys.executable, "-m", "starnode", "demo", "--help"],
                       capture_output=True, text=True, check=True)
    assert "--frames" in r.stdout and "--keep" in r.stdout


def test_a_second_demo_keeps_the_frames_kept_by_the_first(tmp_path: Path) -> None:
    """Issue 16: 'starnode demo --keep' frames survive the next demo (which empties only the
    demo's own data folder), and the demo says where they are."""
    data = tmp_path / "demo"
    kept = []
    for _ in range(2):
        out = io.StringIO()
        assert run_demo(frames=1, data_dir=str(data), keep=True, interval=0.05, out=out,
                        workers=1) == 0, out.getvalue()
        line = next(ln for ln in out.getvalue().splitlines() if "synthetic frames kept in" in ln)
        kept.append(Path(line.split("kept in ", 1)[1].split(" (", 1)[0]))
        assert "a later demo does not delete them" in line
    assert kept[0] != kept[1] and all(k.parent.parent == tmp_path / "demo-frames" for k in kept)
    for k in kept:  # both nights' frames are still there
        assert len(list((k / "SS Cyg_sub").glob("*.fit"))) == 4
    assert not (data / "MyWorks").exists()
