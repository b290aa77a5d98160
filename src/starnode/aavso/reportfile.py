"""The night's report file on disk: one more row costs the same at dawn as at dusk, and no row
is ever lost.

Rebuilding, re-validating and atomically rewriting the whole night's file for every new row made
a long night quadratic (2,000 subs of one target: 19 ms per row at first, 117 ms at the end).
Now a new row that goes at the end of the file is *appended*: it is validated against the
file's header alone, written with one ``O_APPEND`` write and fsynced. The whole file is rebuilt
from the database (validated, then replaced atomically) only when a row changes (a time bin
grew), a row sorts before the last one, the header would change, or the file on disk is not
the one the writer last committed.

What was last committed is kept per file in ``aavso_files`` (size, inode, last row), inside the
same transaction as the rows. So:

- bytes after the committed size on the same inode were written by a writer killed before its
  COMMIT: they are cut before anything else is written (the retry writes them again, once);
- a file whose state is unknown or does not match (the database was deleted or replaced, the
  file edited) is rebuilt, and the rebuild never has fewer data lines than the file on disk:
  lines the database does not know are kept (a loud WARNING says so).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starnode.errors import AavsoError
from starnode.store import ReportRows
from starnode.util.fsio import atomic_write, fsync_dir, private_dir

from .rows import file_comments, file_text
from .validator import Report, validate_text

log = logging.getLogger(__name__)

__all__ = ["FILE_MODE", "InvalidReport", "Written", "append_line", "write_night"]

#: Mode of every file the writer creates: the outbox holds the observer's work and WebObs
#: bookkeeping; only its owner reads it.
FILE_MODE = 0o600


class InvalidReport(AavsoError):
    """The file (or the new row) would not validate; nothing was written."""


@dataclass
class Written:
    """What one write did: ``append`` or ``rewrite``, the file's rows and size, a digest of
    what was written (the new line, or the whole file), the validation."""

    how: str
    rows: int
    size: int
    sha256: str
    validation: Report


def append_line(path: Path, data: bytes) -> tuple[int, int]:
    """Append ``data`` durably (one write, fsync) to ``path``, created owner-only if missing.

    Returns
    -------
    tuple of (int, int)
        The file's size and inode afterwards.
    """
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
    try:
        os.write(fd, data)
        os.fsync(fd)
        st = os.fstat(fd)
    finally:
        os.close(fd)
    return st.st_size, st.st_ino


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def _data_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln and not ln.startswith("#")]


def _disk_rows(text: str) -> list[dict[str, Any]]:
    """The data lines of a report on disk as rows (with the ``#OBSCODE``/``#DATE`` in force)."""
    obscode, date_type, out = "", "", []
    for ln in text.splitlines():
        if ln.startswith("#OBSCODE="):
            obscode = ln.partition("=")[2].strip()
        elif ln.startswith("#DATE="):
            date_type = ln.partition("=")[2].strip()
        elif ln and not ln.startswith("#"):
            try:
                jd = float(ln.split(",")[1])
            except (IndexError, ValueError):
                jd = 0.0
            out.append({"jd": jd, "row_key": "~" + ln, "obscode": obscode,
                        "date_type": date_type, "line": ln, "closed": 1})
    return out


def _keep_unknown(path: Path, rows: list[Any]) -> list[Any]:
    """Rows of the file on disk that a rebuild from ``rows`` would drop, when it would have
    fewer data lines than the file (the database was deleted or replaced)."""
    try:
        disk = _disk_rows(path.read_text(encoding="ascii", errors="replace"))
    except FileNotFoundError:
        return []
    if len(disk) <= len(rows):
        return []
    known = {r["line"] for r in rows}
    keep = [r for r in disk if r["line"] not in known
            and validate_text(file_text([r])).ok]  # a torn last line is not a row
    if keep:
        log.warning("the report %s has %d row(s) the database does not know (was the database "
                    "deleted or replaced?); they are kept in the file", path, len(keep))
    return keep


def _state_of(ordered: Sequence[Any], comments: list[str]) -> dict[str, Any]:
    last = ordered[-1]
    return {"rows": len(ordered), "last_jd": last["jd"], "last_key": last["row_key"],
            "obscode": last["obscode"], "date_type": last["date_type"],
            "comments": json.dumps(comments)}


def _appendable(state: Any, row: Mapping[str, Any]) -> bool:
    if not state["rows"] or not row["closed"]:
        return False
    if (row["jd"], row["row_key"]) < (state["last_jd"], state["last_key"] or ""):
        return False
    if (row["obscode"], row["date_type"]) != (state["obscode"], state["date_type"]):
        return False
    comments = json.loads(state["comments"] or "[]")
    return "SYNTHETIC DATA" not in row["line"] or any("SYNTHETIC" in c for c in comments)


def _append(table: ReportRows, space: str, rel: str, path: Path, state: Any,
            row: Mapping[str, Any]) -> Written:
    report = validate_text(file_text([row]), path.name)   # the new row against the header
    if not report.ok:
        raise InvalidReport("; ".join(str(f) for f in report.errors[:5]))
    data = (row["line"] + "\n").encode("ascii")
    size, ino = append_line(path, data)
    table.set_file_state(space, rel, size=size, ino=ino, rows=state["rows"] + 1,
                         last_jd=row["jd"], last_key=row["row_key"])
    return Written("append", state["rows"] + 1, size, hashlib.sha256(data).hexdigest(), report)


def _rewrite(table: ReportRows, space: str, rel: str, path: Path, night: str | None,
             check_disk: bool) -> Written:
    rows: list[Any] = list(table.file_rows(space, rel))
    if check_disk:
        rows += _keep_unknown(path, rows)
    comments = file_comments(rows, night)
    text = file_text(rows, comments)
    report = validate_text(text, path.name)
    if not report.ok:
        # Never replace a valid file with an invalid one.
        raise InvalidReport("; ".join(str(f) for f in report.errors[:5]))
    data = text.encode("ascii")
    private_dir(path.parent)
    sha = atomic_write(path, data, mode=FILE_MODE)
    ordered = sorted(rows, key=lambda r: (r["jd"], r["row_key"]))
    table.set_file_state(space, rel, size=len(data), ino=path.stat().st_ino,
                         **_state_of(ordered, comments))
    return Written("rewrite", len(rows), len(data), sha, report)


def write_night(table: ReportRows, space: str, rel: str, path: Path, night: str | None,
                new_row: Mapping[str, Any] | None = None) -> Written:
    """Bring a report file up to date with its rows (inside the rows' transaction).

    Parameters
    ----------
    table : ReportRows
        The report tables, inside :meth:`ReportRows.transaction`.
    space, rel : str
        The file's space and path relative to the outbox.
    path : Path
        The file.
    night : str or None
        Its observing night (a header comment).
    new_row : mapping, optional
        The one row just inserted (not changed), when nothing else changed: it may be appended.

    Returns
    -------
    Written

    Raises
    ------
    InvalidReport
        The new row or the rebuilt file would not validate; the file is unchanged.
    OSError
        The file cannot be written.
    """
    state = table.file_state(space, rel)
    st = _stat(path)
    if state is None or st is None or state["size"] is None or state["ino"] != st.st_ino \
            or st.st_size < state["size"]:
        return _rewrite(table, space, rel, path, night, check_disk=True)  # not what we wrote
    if st.st_size > state["size"]:
        log.warning("%s: cutting %d byte(s) written after the last commit by a writer that was "
                    "stopped (they are written again)", path, st.st_size - state["size"])
        with open(path, "r+b") as fh:
            fh.truncate(state["size"])
            os.fsync(fh.fileno())
    if new_row is not None and _appendable(state, new_row):
        return _append(table, space, rel, path, state, new_row)
    return _rewrite(table, space, rel, path, night, check_disk=False)


def audit_append(table: ReportRows, space: str, rel: str, path: Path, line: str) -> None:
    """Append one audit line exactly once (inside the rows' transaction).

    A line appended by a writer killed before its COMMIT lies beyond the audit size recorded
    with the last commit: it is cut before this one is written, so a retry never duplicates it.
    """
    state = table.file_state(space, rel)
    st = _stat(path)
    if state is not None and st is not None and state["audit_size"] is not None \
            and state["audit_ino"] == st.st_ino and st.st_size > state["audit_size"]:
        with open(path, "r+b") as fh:
            fh.truncate(state["audit_size"])
    size, ino = append_line(path, line.encode("utf-8"))
    if st is None:
        with contextlib.suppress(OSError):
            fsync_dir(path.parent)
    table.set_file_state(space, rel, audit_size=size, audit_ino=ino)
