"""The worker pool: frames are measured in separate processes, each failure kept to its frame.

Built on :class:`pebble.ProcessPool`, which knows which worker runs which task: a worker that
dies (a segfault in a C library, the OOM killer) fails its own future with
:class:`pebble.ProcessExpired` (carrying the exit code, i.e. the signal), a task past its
timeout has its worker stopped and fails with :class:`TimeoutError`, and in both cases the other
frames in hand go on and the pool starts a fresh worker. Nothing here reads private state.

Workers are started with the ``spawn`` method (no inherited locks, threads or database
connections), ignore SIGINT (a Ctrl+C in the terminal reaches the whole process group; the node
decides what stopping means), use one BLAS thread each, send their log records to the node
through a queue, and leave by themselves when the node that started them is gone: on Linux the
kernel kills them with their parent (``PR_SET_PDEATHSIG``), and everywhere a guard thread
compares the parent with the node's pid *passed in* (a worker re-parented while it was still
starting up would otherwise take its new parent for the node). Each worker has a memory ceiling
(``RLIMIT_AS``, its share of ``limits.memory_mb``, the node's one budget): a frame that would
take more fails alone, with a ``MemoryError``, instead of taking the machine.

:func:`work` is what a worker runs: it never raises for a bad frame and returns an
:data:`Outcome` (a small dataclass; the measurement in it is a plain dict, its one crossing of
the process boundary), see :func:`outcome_of` for the node's side. The worker writes nothing of
the node's: the night's check-star choices come in with the :class:`Task`, and the choice to
keep and the starlist (its columns) go back in the outcome (the node keeps them,
:mod:`starnode.node.keep`).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import ctypes
import dataclasses
import faulthandler
import importlib
import json
import logging
import logging.handlers
import multiprocessing
import os
import resource
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pebble import ProcessExpired, ProcessPool

from ..config import Config
from ..errors import FrameRejected, RejectCategory
from ..frame.admission import printable, quoted
from ..util.proc import pid_alive

log = logging.getLogger("starnode.node")

__all__ = ["FailedFrame", "MeasureFn", "MeasuredFrame", "Outcome", "SkippedFrame", "Task",
           "WorkerPool", "outcome_of", "work"]

#: A stand-in for the measuring (tests): ``fn(path, config)`` returns a
#: :class:`~starnode.records.Measurement` (or its dict) and raises
#: :class:`~starnode.errors.FrameRejected`; a module-level function, or its name
#: ``"module:function"``, importable in a spawned worker. None: the pipeline
#: (:func:`starnode.photometry.pipeline.measure_frame`, imported).
MeasureFn = Callable[[str, Config], Any] | str


@dataclass(frozen=True)
class Task:
    """One frame for a worker: its path, the night's check-star choices it may need
    (``(normalised target, night) -> label``) and whether to hash its content (a sink keys
    on the SHA-256)."""

    path: str
    checks: Mapping[tuple[str, str], str] = field(default_factory=dict)
    sha256: bool = False


@dataclass(frozen=True)
class MeasuredFrame:
    """Measured: ``result`` is :meth:`Measurement.to_dict` (the record's one crossing);
    ``starlist`` the :class:`~starnode.photometry.starlist.Starlist` and ``check`` the night's
    check star to keep (a :class:`~starnode.photometry.night.NightCheck`), both kept by the
    node; ``sha256`` the content hash when the task asked for it."""

    kind: ClassVar[str] = "measured"
    result: dict[str, Any]
    starlist: Any = None
    check: Any = None
    sha256: str | None = None
    seconds: float | None = None
    retried: bool = False


@dataclass(frozen=True)
class SkippedFrame:
    """Not measured, on purpose: ``reason`` and its ``category`` (a
    :class:`~starnode.errors.RejectCategory` value)."""

    kind: ClassVar[str] = "skipped"
    reason: str
    category: str | None = None
    seconds: float | None = None
    retried: bool = False


@dataclass(frozen=True)
class FailedFrame:
    """Failed: ``error``; ``crashed`` when the worker died or was stopped, ``expired`` when it
    died by itself (a signal, the OOM killer); ``category`` when known (``timeout``)."""

    kind: ClassVar[str] = "failed"
    error: str
    crashed: bool = False
    expired: bool = False
    category: str | None = None
    seconds: float | None = None
    retried: bool = False


#: What :func:`work` and :func:`outcome_of` return.
Outcome = MeasuredFrame | SkippedFrame | FailedFrame

_BLAS_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


# ---------------------------------------------------------------------------- worker side
_CONFIGS: dict[str, Config] = {}


def _die_with(parent_pid: int) -> None:
    """Be killed by the kernel when the parent dies (Linux); leave now if it already did."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:  # re-parented before the line above: the node is gone
        os._exit(0)


def _memory_ceiling(megabytes: int) -> None:
    """Cap this process's address space (``0``: no cap)."""
    if megabytes <= 0:
        return
    limit = megabytes * 2**20
    with contextlib.suppress(ValueError, OSError, AttributeError):
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _worker_init(queue: Any, level: int, parent_pid: int, measure: MeasureFn | None,
                 memory_mb: int = 0) -> None:
    """Start of a worker process (see the module docstring). The measuring module is imported
    here, before any frame, so its import time counts neither in a frame's latency nor in its
    ``frame_timeout``; an import error is left for the first frame to report."""
    _die_with(parent_pid)
    _memory_ceiling(memory_mb)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(Exception):  # kill -USR1 <worker pid>: where is it stuck?
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    threading.Thread(target=_orphan_guard, args=(parent_pid,), daemon=True,
                     name="starnode-orphan-guard").start()
    for var in _BLAS_VARS:
        os.environ.setdefault(var, "1")
    from ..logs import worker_logging

    worker_logging(queue, level)
    with contextlib.suppress(Exception):
        if measure is None:
            from ..photometry import pipeline  # noqa: F401
        elif isinstance(measure, str):
            _load(measure)


def _load(spec: str) -> Callable[..., Any]:
    """A stand-in named ``module:function``."""
    module, _, name = spec.partition(":")
    fn: Callable[..., Any] = getattr(importlib.import_module(module), name or "measure")
    return fn


def _orphan_guard(parent_pid: int, interval: float = 1.0) -> None:
    """Leave as soon as the node is gone (re-parented, or its pid no longer alive)."""
    while True:
        time.sleep(interval)
        if os.getppid() != parent_pid or not pid_alive(parent_pid):
            os._exit(0)


def _config(raw: Mapping[str, Any]) -> Config:
    key = json.dumps(raw, sort_keys=True, default=str)
    cfg = _CONFIGS.get(key)
    if cfg is None:
        cfg = _CONFIGS[key] = Config(raw)
    return cfg


def _failure(path: str, exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
    log.debug("frame %s failed", quoted(path), exc_info=exc)
    return f"{type(exc).__name__}: {exc}{where}"


def _measure(task: Task, cfg: Config) -> MeasuredFrame:
    """The real measuring: load, references, the pure core (no file or database written)."""
    from ..frame.load import load_frame
    from ..photometry.pipeline import measure_frame, references

    frame = load_frame(task.path, cfg, sha256=task.sha256)
    checks = task.checks
    done = measure_frame(frame, references(frame, cfg), cfg,
                         kept=lambda target, night: checks.get((target, night)))
    return MeasuredFrame(done.measurement.to_dict(), done.starlist, done.check, frame.sha256)


def _stand_in(measure: MeasureFn, task: Task, cfg: Config) -> Outcome:
    result = (_load(measure) if isinstance(measure, str) else measure)(task.path, cfg)
    if hasattr(result, "to_dict"):
        result = result.to_dict()
    if not isinstance(result, Mapping):
        return FailedFrame(f"the pipeline returned {type(result).__name__}, not a measurement")
    return MeasuredFrame(dict(result))


def work(measure: MeasureFn | None, task: Task | str, raw: Mapping[str, Any]) -> Outcome:
    """Measure one frame (runs in a pool worker).

    Parameters
    ----------
    measure : callable or None
        None: the pipeline (:func:`starnode.photometry.pipeline.measure_frame`); else a
        stand-in (:data:`MeasureFn`).
    task : Task or str
        The frame (a path: no check-star choices known, no hash).
    raw : mapping
        The node's configuration as a plain dict.

    Returns
    -------
    Outcome
        A bad frame never raises.
    """
    task = Task(task) if isinstance(task, str) else task
    t0 = time.perf_counter()
    try:
        cfg = _config(raw)
        out: Outcome = (_measure(task, cfg) if measure is None
                        else _stand_in(measure, task, cfg))
    except FrameRejected as exc:
        return SkippedFrame(exc.reason, str(exc.category), time.perf_counter() - t0)
    except Exception as exc:
        return FailedFrame(_failure(task.path, exc), seconds=time.perf_counter() - t0)
    return dataclasses.replace(out, seconds=time.perf_counter() - t0)


# ---------------------------------------------------------------------------- node side
def _signal_name(code: int | None) -> str:
    if code is None:
        return "unknown exit"
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def outcome_of(future: cf.Future[Outcome], timeout: float) -> Outcome:
    """The outcome of a finished future, a worker's death or time-out included.

    Parameters
    ----------
    future : Future
        Returned by :meth:`WorkerPool.submit`, done.
    timeout : float
        The frame timeout it was given (for the message).

    Returns
    -------
    Outcome
        A :class:`FailedFrame` when the worker died (``expired``) or was stopped
        (``crashed``).
    """
    exc = future.exception()
    if exc is None:
        return future.result()
    if isinstance(exc, ProcessExpired):
        why = f"pid {exc.pid}: {_signal_name(exc.exitcode)}"
        return FailedFrame(f"worker process crashed on this frame ({why})", crashed=True,
                           expired=True)
    if isinstance(exc, TimeoutError):
        return FailedFrame(f"timed out after {timeout:g} s; worker stopped", crashed=True,
                           category=RejectCategory.TIMEOUT)
    return FailedFrame(f"{type(exc).__name__}: {exc}")


class _Relay(logging.Handler):
    """Hands records from worker processes to the node's own loggers. A warning repeated
    word for word (the same missing catalogue for every frame of a night), or carrying the same
    ``dedupe`` key from any worker, is shown once an hour, at DEBUG in between, so the log stays
    one line per frame."""

    def __init__(self, every: float = 3600.0) -> None:
        super().__init__()
        self.every = every
        self._seen: dict[str, float] = {}

    def _repeated(self, record: logging.LogRecord) -> bool:
        # a record may name what makes it a repeat (``dedupe``: a catalogue source and the kind
        # of its failure), when its words change from frame to frame ("failed 12 s ago")
        key = str(getattr(record, "dedupe", None) or f"{record.name}:{record.getMessage()}")
        now = time.monotonic()
        last = self._seen.get(key)
        if last is not None and now - last < self.every:
            return True
        if len(self._seen) > 1000:
            self._seen.clear()
        self._seen[key] = now
        return False

    def emit(self, record: logging.LogRecord) -> None:
        record.msg, record.args = printable(record.getMessage()), None  # one line, always
        if record.levelno < logging.ERROR and self._repeated(record):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)


class WorkerPool:
    """``workers`` processes measuring frames, each frame given ``timeout`` s.

    Parameters
    ----------
    workers : int
        Processes (the node's CPU budget).
    measure : callable or None
        None: the pipeline; else a stand-in (:data:`MeasureFn`, a module-level function).
    raw : mapping
        The configuration as a plain dict (sent with every task).
    timeout : float
        Seconds one frame may take before its worker is stopped.
    log_level : int
        Lowest level the workers forward to the node.
    memory_mb : int
        Address-space ceiling of each worker in MiB (0: none).
    """

    def __init__(self, workers: int, measure: MeasureFn | None, raw: Mapping[str, Any], *,
                 timeout: float, log_level: int, memory_mb: int = 0) -> None:
        self.workers = workers
        self.measure = measure
        self.raw = dict(raw)
        self.timeout = timeout
        self.log_level = log_level
        self.memory_mb = int(memory_mb)
        self._pool: ProcessPool | None = None
        self._queue: Any = None
        self._listener: logging.handlers.QueueListener | None = None

    def _start(self) -> ProcessPool:
        # One BLAS/OpenMP thread per worker, set before the spawned processes import numpy.
        for var in _BLAS_VARS:
            os.environ.setdefault(var, "1")
        ctx = multiprocessing.get_context("spawn")
        if self._listener is None:
            self._queue = ctx.Queue()
            self._listener = logging.handlers.QueueListener(self._queue, _Relay())
            self._listener.start()
        pool = ProcessPool(max_workers=self.workers, initializer=_worker_init,
                           initargs=(self._queue, self.log_level, os.getpid(), self.measure,
                                     self.memory_mb),
                           context=ctx)
        if not pool.active:  # asking starts the workers (pebble starts them on first use)
            raise RuntimeError("the worker pool did not start")
        return pool

    def start(self) -> ProcessPool:
        """Start the workers now (they import the measuring code while the node waits for
        frames); :meth:`submit` does it when needed."""
        if self._pool is None or not self._pool.active:
            if self._pool is not None:  # broken (e.g. cannot start workers): start afresh
                self._halt()
            self._pool = self._start()
        return self._pool

    def submit(self, task: Task | str) -> cf.Future[Outcome]:
        """Measure a frame in a worker; the future gives an :data:`Outcome` or raises."""
        return self.start().schedule(work, args=(self.measure, task, self.raw),
                                     timeout=self.timeout)

    def _halt(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()
            with contextlib.suppress(Exception):
                pool.join()

    def close(self, *, wait: bool = True) -> None:
        """Stop the workers and the log relay.

        Parameters
        ----------
        wait : bool
            Let the frames in hand finish first (False: stop the workers now; their futures
            are abandoned and the caller requeues their frames).
        """
        pool = self._pool
        if pool is not None and wait:
            pool.close()
            with contextlib.suppress(Exception):
                pool.join()
            self._pool = None
        self._halt()
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        if self._queue is not None:
            self._queue.close()
            self._queue = None
