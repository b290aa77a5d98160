"""A node killed with SIGKILL at any moment leaves no process behind (issue 10, item 4).

``starnode run`` is started for real and SIGKILLed at random moments of its start-up (while its
pool workers are still being spawned and importing the pipeline), repeatedly; 20 s later no
process carrying this test's tag in its environment may be alive."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil

from starnode.synthetic import DEMO_SEQUENCE_FILE

KILLS = 6
TAG = "STARNODE_TEST_TAG"


def _tagged(tag: str) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter():
        try:
            if p.environ().get(TAG) == tag and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except (psutil.Error, OSError):
            continue
    return out


def _config(tmp: Path) -> Path:
    (tmp / "MyWorks").mkdir(exist_ok=True)
    cfg = tmp / "config.yaml"
    cfg.write_text(
        f"data_dir: {tmp / 'data'}\nworkers: 2\n"
        f"watch:\n  path: {tmp / 'MyWorks'}\n"
        f"photometry:\n  sequence_file: {DEMO_SEQUENCE_FILE}\n  offline: true\n"
        "aavso:\n  observer_code: DEMO\n  mode: outbox\n")
    return cfg


def test_sigkill_at_any_moment_of_start_up_leaves_no_process(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    rng = random.Random(10)
    leftovers: list[str] = []
    for i in range(KILLS):
        tag = uuid.uuid4().hex
        env = {**os.environ, TAG: tag}
        log = (tmp_path / f"run{i}.log").open("wb")
        node = subprocess.Popen([sys.executable, "-m", "starnode", "--config", str(cfg), "run"],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
        # early kills catch workers still spawning; late ones, workers importing the pipeline
        time.sleep(rng.uniform(0.3, 4.0))
        seen = {p.pid for p in _tagged(tag)}
        node.send_signal(signal.SIGKILL)
        node.wait()
        log.close()
        deadline = time.monotonic() + 20
        left = _tagged(tag)
        while left and time.monotonic() < deadline:
            time.sleep(0.5)
            left = _tagged(tag)
        for p in left:  # clean up, then report
            leftovers.append(f"kill {i}: pid {p.pid} {' '.join(p.cmdline())[:120]} "
                             f"(of {len(seen)} seen before the kill)")
            p.kill()
    assert not leftovers, "\n".join(leftovers)
