"""Noticing that the watched folder itself went away and came back.

OS events are tied to the folder's inode: when the folder is deleted and created again, moved
away and replaced, or a share is unmounted and mounted again on it, inotify keeps watching the
old inode (or nothing) and the new folder is never watched. Poll mode lists the path again each
time, so it recovers by itself; events mode needs this guard. :class:`RootGuard` compares the
folder's identity (device and inode) every few seconds and calls ``on_change`` when a folder is
back under the same path with a new identity; the watcher then restarts its observer.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from starnode.frame.admission import quoted

log = logging.getLogger(__name__)

__all__ = ["RootGuard", "identity"]


def identity(path: str) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of the folder ``path``; None when it is not a folder now."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if os.path.isdir(path) else None


class RootGuard(threading.Thread):
    """Calls ``on_change()`` when ``root`` is a folder again with a new identity.

    Parameters
    ----------
    root : str
        The watched folder.
    interval : float
        Seconds between checks.
    on_change : callable
        Called from this thread; exceptions are logged and the guard goes on.
    """

    def __init__(self, root: str, interval: float, on_change: Callable[[], None]) -> None:
        super().__init__(name="starnode-watcher-root", daemon=True)
        self.root = root
        self.interval = interval
        self.on_change = on_change
        self.folder_id = identity(root)
        self._stop_event = threading.Event()

    def check(self) -> bool:
        """One check; True when ``on_change`` was called."""
        now = identity(self.root)
        if now == self.folder_id:
            return False
        if now is None:
            log.warning("ImageWatcher: the watched folder %s is gone (share unmounted? "
                        "deleted?); watching it again as soon as it is back", quoted(self.root))
            self.folder_id = None
            return False
        log.info("ImageWatcher: the watched folder %s is back (a new folder); watching it again",
                 quoted(self.root))
        self.folder_id = now
        self.on_change()
        return True

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            try:
                self.check()
            except Exception:  # never let the guard die
                log.exception("ImageWatcher: checking %s failed", quoted(self.root))

    def stop(self) -> None:
        """Ask the thread to end (join it to wait)."""
        self._stop_event.set()
