"""Logging for the command line and the service: the console plus a rotating file in data_dir.

``setup_logging(level, data_dir)`` is called once by :mod:`starnode.cli`; library modules only
use ``logging.getLogger(__name__)``. The file (``data_dir/logs/starnode.log``, 5 × 2 MB) always
gets INFO and above, with timestamps, so a night can be read back in the morning.

Worker processes forward their WARNING-and-above records (DEBUG too when the console level is
DEBUG) to the node through a queue (:func:`worker_logging`), so the console and the file show
what the pipeline said about a frame, next to the node's one INFO line per frame.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["LOG_FILE", "FileHandler", "RepeatFilter", "setup_logging", "worker_logging"]

#: The log file, relative to data_dir.
LOG_FILE = Path("logs") / "starnode.log"

CONSOLE_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"
FILE_FORMAT = "%(asctime)s %(levelname)-7s [%(process)d] %(name)s: %(message)s"
_MARK = "_starnode_handler"

#: Chatty third-party loggers kept at WARNING.
_QUIET = ("matplotlib", "PIL", "watchdog", "urllib3", "fsevents")  # never "astropy": it
# installs its own Logger class on import, which a logger made earlier would break


class ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler that writes to whatever ``sys.stderr`` is when a record is emitted.

    A plain ``StreamHandler(sys.stderr)`` keeps the stream it was given; when ``sys.stderr`` is
    later replaced and closed (a progress bar's redirection, an embedding program, a test's
    capture) every record then ends in ``--- Logging error ---``.
    """

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # the base class assigns it; always sys.stderr
        pass


class FileHandler(logging.handlers.RotatingFileHandler):
    """The rotating log file, surviving a full disk.

    A record that cannot be written (disk full, the folder gone) is dropped and counted, never
    a ``--- Logging error ---`` traceback on stderr per line; once writing works again, one
    line says how many were dropped.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dropped = 0
        self._writing_note = False

    def handleError(self, record: logging.LogRecord) -> None:
        self.dropped += 1
        with contextlib.suppress(Exception):  # what a failed write left in the buffer
            if self.stream is not None:
                self.stream.close()
        self.stream = None  # type: ignore[assignment]  # reopened at the next record

    def emit(self, record: logging.LogRecord) -> None:
        if self.dropped and not self._writing_note:
            held, self.dropped = self.dropped, 0
            note = logging.LogRecord(record.name, logging.WARNING, __file__, 0,
                                     "%d log line(s) could not be written (disk full?) and "
                                     "were dropped", (held,), None)
            self._writing_note = True
            try:
                super().emit(note)
            finally:
                self._writing_note = False
            if self.dropped:  # the note could not be written either: still failing
                self.dropped = held + 1
                return
        super().emit(record)


class RepeatFilter(logging.Filter):
    """Rate-limit repeated warnings and errors: at most ``burst`` records of one kind (logger,
    level and message template) per ``window`` seconds; then one line says how many were held
    back. INFO and below always pass (one line per frame)."""

    def __init__(self, burst: int = 3, window: float = 60.0) -> None:
        super().__init__()
        self.burst, self.window = burst, window
        self._seen: dict[tuple[str, int, str], list[float]] = {}  # key -> [start, n, held]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        template = str(record.msg)
        if template.strip() in ("%s", "%r"):
            template = record.getMessage()
        key = (record.name, record.levelno, template)
        now = time.monotonic()
        with self._lock:
            entry = self._seen.get(key)
            if entry is None or now - entry[0] >= self.window:
                held = 0 if entry is None else int(entry[2])
                self._seen[key] = [now, 1, 0]
                if len(self._seen) > 512:
                    self._seen = {k: v for k, v in self._seen.items()
                                  if now - v[0] < self.window}
                if held:
                    record.msg = f"{record.msg} [{held} more like this were held back in the " \
                                 f"last {self.window:.0f} s]"
                return True
            entry[1] += 1
            if entry[1] <= self.burst:
                return True
            entry[2] += 1
            return False


def setup_logging(level: str | int = "INFO", data_dir: str | os.PathLike[str] | None = None,
                  *, console: bool = True, max_bytes: int = 2_000_000,
                  backups: int = 5) -> Path | None:
    """Configure the root logger. Idempotent: earlier starnode handlers are replaced.

    Parameters
    ----------
    level : str or int
        Console level (``"INFO"``...); the file always gets INFO and above.
    data_dir : path-like, optional
        Where ``logs/starnode.log`` is written; None: console only.
    console : bool
        Log to stderr too.
    max_bytes, backups : int
        Rotation of the log file.

    Returns
    -------
    Path or None
        The log file (None without ``data_dir`` or when it cannot be written; the console then
        says why).
    """
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, _MARK, False):
            root.removeHandler(h)
            h.close()
    lvl = logging.getLevelName(level.upper()) if isinstance(level, str) else int(level)
    if not isinstance(lvl, int):
        lvl = logging.INFO
    root.setLevel(min(lvl, logging.INFO) if data_dir is not None else lvl)
    repeat = RepeatFilter()
    if console:
        ch = ConsoleHandler()
        ch.addFilter(repeat)
        ch.setLevel(lvl)
        ch.setFormatter(logging.Formatter(CONSOLE_FORMAT, datefmt="%H:%M:%S"))
        setattr(ch, _MARK, True)
        root.addHandler(ch)
    path: Path | None = None
    if data_dir is not None:
        path = Path(data_dir) / LOG_FILE
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = FileHandler(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        except OSError as exc:
            logging.getLogger(__name__).warning("cannot write the log file %s: %s", path, exc)
            path = None
        else:
            with contextlib.suppress(OSError):  # the log may name frames and targets: owner only
                os.chmod(path, 0o600)
            fh.setLevel(min(lvl, logging.INFO))
            fh.addFilter(repeat)
            fh.setFormatter(logging.Formatter(FILE_FORMAT))
            setattr(fh, _MARK, True)
            root.addHandler(fh)
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(lvl, logging.WARNING))
    logging.captureWarnings(True)
    return path


def worker_logging(queue: Any, level: int) -> None:
    """In a worker process: send records at ``level`` and above to the node.

    Parameters
    ----------
    queue : multiprocessing.Queue or None
        The node's log queue (its ``QueueListener`` writes them out); None: stderr.
    level : int
        The lowest level sent.
    """
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    if queue is not None:
        root.addHandler(logging.handlers.QueueHandler(queue))
    else:
        root.addHandler(ConsoleHandler())
    root.setLevel(level)
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    logging.captureWarnings(True)
