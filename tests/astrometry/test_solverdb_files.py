"""``starnode solver-db`` leaves no temporary file behind a killed build, and ``doctor`` fails a
truncated solver database (issue 17, item 6). Real processes, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from starnode.astrometry import tetra3rs_database_path
from starnode.astrometry.solverdb import record
from starnode.config import Config


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"data_dir": str(tmp_path / "data")}))
    return subprocess.run([sys.executable, "-m", "starnode", "--config", str(cfg), *args],
                          capture_output=True, text=True, timeout=120, check=False)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_killed_build_leaves_no_temporary_file(tmp_path: Path) -> None:
    db = tetra3rs_database_path(Config({"data_dir": str(tmp_path / "data")}))
    db.parent.mkdir(parents=True)
    dead = _dead_pid()
    stale = [db.with_name(f"{db.name}.{dead}.tmp"), db.with_name(f"tycho2-gaia10.{dead}.gdr3")]
    live = db.with_name(f"{db.name}.{os.getpid()}.tmp")
    for p in [*stale, live]:
        p.write_bytes(b"\0" * 4096)
    _cli(tmp_path, "solver-db")           # whether or not tetra3rs is installed
    assert not any(p.exists() for p in stale)
    assert live.exists(), "the file of a build at work was removed"


@pytest.mark.slow
def test_doctor_fails_a_truncated_solver_database(tmp_path: Path) -> None:
    db = tetra3rs_database_path(Config({"data_dir": str(tmp_path / "data")}))
    db.parent.mkdir(parents=True)
    db.write_bytes(b"\1" * 100_000)
    record(db)
    ok = _cli(tmp_path, "doctor")
    assert "solver database" in ok.stdout and "as built" in ok.stdout, ok.stdout
    with open(db, "r+b") as fh:
        fh.truncate(25_000)
    bad = _cli(tmp_path, "doctor")
    assert bad.returncode == 1
    assert "[FAIL] solver database" in bad.stdout and "truncated" in bad.stdout, bad.stdout
