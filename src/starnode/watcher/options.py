"""Checking :class:`~starnode.watcher.ImageWatcher`'s options once, at construction.

A bad option (a typo in a mode, a negative delay) is refused when the watcher is made, with
the option named, rather than surfacing later on a background thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["MODES", "check_options", "extensions_tuple"]

MODES = ("auto", "events", "poll")


def extensions_tuple(extensions: Iterable[str]) -> tuple[str, ...]:
    """Normalise suffixes: a leading dot, lower case (``["FZ"]`` -> ``(".fz",)``).

    Raises
    ------
    ValueError
        No usable suffix is given.
    """
    if isinstance(extensions, str):
        extensions = (extensions,)
    exts = tuple(
        (e if e.startswith(".") else "." + e).lower() for e in extensions if e and e != "."
    )
    if not exts:
        raise ValueError("extensions must name at least one suffix, e.g. ('.fits', '.fit')")
    return exts


def check_options(callback: Any, mode: str, debounce_delay: float, poll_interval: float,
                  max_wait: float, stall_timeout: float = 30.0) -> None:
    """Refuse options a watcher cannot work with.

    Raises
    ------
    TypeError
        ``callback`` is not callable.
    ValueError
        ``mode`` is unknown or a time is out of range (the message names it).
    """
    if not callable(callback):
        raise TypeError("callback must be callable")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if debounce_delay < 0:
        raise ValueError(f"debounce_delay must be >= 0, not {debounce_delay!r}")
    if not poll_interval > 0:
        raise ValueError(f"poll_interval must be > 0, not {poll_interval!r}")
    if not max_wait > 0:
        raise ValueError(f"max_wait must be > 0, not {max_wait!r}")
    if not stall_timeout > 0:
        raise ValueError(f"stall_timeout must be > 0, not {stall_timeout!r}")
