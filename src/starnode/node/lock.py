"""One ``starnode run`` per data directory: an advisory ``flock`` on the data directory itself.

``flock`` is released by the kernel when its holder dies, however it dies, so a stale lock never
blocks a restart. The lock is taken on the directory, not on a file in it: a lock on
``data_dir/node.lock`` is lost when somebody deletes that file (the next node creates a new
file, a new inode, and locks that one beside the first node). ``node.lock`` is still written
with the holder's pid, for the refusal message and for ``starnode doctor``.
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
        The node's data directory (it must exist to be locked).
    """

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / LOCK_FILE
        self._fd: int | None = None

    def _pid_text(self) -> str:
        try:
            return self.path.read_text(errors="replace").strip()[:64]
        except OSError:
            return ""

    def acquire(self) -> None:
        """Take the lock for this process.

        Raises
        ------
        NodeBusy
            Another process holds it (the message names its pid).
        """
        fd = os.open(self.data_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise NodeBusy(f"another 'starnode run' (pid {self._pid_text() or '?'}) is using "
                           f"{self.data_dir}; stop it first or use another data_dir") from None
        try:
            tmp = self.path.with_name(f".{LOCK_FILE}.{os.getpid()}")
            tmp.write_text(str(os.getpid()))
            tmp.chmod(0o600)
            tmp.replace(self.path)
        except OSError:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Give the lock back (no-op when not held)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                if self._pid_text() == str(os.getpid()):
                    self.path.unlink()
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
            self._fd = None

    def holder(self) -> str | None:
        """The pid (as written in ``node.lock``) of the process holding the lock, or None."""
        if self._fd is not None:
            return str(os.getpid())
        try:
            fd = os.open(self.data_dir, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return self._pid_text() or "?"
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)
