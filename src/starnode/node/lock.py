"""One ``starnode run`` per data directory: an advisory lock on ``data_dir/node.lock``.

``flock`` is released by the kernel when its holder dies, however it dies, so a stale lock file
never blocks a restart; the file holds the holder's pid for the refusal message and for
``starnode doctor``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from ..errors import NodeBusy

__all__ = ["LOCK_FILE", "DataDirLock"]

LOCK_FILE = "node.lock"


class DataDirLock:
    """The data directory's node lock.

    Parameters
    ----------
    data_dir : path-like
        The node's data directory.
    """

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock for this process.

        Raises
        ------
        NodeBusy
            Another process holds it (the message names its pid).
        """
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            other = os.read(fd, 64).decode(errors="replace").strip()
            os.close(fd)
            raise NodeBusy(f"another 'starnode run' (pid {other or '?'}) is using "
                           f"{self.data_dir}; stop it first or use another data_dir") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        """Give the lock back (no-op when not held)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
            self._fd = None

    def holder(self) -> str | None:
        """The pid (as written in the file) of the process holding the lock, or None."""
        if self._fd is not None:
            return str(os.getpid())
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return os.read(fd, 64).decode(errors="replace").strip() or "?"
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)
