"""End to end, real processes, real pipeline: ``starnode run`` on a folder a "telescope" writes
into slowly, killed with SIGKILL mid-night, restarted; every frame measured exactly once, one
outbox row per good frame, the report validates, bad frames in ``status`` with their reasons."""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from starnode.demo import write_slowly
from starnode.synthetic import DEMO_SEQUENCE_FILE, make_sub
from waiting import wait_for

pytestmark = pytest.mark.slow

SITE = (48.85, 2.35)


def _sub(seed: int, mag: float, date_obs: str, **opts: Any) -> bytes:
    hdul, _ = make_sub(target_mag=mag, seed=seed, date_obs=date_obs, site=SITE, exptime=10.0,
                       **opts)
    buf = io.BytesIO()
    hdul.writeto(buf)
    return buf.getvalue()


def _name(date_obs: str) -> str:
    return "Light_SS Cyg_10.0s_IRCUT_" + date_obs.replace("-", "").replace(":", "").replace(
        "T", "-") + ".fit"


def _config(tmp: Path, myworks: Path) -> Path:
    cfg = tmp / "config.yaml"
    cfg.write_text(
        f"data_dir: {tmp / 'data'}\n"
        "workers: 1\n"
        "shutdown_grace: 20\n"
        f"watch:\n  path: {myworks}\n  debounce_delay: 0.5\n  poll_interval: 0.2\n"
        "  max_wait: 3\n"
        f"photometry:\n  sequence_file: {DEMO_SEQUENCE_FILE}\n  offline: true\n"
        "aavso:\n  observer_code: DEMO\n  mode: outbox\n")
    return cfg


def _counts(db: Path) -> dict[str, int]:
    if not db.exists():
        return {}
    conn = sqlite3.connect(db, timeout=30)
    try:
        rows = conn.execute("SELECT state, COUNT(*) FROM frames GROUP BY state").fetchall()
    except sqlite3.OperationalError:
        return {}
    finally:
        conn.close()
    return dict(rows)


def _wait(pred: Any, timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None,
          log: Path | None = None) -> None:
    wait_for(pred, timeout, what, interval=0.2,
             stop=None if proc is None else lambda: proc.poll() is not None,
             detail=lambda: log.read_text()[-3000:] if log and log.exists() else "")


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _start(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "starnode", "--config", str(cfg), "run"],
                            stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            cwd=cfg.parent)


def test_run_sigkill_restart_exactly_once(tmp_path: Path) -> None:
    myworks = tmp_path / "MyWorks"
    myworks.mkdir()
    cfg = _config(tmp_path, myworks)
    db = tmp_path / "data" / "starnode.sqlite3"
    log = tmp_path / "node.log"

    times = [f"2025-09-14T{21 + i // 3:02d}:{(i % 3) * 20:02d}:00" for i in range(8)]
    good: dict[str, bytes] = {}
    folders = ["SS Cyg_sub", "SS Cyg_sub", "SS Cyg_mosaic_sub"]
    for i in range(5):
        good[f"{folders[i % 3]}/{_name(times[i])}"] = _sub(10 + i, 11.8 - 0.1 * i, times[i])
    full = _sub(30, 11.4, times[5])
    bad = {
        f"SS Cyg_sub/{_name(times[5])}": full[: len(full) * 3 // 5],  # truncated copy
        f"SS Cyg_sub/{_name(times[6])}": b"SIMPLE  =  T / garbage" + os.urandom(3000),
        f"SS Cyg_mosaic_sub/{_name(times[7])}": _sub(31, 11.4, times[7], imagetyp="Dark"),
        f"M 31_sub/{_name('2025-09-14T23:40:00')}": _sub(
            32, 11.4, "2025-09-14T23:40:00", pointing_offset_arcmin=(0.0, 45.0)),
    }
    order = list(good)[:3] + list(bad)[:2] + list(good)[3:] + list(bad)[2:]
    frames = {**good, **bad}

    proc = _start(cfg, log)
    try:
        for rel in order[:4]:
            write_slowly(myworks / rel, frames[rel], chunks=5, pause=0.05)
            time.sleep(0.2)
        # kill -9 while frames are in hand or queued, once at least one is reported
        _wait(lambda: _counts(db).get("reported", 0) >= 1, 90, "a first reported frame",
              proc, log)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children  # the worker pool
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed_at = _counts(db)
        # the killed node's workers do not linger as orphans
        _wait(lambda: not any(_alive(c) for c in children), 20, "orphan workers to exit")
        # the telescope goes on while the node is down
        for rel in order[4:]:
            write_slowly(myworks / rel, frames[rel], chunks=5, pause=0.05)
        time.sleep(0.6)  # older than the debounce delay: the startup scan takes them
        proc = _start(cfg, log)
        total = len(frames)
        _wait(lambda: sum(_counts(db).values()) >= total and not any(
            _counts(db).get(s) for s in ("pending", "processing")), 120,
            "every frame to be done", proc, log)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    text = log.read_text()
    assert "requeued" in text or killed_at.get("processing", 0) == 0
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    rows = {Path(r["path"]).relative_to(myworks).as_posix(): dict(r)
            for r in conn.execute("SELECT * FROM frames")}
    assert len(rows) == len(frames), sorted(rows)  # one row per file: nothing seen twice
    for rel in good:
        r = rows[rel]
        assert r["state"] == "reported", (rel, r["state"], r["reason"])
        assert r["measure_count"] == 1 and r["report_count"] == 1
    # outbox: exactly one row per good frame, and it validates
    status = subprocess.run([sys.executable, "-m", "starnode", "--config", str(cfg), "status",
                             "--json"], capture_output=True, text=True, check=True)
    data = json.loads(status.stdout)
    assert sum(o["rows"] for o in data["outbox"]) == len(good)
    report_lines = []
    for o in data["outbox"]:
        check = subprocess.run([sys.executable, "-m", "starnode", "validate", o["path"]],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stdout
        report_lines += [ln for ln in Path(o["path"]).read_text().splitlines()
                         if not ln.startswith("#")]
    frames_named = sorted(ln.split("FRAME=")[1].split("|")[0] for ln in report_lines)
    assert frames_named == sorted(Path(g).name for g in good)
    # bad frames are in status with their reasons
    problems = {(p["state"], p["category"]) for p in data["problems"]}
    by_file = {Path(p["example"]).name: p for p in data["problems"]}
    assert ("skipped", "not_light") in problems
    assert ("skipped", "unreadable") in problems
    assert ("skipped", "no_target") in problems, problems
    assert all(p["reason"] for p in data["problems"])
    assert data["counts"]["failed"] == 0
    assert len(by_file) >= 3
    human = subprocess.run([sys.executable, "-m", "starnode", "--config", str(cfg), "status"],
                           capture_output=True, text=True, check=True).stdout
    assert "not_light" in human and "outbox" in human
