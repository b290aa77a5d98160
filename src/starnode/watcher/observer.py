"""The watchdog observer, made to report inotify queue overflows.

When the kernel's inotify queue overflows, events are lost. watchdog 7 surfaces an overflow
(``IN_Q_OVERFLOW``) only by logging a WARNING and calling ``on_queue_overflow()`` on each
``InotifyWatchGroup``; no event reaches a handler. The watcher needs to know, to rescan the
folder, so the emitter is subclassed to chain that method. Should watchdog's internals differ,
a filter on the ``watchdog.observers.inotify_c`` logger catches the same WARNING instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
)
from watchdog.observers import Observer

log = logging.getLogger(__name__)

__all__ = ["EVENT_FILTER", "make_observer"]

#: Event types the watcher asks watchdog for (others are not even requested from the kernel).
EVENT_FILTER: list[type[FileSystemEvent]] = [
    FileCreatedEvent, FileMovedEvent, FileModifiedEvent, FileClosedEvent, FileDeletedEvent,
    DirCreatedEvent, DirMovedEvent, DirDeletedEvent,
]


def make_observer(on_overflow: Callable[[], None]) -> Any:
    """A watchdog ``Observer`` whose inotify queue overflows call ``on_overflow``.

    Parameters
    ----------
    on_overflow : callable
        Called (from the observer's thread) after the kernel dropped events.

    Returns
    -------
    watchdog.observers.Observer
        Not started.
    """
    observer = Observer()
    try:
        from watchdog.observers.inotify import InotifyEmitter, InotifyObserver
    except ImportError:  # not Linux
        return observer
    if not isinstance(observer, InotifyObserver) or getattr(
        observer, "_emitter_class", None
    ) is not InotifyEmitter:
        _install_log_overflow_hook(on_overflow)
        return observer

    class _OverflowAwareEmitter(InotifyEmitter):
        def on_thread_start(self) -> None:
            super().on_thread_start()
            group = getattr(self, "_inotify", None)
            original = getattr(group, "on_queue_overflow", None)
            if group is None or original is None:
                _install_log_overflow_hook(on_overflow)
                return

            def chained() -> None:
                original()
                on_overflow()

            group.on_queue_overflow = chained

    observer._emitter_class = _OverflowAwareEmitter
    return observer


class _OverflowLogFilter(logging.Filter):
    def __init__(self, callback: Callable[[], None]) -> None:
        super().__init__()
        self.callback = callback

    def filter(self, record: logging.LogRecord) -> bool:
        if "overflow" in str(record.msg).lower():
            self.callback()
        return True


def _install_log_overflow_hook(on_overflow: Callable[[], None]) -> None:
    lg = logging.getLogger("watchdog.observers.inotify_c")
    lg.addFilter(_OverflowLogFilter(on_overflow))
    log.debug("inotify overflow detection falls back to the watchdog log record")
