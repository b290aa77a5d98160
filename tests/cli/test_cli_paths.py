"""``starnode stars`` and ``solve`` never overwrite their input and never trace back (issue 17,
item 4): an ``--out`` naming an input frame is refused; a name that is not UTF-8, a symbolic
link loop, an ``--out`` in a missing folder, a folder, or on a full device are one line each.
Real processes, real files (a real full tmpfs when root)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from starnode import synthetic

STARNODE = [sys.executable, "-m", "starnode"]


def _frame(tmp_path: Path) -> Path:
    hdul, _ = synthetic.make_sub(seed=11, extra_stars=50)
    return synthetic.write_frame(tmp_path / "a.fit", hdul)


def _run(tmp_path: Path, *args: str | bytes) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"data_dir": str(tmp_path / "data"), "catalogs": {
        "sequence_file": str(synthetic.DEMO_SEQUENCE_FILE), "offline": True}}))
    return subprocess.run([*STARNODE, "--config", str(cfg), "--log-level", "WARNING", *args],
                          capture_output=True,
                          text=True, timeout=120, check=False, cwd=tmp_path)


def _one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_stars_out_naming_its_input_is_refused(tmp_path: Path) -> None:
    frame = _frame(tmp_path)
    before = frame.read_bytes()
    for out in ("a.fit", str(frame), "./a.fit"):
        proc = _run(tmp_path, "stars", "a.fit", "--out", out)
        assert proc.returncode == 2
        assert "refusing to overwrite" in _one_line(proc)
    link = tmp_path / "link.fit"
    link.symlink_to(frame)
    proc = _run(tmp_path, "stars", "a.fit", "--out", str(link))
    assert proc.returncode == 2 and "refusing" in _one_line(proc)
    assert frame.read_bytes() == before


@pytest.mark.slow
def test_stars_and_solve_odd_names_and_outs_are_one_line(tmp_path: Path) -> None:
    frame = _frame(tmp_path)
    odd = os.fsencode(tmp_path) + b"/b\xff.fit"
    shutil.copy(frame, odd)
    (tmp_path / "loop.fit").symlink_to(tmp_path / "loop.fit")
    for cmd in ("stars", "solve"):
        proc = _run(tmp_path, cmd, os.fsdecode(odd))
        assert proc.returncode == 1 and "not valid UTF-8" in _one_line(proc)
        assert "\\xff" in proc.stderr
        proc = _run(tmp_path, cmd, "loop.fit")
        assert proc.returncode == 1 and "symbolic link loop" in _one_line(proc)
        proc = _run(tmp_path, cmd, str(tmp_path))
        assert proc.returncode == 1 and "is a folder" in _one_line(proc)
    proc = _run(tmp_path, "stars", "a.fit", "--out", "missing/x.ecsv")
    assert proc.returncode == 2 and "does not exist" in _one_line(proc)
    proc = _run(tmp_path, "stars", "a.fit", "--out", str(tmp_path))
    assert proc.returncode == 2 and "is a folder" in _one_line(proc)


@pytest.mark.slow
def test_stars_out_on_a_full_device_is_one_line(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(disk)],
            capture_output=True, check=False).returncode:
        pytest.skip("needs root and tmpfs to make a real full device")
    try:
        _frame(tmp_path)
        fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        with contextlib.suppress(OSError):
            while os.write(fd, b"\0" * 1024):
                pass
        os.close(fd)
        proc = _run(tmp_path, "stars", "a.fit", "--out", str(disk / "stars.ecsv"))
        assert proc.returncode == 1
        assert "No space left on device" in _one_line(proc)
        assert [p.name for p in disk.iterdir()] == ["filler"], "a partial output was left"
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
