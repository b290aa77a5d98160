"""Waiting in tests for something another thread or process does: poll a condition until it
holds or a deadline passes, or stop a process and wait for it (the one home of the loops the
end-to-end tests used to repeat)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any


def poll_until(pred: Callable[[], Any], timeout: float, interval: float = 0.05,
               stop: Callable[[], bool] | None = None) -> bool:
    """Whether ``pred()`` became true within ``timeout`` seconds (checked every ``interval``).

    ``stop()`` true ends the wait early (a process that died); the condition is then false.
    """
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        if stop is not None and stop():
            return False
        time.sleep(interval)
    return False


def wait_for(pred: Callable[[], Any], timeout: float, what: str, *, interval: float = 0.05,
             detail: Callable[[], str] | None = None,
             stop: Callable[[], bool] | None = None) -> None:
    """Wait until ``pred()`` is true; else fail naming ``what`` (and ``detail()``, a log tail).

    Raises
    ------
    AssertionError
        ``timed out waiting for <what>``, followed by the detail on its own line.
    """
    if poll_until(pred, timeout, interval, stop):
        return
    raise AssertionError(f"timed out waiting for {what}"
                         + (f"\n{detail()}" if detail is not None else ""))


def stop_process(proc: subprocess.Popen[Any], timeout: float) -> None:
    """SIGTERM ``proc`` and wait up to ``timeout`` seconds for it to end; killed (and waited
    for) when it does not."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
