"""Listing the watched folder: the startup scan, rescans, and the poll mode's observer.

On a network share OS events see nothing, so the folder is listed every ``poll_interval``
seconds. :class:`FolderScanner` lists names only (``os.scandir``: no stat of old files) and
remembers what it saw, so each poll yields just the names that are new; an unlistable share is
logged once when it drops and once when it comes back, never once per poll.

:func:`incompleteness` is the completeness test a stable file must pass before the callback
gets it (header END card, the size the header implies, no preallocated zero tail).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from starnode.frame import header as fitsheader

from .mounts import under

log = logging.getLogger(__name__)

__all__ = ["FolderScanner", "Pending", "Poller", "incompleteness", "stat_sig"]


@dataclass
class Pending:
    """A path seen but not reported: when first seen, its last (size, mtime), why it waits."""

    first_seen: float
    sig: tuple[int, int] | None = None
    problem: str = ""
    changed: float = 0.0  # when (monotonic) its size or mtime was last seen to change


def stat_sig(path: str) -> tuple[int, int] | None:
    """``(size, mtime_ns)`` of ``path``, or None when it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


class FolderScanner:
    """Lists ``root`` (and its subfolders when ``recursive``) for files with ``extensions``.

    Parameters
    ----------
    root : str
        Absolute path of the watched folder.
    extensions : tuple of str
        Lower-case suffixes that count (``(".fits", ".fit")``).
    recursive : bool
        Descend into subfolders.
    """

    def __init__(self, root: str, extensions: tuple[str, ...], recursive: bool) -> None:
        self.root = root
        self.extensions = extensions
        self.recursive = recursive
        #: directory -> names of matching files seen in the last good listing (poll mode)
        self.known: dict[str, set[str]] = {}
        self.share_down = False

    def reset(self) -> None:
        """Forget every listing (a fresh start)."""
        self.known = {}
        self.share_down = False

    def _list(self, d: str) -> tuple[list[str], set[str]]:
        """(subfolder paths, matching file names) of one folder; OSError if unlistable."""
        with os.scandir(d) as it:
            entries = list(it)
        dirs: list[str] = []
        names: set[str] = set()
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=False):
                    dirs.append(e.path)
                if e.name.lower().endswith(self.extensions):
                    names.add(e.name)  # not only files: the watcher never opens the others
            except OSError:
                continue
        return dirs, names

    def walk(self, top: str) -> Iterator[tuple[str, set[str]]]:
        """Yield ``(folder, matching file names)`` for ``top`` (and below when recursive).

        Raises
        ------
        OSError
            When ``top`` itself cannot be listed (subfolders that cannot are skipped).
        """
        stack = [top]
        while stack:
            d = stack.pop()
            try:
                dirs, names = self._list(d)
            except OSError as exc:
                if d == top:
                    raise
                log.debug("ImageWatcher: cannot list %s: %s", d, exc)
                continue
            yield d, names
            if self.recursive:
                stack.extend(dirs)

    def poll(self) -> list[str] | None:
        """List the tree; return the paths not seen by the previous poll.

        Returns
        -------
        list of str or None
            New matching paths; None when the root cannot be listed (share down, logged once).
        """
        new_known: dict[str, set[str]] = {}
        found: list[str] = []
        try:
            if not os.path.isdir(self.root):
                raise FileNotFoundError(f"{self.root} is not a directory now")
            self._poll_tree(new_known, found)
        except OSError as exc:
            if not self.share_down:
                self.share_down = True
                log.warning("ImageWatcher: cannot list %s (%s); the share may be down, will "
                            "keep polling", self.root, exc)
            return None
        if self.share_down:
            self.share_down = False
            log.info("ImageWatcher: %s is listable again", self.root)
        self.known = new_known
        return found

    def _poll_tree(self, new_known: dict[str, set[str]], found: list[str]) -> None:
        stack = [self.root]
        while stack:
            d = stack.pop()
            try:
                dirs, names = self._list(d)
            except OSError:
                if d == self.root:
                    raise
                # keep what we knew below an unlistable subfolder; retry next time
                new_known.update((k, v) for k, v in self.known.items() if under(k, d))
                continue
            if self.recursive:
                stack.extend(dirs)
            new_known[d] = names
            old = self.known.get(d, ())
            found.extend(os.path.join(d, n) for n in names if n not in old)


class Poller(threading.Thread):
    """The "observer" of poll mode: calls ``poll_once`` every ``interval`` seconds.

    Parameters
    ----------
    poll_once : callable
        One listing pass; exceptions are logged and polling goes on.
    interval : float
        Seconds between passes.
    root : str
        For log messages.
    """

    def __init__(self, poll_once: Callable[[], None], interval: float, root: str) -> None:
        super().__init__(name="starnode-watcher-poll", daemon=True)
        self._poll_once = poll_once
        self._interval = interval
        self._root = root
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self._interval):
            try:
                self._poll_once()
            except Exception:  # never let the poller die
                log.exception("ImageWatcher: poll of %s failed", self._root)

    def stop(self) -> None:
        """Ask the thread to end after the current pass (join it to wait)."""
        self._stop_event.set()


def incompleteness(scan: fitsheader.HeaderScan, size: int) -> str:
    """Why a stable file is not a complete FITS file yet.

    Parameters
    ----------
    scan : fitsheader.HeaderScan
        One cheap read of the file's header blocks.
    size : int
        The file's size in bytes.

    Returns
    -------
    str
        The reason, or ``""`` when it looks complete (or is not FITS at all: nothing more to
        wait for; it is reported with header ``{}``).
    """
    if size == 0:
        return "empty file"
    if scan.blank:
        return "first block still all zero bytes (preallocated, not written yet?)"
    if size < fitsheader.BLOCK:
        return f"shorter than one {fitsheader.BLOCK}-byte block ({size} bytes)"
    if not scan.is_fits:
        return ""
    if not scan.complete:
        return scan.problem or "header incomplete"
    if scan.total is not None and size < scan.total:
        return f"{size} of the {scan.total} bytes its header implies"
    primary_only = scan.total == scan.header_bytes + (scan.data_bytes or 0)
    if (scan.last_data is not None and primary_only and not any(scan.last_data)
            and _zero_is_implausible(scan.header)):
        return "last data bytes still zero (preallocated file not written yet?)"
    return ""


def _zero_is_implausible(header: dict[str, Any]) -> bool:
    """Zero bytes at the end of integer data with a BZERO offset are not a plausible image.

    (On the Seestar, BITPIX=16 with BZERO=32768: zero bytes would be 16 pixels of exactly 32768
    ADU.) For float data or integers without BZERO zero is an ordinary value, so no check.
    """
    bitpix, bzero = header.get("BITPIX"), header.get("BZERO", 0)
    return isinstance(bitpix, int) and bitpix > 0 and isinstance(bzero, int | float) and (
        bzero != 0
    )
