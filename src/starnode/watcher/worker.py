"""The callback worker: one thread that runs fires and folder scans one at a time, in order.

The seed calls the callback from each path's own timer thread. Here every due path (and every
folder scan after a new subfolder or an inotify overflow) goes into one queue served by one
thread, so callbacks never overlap, arrive in order of completion, and the number of threads
stays fixed however many files arrive at once.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

__all__ = ["WorkQueue"]

_STOP = ("stop", "")


class WorkQueue:
    """A FIFO of ``("fire", path)`` and ``("scan", folder)`` items and the thread serving it.

    Parameters
    ----------
    fire : callable
        Called with a path whose debounce deadline passed.
    scan : callable
        Called with a folder to list.
    """

    def __init__(self, fire: Callable[[str], None], scan: Callable[[str], None]) -> None:
        self._fire = fire
        self._scan = scan
        self._items: deque[tuple[str, str]] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._rescan_queued = False
        #: the serving thread while started
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        """Empty the queue and start the thread (``starnode-watcher-callbacks``, a daemon)."""
        with self._cond:
            self._items.clear()
            self._rescan_queued = False
        self.thread = threading.Thread(target=self._loop, daemon=True,
                                       name="starnode-watcher-callbacks")
        self.thread.start()

    def fire(self, paths: Iterable[str]) -> None:
        """Queue ``_fire`` for each path."""
        with self._cond:
            self._items.extend(("fire", p) for p in paths)
            self._cond.notify()

    def scan(self, folder: str, *, rescan: bool = False) -> None:
        """Queue a scan of ``folder``; a ``rescan`` (after lost events) is queued once at most."""
        with self._cond:
            if rescan:
                if self._rescan_queued:
                    return
                self._rescan_queued = True
            self._items.append(("rescan" if rescan else "scan", folder))
            self._cond.notify()

    def stop(self, timeout: float | None = None) -> None:
        """Drop what is queued, end the thread after the item in progress and join it.

        Not joined when called from the worker thread itself (stop() inside a callback).
        """
        with self._cond:
            self._items.clear()
            self._items.append(_STOP)
            self._cond.notify_all()
        t = self.thread  # kept until joined: stop() inside the callback must recognise it
        if t is not None and t is not threading.current_thread() and t.is_alive():
            t.join(timeout)
        self.thread = None

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._items:
                    self._cond.wait()
                kind, arg = self._items.popleft()
                if kind == "rescan":
                    self._rescan_queued = False
            if kind == "stop":
                return
            try:
                if kind == "fire":
                    self._fire(arg)
                else:
                    self._scan(arg)
            except Exception:  # internal error: log, keep watching
                log.exception("ImageWatcher: internal error handling %s", arg)
