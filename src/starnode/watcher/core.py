"""ImageWatcher: notices complete new FITS frames in a folder and hands them to a callback.

The seed document (``shared/seed/image-watcher.md``) is the contract; this class keeps every
sentence of it and closes the gaps a naive watchdog wrapper leaves (see ``docs/watcher.md``):

* **Completeness.** A path becomes *pending* on a created/moved event (or when a poll finds a new
  name). Modification and close-write events of a pending path reset its debounce deadline (they
  never make a path pending). When the deadline passes, :meth:`ImageWatcher._fire` checks that
  size and mtime did not change since the last observation and that the file is a complete FITS
  file (:func:`~starnode.watcher.scan.incompleteness`). Otherwise it waits again. A file that
  never completes is reported after ``max_wait`` seconds with a WARNING; one that stopped
  changing while incomplete (a truncated file, a torn copy) after ``stall_timeout`` seconds,
  and again if it changes later (a writer that paused that long).
* **Network shares.** ``mode="auto"`` polls folders on network/remote filesystems
  (:func:`~starnode.watcher.mounts.choose_mode`), where inotify sees nothing.
* **Bounded threads.** The debounce "timers" are a :class:`~starnode.watcher.Debouncer` served
  by one scheduler thread (``_timers`` is its path -> deadline dict); callbacks run one at a
  time, in order of completion, on one worker thread. With the watchdog observer that is a fixed
  handful of threads whatever the number of pending files. An inotify queue overflow (events
  lost by the kernel) triggers a rescan of the folder.
* **A folder that comes back.** In events mode a :class:`~starnode.watcher.rootguard.RootGuard`
  notices the watched folder deleted and created again (or a share remounted on it) and
  restarts the observer, then rescans: no restart of the program needed.
* **Hostile names.** Names are quoted in every log line (a newline cannot forge one). A name
  like a frame that is not a regular file (a FIFO, a device, a folder) is never opened: it goes
  to ``on_irregular`` when given, so the caller can record why it is not a frame.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler

from starnode.frame import header as fitsheader
from starnode.frame.admission import quoted

from .debounce import Debouncer
from .mounts import choose_mode, under
from .observer import EVENT_FILTER, make_observer
from .options import MODES, check_options, extensions_tuple
from .rootguard import RootGuard
from .scan import FolderScanner, Pending, Poller, incompleteness, stat_sig
from .worker import WorkQueue

log = logging.getLogger(__name__)

__all__ = ["MODES", "ImageWatcher"]


class ImageWatcher(FileSystemEventHandler):
    """Watch ``watch_path`` for new, complete FITS files and call ``callback(event)`` once each.

    Parameters
    ----------
    watch_path : str
        The folder; it must exist when :meth:`start` is called.
    callback : callable
        Gets ``{"path": absolute path, "header": primary header dict (COMMENT/HISTORY dropped,
        strings stripped, ``{}`` if unreadable), "size_kb": os.path.getsize(path)/1024.0}``.
        Exceptions it raises are logged at ERROR; watching goes on.
    debounce_delay : float
        Seconds without an event for a path before it is checked.
    mode : {"auto", "events", "poll"}
        OS events, folder listings, or chosen from the filesystem type.
    poll_interval : float
        Seconds between listings in poll mode.
    recursive : bool
        Watch subfolders, including ones created later.
    catch_up : bool
        Report files already present at start.
    extensions : iterable of str
        Case-insensitive suffixes that count.
    max_wait : float
        Seconds after which a file that never completes is reported anyway, with a WARNING.
    stall_timeout : float
        Seconds an incomplete file may stay unchanged (size and mtime) before it is taken for
        truncated and reported, with a WARNING (a later change reports it again).
    on_irregular : callable, optional
        Called with the path of a name with a FITS extension that is not a regular file (a
        FIFO, a device, a folder); such names are never opened, and without it ignored.

    Raises
    ------
    TypeError
        ``callback`` is not callable.
    ValueError
        An option is out of range.

    Notes
    -----
    The keyword options are off by default, so the seed's behaviour is the default. Callbacks
    are delivered one at a time, in order of completion, on one worker thread.
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
        on_irregular: Callable[[str], None] | None = None,
        stall_timeout: float = 30.0,
    ) -> None:
        super().__init__()
        check_options(callback, mode, debounce_delay, poll_interval, max_wait, stall_timeout)
        self.watch_path = watch_path
        self.callback = callback
        self.debounce_delay = float(debounce_delay)
        self.mode = mode
        self.poll_interval = float(poll_interval)
        self.recursive = bool(recursive)
        self.catch_up = bool(catch_up)
        self.extensions = extensions_tuple(extensions)
        self.max_wait = float(max_wait)
        self.stall_timeout = float(stall_timeout)
        self.on_irregular = on_irregular
        self._guard: RootGuard | None = None
        #: the mode in use after start() ("events" or "poll") and why it was chosen
        self.active_mode: str | None = None
        self.mode_reason = ""

        self._running = False
        self._root = os.path.abspath(watch_path)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)  # wakes the scheduler
        self._start_stop = threading.Lock()
        #: the debounce timers; ``_timers`` is the seed's "timers dict" (path -> deadline)
        self.debouncer = Debouncer(self.debounce_delay)
        self._timers = self.debouncer.timers
        self._pending: dict[str, Pending] = {}
        # paths reported this session -> (size, mtime_ns); None = present at start, not reported
        self._reported: dict[str, tuple[int, int] | None] = {}
        # paths reported incomplete after a stall -> their (size, mtime_ns) then: a change
        # (the writer had only paused) makes them pending again
        self._stalled: dict[str, tuple[int, int]] = {}
        self._queue = WorkQueue(self._fire, self._scan_dir)
        self._observer: Any = None
        self._scheduler: threading.Thread | None = None
        self._scanner = FolderScanner(self._root, self.extensions, self.recursive)
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
        """True between a successful :meth:`start` and :meth:`stop`."""
        return self._running

    def status(self) -> dict[str, Any]:
        """A snapshot for health checks and tests.

        Returns
        -------
        dict
            ``running``, ``mode`` (active mode or None), ``pending`` (paths seen, not reported),
            ``timers`` (paths with a live debounce deadline), ``reported`` (paths reported this
            session), ``callbacks`` (callbacks run so far).
        """
        with self._lock:
            return {"running": self._running, "mode": self.active_mode,
                    "pending": len(self._pending), "timers": len(self.debouncer),
                    "reported": sum(1 for v in self._reported.values() if v is not None),
                    "callbacks": self._callbacks_done}

    # ------------------------------------------------------------------ start / stop
    def start(self) -> None:
        """Start watching.

        A missing directory (``os.path.isdir``) is logged at ERROR and the watcher stays
        stopped; nothing is raised. The observer thread is a daemon.
        """
        with self._start_stop:
            if self._running:
                log.warning("ImageWatcher.start(): already watching %s", self._root)
                return
            if not os.path.isdir(self.watch_path):
                log.error("ImageWatcher: %s is not an existing directory; not watching",
                          self.watch_path)
                return
            self._root = os.path.abspath(self.watch_path)
            self._scanner = FolderScanner(self._root, self.extensions, self.recursive)
            if self.mode == "auto":
                mode, reason = choose_mode(self._root, recursive=self.recursive)
            else:
                mode, reason = self.mode, f"mode={self.mode!r} requested"
            self._start_threads()
            if mode == "events":
                mode, reason = self._start_events(reason)
            self.active_mode, self.mode_reason = mode, reason
            if mode == "events":
                self._initial_scan()
                self._guard = RootGuard(self._root, max(self.poll_interval, 1.0),
                                        self._rewatch)
                self._guard.start()
            else:
                self._poll_once(initial=True)
                self._observer = Poller(self._poll_once, self.poll_interval, self._root)
                self._observer.start()
            how = (f"by polling every {self.poll_interval:.3g} s" if mode == "poll"
                   else "with OS events")
            log.info("ImageWatcher: watching %s %s%s: %s", quoted(self._root), how,
                     " (recursive)" if self.recursive else "", reason)

    def _start_threads(self) -> None:
        """Reset the state and start the scheduler and callback threads."""
        with self._lock:
            self._running = True
            self.debouncer.clear()
            self._pending.clear()
        self._scheduler = threading.Thread(target=self._scheduler_loop, daemon=True,
                                           name="starnode-watcher-scheduler")
        self._scheduler.start()
        self._queue.start()

    def _start_events(self, reason: str) -> tuple[str, str]:
        """Start the watchdog observer; fall back to polling when the OS refuses."""
        try:
            observer = make_observer(self._on_overflow)
            observer.schedule(self, self._root, recursive=self.recursive,
                              event_filter=EVENT_FILTER)
            observer.daemon = True
            observer.start()
            self._observer = observer
        except OSError as exc:  # e.g. inotify watch limit reached
            log.warning("ImageWatcher: OS events unavailable for %s (%s); polling",
                        self._root, exc)
            self._observer = None
            return "poll", f"OS events failed: {exc}"
        return "events", reason

    def stop(self, timeout: float | None = None) -> None:
        """Ordered, idempotent shutdown; no callback starts after it returns.

        1. ``_running = False`` (a deadline expiring after this is a no-op); 2. the pending
        debounce timers are cancelled and the ``_timers`` dict cleared; 3. ``observer.stop()``;
        4. ``observer.join()``. Then the scheduler and callback threads are stopped and joined:
        a callback already running is waited for (up to ``timeout`` seconds if given), unless
        stop() is called from inside the callback.

        Parameters
        ----------
        timeout : float, optional
            Longest wait for each internal thread.
        """
        me = threading.current_thread()
        if me is self._queue.thread or me is self._scheduler:
            # called from inside a callback: if another thread is already stopping (and
            # waiting for this callback), do not wait for it - just make sure nothing new runs
            if not self._start_stop.acquire(blocking=False):
                with self._lock:
                    self._running = False
                    self.debouncer.clear()
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
            self.debouncer.clear()  # 2: cancels every timer, clears the _timers dict
            self._pending.clear()
            self._cond.notify_all()
        guard, self._guard = self._guard, None
        if guard is not None:
            guard.stop()
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()  # 3
            if observer is not me:
                observer.join()  # 4
        self._queue.stop(timeout)
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None and scheduler is not me and scheduler.is_alive():
            scheduler.join(timeout)

    # ------------------------------------------------------------------ watchdog events
    def on_created(self, event: FileSystemEvent) -> None:
        """Seed: a new file is scheduled; a new folder is scanned when recursive."""
        path = os.fsdecode(event.src_path)
        if event.is_directory:
            if self.recursive:
                self._queue.scan(path)
            self._irregular(path)
            return
        self._schedule(path)

    def on_moved(self, event: FileSystemEvent) -> None:
        """Seed: a file renamed or moved into the folder is scheduled under its new name."""
        src, dest = os.fsdecode(event.src_path), os.fsdecode(event.dest_path)
        if event.is_directory:
            if self.recursive and dest:
                self._queue.scan(dest)
            return
        if src:
            self._forget_pending(src)
        if dest:
            self._schedule(dest)

    def on_modified(self, event: FileSystemEvent) -> None:
        """A write to a pending file resets its timer."""
        if not event.is_directory:
            self._touch(os.fsdecode(event.src_path))

    def on_closed(self, event: FileSystemEvent) -> None:
        """A close-write of a pending file resets its timer."""
        if not event.is_directory:
            self._touch(os.fsdecode(event.src_path))

    def on_deleted(self, event: FileSystemEvent) -> None:
        """A deleted pending file is forgotten; a deleted watched folder is an ERROR."""
        path = os.fsdecode(event.src_path)
        if not event.is_directory:
            self._forget_pending(path)
        elif path == self._root and self._running:
            log.warning("ImageWatcher: the watched folder %s was deleted; watching it again "
                        "once it is back", quoted(path))
            guard = self._guard
            if guard is not None:
                guard.folder_id = None  # recreated with the same inode number: still a new watch

    def _rewatch(self) -> None:
        """The watched folder is back as a new folder: a new observer, then a rescan."""
        with self._start_stop:
            if not self._running or self.active_mode != "events":
                return
            old, self._observer = self._observer, None
            if old is not None:
                old.stop()
                old.join(5.0)
            mode, _ = self._start_events("restarted")
            if mode != "events":
                self._observer = Poller(self._poll_once, self.poll_interval, self._root)
                self._observer.start()
        self._queue.scan(self._root)

    def _irregular(self, path: str) -> None:
        """A name like a frame that is not a regular file: hand it over, never open it."""
        if self.on_irregular is None or not self._wanted(path):
            return
        try:
            self.on_irregular(path)
        except Exception:
            log.exception("ImageWatcher: on_irregular raised for %s", quoted(path))

    def _on_overflow(self) -> None:
        log.warning("ImageWatcher: the kernel dropped file events (inotify queue overflow); "
                    "rescanning %s", self._root)
        self._queue.scan(self._root, rescan=True)

    # ------------------------------------------------------------------ scheduling
    def _wanted(self, path: str) -> bool:
        if not path.lower().endswith(self.extensions):
            return False
        parent = os.path.dirname(path)
        if self.recursive:
            return under(parent, self._root)
        return parent == self._root

    def _arm(self, path: str, delay: float, now: float, p: Pending) -> None:
        """Set ``path``'s deadline (caller holds the lock); wake the scheduler if earliest."""
        if self.debouncer.schedule(path, now, delay=delay,
                                   not_after=p.first_seen + self.max_wait):
            self._cond.notify()

    def _schedule(self, path: str, sig: tuple[int, int] | None = None) -> None:
        """Seed step: (re)start the debounce timer of ``path`` (FITS files only).

        A new event for a pending path resets its timer; when the timer expires without being
        reset, :meth:`_fire` runs (on the callback worker thread).
        """
        if not self._wanted(path):
            return
        if sig is None:
            sig = stat_sig(path)
        with self._lock:
            if not self._running:
                return
            now = time.monotonic()
            p = self._pending.get(path)
            if p is None:
                p = self._pending[path] = Pending(first_seen=now, changed=now)
            if sig != p.sig:
                p.changed = now
            p.sig = sig
            self._arm(path, self.debounce_delay, now, p)

    def _touch(self, path: str) -> None:
        """A modification or close-write: reset the timer of a *pending* path, nothing else."""
        if path in self._stalled:  # reported truncated, and now written to after all
            self._resume_stalled(path)
            return
        if path not in self._pending:  # cheap unlocked pre-check
            return
        sig = stat_sig(path)
        with self._lock:
            p = self._pending.get(path)
            if p is None or not self._running:
                return
            now = time.monotonic()
            if sig != p.sig:
                p.changed = now
            p.sig = sig
            self._arm(path, self.debounce_delay, now, p)

    def _resume_stalled(self, path: str) -> None:
        """A file reported as truncated changed since: it is pending again (reported again
        once complete), so a writer that only paused loses nothing."""
        sig = stat_sig(path)
        with self._lock:
            if sig is None:  # gone: nothing to wait for
                self._stalled.pop(path, None)
                return
            if self._stalled.get(path) == sig:
                return
            self._stalled.pop(path, None)
            self._reported.pop(path, None)
        log.info("ImageWatcher: %s changed after it was reported incomplete; waiting for it "
                 "again", quoted(path))
        self._schedule(path, sig)

    def _forget_pending(self, path: str) -> None:
        with self._lock:
            self._pending.pop(path, None)
            self.debouncer.cancel(path)

    def _scheduler_loop(self) -> None:
        """Wait for the next deadline; hand due paths to the callback worker."""
        while True:
            with self._cond:
                while True:
                    if not self._running:
                        return
                    now = time.monotonic()
                    due = self.debouncer.due(now)
                    if due:
                        break
                    nxt = self.debouncer.next_deadline()
                    self._cond.wait(None if nxt is None else max(nxt - now, 0.0))
            self._queue.fire(due)

    # ------------------------------------------------------------------ worker
    def _fire(self, path: str) -> None:
        """Seed step: the debounce deadline of ``path`` passed.

        Report it if it still exists and is complete and stable, else wait again.
        """
        with self._lock:
            if not self._running or path in self.debouncer:
                return  # stopped, or re-armed by a newer event
            p = self._pending.get(path)
        if p is None:
            return
        sig = stat_sig(path) if os.path.isfile(path) else None
        if sig is None:
            self._forget_pending(path)
            if os.path.lexists(path):
                self._irregular(path)
            else:
                log.debug("ImageWatcher: %s vanished before it was reported", quoted(path))
            return
        if self._reported.get(path, False) == sig:
            log.debug("ImageWatcher: %s already reported, unchanged", quoted(path))
            self._forget_pending(path)
            return
        header = self._complete_header(path, p, sig)
        if header is not None:
            self._deliver(path, p, sig, header)

    def _complete_header(self, path: str, p: Pending,
                         sig: tuple[int, int]) -> dict[str, Any] | None:
        """The header to report, or None after re-arming a file that is not complete yet."""
        now = time.monotonic()
        overdue = now - p.first_seen >= self.max_wait - 1e-6
        if sig != p.sig and not overdue:
            self._rearm(path, p, sig, "size/mtime still changing", self.debounce_delay)
            return None
        scan = fitsheader.scan(path)
        problem = "size/mtime still changing" if sig != p.sig else incompleteness(scan, sig[0])
        # unchanged for stall_timeout and still incomplete: truncated, not being written
        stalled = bool(problem) and sig == p.sig and now - p.changed >= self.stall_timeout - 1e-6
        if problem and not overdue and not stalled:
            delay = max(self.debounce_delay, 0.1)
            if sig == p.sig:  # no sooner than the stall is due, no later than needed
                delay = min(delay, max(0.1, p.changed + self.stall_timeout - now))
            self._rearm(path, p, sig, problem, delay)
            return None
        if problem and not overdue:
            log.warning("ImageWatcher: %s is incomplete (%s) and has not changed for %.0f s "
                        "(watch.stall_timeout): a truncated file or a torn copy; reporting it "
                        "now (it is looked at again if it changes)", quoted(path), problem,
                        now - p.changed)
            with self._lock:
                self._stalled[path] = sig
        elif problem:
            log.warning("ImageWatcher: %s did not complete within max_wait=%g s (%s); "
                        "reporting it anyway", quoted(path), self.max_wait, problem)
        return scan.header if scan.complete else {}

    def _deliver(self, path: str, p: Pending, sig: tuple[int, int],
                 header: dict[str, Any]) -> None:
        """Seed: measure the size and invoke the callback (its exceptions logged at ERROR)."""
        try:
            size_kb = os.path.getsize(path) / 1024.0
        except OSError:
            self._forget_pending(path)
            return
        event = {"path": path, "header": header, "size_kb": size_kb}
        with self._lock:
            if not self._running or path in self.debouncer or self._pending.get(path) is not p:
                return
            del self._pending[path]
            self._reported[path] = sig
        try:
            self.callback(event)
        except Exception:
            log.exception("ImageWatcher: callback raised for %s; still watching", quoted(path))
        finally:
            self._callbacks_done += 1

    def _rearm(self, path: str, p: Pending, sig: tuple[int, int], problem: str,
               delay: float) -> None:
        with self._lock:
            if not self._running or self._pending.get(path) is not p:
                return
            if p.problem != problem:
                log.debug("ImageWatcher: %s not complete yet: %s", quoted(path), problem)
            if sig != p.sig:
                p.changed = time.monotonic()
            p.sig, p.problem = sig, problem
            if path not in self.debouncer:
                self._arm(path, delay, time.monotonic(), p)

    # ------------------------------------------------------------------ scanning / polling
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
            for d, names in self._scanner.walk(self._root):
                for name in names:
                    self._discovered(os.path.join(d, name), initial=True)
        except OSError as exc:
            log.error("ImageWatcher: cannot list %s: %s", quoted(self._root), exc)

    def _scan_dir(self, directory: str) -> None:
        """Schedule every matching file below ``directory`` that is neither reported nor pending.

        Used for a folder that appeared (its files may predate the watch on it) and after an
        inotify overflow.
        """
        if not self._running:
            return
        try:
            for d, names in self._scanner.walk(directory):
                if not under(d, self._root) or (not self.recursive and d != self._root):
                    continue
                for name in names:
                    self._discovered(os.path.join(d, name), initial=False)
        except OSError as exc:
            log.debug("ImageWatcher: cannot scan %s: %s", quoted(directory), exc)

    def _poll_once(self, *, initial: bool = False) -> None:
        """List the folder(s); schedule names not seen before. Stats only new files."""
        if not self._running:
            return
        found = self._scanner.poll()
        for path in found or ():
            self._discovered(path, initial=initial)
        for path in list(self._stalled):  # poll mode sees no writes: look at these again
            self._resume_stalled(path)
