"""starnode.logs: the log file survives a full disk (lines dropped and counted, no traceback
storm) and repeated warnings are rate-limited (issue 17, item 3)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from starnode.logs import FileHandler, RepeatFilter, setup_logging


def _record(msg: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord("starnode.test", level, __file__, 1, msg, args, None)


def test_repeated_errors_are_rate_limited_and_counted() -> None:
    f = RepeatFilter(burst=3, window=0.5)
    passed = [f.filter(_record("%s: cannot write (%s)", f"frame{i}", "disk full"))
              for i in range(20)]
    assert passed.count(True) == 3
    assert f.filter(_record("another kind of error"))  # another template passes
    assert all(f.filter(_record("frame %d", i, level=logging.INFO)) for i in range(20))
    import time

    time.sleep(0.6)
    rec = _record("%s: cannot write (%s)", "frame99", "disk full")
    assert f.filter(rec)
    assert "17 more like this were held back" in rec.getMessage()


def test_the_log_file_survives_a_full_disk(tmp_path: Path,
                                           capfd: pytest.CaptureFixture[str]) -> None:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root and tmpfs to make a real full disk")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                      capture_output=True, check=False).returncode:
        pytest.skip("tmpfs cannot be mounted here")
    try:
        handler = FileHandler(disk / "starnode.log", maxBytes=10_000_000, backupCount=1)
        handler.setFormatter(logging.Formatter("%(message)s"))
        filler = disk / "filler"
        with open(filler, "wb", buffering=0) as fh, pytest.raises(OSError):
            while True:
                fh.write(b"\0" * 4096)
        for i in range(200):
            handler.handle(_record("line %d " + "x" * 200, i))
        assert handler.dropped > 0
        filler.unlink()
        handler.handle(_record("after"))
        handler.close()
        text = (disk / "starnode.log").read_text()
        assert "were dropped" in text and text.rstrip().endswith("after")
        assert "Logging error" not in capfd.readouterr().err
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_setup_logging_installs_the_safe_handler(tmp_path: Path) -> None:
    path = setup_logging("INFO", tmp_path, console=False)
    try:
        handlers = [h for h in logging.getLogger().handlers if isinstance(h, FileHandler)]
        assert path is not None and len(handlers) == 1
        assert any(isinstance(f, RepeatFilter) for f in handlers[0].filters)
    finally:
        setup_logging("INFO", None, console=False)
