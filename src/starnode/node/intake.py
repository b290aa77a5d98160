"""Intake: how frames get into the ledger before any work is done on them.

Three doors, one rule. The watcher's events (:meth:`Intake.on_event`), the startup catch-up
scan (:meth:`Intake.scan`) and the paths given to ``starnode process``
(:meth:`Intake.add_paths`) all record a frame as ``pending`` in the ledger and wake the
dispatcher; none of them measures anything, so a slow frame never blocks watching. A frame the
ledger cannot take yet (database locked too long) is kept in memory and retried, never dropped.

:func:`walk` is the one folder walker (the scan, ``starnode process`` and ``starnode doctor``
use it): sorted, hidden folders skipped, paths named the way the watcher names them.

Hostile names never stop the intake: anything named like a frame is recorded, so that
``starnode status`` can say why it was not measured. A FIFO, a device or a folder named ``*.fit``
is recorded without being opened (the dispatcher refuses it, see :mod:`starnode.frame.admission`); a
name that is not UTF-8 cannot be stored as text, so it is recorded under its escaped form
(``\\xe9``) with the source ``bad_name`` and refused with that reason, once.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..config import Config
from ..frame.admission import encodable, quoted, text_form
from ..store import Ledger

log = logging.getLogger("starnode.node")

__all__ = ["BAD_NAME_SOURCE", "Intake", "incomplete", "matches_include", "walk"]

#: The ``source`` of a row recorded for a file whose name is not UTF-8 (never measured).
BAD_NAME_SOURCE = "bad_name"


def matches_include(path: str, include: Iterable[str], extensions: Iterable[str]) -> bool:
    """Whether a file is a frame to process.

    Parameters
    ----------
    path : str
        The file (only its name is looked at).
    include : iterable of str
        fnmatch patterns; empty means every FITS file.
    extensions : iterable of str
        File extensions that count as FITS.

    Returns
    -------
    bool
        A FITS extension and (when ``include`` is not empty) one of the patterns, both
        case-insensitive.
    """
    low = os.path.basename(path).lower()
    if not any(low.endswith(e.lower()) for e in extensions):
        return False
    pats = list(include)
    return not pats or any(fnmatch.fnmatchcase(low, p.lower()) for p in pats)


def walk(root: str | os.PathLike[str], recursive: bool,
         folders: Callable[[str], bool] | None = None) -> Iterator[str]:
    """Entries under ``root`` that are not folders, sorted, hidden folders skipped.

    Parameters
    ----------
    root : path-like
        The folder.
    recursive : bool
        Descend into subfolders.
    folders : callable, optional
        Folders whose path it accepts are yielded too (a folder named like a frame).

    Returns
    -------
    iterator of str
        Absolute paths (not symlink-resolved: the watcher names files the same way). Not only
        regular files: a FIFO or a device is yielded without being opened; callers check.
    """
    top = os.path.abspath(root)
    if not recursive:
        with contextlib.suppress(OSError):
            for entry in sorted(os.scandir(top), key=lambda e: e.name):
                with contextlib.suppress(OSError):
                    if not entry.is_dir() or (folders is not None and folders(entry.path)):
                        yield entry.path
        return
    for dirpath, dirnames, filenames in os.walk(top, onerror=lambda e: log.warning(
            "cannot read %s: %s", quoted(e.filename), e.strerror)):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        names = filenames
        if folders is not None:
            names = filenames + [d for d in dirnames if folders(os.path.join(dirpath, d))]
        for name in sorted(names):
            yield os.path.join(dirpath, name)


def incomplete(path: str, size: int) -> bool:
    """True when the FITS header announces more bytes than the file has (yet).

    An unreadable header is not "incomplete": the pipeline will say why it cannot be read.
    """
    try:
        from ..frame.header import expected_size

        expected = expected_size(path)
    except Exception:
        return False
    return expected is not None and size < expected


class Intake:
    """Records frames in the ledger and wakes the dispatcher.

    Parameters
    ----------
    config : Config
        The node's configuration (``watch`` section).
    ledger : Ledger
        Where frames are recorded.
    wake : threading.Event
        Set whenever new work was recorded.
    """

    def __init__(self, config: Config, ledger: Ledger, wake: threading.Event) -> None:
        self.config = config
        self.ledger = ledger
        self.wake = wake
        #: ``starnode process``: the rows this run works on (new rows join it); None in ``run``.
        self.ids: set[int] | None = None
        self._retry: list[str] = []
        self._retry_lock = threading.Lock()

    def wants(self, path: str) -> bool:
        """Whether ``path`` matches ``watch.include`` and ``watch.extensions``."""
        w = self.config.watch
        return matches_include(path, w.include, w.extensions)

    def _note(self, fid: int, path: str | os.PathLike[str], source: str) -> None:
        log.debug("queued #%d %s (%s)", fid, quoted(path), source)
        if self.ids is not None:
            self.ids.add(fid)

    def _add(self, path: str | os.PathLike[str], source: str, size: int | None = None,
             mtime_ns: int | None = None) -> tuple[int, bool]:
        """``ledger.add``; a name that is not UTF-8 is recorded under its escaped text form,
        as a ``bad_name`` row the dispatcher refuses with the reason (never retried)."""
        text = os.fspath(path)
        if size is None or mtime_ns is None:
            try:
                st = os.stat(text)
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    raise
                st = os.lstat(text)  # a link loop: recorded, the dispatcher says why
            size, mtime_ns = st.st_size, st.st_mtime_ns
        if isinstance(text, str) and not encodable(text):
            text, source = text_form(os.path.abspath(text)), BAD_NAME_SOURCE
        return self.ledger.add(text, source=source, size=size, mtime_ns=mtime_ns)

    def offer(self, path: str | os.PathLike[str], *, source: str = "watch") -> int | None:
        """Record a frame (new work unless already known).

        Returns
        -------
        int or None
            The row id; None when the file cannot be stat'ed.
        """
        try:
            fid, new = self._add(path, source)
        except OSError as exc:
            log.warning("cannot record %s: %s", quoted(path), exc.strerror or exc)
            return None
        if new:
            self._note(fid, path, source)
            self.wake.set()
        return fid

    def on_event(self, event: Mapping[str, Any]) -> None:
        """The watcher's callback: record the frame; a failure is retried, never dropped."""
        path = str(event.get("path", ""))
        if not path or not self.wants(path):
            return
        try:
            self.offer(path, source="watch")
        except Exception as exc:  # e.g. database locked too long
            log.error("cannot record %s yet (%s: %s); retrying", quoted(path),
                      type(exc).__name__, exc)
            with self._retry_lock:
                self._retry.append(path)
            self.wake.set()

    def retry_offers(self) -> None:
        """Record again the frames whose recording failed (see :meth:`on_event`)."""
        with self._retry_lock:
            paths, self._retry = self._retry, []
        for path in paths:
            try:
                self.offer(path, source="watch")
            except Exception:
                with self._retry_lock:
                    self._retry.append(path)

    def scan(self, root: str | os.PathLike[str], *, recursive: bool | None = None,
             min_age: float | None = None, source: str = "scan") -> int:
        """Record the frames under ``root`` that the ledger has not seen.

        Parameters
        ----------
        root : path-like
            The folder to walk.
        recursive : bool, optional
            Default: ``watch.recursive``.
        min_age : float, optional
            Files modified less than this many seconds ago are left to the watcher (they may
            still be growing). Default: ``watch.debounce_delay``.
        source : str
            Recorded as the row's source; ``"scan"`` also skips files whose header announces
            more bytes than they have.

        Returns
        -------
        int
            How many frames were new.
        """
        recursive = self.config.watch.recursive if recursive is None else recursive
        min_age = self.config.watch.debounce_delay if min_age is None else min_age
        known = self.ledger.known_identities()
        now = time.time()
        new = 0
        for path in walk(root, bool(recursive), self.wants):
            st = self._settled(path, known, now - float(min_age), check_size=source == "scan")
            if st is None:
                continue
            try:
                fid, is_new = self._add(path, source, st.st_size, st.st_mtime_ns)
            except OSError as exc:  # pragma: no cover - racing deletion
                log.warning("cannot record %s: %s", quoted(path), exc.strerror or exc)
                continue
            if is_new:
                new += 1
                self._note(fid, path, source)
        if new:
            log.info("found %d frame(s) not yet in the ledger under %s", new, root)
            self.wake.set()
        return new

    def _settled(self, path: str, known: set[tuple[str, int, int]], before: float, *,
                 check_size: bool) -> os.stat_result | None:
        """The file's stat when it is a wanted, unknown, settled and complete frame (or named
        like one but not a regular file: recorded unopened, the dispatcher says why)."""
        if not self.wants(path):
            return None
        try:
            st = os.stat(path)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                return None
            try:  # a symbolic link loop named like a frame: recorded, and skipped with why
                st = os.lstat(path)
            except OSError:
                return None
        key = path if encodable(path) else text_form(path)
        if (key, st.st_size, st.st_mtime_ns) in known:
            return None
        if not stat.S_ISREG(st.st_mode):
            return st  # never opened here: a FIFO would block
        if st.st_mtime > before:
            return None
        if check_size and incomplete(path, st.st_size):
            return None  # still being written: the watcher reports it once complete
        return st

    def add_paths(self, paths: Iterable[str | os.PathLike[str]]) -> list[int]:
        """``starnode process``: record files, and the wanted files under folders.

        Returns
        -------
        list of int
            The row ids (known frames included); a missing path is logged as an error.
        """
        out: list[int] = []
        for p in map(Path, paths):
            if p.is_dir():
                files = [f for f in walk(p, True, self.wants) if self.wants(f)]
            elif p.exists() or p.is_symlink():
                files = [str(p)]
            else:
                log.error("%s: no such file or folder", quoted(p))
                continue
            for f in files:
                with contextlib.suppress(OSError):
                    out.append(self._add(f, "process")[0])
        return out
