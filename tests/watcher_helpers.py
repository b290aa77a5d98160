"""Helpers shared by the watcher tests (tests/watcher/) and the node tests: FITS bytes, slow
writers, a collecting callback and a watcher factory that always stops its watchers."""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits

from starnode.watcher import ImageWatcher

DEBOUNCE = 0.2
TIMEOUT = 15.0
# ----------------------------------------------------------------------------- helpers
def fits_bytes(shape: tuple[int, ...] = (48, 40), *, seed: int = 0, obj: str = "SS Cyg",
               dtype: Any = np.uint16) -> bytes:
    """A small, valid FITS file (uint16 -> BITPIX 16 + BZERO 32768, like a Seestar sub)."""
    rng = np.random.default_rng(seed)
    data = rng.integers(100, 60000, size=shape).astype(dtype)
    hdu = fits.PrimaryHDU(data)
    hdu.header["OBJECT"] = obj
    hdu.header["EXPTIME"] = 10.0
    hdu.header["IMAGETYP"] = "Light"
    hdu.header["FILTER"] = "IRCUT"
    hdu.header.add_comment("written by the tests")
    buf = io.BytesIO()
    hdu.writeto(buf)
    return buf.getvalue()


def slow_write(path: Path | str, data: bytes, *, chunk: int = 2880, pause: float = 0.0,
               stall_at: float | None = None, stall: float = 0.0,
               preallocate: bool = False) -> None:
    """Write ``data`` in chunks, optionally stalling once (at fraction ``stall_at``)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | (0 if preallocate else os.O_TRUNC), 0o644)
    with open(fd, "r+b") as f:
        if preallocate:
            f.truncate(len(data))
        stalled = False
        for i in range(0, len(data), chunk):
            f.write(data[i:i + chunk])
            f.flush()
            os.fsync(f.fileno()) if preallocate else None
            if stall_at is not None and not stalled and i >= stall_at * len(data):
                stalled = True
                time.sleep(stall)
            elif pause:
                time.sleep(pause)


def writer_thread(target: Callable[..., None], *args: Any, **kwargs: Any) -> threading.Thread:
    t = threading.Thread(target=target, args=args, kwargs=kwargs, daemon=True)
    t.start()
    return t


class Collector:
    """The callback: records events, the thread each ran on and whether two ever overlapped."""

    def __init__(self, action: Callable[[dict], None] | None = None) -> None:
        self.events: list[dict] = []
        self.threads: set[int] = set()
        self.overlap = False
        self._busy = False
        self._cond = threading.Condition()
        self.action = action

    def __call__(self, event: dict) -> None:
        with self._cond:
            if self._busy:
                self.overlap = True
            self._busy = True
        try:
            # checked at the moment the callback runs: the file is complete
            event["_complete_at_call"] = _complete(event["path"])
            if self.action is not None:
                self.action(event)
        finally:
            with self._cond:
                self._busy = False
                self.threads.add(threading.get_ident())
                self.events.append(event)
                self._cond.notify_all()

    def wait_for(self, n: int, timeout: float = TIMEOUT) -> list[dict]:
        with self._cond:
            self._cond.wait_for(lambda: len(self.events) >= n, timeout)
            return list(self.events)

    def quiet(self, seconds: float) -> list[dict]:
        """Wait ``seconds`` (for things that must NOT happen), return the events so far."""
        time.sleep(seconds)
        with self._cond:
            return list(self.events)

    @property
    def paths(self) -> list[str]:
        return [e["path"] for e in self.events]


def _complete(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            raw = f.read()
        with fits.open(io.BytesIO(raw)) as hl:
            hl.verify("exception")
            _ = hl[0].data
        return True
    except Exception:
        return False


@pytest.fixture
def make_watcher() -> Iterator[Callable[..., ImageWatcher]]:
    made: list[ImageWatcher] = []

    def make(path: Path | str, callback: Callable[[dict], None], debounce: float = DEBOUNCE,
             **kw: Any) -> ImageWatcher:
        kw.setdefault("mode", "events")
        w = ImageWatcher(str(path), callback, debounce, **kw)
        made.append(w)
        w.start()
        return w

    yield make
    for w in made:
        w.stop()
