"""One owner of the mount (S6): an advisory ``flock`` on ``data_dir/telescope.lock``.

``starnode observe`` (and ``starnode run`` with a telescope) holds it for as long as it may move
the mount; a second one refuses. ``starnode park`` takes it too: when an observing process holds
it, ``park`` asks that process to stop (SIGTERM: it parks and releases), waits, then parks and
verifies itself. The kernel releases a ``flock`` when its holder dies, so a crash never leaves a
stale lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

__all__ = ["LOCK_NAME", "MountBusy", "MountLock"]

LOCK_NAME = "telescope.lock"


class MountBusy(Exception):
    """Another process owns the mount (:attr:`pid` when known)."""

    def __init__(self, msg: str, pid: int | None) -> None:
        super().__init__(msg)
        self.pid = pid


class MountLock:
    """The mount lock in ``data_dir``."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.path = Path(data_dir) / LOCK_NAME
        self._fd: int | None = None

    def holder(self) -> int | None:
        """The pid written by the holder (None when unknown or not held)."""
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def acquire(self) -> None:
        """Take the lock.

        Raises
        ------
        MountBusy
            Another process holds it.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            pid = self.holder()
            raise MountBusy(f"another starnode process (pid {pid or '?'}) owns the telescope "
                            f"({self.path}); one owner at a time", pid) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
            self._fd = None

    def __enter__(self) -> MountLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
