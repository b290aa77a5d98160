"""starnode.node.pool: the worker pool keeps a crash or a hang to its own frame, and workers
leave when the node that started them is killed (real processes, the stand-in measuring function
of tests/node_fakes.py)."""

from __future__ import annotations

import concurrent.futures as cf
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from node_fakes import measure as fake_measure
from node_fakes import write_fake
from starnode.node.pool import (
    FailedFrame,
    MeasuredFrame,
    SkippedFrame,
    Task,
    WorkerPool,
    outcome_of,
    work,
)

FAKE = "node_fakes:measure"
RAW = {"data_dir": "unused"}


def _pool(workers: int = 2, timeout: float = 60.0) -> WorkerPool:
    return WorkerPool(workers, FAKE, RAW, timeout=timeout, log_level=30)


def test_work_outcomes_in_process(tmp_path: Path) -> None:
    ok = work(FAKE, str(write_fake(tmp_path / "Light_a.fit", "mag=11.5")), RAW)
    assert isinstance(ok, MeasuredFrame) and ok.result["magnitude"] == 11.5
    rej = work(FAKE, str(write_fake(tmp_path / "Light_b.fit", "reject=not_light:a dark")), RAW)
    assert isinstance(rej, SkippedFrame) and rej.category == "not_light"
    assert rej.reason == "a dark"
    err = work(FAKE, str(write_fake(tmp_path / "Light_c.fit", "error")), RAW)
    assert isinstance(err, FailedFrame) and err.error.startswith("ValueError: something broke")
    assert "node_fakes.py:" in err.error  # where it happened
    # a function works as the stand-in as well as its name
    assert work(fake_measure, Task(str(tmp_path / "Light_a.fit")), RAW).kind == "measured"


def test_crash_fails_only_its_own_frame(tmp_path: Path) -> None:
    pool = _pool(workers=2)
    try:
        slow = pool.submit(str(write_fake(tmp_path / "Light_slow.fit", "sleep=2")))
        crash = pool.submit(str(write_fake(tmp_path / "Light_crash.fit", "crash")))
        cf.wait([slow, crash], timeout=120)
        bad = outcome_of(crash, pool.timeout)
        good = outcome_of(slow, pool.timeout)
        assert isinstance(bad, FailedFrame) and bad.expired and "SIGSEGV" in bad.error
        assert good.kind == "measured"  # the frame beside it was not touched
        after = pool.submit(str(write_fake(tmp_path / "Light_after.fit", "mag=10.0")))
        cf.wait([after], timeout=120)
        assert outcome_of(after, pool.timeout).kind == "measured"  # a fresh worker
    finally:
        pool.close(wait=False)


def test_hang_times_out_alone(tmp_path: Path) -> None:
    pool = _pool(workers=2, timeout=8.0)  # a first frame in a fresh worker imports astropy
    try:
        hung = pool.submit(str(write_fake(tmp_path / "Light_hung.fit", "sleep=60")))
        ok = pool.submit(str(write_fake(tmp_path / "Light_ok.fit", "mag=11.0")))
        cf.wait([hung, ok], timeout=120)
        out = outcome_of(hung, pool.timeout)
        assert isinstance(out, FailedFrame)
        assert out.crashed and "timed out after 8 s" in out.error
        assert not out.expired
        assert outcome_of(ok, pool.timeout).kind == "measured"
    finally:
        pool.close(wait=False)


_ORPHAN = """
import sys, time
sys.path.insert(0, {tests!r})
from starnode.node.pool import WorkerPool
from node_fakes import write_fake
pool = WorkerPool(1, "node_fakes:measure", {{}}, timeout=600, log_level=30)
fut = pool.submit(str(write_fake(__import__("pathlib").Path({frame!r}), "sleep=600")))
print("started", flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_workers_leave_when_the_node_is_killed(tmp_path: Path) -> None:
    code = _ORPHAN.format(tests=str(Path(__file__).parents[1]), frame=str(tmp_path / "Light_x.fit"))
    node = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert node.stdout is not None and node.stdout.readline().strip() == b"started"
        me = psutil.Process(node.pid)
        end = time.monotonic() + 60
        workers: list[psutil.Process] = []
        while not workers and time.monotonic() < end:
            workers = [c for c in me.children() if "python" in c.name().lower()]
            time.sleep(0.2)
        assert workers, "the pool started no worker"
        os.kill(node.pid, signal.SIGKILL)  # the node cannot stop its workers
        node.wait()
        _gone, alive = psutil.wait_procs(workers, timeout=30)
        assert not alive, f"workers outlived their node: {[p.pid for p in alive]}"
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
