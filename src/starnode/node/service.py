"""The node service: ``starnode run`` (unattended) and ``starnode process`` (an archive).

:class:`Node` joins the pieces: :class:`~starnode.node.intake.Intake` records every frame the
watcher, the catch-up scan or the command line offers; the :class:`~starnode.store.Ledger`
queues them durably; a :class:`~starnode.node.pool.WorkerPool` measures them in separate
processes; the sinks (:mod:`~starnode.node.sinks`: the AAVSO outbox, the hub queue) take each
measurement. One INFO line per frame.

Guarantees (tested with SIGKILL in ``tests/node/test_node_e2e.py``):

- every frame seen is in the ledger before any work is done on it; a restart requeues frames a
  killed node had in hand and catches up with frames written while it was down;
- a result is recorded once, by the claim's owner, in one transaction; a measured frame whose
  submission was interrupted is submitted again on restart (``submit`` never writes the same
  observation twice);
- a slow frame never blocks watching (the pool works, the watcher thread only records);
- a worker that dies or hangs past ``frame_timeout`` fails only its own frame, with the reason;
- SIGINT/SIGTERM: stop watching, wait up to ``shutdown_grace`` seconds for frames in hand, put
  the rest back in the queue. A second signal stops at once (frames in hand requeued).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import errno
import logging
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..config import Config, resolve
from ..config.schema import SCHEMA
from ..errors import ConfigError, FrameRejected, FrameState, RejectCategory, StoreError
from ..frame.admission import check as admit
from ..frame.admission import max_frame_bytes, quoted
from ..store import Frame, Ledger, make_owner
from .intake import BAD_NAME_SOURCE, Intake
from .keep import night_checks
from .lock import DataDirLock
from .outcomes import Outcomes
from .pool import FailedFrame, MeasureFn, Outcome, SkippedFrame, Task, WorkerPool, outcome_of
from .share import identity, share_gone
from .sinks import SubmitFn

log = logging.getLogger("starnode.node")

__all__ = ["NODE_SHARE_MB", "Node", "worker_share"]

_SHARE_RETRY_S = 15.0
_RECOVER_EVERY_S = 60.0
_DONE = [FrameState.MEASURED, FrameState.REPORTED, FrameState.SKIPPED, FrameState.FAILED]

@dataclass
class _RunState:
    """What ``run()``'s loop remembers between turns."""

    watching: bool = False
    warned: bool = False
    scans: int = 0
    next_scan: float = 0.0
    next_recover: float = 0.0
    errors: int = 0


#: What the node process keeps of ``limits.memory_mb`` for itself (MiB).
NODE_SHARE_MB = 512
#: Below this per-worker ceiling a normal Seestar frame may not fit (its peak is ~600 MiB).
_TIGHT_MB = 768


def worker_share(config: Config, workers: int) -> int:
    """Each worker's memory ceiling in MiB: one budget for the whole node
    (``limits.memory_mb``, of which the node keeps :data:`NODE_SHARE_MB`) divided by the
    workers, lowered to ``limits.worker_memory_mb`` when that is set; 0 = no ceiling."""
    total = int(config.limits.memory_mb)
    cap = int(config.limits.worker_memory_mb)
    share = max(1, (total - NODE_SHARE_MB) // max(1, workers)) if total > 0 else 0
    if cap > 0:
        share = min(share, cap) if share else cap
    if 0 < share < _TIGHT_MB:
        log.warning("limits.memory_mb %d MiB shared by %d worker(s) leaves %d MiB each; a "
                    "frame may fail for memory (raise limits.memory_mb or lower workers)",
                    total, workers, share)
    return share


class Node:
    """Watches, queues, measures and reports.

    Parameters
    ----------
    config : Config, mapping, path or None
        The configuration (see :func:`starnode.config.resolve`).
    workers : int, optional
        Frames measured in parallel (default: ``workers`` of the configuration).
    measure : callable, optional
        A stand-in for the pipeline (tests: a module-level ``fn(path, config)``, see
        :data:`~starnode.node.pool.MeasureFn`); None (default): the pipeline.
    submit : callable or bool
        The ``aavso`` sink: True (default): :func:`starnode.aavso.submit`; a function called
        in the node process as ``submit(measurement, config)`` instead; False: none (the
        other sinks of ``node.sinks`` still take each measurement).
    progress : callable, optional
        Called with the node after every finished frame.
    """

    def __init__(self, config: Config | Mapping[str, Any] | str | os.PathLike[str] | None,
                 *, workers: int | None = None, measure: MeasureFn | None = None,
                 submit: SubmitFn | bool = True,
                 progress: Callable[[Node], None] | None = None) -> None:
        self.config = resolve(config)
        if workers is not None:  # checked like the 'workers' key: -1 would measure nothing
            field = SCHEMA[""]["workers"]
            if isinstance(workers, bool) or not isinstance(workers, int) or not (
                    (field.min or 1) <= workers <= (field.max or workers)):
                raise ConfigError(f"workers: must be a whole number from {field.min:g} to "
                                  f"{field.max:g}, got {workers!r}")
        self.workers = int(workers or self.config.workers)
        self.progress = progress
        raw = dict(self.config.raw)
        raw["data_dir"] = str(self.config.data_dir)
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        self.ledger = Ledger(self.config)
        self.owner = make_owner()
        self.stop_event = threading.Event()
        self.fast_stop = threading.Event()
        self.wake = threading.Event()
        self.intake = Intake(self.config, self.ledger, self.wake)
        self.lock = DataDirLock(self.config.data_dir)
        level = logging.DEBUG if self.config.log_level == "DEBUG" else logging.WARNING
        self.pool = WorkerPool(self.workers, measure, raw,
                               timeout=float(self.config.frame_timeout), log_level=level,
                               memory_mb=worker_share(self.config, self.workers))
        from .forwarder import attach  # the hub forwarder when hub.url is set (docs/hub.md)

        self.hub = attach(self)
        self.outcomes = Outcomes(self.config, self.ledger, self.owner, submit, hub=self.hub)
        self.counts = self.outcomes.counts
        self.latencies = self.outcomes.latencies  # file mtime -> reported, seconds
        self.frame_seconds = self.outcomes.frame_seconds  # worker time per frame
        self.total = 0
        self._inflight: dict[cf.Future[Outcome], Frame] = {}
        self._watcher: Any = None
        self._paused_until = 0.0  # no dispatching before (the share dropped)
        self._root_id: tuple[int, int] | None = None  # watch.path's (st_dev, st_ino) when up
        self._max_bytes = max_frame_bytes(self.config)
        self._next_prune = 0.0  # starlists.keep_days: when old starlists are deleted next
        #: the worker hashes each frame's content (SHA-256) for the hub sink's key
        self._hash = any(s.name == "hub" for s in self.outcomes.sinks)

    # ------------------------------------------------------------------ intake
    def wants(self, path: str) -> bool:
        """Whether ``path`` is a frame this node processes (``watch.include``)."""
        return self.intake.wants(path)

    def offer(self, path: str | os.PathLike[str], *, source: str = "watch") -> int | None:
        """Record a frame in the ledger (see :meth:`Intake.offer`)."""
        return self.intake.offer(path, source=source)

    def on_event(self, event: Mapping[str, Any]) -> None:
        """The watcher's callback (see :meth:`Intake.on_event`)."""
        self.intake.on_event(event)

    def scan(self, root: str | os.PathLike[str], **kwargs: Any) -> int:
        """Record unseen frames under ``root`` (see :meth:`Intake.scan`)."""
        return self.intake.scan(root, **kwargs)

    # ------------------------------------------------------------------ dispatching
    def _lease(self) -> float:
        return 2 * float(self.config.frame_timeout) + 60.0

    def _claim(self) -> list[Frame]:
        if self.stop_event.is_set() or time.monotonic() < self._paused_until:
            return []
        free = self.workers - len(self._inflight)
        return self.ledger.claim(self.owner, limit=free, ids=self.intake.ids,
                                 lease_s=self._lease())

    def dispatch(self) -> int:
        """Hand pending frames to free workers.

        Returns
        -------
        int
            How many frames were started.
        """
        started = 0
        while frames := self._claim():
            for frame in frames:
                if self._still_there(frame):
                    task = Task(frame.path, night_checks(self.ledger.store, frame.path), self._hash)
                    self._inflight[self.pool.submit(task)] = frame
                    started += 1
        return started

    def resume_dispatch(self) -> None:
        """Dispatch again now, without waiting out a pause after a dropped share."""
        self._paused_until = 0.0

    def _refuse(self, frame: Frame, category: str, reason: str) -> bool:
        self._finish(frame, SkippedFrame(reason, category))
        return False

    def _still_there(self, frame: Frame) -> bool:
        """The file must still be the one recorded, and a frame we may read at all
        (:func:`starnode.frame.admission.check`: a regular file of a sane size, never opened when
        it is not); otherwise skip this row (a rewritten file is recorded as new work)."""
        if frame.source == BAD_NAME_SOURCE:
            return self._refuse(frame, RejectCategory.BAD_NAME, "the file name is not valid "
                                "UTF-8 (shown with \\x escapes); rename the file to measure it")
        try:
            st = os.stat(frame.path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return self._refuse(frame, RejectCategory.NOT_A_FILE, "a symbolic link loop "
                                    "(the link points back to itself); nothing to measure")
            if not self._share_down(frame):
                self._refuse(frame, RejectCategory.VANISHED,
                             f"file no longer readable: {exc.strerror}")
            return False
        self._share_up(frame)
        try:
            admit(frame.path, self._max_bytes)
        except FrameRejected as exc:
            return self._refuse(frame, str(exc.category), exc.reason)
        if st.st_size != frame.size or st.st_mtime_ns != frame.mtime_ns:
            self._finish(frame, SkippedFrame("file changed after it was recorded; the new "
                                             "version is queued as new work",
                                             RejectCategory.REWRITTEN))
            if not self.stop_event.is_set():
                self.offer(frame.path, source="rewritten")
            return False
        return True

    def _root_identity(self) -> tuple[int, int] | None:
        return identity(str(self.config.watch.path or ""))

    def _share_up(self, frame: Frame) -> None:
        """A frame of the watch folder is readable: the share is up, remember which it is (a
        remounted share may have a new device number)."""
        root = self.config.watch.path
        if self.intake.ids is None and root and os.path.dirname(frame.path) == \
                os.path.abspath(root):
            self._root_id = self._root_identity()

    def _share_down(self, frame: Frame) -> bool:
        """When the frame's share is gone (:func:`~starnode.node.share.share_gone`: the share
        dropped, the USB disk unplugged), the frame is not lost: requeue it and pause
        dispatching for a while. (``starnode run`` only; ``process`` reports such frames as
        vanished.)"""
        folder = os.path.dirname(frame.path)
        if self.intake.ids is not None or not share_gone(folder, self.config.watch.path,
                                                         self._root_id):
            return False
        self.ledger.requeue(frame.id, self.owner)
        if time.monotonic() >= self._paused_until:
            log.warning("%s is not reachable (share unmounted?); frames wait in the queue, "
                        "retrying in %.0f s", quoted(folder), _SHARE_RETRY_S)
        self._paused_until = time.monotonic() + _SHARE_RETRY_S
        return True

    def collect(self, timeout: float | None) -> int:
        """Wait up to ``timeout`` s for frames in hand; record those that finished.

        Returns
        -------
        int
            How many frames finished.
        """
        if not self._inflight:
            return 0
        done, _ = cf.wait(list(self._inflight), timeout=timeout,
                          return_when=cf.FIRST_COMPLETED)
        for fut in done:
            frame = self._inflight.pop(fut)
            outcome = None if fut.cancelled() else outcome_of(fut, self.pool.timeout)
            if outcome is None or (isinstance(outcome, FailedFrame) and outcome.expired
                                   and self.stop_event.is_set()):
                self.ledger.requeue(frame.id, self.owner)  # stopped with the node
            else:
                self._finish(frame, outcome)
        return len(done)

    # ------------------------------------------------------------------ outcomes
    def _finish(self, frame: Frame, outcome: Outcome) -> None:
        if isinstance(outcome, SkippedFrame) and \
                outcome.category == RejectCategory.UNREADABLE and self._share_down(frame):
            return  # an I/O error because the share dropped mid-read: not the frame's fault
        if self.outcomes.record(frame, outcome) and self.progress is not None:
            self.progress(self)

    def flush(self) -> None:
        """End of a session: close open time bins (see :meth:`Outcomes.flush`)."""
        self.outcomes.flush()

    def _prune_starlists(self) -> None:
        """``starlists.keep_days``: delete the starlists of old nights (at start, then daily)."""
        from ..photometry.starlist import prune

        self._next_prune = time.monotonic() + 86400.0
        try:
            prune(self.config.data_dir, int(self.config.starlists.keep_days))
        except OSError as exc:
            log.warning("old starlists not deleted: %s", exc)

    def reconcile_reports(self) -> dict[str, Any] | None:
        """At start: the report files checked against the index, the index rebuilt from them
        (:func:`starnode.aavso.recovery.reconcile`): rows the index lost are adopted, a deleted
        report rebuilt, damaged ones named; frames the index forgot are submitted again."""
        if self.outcomes.submit_fn is not True or not self.outcomes.reports_to_aavso:
            return None
        from ..aavso.recovery import reconcile

        try:
            return reconcile(self.config)
        except StoreError:
            raise
        except Exception as exc:  # never stop the node: the writer checks each file again
            log.error("the report files could not be checked against the index: %s: %s",
                      type(exc).__name__, exc)
            return None

    def resubmit(self) -> int:
        """Submit measured frames whose submission never completed (after a crash).

        Returns
        -------
        int
            How many frames were submitted.
        """
        return self.outcomes.resubmit(self.intake.ids)

    # ------------------------------------------------------------------ one step
    def step(self, timeout: float = 0.5) -> None:
        """Dispatch, then wait up to ``timeout`` s for results or new work."""
        self.intake.retry_offers()
        self.outcomes.heal()  # outcomes and submissions a passing write fault left undone
        self.dispatch()
        if self._inflight:
            self.collect(timeout)
        else:
            self.wake.wait(timeout)
        self.wake.clear()

    def busy(self) -> bool:
        """Whether frames are in hand."""
        return bool(self._inflight)

    def outstanding(self, ids: Iterable[int]) -> int:
        """How many of ``ids`` still wait for (or are in) measurement."""
        return self.ledger.outstanding(ids)

    # ------------------------------------------------------------------ process
    def _select(self, paths: Iterable[str | os.PathLike[str]], force: bool,
                retry: list[str]) -> set[int]:
        """The rows ``process`` works on: the given frames, older pending versions of them,
        and the rows put back by ``force``/``retry``."""
        self.intake.ids = set()
        explicit = self.intake.add_paths(paths)
        ids = set(explicit)
        for fid in explicit:  # older versions still waiting ('rewritten' when dispatched)
            row = self.ledger.get(fid)
            if row is not None:
                ids.update(r.id for r in self.ledger.find(row.path)
                           if r.state == FrameState.PENDING)
        if force and ids:
            self.ledger.reset(_DONE, ids=ids)
        if retry:
            ids |= set(self.ledger.reset(retry, ids=ids or None))
        return ids

    def _work_through(self) -> None:
        """Until the selected rows are done (or a stop): dispatch, collect."""
        ids = self.intake.ids or set()
        while not self.stop_event.is_set():
            if not self._inflight and self.outstanding(ids) == 0:
                break
            self.step(0.5)
            if not self._inflight and not self.stop_event.is_set() and self.outstanding(ids):
                time.sleep(0.2)  # pending rows another process holds: wait for them

    def process(self, paths: Iterable[str | os.PathLike[str]], *, force: bool = False,
                retry: Iterable[str] = ()) -> dict[str, Any]:
        """``starnode process``: measure and report frames from files and folders.

        Parameters
        ----------
        paths : iterable of path-like
            FITS files, or folders searched recursively for ``watch.include`` frames.
        force : bool
            Process again frames the ledger already has as done.
        retry : iterable of str
            Done states (``failed``, ``skipped``) whose frames are processed again.

        Returns
        -------
        dict
            ``total``, ``seconds``, ``already`` and the counts of this run.
        """
        ids = self._select(paths, force, list(retry))
        self.intake.ids = ids
        self.total = len(ids)
        self.ledger.recover(self.owner)
        already = self.total - self.outstanding(ids)
        if already:
            log.info("%d of %d frame(s) already in the ledger as done (use --force to redo)",
                     already, self.total)
        self.counts.clear()  # before resubmit(): what it reports now counts as reported
        self.counts["already"] = already
        self.reconcile_reports()
        self.resubmit()
        t0 = time.monotonic()
        with self._signals():
            try:
                self._work_through()
                self._drain()
                self.flush()
            finally:
                self.pool.close()
        return {"total": self.total, "seconds": time.monotonic() - t0, **self.counts}

    # ------------------------------------------------------------------ run
    def _start_watcher(self) -> bool:
        w = self.config.watch
        if not w.path or not os.path.isdir(w.path):
            return False
        from ..watcher import ImageWatcher

        self._watcher = ImageWatcher(
            w.path, self.on_event, debounce_delay=float(w.debounce_delay), mode=w.mode,
            poll_interval=float(w.poll_interval), recursive=bool(w.recursive),
            catch_up=bool(w.catch_up), extensions=tuple(w.extensions),
            max_wait=float(w.max_wait), on_irregular=lambda p: self.on_event({"path": p}),
            stall_timeout=float(w.stall_timeout))
        self._watcher.start()
        self._root_id = self._root_identity()
        log.info("watching %s (%s, %s: %s%s)", quoted(w.path),
                 "recursive" if w.recursive else "this folder only",
                 getattr(self._watcher, "active_mode", None) or w.mode,
                 getattr(self._watcher, "mode_reason", ""),
                 "; catching up with frames already there" if w.catch_up else "")
        return True

    def _stop_watcher(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            with contextlib.suppress(Exception):
                watcher.stop()

    def _resume(self) -> None:
        """Start of ``run``: requeue claims of a stopped run, submit what was measured."""
        self.outcomes.start()  # under the lock: owner-only data_dir, stale temporaries removed
        n = self.ledger.recover(self.owner)
        pending = self.ledger.counts()[FrameState.PENDING]
        log.info("starnode node started (pid %d, %d worker(s), data in %s); %d frame(s) "
                 "to resume%s", os.getpid(), self.workers, self.config.data_dir, pending,
                 f", {n} requeued from a stopped run" if n else "")
        self.reconcile_reports()
        self._prune_starlists()
        self.resubmit()
        self.pool.start()  # workers get ready while the first frames are still being written

    def _keep_watching(self, st: _RunState) -> None:
        """Start the watcher once ``watch.path`` exists (the share may mount late)."""
        if st.watching:
            return
        st.watching = self._start_watcher()
        if st.watching:
            st.next_scan = time.monotonic()
        elif not st.warned:
            log.warning("watch.path %s is not a folder (yet); is the telescope share mounted? "
                        "retrying every 10 s", quoted(str(self.config.watch.path)))
            st.warned = True

    def _catch_up(self, st: _RunState) -> None:
        """At start, and once more after the debounce delay: frames that arrived while the
        node was down (files still growing are left to the watcher)."""
        path = self.config.watch.path
        if not st.watching or path is None or st.scans >= 2 or time.monotonic() < st.next_scan:
            return
        self.scan(path)
        st.scans += 1
        st.next_scan = time.monotonic() + max(2 * float(self.config.watch.debounce_delay), 2.0)

    def _renew_claims(self, st: _RunState) -> None:
        """Now and then: claims whose lease ran out go back to the queue (and, daily, old
        starlists are deleted)."""
        if time.monotonic() >= self._next_prune:
            self._prune_starlists()
        if time.monotonic() >= st.next_recover:
            self.ledger.recover(self.owner)
            st.next_recover = time.monotonic() + _RECOVER_EVERY_S

    def _turn(self, st: _RunState) -> None:
        """One turn of ``run``; an unattended node keeps going after an error (disk full,
        database locked...): log, back off, retry. The ledger keeps every frame meanwhile."""
        try:
            self._keep_watching(st)
            self._catch_up(st)
            self._renew_claims(st)
            self.step(0.5 if st.watching or self._inflight else 10.0)
            st.errors = 0
        except StoreError:  # the ledger was deleted, replaced or is damaged: stop, loudly
            raise
        except (OSError, sqlite3.Error) as exc:  # disk full, read-only: a passing fault
            st.errors += 1
            delay = min(60.0, 5.0 * st.errors)
            log.error("node error (%s: %s); retrying in %.0f s", type(exc).__name__, exc, delay)
            self.stop_event.wait(delay)
        except Exception:
            st.errors += 1
            delay = min(60.0, 5.0 * st.errors)
            log.exception("node error; retrying in %.0f s", delay)
            self.stop_event.wait(delay)

    def run(self, *, until: Callable[[Node], bool] | None = None) -> dict[str, Any]:
        """``starnode run``: catch up, watch, measure and report until a signal.

        Parameters
        ----------
        until : callable, optional
            Called with the node after every turn; True stops the run.

        Returns
        -------
        dict
            ``seconds`` and the counts of this run.

        Raises
        ------
        ConfigError
            ``watch.path`` is not set.
        NodeBusy
            Another node serves this data directory.
        """
        if not self.config.watch.path:
            raise ConfigError("watch.path: a value is required for 'starnode run' (the folder "
                              "the telescope writes into)")
        self.lock.acquire()
        t_start = time.monotonic()
        st = _RunState(next_recover=time.monotonic() + _RECOVER_EVERY_S)
        with self._signals():
            try:
                self._resume()
                while not self.stop_event.is_set():
                    self._turn(st)
                    if until is not None and until(self):
                        break
                self._drain()
                self.flush()
            finally:
                self.close()
        return {"seconds": time.monotonic() - t_start, **self.counts}

    # ------------------------------------------------------------------ stopping
    def _requeue_in_hand(self) -> None:
        """Frames in hand go back to the queue; their workers are stopped."""
        if self._inflight:
            log.info("putting %d unfinished frame(s) back in the queue", len(self._inflight))
        for fut, frame in list(self._inflight.items()):
            fut.cancel()
            self.ledger.requeue(frame.id, self.owner)
        self._inflight.clear()
        self.pool.close(wait=False)

    def _drain(self) -> None:
        """Stopping: no new work; wait up to ``shutdown_grace`` for frames in hand, requeue
        the rest."""
        self._stop_watcher()
        if not self._inflight:
            return
        grace = float(self.config.shutdown_grace)
        log.info("stopping: waiting up to %g s for %d frame(s) in hand", grace,
                 len(self._inflight))
        deadline = time.monotonic() + grace
        while self._inflight and not self.fast_stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.collect(min(left, 0.5))
        self._requeue_in_hand()

    def stop(self) -> None:
        """Ask ``run()``/``process()`` to stop (thread-safe)."""
        self.stop_event.set()
        self.wake.set()

    def close(self) -> None:
        """Stop the watcher and the pool (frames in hand requeued), release the lock."""
        self._stop_watcher()
        self._requeue_in_hand()
        self.lock.release()
        if self.hub is not None:  # pushes what is queued, for at most hub.flush_timeout
            hub, self.hub = self.hub, None
            hub.close()
        self.ledger.close()

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGINT/SIGTERM stop the node gracefully; a second one stops it at once."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, _frame: Any) -> None:
            if self.stop_event.is_set():
                self.fast_stop.set()
                return
            log.info("%s received: finishing the frames in hand (again to stop at once)",
                     signal.Signals(signum).name)
            self.stop()

        old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, previous in old.items():
                with contextlib.suppress(Exception):
                    signal.signal(sig, previous)
