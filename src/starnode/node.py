"""The node: ``starnode run`` (the unattended service) and ``starnode process`` (an archive).

:class:`Node` joins the pieces: an :class:`~starnode.watcher.ImageWatcher` (plus a startup scan
compared against the ledger) notices frames, the :class:`~starnode.ledger.Ledger` records and
queues them durably, a process pool measures them with :func:`starnode.photometry.measure`, and
:func:`starnode.aavso.submit` puts each measurement in the outbox. One INFO line per frame.

Guarantees (tested with SIGKILL in ``tests/test_node_e2e.py``):

- every frame seen is in the ledger before any work is done on it; a restart requeues frames a
  killed node had in hand and catches up with frames written while it was down;
- a result is recorded once, by the claim's owner, in one transaction; a measured frame whose
  submission was interrupted is submitted again on restart (``submit`` never writes the same
  observation twice);
- a slow frame never blocks watching (the pool works, the watcher thread only records);
- a worker that dies (segfault in a C library, out of memory) or hangs past ``frame_timeout``
  fails only its frame, with the reason; the pool is recreated. When several frames were in hand
  at a crash, they are requeued and retried one at a time, so the culprit is the one marked;
- SIGINT/SIGTERM: stop watching, wait up to ``shutdown_grace`` seconds for frames in hand, put
  the rest back in the queue. A second signal stops at once (frames in hand requeued).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import faulthandler
import fcntl
import fnmatch
import importlib
import json
import logging
import logging.handlers
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from .config import Config, resolve
from .ledger import (
    MEASURED,
    PENDING,
    PROCESSING,
    REPORTED,
    SKIPPED,
    Frame,
    Ledger,
    make_owner,
)

log = logging.getLogger(__name__)

__all__ = ["MEASURE", "Node", "NodeBusy", "frame_line", "matches_include", "short_reason",
           "work"]

#: The measuring function the workers call (``module:function``), overridable for tests.
MEASURE = "starnode.photometry:measure"

LOCK_FILE = "node.lock"
_SHARE_RETRY_S = 15.0


class NodeBusy(RuntimeError):
    """Another ``starnode run`` already serves this data_dir."""


# ---------------------------------------------------------------------------- worker side
_CONFIGS: dict[str, Config] = {}


def _worker_init(queue: Any, level: int) -> None:
    """Pool worker start: the node handles SIGINT/SIGTERM (a Ctrl+C in the terminal or
    systemd's stop reaches the whole process group, and a worker dying of it would look like a
    crash); logs go to the node through ``queue``; one BLAS thread per worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(Exception):  # kill -USR1 <worker pid>: where is it stuck?
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    # A node killed with SIGKILL cannot stop its workers, and a spawned worker holds both ends
    # of its task queue, so it would never see EOF: leave as soon as the node is gone.
    parent = os.getppid()
    threading.Thread(target=_orphan_guard, args=(parent,), daemon=True,
                     name="starnode-orphan-guard").start()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    from .logs import worker_logging

    worker_logging(queue, level)


def _orphan_guard(parent: int, interval: float = 1.0) -> None:
    while True:
        time.sleep(interval)
        if os.getppid() != parent:
            os._exit(0)


def _load(spec: str) -> Callable[..., Any]:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name or "measure")


def _rejection(exc: BaseException) -> tuple[str, str | None] | None:
    """(reason, category) when ``exc`` is the pipeline's FrameRejected."""
    try:
        from .frames import FrameRejected
    except Exception:  # not importable: duck typing below
        FrameRejected = None
    is_rejection = (FrameRejected is not None and isinstance(exc, FrameRejected)) or (
        type(exc).__name__ == "FrameRejected")
    if not is_rejection:
        return None
    reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
    return str(reason), getattr(exc, "category", None)


def work(measure: str, path: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Measure one frame (runs in a pool worker). Never raises for a bad frame: returns
    ``{"outcome": "measured", "result": {...}}``, ``{"outcome": "skipped", "reason", "category"}``
    or ``{"outcome": "failed", "error"}``."""
    key = json.dumps(raw, sort_keys=True, default=str)
    cfg = _CONFIGS.get(key)
    if cfg is None:
        cfg = _CONFIGS[key] = Config(raw)
    t0 = time.perf_counter()
    try:
        fn = _load(measure)
        result = fn(path, cfg)
    except Exception as exc:
        rej = _rejection(exc)
        if rej is not None:
            return {"outcome": "skipped", "reason": rej[0], "category": rej[1],
                    "seconds": time.perf_counter() - t0}
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
        log.debug("frame %s failed", path, exc_info=True)
        return {"outcome": "failed", "error": f"{type(exc).__name__}: {exc}{where}",
                "seconds": time.perf_counter() - t0}
    if not isinstance(result, Mapping):
        return {"outcome": "failed", "error": f"the pipeline returned {type(result).__name__}, "
                "not a result dict", "seconds": time.perf_counter() - t0}
    return {"outcome": "measured", "result": dict(result), "seconds": time.perf_counter() - t0}


# ---------------------------------------------------------------------------- helpers
def matches_include(path: str, include: Iterable[str], extensions: Iterable[str]) -> bool:
    """Whether a file name is a frame to process: a FITS extension and (when ``include`` is
    not empty) one of the fnmatch patterns, both case-insensitive."""
    name = os.path.basename(path)
    low = name.lower()
    if not any(low.endswith(e.lower()) for e in extensions):
        return False
    pats = list(include)
    return not pats or any(fnmatch.fnmatchcase(low, p.lower()) for p in pats)


def _fmt(value: Any, spec: str) -> str:
    try:
        return format(float(value), spec)
    except (TypeError, ValueError):
        return "?"


def short_reason(reason: str | None, path: str | None) -> str:
    """The reason without a leading ``<file name>: `` (the pipeline's messages name the file,
    the node's lines already do)."""
    text = str(reason or "")
    if path:
        name = os.path.basename(path)
        for prefix in (f"{path}: ", f"{name}: "):
            if text.startswith(prefix):
                return text[len(prefix):]
    return text


def frame_line(frame: Frame) -> str:
    """The one-line summary of a frame's outcome (the node's INFO line, ``status``)."""
    if frame.state in (MEASURED, REPORTED) and frame.result:
        r = frame.result
        text = (f"{frame.state:<8} {frame.name}: {r.get('target_name', '?')} "
                f"{r.get('filter', '?')} {_fmt(r.get('magnitude'), '.3f')} ± "
                f"{_fmt(r.get('uncertainty'), '.3f')} ({r.get('quality_flag', '?')}, "
                f"{r.get('comparison_stars', '?')} comps)")
        sub = frame.submission
        if sub:
            where = Path(str(sub.get("report_path"))).name if sub.get("report_path") else ""
            text += f" -> {sub.get('status', '?')}" + (f" {where}" if where else "")
            if frame.state != REPORTED and sub.get("message"):
                text += f" ({sub.get('message')})"
        return text
    if frame.state in (SKIPPED, "failed"):
        cat = f"[{frame.category}] " if frame.category else ""
        return f"{frame.state:<8} {frame.name}: {cat}{short_reason(frame.reason, frame.path)}"
    return f"{frame.state:<8} {frame.name}"


def _signal_name(code: int | None) -> str:
    if code is None:
        return "unknown exit"
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


class _Relay(logging.Handler):
    """Hands records from worker processes to the node's own loggers. A warning repeated
    word for word (the same missing catalogue for every frame of a night) is shown once an
    hour, at DEBUG in between, so the log stays one line per frame."""

    def __init__(self, every: float = 3600.0) -> None:
        super().__init__()
        self.every = every
        self._seen: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.ERROR:
            key = f"{record.name}:{record.getMessage()}"
            now = time.monotonic()
            last = self._seen.get(key)
            if last is not None and now - last < self.every:
                record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            else:
                self._seen[key] = now
                if len(self._seen) > 1000:
                    self._seen.clear()
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)


# ---------------------------------------------------------------------------- the node
class Node:
    """Watches, queues, measures and reports. ``run()`` is ``starnode run``; ``process()`` is
    ``starnode process``.

    ``measure`` names the measuring function (``module:function``, importable in a fresh
    process); ``submit`` is called in the node process with ``(result, config)`` (default
    :func:`starnode.aavso.submit`; ``False`` to only measure).
    """

    def __init__(self, config: Config | Mapping[str, Any] | str | os.PathLike[str] | None,
                 *, workers: int | None = None, measure: str = MEASURE,
                 submit: Callable[[Mapping[str, Any], Config], Mapping[str, Any]] | bool = True,
                 progress: Callable[[Node], None] | None = None) -> None:
        self.config = resolve(config)
        self.workers = int(workers or self.config.workers)
        self.measure = measure
        self._submit_fn = submit
        self.progress = progress
        self.raw = dict(self.config.raw)
        self.raw["data_dir"] = str(self.config.data_dir)
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        self.ledger = Ledger(self.config)
        self.owner = make_owner()
        self.stop_event = threading.Event()
        self.fast_stop = threading.Event()
        self.wake = threading.Event()
        self.counts: Counter[str] = Counter()
        self.total = 0
        self.latencies: list[float] = []  # file mtime -> reported, seconds
        self.frame_seconds: list[float] = []  # worker time per frame
        self._pool: cf.ProcessPoolExecutor | None = None
        self._inflight: dict[cf.Future[dict[str, Any]], tuple[Frame, float]] = {}
        self._procs: dict[int, Any] = {}  # pid -> multiprocessing Process of the current pool
        self._ids: set[int] | None = None
        self._log_queue: Any = None
        self._listener: logging.handlers.QueueListener | None = None
        self._watcher: Any = None
        self._lock_fd: int | None = None
        self._retry: list[str] = []
        self._paused_until = 0.0  # no dispatching before (the share dropped)
        self._retry_lock = threading.Lock()
        from .hub.client import attach  # the hub forwarder when hub.url is set (docs/hub.md)

        self.hub = attach(self)

    # ------------------------------------------------------------------ intake
    def wants(self, path: str) -> bool:
        w = self.config.watch
        return matches_include(path, w.include, w.extensions)

    def offer(self, path: str, *, source: str = "watch") -> int | None:
        """Record a frame in the ledger (new work unless known). Returns its row id."""
        try:
            fid, new = self.ledger.add(path, source=source)
        except OSError as exc:
            log.warning("cannot record %s: %s", path, exc)
            return None
        if new:
            log.debug("queued #%d %s (%s)", fid, path, source)
            if self._ids is not None:
                self._ids.add(fid)
            self.wake.set()
        return fid

    def on_event(self, event: Mapping[str, Any]) -> None:
        """The watcher's callback: record the frame and wake the dispatcher (no work here)."""
        path = str(event.get("path", ""))
        if path and self.wants(path):
            try:
                self.offer(path, source="watch")
            except Exception as exc:  # e.g. database locked too long: retried, never dropped
                log.error("cannot record %s yet (%s: %s); retrying", path,
                          type(exc).__name__, exc)
                with self._retry_lock:
                    self._retry.append(path)
                self.wake.set()

    def _retry_offers(self) -> None:
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
        """Record the frames under ``root`` the ledger has not seen (same path, size and mtime).
        Files modified less than ``min_age`` seconds ago are left to the watcher (they may
        still be growing). Returns how many were new."""
        recursive = self.config.watch.recursive if recursive is None else recursive
        min_age = self.config.watch.debounce_delay if min_age is None else min_age
        known = self.ledger.known_identities()
        now = time.time()
        new = 0
        for path in _walk(Path(root), recursive):
            if not self.wants(path):
                continue
            try:
                st = os.stat(path)
            except OSError:
                continue
            if (path, st.st_size, st.st_mtime_ns) in known:
                continue
            if now - st.st_mtime < min_age:
                continue
            if source == "scan" and _incomplete(path, st.st_size):
                continue  # still being written: the watcher reports it once complete
            try:
                fid, is_new = self.ledger.add(path, source=source, size=st.st_size,
                                              mtime_ns=st.st_mtime_ns)
            except OSError as exc:  # pragma: no cover - racing deletion
                log.warning("cannot record %s: %s", path, exc)
                continue
            if is_new:
                new += 1
                if self._ids is not None:
                    self._ids.add(fid)
        if new:
            log.info("found %d frame(s) not yet in the ledger under %s", new, root)
            self.wake.set()
        return new

    # ------------------------------------------------------------------ the pool
    def _start_logging_relay(self) -> None:
        if self._listener is not None:
            return
        ctx = multiprocessing.get_context("spawn")
        self._log_queue = ctx.Queue()
        self._listener = logging.handlers.QueueListener(self._log_queue, _Relay())
        self._listener.start()

    def _worker_level(self) -> int:
        return logging.DEBUG if self.config.log_level == "DEBUG" else logging.WARNING

    def _ensure_pool(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            # One BLAS/OpenMP thread per worker (inherited by the spawned processes before they
            # import numpy): `workers` is the node's whole CPU budget on a small machine.
            for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
                os.environ.setdefault(var, "1")
            self._start_logging_relay()
            self._pool = cf.ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init, initargs=(self._log_queue, self._worker_level()))
        return self._pool

    def _kill_pool(self) -> dict[int, int | None]:
        """Terminate the pool's processes now. Returns pid -> exit code of those that died by
        themselves (not of those this node or the pool stopped)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return {}
        procs = {**self._procs, **(getattr(pool, "_processes", None) or {})}
        self._procs = {}
        stopped: set[int] = set()  # alive when we looked: we (or the pool) stop them
        for pid, p in procs.items():
            with contextlib.suppress(Exception):
                if p.exitcode is None:
                    stopped.add(pid)
                    p.kill()
        with contextlib.suppress(Exception):
            pool.shutdown(wait=False, cancel_futures=True)
        for p in procs.values():
            with contextlib.suppress(Exception):
                p.join(5)
        # Read the codes only after the joins: the pool's own thread may be reaping the dead
        # worker at the same moment, and until then its exit code reads as None.
        codes = {pid: p.exitcode for pid, p in procs.items()}
        stop_codes = (-signal.SIGKILL, -signal.SIGTERM)
        return {pid: c for pid, c in codes.items()
                if c is not None and (pid not in stopped or c not in stop_codes)}

    def close(self) -> None:
        """Stop the pool (frames in hand requeued), the watcher and the log relay."""
        self._stop_watcher()
        for fut, (frame, _t) in list(self._inflight.items()):
            fut.cancel()
            self.ledger.requeue(frame.id, self.owner)
        self._inflight.clear()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            self._procs = {}
            pool.shutdown(wait=True, cancel_futures=True)
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        if self._log_queue is not None:
            self._log_queue.close()
            self._log_queue = None
        self._release_lock()
        if self.hub is not None:  # pushes what is queued, for at most hub.flush_timeout
            hub, self.hub = self.hub, None
            hub.close()
        self.ledger.close()

    # ------------------------------------------------------------------ dispatching
    def _claim(self) -> list[Frame]:
        if self.stop_event.is_set() or time.monotonic() < self._paused_until:
            return []
        if any(f.crashes for f, _t in self._inflight.values()):
            return []  # a suspect runs alone
        free = self.workers - len(self._inflight)
        ids = self._ids
        frames = self.ledger.claim(self.owner, limit=free, ids=ids, suspects=False,
                                   lease_s=self._lease())
        if not frames and not self._inflight:
            frames = self.ledger.claim(self.owner, limit=1, ids=ids, suspects=True,
                                       lease_s=self._lease())
        return frames

    def _lease(self) -> float:
        return 2 * float(self.config.frame_timeout) + 60.0

    def dispatch(self) -> int:
        """Hand pending frames to free workers. Returns how many were started."""
        started = 0
        while True:
            frames = self._claim()
            if not frames:
                return started
            for frame in frames:
                if not self._still_there(frame):
                    continue
                pool = self._ensure_pool()
                try:
                    fut = pool.submit(work, self.measure, frame.path, self.raw)
                except (BrokenProcessPool, RuntimeError):
                    # a worker died since the last collect: record the frames it had in hand
                    # (with its exit signal) before starting a new pool
                    self._crashed()
                    pool = self._ensure_pool()
                    fut = pool.submit(work, self.measure, frame.path, self.raw)
                self._inflight[fut] = (frame, time.monotonic())
                # the pool forgets its processes when one dies: keep our own references so the
                # exit code (the signal that killed it) can still be read afterwards
                self._procs.update(getattr(pool, "_processes", None) or {})
                started += 1

    def _still_there(self, frame: Frame) -> bool:
        """The file must still be the one recorded; otherwise skip this row (a rewritten file
        is recorded as new work)."""
        try:
            st = os.stat(frame.path)
        except OSError as exc:
            if self._share_down(frame):
                return False
            self._finish(frame, {"outcome": "skipped", "category": "vanished",
                                 "reason": f"file no longer readable: {exc.strerror}"})
            return False
        if st.st_size != frame.size or st.st_mtime_ns != frame.mtime_ns:
            self._finish(frame, {"outcome": "skipped", "category": "rewritten",
                                 "reason": "file changed after it was recorded; the new version "
                                 "is queued as new work"})
            if not self.stop_event.is_set():
                self.offer(frame.path, source="rewritten")
            return False
        return True

    def _share_down(self, frame: Frame) -> bool:
        """When the frame's folder itself is gone (the telescope share dropped, the USB disk
        unplugged), the frame is not lost: requeue it and pause dispatching for a while.
        (``starnode run`` only; ``process`` reports such frames as vanished.)"""
        if self._ids is not None or os.path.isdir(os.path.dirname(frame.path)):
            return False
        self.ledger.requeue(frame.id, self.owner)
        if time.monotonic() >= self._paused_until:
            log.warning("%s is not reachable (share unmounted?); frames wait in the queue, "
                        "retrying in %.0f s", os.path.dirname(frame.path), _SHARE_RETRY_S)
        self._paused_until = time.monotonic() + _SHARE_RETRY_S
        return True

    def collect(self, timeout: float | None) -> int:
        """Wait up to ``timeout`` for frames in hand; record what finished. Returns how many."""
        if not self._inflight:
            return 0
        done, _ = cf.wait(list(self._inflight), timeout=timeout,
                          return_when=cf.FIRST_COMPLETED)
        n = 0
        broken: list[cf.Future[dict[str, Any]]] = []
        for fut in done:
            exc = fut.exception() if not fut.cancelled() else None
            if isinstance(exc, BrokenProcessPool) or fut.cancelled():
                broken.append(fut)
                continue
            frame, _t = self._inflight.pop(fut)
            if exc is not None:
                outcome = {"outcome": "failed", "error": f"{type(exc).__name__}: {exc}"}
            else:
                outcome = fut.result()
            self._finish(frame, outcome)
            n += 1
        if broken:
            n += self._crashed()
        n += self._check_timeouts()
        return n

    def _crashed(self, timed_out: Frame | None = None) -> int:
        """The pool broke (a worker died, or we killed it for a timeout)."""
        codes = self._kill_pool()
        # every other future in hand is broken too: collect them
        lost: list[Frame] = []
        for fut, (frame, _t) in list(self._inflight.items()):
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self._finish(frame, fut.result())
            else:
                lost.append(frame)
        self._inflight.clear()
        why = ", ".join(f"pid {pid}: {_signal_name(c)}" for pid, c in codes.items()) or \
            "a worker process died"
        n = 0
        for frame in lost:
            if self.stop_event.is_set() and timed_out is None:
                self.ledger.requeue(frame.id, self.owner)
            elif timed_out is not None:
                if frame.id == timed_out.id:
                    self._finish(frame, {"outcome": "failed", "crashed": True,
                                         "error": f"timed out after "
                                         f"{self.config.frame_timeout:g} s; worker stopped"})
                else:
                    self.ledger.requeue(frame.id, self.owner)
            elif len(lost) == 1:
                self._finish(frame, {"outcome": "failed", "crashed": True,
                                     "error": f"worker process crashed on this frame ({why})"})
            else:
                self.ledger.requeue(frame.id, self.owner, crashed=True)
            n += 1
        if len(lost) > 1 and timed_out is None and not self.stop_event.is_set():
            log.warning("a worker crashed (%s) with %d frames in hand; retrying them one "
                        "at a time: %s", why, len(lost), ", ".join(f.name for f in lost))
        self.wake.set()
        return n

    def _check_timeouts(self) -> int:
        limit = float(self.config.frame_timeout)
        now = time.monotonic()
        for fut, (frame, t0) in list(self._inflight.items()):
            if now - t0 > limit and not fut.done():
                log.warning("%s: no result after %g s; stopping its worker", frame.name, limit)
                return self._crashed(timed_out=frame)
        return 0

    # ------------------------------------------------------------------ outcomes
    def _finish(self, frame: Frame, outcome: Mapping[str, Any]) -> None:
        kind = outcome.get("outcome")
        if isinstance(outcome.get("seconds"), float):
            self.frame_seconds.append(outcome["seconds"])
        if kind == "measured":
            result = outcome["result"]
            if not self.ledger.record_measured(frame.id, self.owner, result):
                return
            self.counts["measured"] += 1
            self._submit(frame.id)
        elif kind == "skipped" and outcome.get("category") == "unreadable" and \
                self._share_down(frame):
            return  # an I/O error because the share dropped mid-read: not the frame's fault
        elif kind == "skipped":
            reason = short_reason(str(outcome.get("reason")), frame.path)
            if not self.ledger.record_skipped(frame.id, self.owner, reason,
                                              outcome.get("category")):
                return
            self.counts["skipped"] += 1
        else:
            if not self.ledger.record_failed(frame.id, self.owner, str(outcome.get("error")),
                                             crashed=bool(outcome.get("crashed"))):
                return
            self.counts["failed"] += 1
        final = self.ledger.get(frame.id)
        if final is not None:
            level = logging.WARNING if final.state == "failed" else logging.INFO
            log.log(level, "%s", frame_line(final))
        if self.progress is not None:
            self.progress(self)

    def _submit(self, fid: int) -> None:
        frame = self.ledger.get(fid)
        if self.hub is not None and frame is not None and frame.result is not None:
            self.hub.enqueue(frame.result, frame_id=fid,
                             identity=(frame.path, frame.size, frame.mtime_ns))
        if frame is None or frame.result is None or self._submit_fn is False:
            return
        fn = self._submit_fn
        if fn is True:
            from .aavso import submit as fn
        try:
            sub = dict(fn(frame.result, self.config))
        except Exception as exc:
            log.error("%s: submission failed: %s: %s", frame.name, type(exc).__name__, exc,
                      exc_info=log.isEnabledFor(logging.DEBUG))
            sub = {"status": "error", "message": f"{type(exc).__name__}: {exc}"}
        state = self.ledger.record_submission(fid, sub)
        if state == REPORTED:
            self.counts["reported"] += 1
            self.latencies.append(time.time() - frame.mtime_ns / 1e9)

    def flush(self) -> None:
        """End of a session: close open time bins (``aavso.flush``; uploads in webobs mode)."""
        if self._submit_fn is not True or not self.counts.get("reported"):
            return
        from .aavso import flush

        try:
            answer = flush(self.config)
        except Exception as exc:
            log.error("closing the AAVSO report bins failed: %s: %s", type(exc).__name__, exc)
            return
        log.info("AAVSO outbox: %s", answer.get("message"))

    def resubmit(self) -> int:
        """Submit measured frames whose submission never completed (after a crash)."""
        frames = self.ledger.to_submit()
        if self._ids is not None:
            frames = [f for f in frames if f.id in self._ids]
        for frame in frames:
            log.info("%s: measured before the last stop, submitting now", frame.name)
            self._submit(frame.id)
        return len(frames)

    # ------------------------------------------------------------------ one step
    def step(self, timeout: float = 0.5) -> None:
        """Dispatch, then wait up to ``timeout`` for results or new work."""
        if self._retry:
            self._retry_offers()
        self.dispatch()
        if self._inflight:
            self.collect(timeout)
        else:
            self.wake.wait(timeout)
        self.wake.clear()

    def busy(self) -> bool:
        return bool(self._inflight)

    def outstanding(self, ids: Iterable[int]) -> int:
        """How many of ``ids`` still wait for (or are in) measurement."""
        id_list = list(ids)
        n = 0
        for i in range(0, len(id_list), 500):
            chunk = id_list[i:i + 500]
            q = ",".join("?" * len(chunk))
            n += self.ledger.conn.execute(
                f"SELECT COUNT(*) FROM frames WHERE id IN ({q}) AND state IN (?, ?)",
                [*chunk, PENDING, PROCESSING]).fetchone()[0]
        return n

    # ------------------------------------------------------------------ process
    def process(self, paths: Iterable[str | os.PathLike[str]], *, force: bool = False,
                retry: Iterable[str] = ()) -> dict[str, Any]:
        """``starnode process``: measure and report frames from files/folders, through the same
        ledger (already processed frames are not done again unless ``force``). ``retry`` lists
        done states (``failed``, ``skipped``) whose frames are reprocessed. Returns a summary."""
        self._ids = set()
        recursive = True
        explicit: list[int] = []
        for p in paths:
            p = Path(p)
            if p.is_dir():
                for path in _walk(p, recursive):
                    if self.wants(path):
                        with contextlib.suppress(OSError):
                            explicit.append(self.ledger.add(path, source="process")[0])
            elif p.is_file():
                with contextlib.suppress(OSError):
                    explicit.append(self.ledger.add(p, source="process")[0])
            else:
                log.error("%s: no such file or folder", p)
        ids = set(explicit)
        # older versions of these files still waiting (they get 'rewritten' when dispatched)
        for fid in explicit:
            row = self.ledger.get(fid)
            if row is not None:
                ids.update(r.id for r in self.ledger.find(row.path) if r.state == PENDING)
        reset: list[int] = []
        if force and ids:
            reset += self.ledger.reset([MEASURED, REPORTED, SKIPPED, "failed"], ids=ids)
        retry = list(retry)
        if retry:
            reset += self.ledger.reset(retry, ids=ids if ids else None)
            ids |= set(reset)
        self._ids = ids
        self.total = len(ids)
        self.ledger.recover(self.owner)
        already = self.total - self.outstanding(ids)
        if already:
            log.info("%d of %d frame(s) already in the ledger as done (use --force to redo)",
                     already, self.total)
        self.resubmit()
        self.counts.clear()
        self.counts["already"] = already
        t0 = time.monotonic()
        self._install_signals()
        try:
            while not self.stop_event.is_set():
                if self.outstanding(self._ids) == 0 and not self._inflight:
                    break
                self.step(0.5)
                if not self._inflight and not self.stop_event.is_set() and \
                        self.outstanding(self._ids):
                    # Pending rows another process holds: wait for them.
                    time.sleep(0.2)
            self._drain()
            self.flush()
        finally:
            self._restore_signals()
            self.close_pool_only()
        return {"total": self.total, "seconds": time.monotonic() - t0, **self.counts}

    def close_pool_only(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            self._procs = {}
            pool.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------------ run
    def _acquire_lock(self) -> None:
        path = self.config.data_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            other = os.read(fd, 64).decode(errors="replace").strip()
            os.close(fd)
            raise NodeBusy(f"another 'starnode run' (pid {other or '?'}) is using "
                           f"{self.config.data_dir}; stop it first or use another data_dir"
                           ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
            self._lock_fd = None

    def _start_watcher(self) -> bool:
        w = self.config.watch
        if not w.path:
            return False
        if not os.path.isdir(w.path):
            return False
        from .watcher import ImageWatcher

        self._watcher = ImageWatcher(
            w.path, self.on_event, debounce_delay=float(w.debounce_delay), mode=w.mode,
            poll_interval=float(w.poll_interval), recursive=bool(w.recursive),
            catch_up=bool(w.catch_up), extensions=tuple(w.extensions),
            max_wait=float(w.max_wait))
        self._watcher.start()
        log.info("watching %s (%s, %s: %s%s)", w.path,
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

    def run(self, *, until: Callable[[Node], bool] | None = None) -> dict[str, Any]:
        """``starnode run``: catch up, watch, measure and report until a signal (or
        ``until(node)`` returns True). Returns the counts of this run."""
        w = self.config.watch
        if not w.path:
            from .config import ConfigError

            raise ConfigError("watch.path: a value is required for 'starnode run' (the folder "
                              "the telescope writes into)")
        self._acquire_lock()
        self._install_signals()
        t_start = time.monotonic()
        try:
            n = self.ledger.recover(self.owner)
            pending = self.ledger.counts()[PENDING]
            log.info("starnode node started (pid %d, %d worker(s), data in %s); %d frame(s) "
                     "to resume%s", os.getpid(), self.workers, self.config.data_dir, pending,
                     f", {n} requeued from a stopped run" if n else "")
            self.resubmit()
            watching = False
            warned = False
            next_scan = time.monotonic()
            scans = 0
            next_recover = time.monotonic() + 60.0
            errors = 0
            while not self.stop_event.is_set():
                try:
                    if not watching:
                        watching = self._start_watcher()
                        if not watching and not warned:
                            log.warning("watch.path %s is not a folder (yet); is the telescope "
                                        "share mounted? retrying every 10 s", w.path)
                            warned = True
                        if watching:
                            next_scan = time.monotonic()
                    if watching and scans < 2 and time.monotonic() >= next_scan:
                        # At start, and once more after the debounce delay: frames that arrived
                        # while the node was down (files still growing are left to the
                        # watcher).
                        self.scan(w.path)
                        scans += 1
                        next_scan = time.monotonic() + max(2 * float(w.debounce_delay), 2.0)
                    if time.monotonic() >= next_recover:  # claims whose lease ran out
                        self.ledger.recover(self.owner)
                        next_recover = time.monotonic() + 60.0
                    self.step(0.5 if watching else 10.0 if not self._inflight else 0.5)
                    errors = 0
                except Exception:
                    # An unattended node keeps going (disk full, database locked...): log,
                    # back off, retry. The ledger keeps every frame meanwhile.
                    errors += 1
                    delay = min(60.0, 5.0 * errors)
                    log.exception("node error; retrying in %.0f s", delay)
                    self.stop_event.wait(delay)
                if until is not None and until(self):
                    break
            self._drain()
            self.flush()
        finally:
            self._restore_signals()
            self.close()
        return {"seconds": time.monotonic() - t_start, **self.counts}

    def _drain(self) -> None:
        """Stopping: no new work; wait up to shutdown_grace for frames in hand, requeue the
        rest."""
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
        if self._inflight:
            log.info("putting %d unfinished frame(s) back in the queue", len(self._inflight))
            for fut, (frame, _t) in list(self._inflight.items()):
                fut.cancel()
                self.ledger.requeue(frame.id, self.owner)
            self._inflight.clear()
            self._kill_pool()

    def stop(self) -> None:
        """Ask ``run()``/``process()`` to stop (thread-safe)."""
        self.stop_event.set()
        self.wake.set()

    # ------------------------------------------------------------------ signals
    def _install_signals(self) -> None:
        self._old_signals: dict[int, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum: int, _frame: Any) -> None:
            if self.stop_event.is_set():
                self.fast_stop.set()
                return
            log.info("%s received: finishing the frames in hand (again to stop at once)",
                     signal.Signals(signum).name)
            self.stop()

        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old_signals[sig] = signal.signal(sig, handler)

    def _restore_signals(self) -> None:
        for sig, old in getattr(self, "_old_signals", {}).items():
            with contextlib.suppress(Exception):
                signal.signal(sig, old)
        self._old_signals = {}


def _incomplete(path: str, size: int) -> bool:
    """True when the FITS header announces more bytes than the file has (yet)."""
    try:
        from .fitsheader import expected_size

        expected = expected_size(path)
    except Exception:  # unreadable: let the pipeline say why
        return False
    return expected is not None and size < expected


def _walk(root: Path, recursive: bool) -> Iterable[str]:
    """Files under ``root`` (sorted, hidden folders skipped), as absolute path strings."""
    root = Path(os.path.abspath(root))  # as the watcher names files (no symlink resolution)
    if not recursive:
        with contextlib.suppress(OSError):
            for entry in sorted(os.scandir(root), key=lambda e: e.name):
                if entry.is_file():
                    yield entry.path
        return
    for dirpath, dirnames, filenames in os.walk(root, onerror=lambda e: log.warning(
            "cannot read %s: %s", e.filename, e.strerror)):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            yield os.path.join(dirpath, name)
