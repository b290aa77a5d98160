"""One node per data_dir (issue 10, item 21): an OS lock that dies with its holder and that
deleting ``node.lock`` does not break."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from starnode.errors import NodeBusy
from starnode.node.lock import LOCK_FILE, DataDirLock

_HOLD = ("import sys, time; from starnode.node.lock import DataDirLock; "
         "DataDirLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)")


def _holder(data_dir: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(data_dir)], text=True,
                            stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_deleting_the_lock_file_does_not_let_a_second_node_in(tmp_path: Path) -> None:
    proc = _holder(tmp_path)
    try:
        (tmp_path / LOCK_FILE).unlink()
        with pytest.raises(NodeBusy) as exc:
            DataDirLock(tmp_path).acquire()
        assert str(proc.pid) in str(exc.value) or "another" in str(exc.value)
        assert DataDirLock(tmp_path).holder() is not None
    finally:
        proc.kill()
        proc.wait()


def test_the_lock_dies_with_its_holder(tmp_path: Path) -> None:
    proc = _holder(tmp_path)
    with pytest.raises(NodeBusy, match=str(proc.pid)):
        DataDirLock(tmp_path).acquire()
    proc.kill()
    proc.wait()
    lock = DataDirLock(tmp_path)
    lock.acquire()
    try:
        assert (tmp_path / LOCK_FILE).read_text().strip() == str(__import__("os").getpid())
    finally:
        lock.release()
    assert DataDirLock(tmp_path).holder() is None
