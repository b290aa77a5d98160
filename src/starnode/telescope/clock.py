"""Time for the runner: the host's UTC clock, or a simulated one (tests, benches, --dry-run).

Everything that waits in :mod:`starnode.telescope` waits through a :class:`Clock`, so a whole
night runs in seconds on a :class:`SimClock` and a stop request (SIGTERM) interrupts any wait.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "SimClock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time (aware, UTC)."""
        ...

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        """Wait; returns False when ``stop`` was set meanwhile (the wait is cut short)."""
        ...


class SystemClock:
    """The host's clock (the runner trusts it only after :mod:`.safety` checked it)."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        if stop is None:
            time.sleep(max(0.0, seconds))
            return True
        return not stop.wait(max(0.0, seconds))


class SimClock:
    """A simulated clock: :meth:`sleep` advances it at once; :meth:`jump` moves it (a clock
    step, as NTP makes after a long outage). Thread-safe: the fake Alpaca server reads it."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("SimClock needs an aware start time")
        self._t = start.astimezone(UTC)
        self._lock = threading.Lock()
        self.slept = 0.0

    def now(self) -> datetime:
        with self._lock:
            return self._t

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        if stop is not None and stop.is_set():
            return False
        with self._lock:
            self._t += timedelta(seconds=max(0.0, seconds))
            self.slept += max(0.0, seconds)
        return not (stop is not None and stop.is_set())

    def jump(self, seconds: float) -> None:
        with self._lock:
            self._t += timedelta(seconds=seconds)
