"""Chaos (issue 10): poison dropped into a running node's share, then good frames.

A real ``starnode run`` process watches a folder; into it go a name that is not UTF-8, a FIFO,
a folder named ``x.fit``, a symlink to ``/dev/zero`` and a sparse frame announcing 20000 x 20000
pixels, then good synthetic subs. Every good frame is reported, the node and its workers stay
under 2 GB RSS (sampled), SIGTERM stops it, and every poison item is in ``starnode status`` with
its reason. The same scenario is the poison benchmark (``bench/poison.py``), which reports the
figures; here they are bounds, never timings."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
from astropy.io import fits

from starnode.synthetic import DEMO_SEQUENCE_FILE, make_sub
from waiting import stop_process

GOOD = 3
POISON = {"Light_caf\\xe9.fit": "bad_name", "Light_fifo.fit": "not_a_file",
          "x.fit": "not_a_file", "Light_zero.fit": "not_a_file",
          "Light_sparse.fit": "too_large"}


def _sub(i: int) -> tuple[str, bytes]:
    date_obs = f"2025-09-14T21:{i * 5:02d}:00"
    hdul, _ = make_sub(target_mag=11.5, seed=40 + i, date_obs=date_obs, site=(48.85, 2.35),
                       exptime=10.0)
    buf = io.BytesIO()
    hdul.writeto(buf)
    return f"Light_SS Cyg_10.0s_IRCUT_20250914-21{i * 5:02d}00.fit", buf.getvalue()


def _drop_poison(share: Path) -> None:
    (share / "Light_ok.txt").write_text("not a frame")
    bad = os.fsencode(share) + b"/Light_caf\xe9.fit"
    with open(bad, "wb") as f:
        f.write(_sub(9)[1])
    os.mkfifo(share / "Light_fifo.fit")
    (share / "x.fit").mkdir()
    (share / "Light_zero.fit").symlink_to("/dev/zero")
    hdr = fits.Header([("SIMPLE", True), ("BITPIX", 16), ("NAXIS", 2), ("NAXIS1", 20000),
                       ("NAXIS2", 20000), ("IMAGETYP", "Light")])
    sparse = share / "Light_sparse.fit"
    sparse.write_bytes(hdr.tostring().encode())
    os.truncate(sparse, 2880 * (1 + -(-20000 * 20000 * 2 // 2880)))


def _rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return total


def _states(db: Path) -> dict[str, tuple[str, str, str]]:
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            rows = conn.execute("SELECT path, state, category, reason FROM frames").fetchall()
    except sqlite3.Error:
        return {}
    return {os.path.basename(p): (s, c or "", r or "") for p, s, c, r in rows}


def run_poison(tmp: Path, good: int = GOOD, timeout: float = 240.0) -> dict[str, Any]:
    """Run the scenario; returns peak RSS, SIGTERM-to-exit seconds, states and status."""
    share = tmp / "MyWorks"
    share.mkdir(parents=True)
    cfg = tmp / "config.yaml"
    cfg.write_text(
        f"data_dir: {tmp / 'data'}\nworkers: 2\nshutdown_grace: 20\n"
        f"watch:\n  path: {share}\n  debounce_delay: 0.5\n  mode: events\n"
        "  include: []\n"
        f"photometry:\n  sequence_file: {DEMO_SEQUENCE_FILE}\n  offline: true\n"
        "aavso:\n  observer_code: DEMO\n  mode: outbox\n")
    db = tmp / "data" / "starnode.sqlite3"
    log = (tmp / "node.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "starnode", "--config", str(cfg), "run"],
                            stdout=log, stderr=subprocess.STDOUT)
    node = psutil.Process(proc.pid)
    peak, names = 0, []
    try:
        deadline = time.monotonic() + timeout
        while "watching" not in (tmp / "node.log").read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        _drop_poison(share)
        for i in range(good):
            name, data = _sub(i)
            (share / name).write_bytes(data)
            names.append(name)
        wanted = set(POISON) | set(names)
        while time.monotonic() < deadline and proc.poll() is None:
            peak = max(peak, _rss(node))
            states = _states(db)
            if wanted <= set(states) and all(
                    states[n][0] in ("reported", "skipped", "failed", "measured")
                    for n in wanted):
                break
            time.sleep(0.2)
        peak = max(peak, _rss(node))
    finally:
        t0 = time.monotonic()
        stop_process(proc, 60)
        stop_s = time.monotonic() - t0
        log.close()
    status = subprocess.run([sys.executable, "-m", "starnode", "--config", str(cfg), "status",
                             "--json"], capture_output=True, text=True, timeout=120)
    return {"peak_rss": peak, "stop_seconds": stop_s, "exit": proc.returncode,
            "states": _states(db), "good": names, "status": status.stdout,
            "log": (tmp / "node.log").read_text(errors="replace")}


def test_poison_in_the_share_of_a_running_node(tmp_path: Path) -> None:
    out = run_poison(tmp_path)
    states, tail = out["states"], out["log"][-4000:]
    for name in out["good"]:
        assert states.get(name, ("missing",))[0] == "reported", (name, states.get(name), tail)
    for name, category in POISON.items():
        assert name in states, (name, sorted(states), tail)
        state, cat, reason = states[name]
        assert (state, cat) == ("skipped", category) and reason, (name, states[name])
        assert name in out["status"] or json.dumps(name)[1:-1] in out["status"], name
    assert out["peak_rss"] < 2 * 2**30
    assert out["stop_seconds"] < 30 and out["exit"] is not None
    assert "Logging error" not in out["log"]
