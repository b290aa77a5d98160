"""ImageWatcher: notices complete new FITS frames in a folder and hands them to a callback.

The seed document (``shared/seed/image-watcher.md``) is the contract; this module keeps every
sentence of it and closes the gaps a naive watchdog wrapper leaves (see ``docs/watcher.md``):

* **Completeness.** A path becomes *pending* on a created/moved event (or when a poll finds a new
  name). Modification and close-write events of a pending path reset its debounce deadline (they
  never make a path pending). When the deadline passes, :meth:`ImageWatcher._fire` checks that
  size and mtime did not change since the last observation, that the primary header is complete
  (END card) and that the file is as long as the header implies (BITPIX, NAXISn, PCOUNT, GCOUNT,
  2880-byte blocks, extensions already on disk), and - for integer data with BZERO, where zero
  bytes are not a plausible pixel value - that the last data bytes are not still zero (a
  preallocated file not written yet). Otherwise it waits again. A file that never completes is
  reported after ``max_wait`` seconds with a WARNING.
* **Network shares.** ``mode="auto"`` reads ``/proc/self/mountinfo``: on CIFS/SMB, NFS, 9p, FUSE
  and other network/remote filesystems the writer may be on the other side, where inotify sees
  nothing, so the folder is polled (names listed every ``poll_interval``; only new or pending files
  are stat'ed). A share that drops and comes back is logged once each way, never an event storm.
* **Bounded threads.** The debounce "timers" are entries of one deadline heap served by one
  scheduler thread (``_timers`` maps each pending path to its deadline); callbacks run one at a
  time, in order of completion, on one worker thread. With the watchdog observer that is a fixed
  handful of threads whatever the number of pending files. An inotify queue overflow (events
  lost by the kernel) triggers a rescan of the folder.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
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
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from starnode import fitsheader

log = logging.getLogger(__name__)

#: Where Linux lists the mounts this process sees (tests point it at a temporary file).
MOUNTINFO = "/proc/self/mountinfo"

#: Filesystem types on which the writer may be another machine (inotify sees nothing): poll.
REMOTE_FSTYPES = frozenset({
    "cifs", "smb3", "smbfs", "smb", "nfs", "nfs4", "9p", "v9fs", "sshfs", "davfs", "fuse",
    "ceph", "glusterfs", "lustre", "afs", "gpfs", "ncpfs", "coda", "virtiofs", "vboxsf",
    "vmhgfs", "drvfs", "ocfs2", "gfs2", "beegfs", "orangefs", "pvfs2", "fuse.sshfs",
})

#: Event types the watcher asks watchdog for (others are not even requested from the kernel).
_EVENT_FILTER: list[type[FileSystemEvent]] = [
    FileCreatedEvent, FileMovedEvent, FileModifiedEvent, FileClosedEvent, FileDeletedEvent,
    DirCreatedEvent, DirMovedEvent, DirDeletedEvent,
]

MODES = ("auto", "events", "poll")

__all__ = ["MODES", "REMOTE_FSTYPES", "ImageWatcher", "Mount", "choose_mode", "find_mount",
           "read_mounts"]


# --------------------------------------------------------------------------- filesystem type
@dataclass(frozen=True)
class Mount:
    """One line of ``/proc/self/mountinfo``."""

    mount_point: str
    fstype: str
    source: str


_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def read_mounts(mountinfo: str | os.PathLike[str] | None = None) -> list[Mount]:
    """Parse a mountinfo file (default :data:`MOUNTINFO`); ``[]`` if it cannot be read."""
    try:
        with open(mountinfo or MOUNTINFO, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    mounts = []
    for line in lines:
        parts = line.split(" ")
        try:
            sep = parts.index("-", 6)
            mounts.append(Mount(_unescape(parts[4]), _unescape(parts[sep + 1]),
                                _unescape(parts[sep + 2]) if len(parts) > sep + 2 else ""))
        except (ValueError, IndexError):
            continue
    return mounts


def _under(path: str, mount_point: str) -> bool:
    if mount_point == "/":
        return path.startswith("/")
    return path == mount_point or path.startswith(mount_point.rstrip("/") + "/")


def find_mount(path: str, mounts: Iterable[Mount]) -> Mount | None:
    """The mount holding ``path``: the longest mount point that is a prefix of it (last wins)."""
    best: Mount | None = None
    for m in mounts:
        if _under(path, m.mount_point) and (
            best is None or len(m.mount_point) >= len(best.mount_point)
        ):
            best = m
    return best


def is_remote(fstype: str) -> bool:
    """True for network/remote filesystems (and every FUSE filesystem except ``fuseblk``)."""
    t = fstype.lower()
    return t in REMOTE_FSTYPES or t.startswith("fuse.") or t.startswith("nfs")


def choose_mode(path: str | os.PathLike[str], *, recursive: bool = False,
                mountinfo: str | os.PathLike[str] | None = None) -> tuple[str, str]:
    """``("poll"|"events", reason)`` for watching ``path`` in ``mode="auto"``.

    Poll when the folder (or, with ``recursive``, a mount below it) is on a network/remote or
    FUSE filesystem; OS events otherwise (ext4, xfs, btrfs, tmpfs, overlay, fuseblk...).
    """
    real = os.path.realpath(os.fspath(path))
    mounts = read_mounts(mountinfo)
    if not mounts:
        return "events", f"filesystem type of {real} unknown (no {mountinfo or MOUNTINFO})"
    m = find_mount(real, mounts)
    if m is None:
        return "events", f"no mount found for {real} in {mountinfo or MOUNTINFO}"
    if is_remote(m.fstype):
        return "poll", (f"{real} is on a {m.fstype} mount at {m.mount_point} ({m.source}): the "
                        "writer may be on the other side, where inotify sees nothing")
    if recursive:
        for sub in mounts:
            if sub.mount_point != m.mount_point and _under(sub.mount_point, real) and is_remote(
                sub.fstype
            ):
                return "poll", (f"{sub.mount_point} below {real} is a {sub.fstype} mount: "
                                "inotify would miss writes made on the other side")
    return "events", f"{real} is on a local {m.fstype} filesystem at {m.mount_point}"


# --------------------------------------------------------------------------- watchdog glue
def _make_observer(on_overflow: Callable[[], None]) -> Any:
    """A watchdog Observer whose inotify queue overflows call ``on_overflow``.

    watchdog 7 surfaces an overflow (kernel ``IN_Q_OVERFLOW``) only by logging a WARNING and
    calling ``on_queue_overflow()`` on each ``InotifyWatchGroup``; no event reaches a handler.
    The emitter is subclassed to chain that method. Should watchdog's internals differ, a filter
    on the ``watchdog.observers.inotify_c`` logger catches the same WARNING instead.
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


# --------------------------------------------------------------------------- the watcher
@dataclass
class _Pending:
    first_seen: float
    sig: tuple[int, int] | None = None
    problem: str = ""


class _Poller(threading.Thread):
    """The "observer" of poll mode: lists the folder every ``interval`` seconds."""

    def __init__(self, watcher: ImageWatcher, interval: float) -> None:
        super().__init__(name="starnode-watcher-poll", daemon=True)
        self._watcher = watcher
        self._interval = interval
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self._interval):
            try:
                self._watcher._poll_once()
            except Exception:  # never let the poller die
                log.exception("ImageWatcher: poll of %s failed", self._watcher.watch_path)

    def stop(self) -> None:
        self._stop_event.set()


_STOP = object()


class ImageWatcher(FileSystemEventHandler):
    """Watch ``watch_path`` for new, complete FITS files and call ``callback(event)`` once each.

    ``event`` is ``{"path": absolute path, "header": primary header dict (COMMENT/HISTORY
    dropped, strings stripped, ``{}`` if unreadable), "size_kb": os.path.getsize(path)/1024.0}``.

    Keyword options (all off by default, so the seed's behaviour is the default):
    ``mode`` ("auto" | "events" | "poll"), ``poll_interval`` (seconds between listings in poll
    mode), ``recursive`` (watch subfolders, including ones created later), ``catch_up`` (report
    files already present at start), ``extensions`` (case-insensitive suffixes), ``max_wait``
    (seconds after which a file that never completes is reported anyway, with a WARNING).

    Callbacks are delivered one at a time, in order of completion, on one worker thread.
    """

    def __init__(
        self,
        watch_path: str,
        callback: Callable[[dict], None],
        debounce_delay: float = 2.0,
        *,
        mode: str = "auto",
        poll_interval: float = 2.0,
        recursive: bool = False,
        catch_up: bool = False,
        extensions: Iterable[str] = (".fits", ".fit"),
        max_wait: float = 600.0,
    ) -> None:
        super().__init__()
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
        if isinstance(extensions, str):
            extensions = (extensions,)
        exts = tuple(
            (e if e.startswith(".") else "." + e).lower() for e in extensions if e and e != "."
        )
        if not exts:
            raise ValueError("extensions must name at least one suffix, e.g. ('.fits', '.fit')")
        self.watch_path = watch_path
        self.callback = callback
        self.debounce_delay = float(debounce_delay)
        self.mode = mode
        self.poll_interval = float(poll_interval)
        self.recursive = bool(recursive)
        self.catch_up = bool(catch_up)
        self.extensions = exts
        self.max_wait = float(max_wait)
        #: the mode in use after start() ("events" or "poll") and why it was chosen
        self.active_mode: str | None = None
        self.mode_reason = ""

        self._running = False
        self._root = os.path.abspath(watch_path)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)  # wakes the scheduler
        self._start_stop = threading.Lock()
        # debounce "timers": pending path -> deadline (time.monotonic()), served by one heap
        self._timers: dict[str, float] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._pending: dict[str, _Pending] = {}
        # paths reported this session -> (size, mtime_ns); None = present at start, not reported
        self._reported: dict[str, tuple[int, int] | None] = {}
        self._work: deque[Any] = deque()
        self._work_cond = threading.Condition(threading.Lock())
        self._rescan_queued = False
        self._observer: Any = None
        self._scheduler: threading.Thread | None = None
        self._worker: threading.Thread | None = None
        # poll mode: directory -> names of matching files seen in the last good listing
        self._known: dict[str, set[str]] = {}
        self._share_down = False
        self._callbacks_done = 0

    def __repr__(self) -> str:
        return (f"ImageWatcher({self.watch_path!r}, debounce_delay={self.debounce_delay}, "
                f"mode={self.active_mode or self.mode!r}, running={self._running})")

    def __enter__(self) -> ImageWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._running

    # ------------------------------------------------------------------ start / stop
    def start(self) -> None:
        """Start watching. A missing directory is logged at ERROR; the watcher stays stopped."""
        with self._start_stop:
            if self._running:
                log.warning("ImageWatcher.start(): already watching %s", self._root)
                return
            if not os.path.isdir(self.watch_path):
                log.error("ImageWatcher: %s is not an existing directory; not watching",
                          self.watch_path)
                return
            self._root = os.path.abspath(self.watch_path)
            if self.mode == "auto":
                mode, reason = choose_mode(self._root, recursive=self.recursive)
            else:
                mode, reason = self.mode, f"mode={self.mode!r} requested"
            with self._lock:
                self._running = True
                self._heap.clear()
                self._timers.clear()
                self._pending.clear()
            with self._work_cond:
                self._work.clear()
                self._rescan_queued = False
            self._scheduler = threading.Thread(target=self._scheduler_loop, daemon=True,
                                               name="starnode-watcher-scheduler")
            self._worker = threading.Thread(target=self._worker_loop, daemon=True,
                                            name="starnode-watcher-callbacks")
            self._scheduler.start()
            self._worker.start()
            if mode == "events":
                try:
                    observer = _make_observer(self._on_overflow)
                    observer.schedule(self, self._root, recursive=self.recursive,
                                      event_filter=_EVENT_FILTER)
                    observer.daemon = True
                    observer.start()
                    self._observer = observer
                except OSError as exc:  # e.g. inotify watch limit reached
                    log.warning("ImageWatcher: OS events unavailable for %s (%s); polling",
                                self._root, exc)
                    mode, reason = "poll", f"OS events failed: {exc}"
                    self._observer = None
            self.active_mode, self.mode_reason = mode, reason
            if mode == "events":
                self._initial_scan()
            else:
                self._known = {}
                self._share_down = False
                self._poll_once(initial=True)
                self._observer = _Poller(self, self.poll_interval)
                self._observer.start()
            if mode == "poll":
                log.info("ImageWatcher: watching %s by polling every %.3g s%s: %s", self._root,
                         self.poll_interval, " (recursive)" if self.recursive else "", reason)
            else:
                log.info("ImageWatcher: watching %s with OS events%s: %s", self._root,
                         " (recursive)" if self.recursive else "", reason)

    def stop(self, timeout: float | None = None) -> None:
        """Ordered, idempotent shutdown; no callback starts after it returns.

        1. ``_running = False`` (a deadline expiring after this is a no-op); 2. the pending
        debounce timers are cancelled and the ``_timers`` dict cleared; 3. ``observer.stop()``;
        4. ``observer.join()``. Then the scheduler and callback threads are stopped and joined:
        a callback already running is waited for (up to ``timeout`` seconds if given), unless
        stop() is called from inside the callback.
        """
        me = threading.current_thread()
        if me is self._worker or me is self._scheduler:
            # called from inside a callback: if another thread is already stopping (and
            # waiting for this callback), do not wait for it - just make sure nothing new runs
            if not self._start_stop.acquire(blocking=False):
                with self._lock:
                    self._running = False
                    self._timers.clear()
                    self._cond.notify_all()
                return
        else:
            self._start_stop.acquire()
        try:
            self._stop_locked(me, timeout)
        finally:
            self._start_stop.release()

    def _stop_locked(self, me: threading.Thread, timeout: float | None) -> None:
        """The seed's four steps, in order, then the scheduler and callback threads."""
        with self._lock:
            self._running = False  # 1
            self._timers.clear()  # 2
            self._heap.clear()
            self._pending.clear()
            self._cond.notify_all()
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()  # 3
            if observer is not me:
                observer.join()  # 4
        with self._work_cond:
            self._work.clear()
            self._work.append(_STOP)
            self._work_cond.notify_all()
        for t in (self._scheduler, self._worker):
            if t is not None and t is not me and t.is_alive():
                t.join(timeout)
        self._scheduler = None
        self._worker = None

    # ------------------------------------------------------------------ watchdog events
    def on_created(self, event: FileSystemEvent) -> None:
        path = os.fsdecode(event.src_path)
        if event.is_directory:
            if self.recursive:
                self._queue_scan(path)
            return
        self._schedule(path)

    def on_moved(self, event: FileSystemEvent) -> None:
        src, dest = os.fsdecode(event.src_path), os.fsdecode(event.dest_path)
        if event.is_directory:
            if self.recursive and dest:
                self._queue_scan(dest)
            return
        if src:
            self._forget_pending(src)
        if dest:
            self._schedule(dest)

    def on_modified(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._touch(os.fsdecode(event.src_path))

    def on_closed(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self._touch(os.fsdecode(event.src_path))

    def on_deleted(self, event: FileSystemEvent) -> None:
        path = os.fsdecode(event.src_path)
        if not event.is_directory:
            self._forget_pending(path)
        elif path == self._root and self._running:
            log.error("ImageWatcher: the watched folder %s was deleted; OS events stop here "
                      "(restart the watcher, or use mode='poll' for folders that come and go)",
                      path)

    def _on_overflow(self) -> None:
        log.warning("ImageWatcher: the kernel dropped file events (inotify queue overflow); "
                    "rescanning %s", self._root)
        self._queue_scan(self._root, rescan=True)

    # ------------------------------------------------------------------ scheduling
    def _wanted(self, path: str) -> bool:
        if not path.lower().endswith(self.extensions):
            return False
        parent = os.path.dirname(path)
        if self.recursive:
            return _under(parent, self._root)
        return parent == self._root

    @staticmethod
    def _stat_sig(path: str) -> tuple[int, int] | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return (st.st_size, st.st_mtime_ns)

    def _arm(self, path: str, delay: float, now: float, p: _Pending) -> None:
        """Set ``path``'s deadline (caller holds the lock); one heap entry per armed path."""
        deadline = min(now + delay, p.first_seen + self.max_wait)
        had = path in self._timers
        self._timers[path] = deadline
        if not had:
            seq = next(self._seq)
            heapq.heappush(self._heap, (deadline, seq, path))
            if self._heap[0][1] == seq:
                self._cond.notify()

    def _schedule(self, path: str, sig: tuple[int, int] | None = None) -> None:
        """Seed step: (re)start the debounce timer of ``path`` (FITS files only).

        A new event for a pending path resets its timer; when the timer expires without being
        reset, :meth:`_fire` runs (on the callback worker thread).
        """
        if not self._wanted(path):
            return
        if sig is None:
            sig = self._stat_sig(path)
        with self._lock:
            if not self._running:
                return
            now = time.monotonic()
            p = self._pending.get(path)
            if p is None:
                p = self._pending[path] = _Pending(first_seen=now)
            p.sig = sig
            self._arm(path, self.debounce_delay, now, p)

    def _touch(self, path: str) -> None:
        """A modification or close-write: reset the timer of a *pending* path, nothing else."""
        if path not in self._pending:  # cheap unlocked pre-check
            return
        sig = self._stat_sig(path)
        with self._lock:
            p = self._pending.get(path)
            if p is None or not self._running:
                return
            p.sig = sig
            self._arm(path, self.debounce_delay, time.monotonic(), p)

    def _forget_pending(self, path: str) -> None:
        with self._lock:
            self._pending.pop(path, None)
            self._timers.pop(path, None)

    def _scheduler_loop(self) -> None:
        heap, timers = self._heap, self._timers
        while True:
            due: list[str] = []
            with self._cond:
                while True:
                    if not self._running:
                        return
                    now = time.monotonic()
                    while heap and heap[0][0] <= now:
                        deadline, _, path = heapq.heappop(heap)
                        current = timers.get(path)
                        if current is None:
                            continue  # cancelled
                        if current > deadline:  # reset meanwhile: re-queue at its deadline
                            heapq.heappush(heap, (current, next(self._seq), path))
                            continue
                        del timers[path]
                        due.append(path)
                    if due:
                        break
                    self._cond.wait(heap[0][0] - now if heap else None)
                if len(heap) > 2 * len(timers) + 1024:  # drop stale entries
                    self._heap[:] = [e for e in heap if timers.get(e[2]) == e[0]]
                    heapq.heapify(heap)
            with self._work_cond:
                self._work.extend(("fire", p) for p in due)
                self._work_cond.notify()

    # ------------------------------------------------------------------ worker
    def _queue_scan(self, directory: str, *, rescan: bool = False) -> None:
        with self._work_cond:
            if rescan:
                if self._rescan_queued:
                    return
                self._rescan_queued = True
            self._work.append(("scan", directory))
            self._work_cond.notify()

    def _worker_loop(self) -> None:
        while True:
            with self._work_cond:
                while not self._work:
                    self._work_cond.wait()
                item = self._work.popleft()
            if item is _STOP:
                return
            kind, arg = item
            try:
                if kind == "fire":
                    self._fire(arg)
                else:
                    if arg == self._root:
                        with self._work_cond:
                            self._rescan_queued = False
                    self._scan_dir(arg)
            except Exception:  # internal error: log, keep watching
                log.exception("ImageWatcher: internal error handling %s", arg)

    def _fire(self, path: str) -> None:
        """The debounce deadline of ``path`` passed: report it if complete, else wait again."""
        with self._lock:
            if not self._running or path in self._timers:
                return  # stopped, or re-armed by a newer event
            p = self._pending.get(path)
            if p is None:
                return
        if not os.path.isfile(path):
            log.debug("ImageWatcher: %s vanished before it was reported", path)
            self._forget_pending(path)
            return
        sig = self._stat_sig(path)
        if sig is None:
            self._forget_pending(path)
            return
        now = time.monotonic()
        overdue = now - p.first_seen >= self.max_wait - 1e-6
        if sig != p.sig and not overdue:
            self._rearm(path, p, sig, "size/mtime still changing", self.debounce_delay)
            return
        if path in self._reported and self._reported[path] == sig:
            log.debug("ImageWatcher: %s already reported, unchanged", path)
            self._forget_pending(path)
            return
        scan = fitsheader.scan(path)
        problem = "size/mtime still changing" if sig != p.sig else _incompleteness(scan, sig[0])
        if problem and not overdue:
            self._rearm(path, p, sig, problem, max(self.debounce_delay, 0.1))
            return
        if problem:
            log.warning("ImageWatcher: %s did not complete within max_wait=%g s (%s); "
                        "reporting it anyway", path, self.max_wait, problem)
        try:
            size_kb = os.path.getsize(path) / 1024.0
        except OSError:
            self._forget_pending(path)
            return
        event = {"path": path, "header": scan.header if scan.complete else {},
                 "size_kb": size_kb}
        with self._lock:
            if not self._running or path in self._timers or self._pending.get(path) is not p:
                return
            del self._pending[path]
            self._reported[path] = sig
        try:
            self.callback(event)
        except Exception:
            log.exception("ImageWatcher: callback raised for %s; still watching", path)
        finally:
            self._callbacks_done += 1

    def _rearm(self, path: str, p: _Pending, sig: tuple[int, int], problem: str,
               delay: float) -> None:
        with self._lock:
            if not self._running or self._pending.get(path) is not p:
                return
            if p.problem != problem:
                log.debug("ImageWatcher: %s not complete yet: %s", path, problem)
            p.sig, p.problem = sig, problem
            if path not in self._timers:
                self._arm(path, delay, time.monotonic(), p)

    # ------------------------------------------------------------------ scanning / polling
    def _walk(self, top: str) -> Iterator[tuple[str, list[str], list[str]]]:
        """(dir, subdirs, matching file names) for ``top`` (and below when recursive)."""
        stack = [top]
        while stack:
            d = stack.pop()
            try:
                with os.scandir(d) as it:
                    entries = list(it)
            except OSError as exc:
                if d == top:
                    raise
                log.debug("ImageWatcher: cannot list %s: %s", d, exc)
                continue
            files, dirs = [], []
            for e in entries:
                try:
                    if e.is_dir(follow_symlinks=False):
                        dirs.append(e.path)
                    elif e.name.lower().endswith(self.extensions) and e.is_file():
                        files.append(e.name)
                except OSError:
                    continue
            yield d, dirs, files
            if self.recursive:
                stack.extend(dirs)

    def _discovered(self, path: str, *, initial: bool) -> None:
        """A name found by a listing (start, rescan, new folder, poll)."""
        if initial and not self.catch_up:
            with self._lock:
                self._reported.setdefault(path, None)  # present before start: not reported
            return
        if path in self._reported or path in self._pending:
            return
        self._schedule(path)

    def _initial_scan(self) -> None:
        try:
            for d, _, files in self._walk(self._root):
                for name in files:
                    self._discovered(os.path.join(d, name), initial=True)
        except OSError as exc:
            log.error("ImageWatcher: cannot list %s: %s", self._root, exc)

    def _scan_dir(self, directory: str) -> None:
        """Schedule every matching file below ``directory`` that is neither reported nor pending.

        Used for a folder that appeared (its files may predate the watch on it) and after an
        inotify overflow.
        """
        if not self._running:
            return
        try:
            for d, _, files in self._walk(directory):
                if not _under(d, self._root) or (not self.recursive and d != self._root):
                    continue
                for name in files:
                    self._discovered(os.path.join(d, name), initial=False)
        except OSError as exc:
            log.debug("ImageWatcher: cannot scan %s: %s", directory, exc)

    def _poll_once(self, *, initial: bool = False) -> None:
        """List the folder(s); schedule names not seen before. Stats only new files."""
        if not self._running:
            return
        known = self._known
        new_known: dict[str, set[str]] = {}
        found: list[str] = []
        try:
            if not os.path.isdir(self._root):
                raise FileNotFoundError(f"{self._root} is not a directory now")
            stack = [self._root]
            while stack:
                d = stack.pop()
                try:
                    with os.scandir(d) as it:
                        entries = list(it)
                except OSError:
                    if d == self._root:
                        raise
                    # keep what we knew below an unlistable subfolder; retry next time
                    for k, v in known.items():
                        if _under(k, d):
                            new_known[k] = v
                    continue
                names: set[str] = set()
                for e in entries:
                    try:
                        if e.is_dir(follow_symlinks=False):
                            if self.recursive:
                                stack.append(e.path)
                        elif e.name.lower().endswith(self.extensions) and e.is_file():
                            names.add(e.name)
                    except OSError:
                        continue
                new_known[d] = names
                old = known.get(d, ())
                found.extend(os.path.join(d, n) for n in names if n not in old)
        except OSError as exc:
            if not self._share_down:
                self._share_down = True
                log.warning("ImageWatcher: cannot list %s (%s); the share may be down, will "
                            "keep polling", self._root, exc)
            return
        if self._share_down:
            self._share_down = False
            log.info("ImageWatcher: %s is listable again", self._root)
        self._known = new_known
        for path in found:
            self._discovered(path, initial=initial)


def _incompleteness(scan: fitsheader.HeaderScan, size: int) -> str:
    """Why a stable file is not a complete FITS file yet ('' when it looks complete)."""
    if size == 0:
        return "empty file"
    if scan.blank:
        return "first block still all zero bytes (preallocated, not written yet?)"
    if size < fitsheader.BLOCK:
        return f"shorter than one {fitsheader.BLOCK}-byte block ({size} bytes)"
    if not scan.is_fits:
        return ""  # not FITS at all: nothing more to wait for; reported with header {}
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
