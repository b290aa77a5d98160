"""The night's report file on disk: the file is the record, the database its index.

A new row is *appended* (validated against the file's header alone, one ``O_APPEND`` write,
fsync), in arrival order: the AAVSO Extended File Format sets no order for data lines
(``shared/aavso/README.md``, its validator and WebObs accept any), so an early frame that a
second worker finishes late costs one line, not a rewrite of the night. The whole file is
rewritten (validated, replaced atomically) only when a line must change in place (a time bin
grew), a header comment must change, or the file is not byte for byte what was last committed.

The rules (issue 17):

- **A line in a report file is never removed by starnode.** A rewrite starts from the file on
  disk, in its order: every line stays; a time bin's line is replaced by its new value; lines
  the index does not know (a lost, restored or older database) are *adopted* into the index
  (``aavso_rows``, row key ``~<file>|<star>|<date>|<filter>``) so no later rewrite can drop
  them. Rows the index has and the file lacks are added after them.
- **A tail is cut only when the file itself proves it uncommitted:** every write ends with a
  newline, so bytes after the last newline are a torn write (disk full, a kill mid-write) and
  are cut. A complete line a killed writer left before its COMMIT is not cut: the retry writes
  the same line, finds it there and adopts it (written once). No size recorded in the
  database ever decides what to cut.
- **Damage is detected, never written over silently.** ``aavso_files`` keeps each report's
  size, inode, mtime and sha256 after the last committed write. A file that matches is
  appended to at once; any other is compared line by line with the index
  (:func:`assess`): *deleted* (rebuilt from the index when the index has every row),
  *truncated* (rows missing), *altered* (a row changed), *invalid* (it no longer validates)
  raise :class:`DamagedReport` - nothing is written to it until ``starnode repair`` - and rows
  the index lacks are adopted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starnode.errors import AavsoError
from starnode.store import ReportRows
from starnode.store.reports import DRY
from starnode.util.fsio import atomic_write, fsync_dir, private_dir

from .rows import file_comments, file_text
from .validator import Report, validate_text

log = logging.getLogger(__name__)

__all__ = ["FILE_MODE", "Damage", "DamagedReport", "Disk", "InvalidReport", "Written",
           "append_line", "assess", "foreign_key", "read_disk", "write_night"]

#: Mode of every file the writer creates: the outbox holds the observer's work and WebObs
#: bookkeeping; only its owner reads it.
FILE_MODE = 0o600

#: What to do about each kind of damage (``starnode status``, ``doctor``, the node's log).
ADVICE = {
    "deleted": "it is rebuilt from the index at the next write or start (the index has "
               "every row); 'starnode repair' does it now",
    "deleted-partial": "the index does not have every row it held: restore the file from a "
                       "backup if you have one, then run 'starnode repair'",
    "truncated": "run 'starnode repair': it restores the missing rows from the index (the "
                 "damaged file is kept beside it as .damaged-<time>)",
    "altered": "a row differs from what was measured: run 'starnode repair' to restore the "
               "measured rows (your edited file is kept beside it as .damaged-<time>)",
    "invalid": "it no longer passes the AAVSO validator: run 'starnode repair' (lines that do "
               "not validate are moved to a .damaged-<time> copy, the rows restored)",
}


class InvalidReport(AavsoError):
    """The file (or the new row) would not validate; nothing was written."""


@dataclass
class Damage:
    """A report file that is not what starnode last committed."""

    kind: str            # deleted | truncated | altered | invalid
    path: Path
    detail: str
    missing: list[str] = field(default_factory=list)   # index lines the file lacks
    unknown: list[str] = field(default_factory=list)   # file lines the index lacks
    complete: bool = True  # the index has every row the file held (a rebuild loses nothing)

    @property
    def advice(self) -> str:
        """What the observer should do."""
        if self.kind == "deleted" and not self.complete:
            return ADVICE["deleted-partial"]
        return ADVICE[self.kind]

    def message(self) -> str:
        """One line: the file, what is wrong, what to do."""
        return f"report {self.path} is {self.kind} ({self.detail}): {self.advice}"


class DamagedReport(AavsoError):
    """The report file is damaged (:class:`Damage`); nothing was written to it."""

    def __init__(self, damage: Damage) -> None:
        super().__init__(damage.message())
        self.damage = damage


@dataclass
class Written:
    """What one write did: ``append``, ``rewrite`` or ``adopt`` (the line was already there),
    the file's rows and size, a digest of what was written (the new line, or the whole file),
    the validation."""

    how: str
    rows: int
    size: int
    sha256: str
    validation: Report


@dataclass
class Disk:
    """A report file as read from disk."""

    exists: bool
    raw: bytes = b""
    rows: list[dict[str, Any]] = field(default_factory=list)  # complete data lines, in order
    torn: int = 0          # bytes after the last newline (a torn write)

    @property
    def text(self) -> str:
        """The complete lines."""
        return self.raw[:len(self.raw) - self.torn].decode("ascii", errors="replace")

    @property
    def lines(self) -> list[str]:
        """The data lines, in file order."""
        return [r["line"] for r in self.rows]


def append_line(path: Path, data: bytes) -> tuple[int, int]:
    """Append ``data`` durably (one write, fsync) to ``path``, created owner-only if missing.

    Returns
    -------
    tuple of (int, int)
        The file's size and inode afterwards.

    Raises
    ------
    OSError
        Not everything could be written (disk full): the bytes that were are a torn line,
        recognised by its missing newline.
    """
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
    try:
        done = os.write(fd, data)
        if done != len(data):
            raise OSError(28, f"short write ({done} of {len(data)} bytes)", str(path))
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


def _fields(line: str) -> list[str]:
    return line.split(",")


def foreign_key(rel: str, line: str) -> str:
    """The row key of a line the index adopted from the file: file, STARID, DATE, FILTER."""
    f = [*_fields(line), "", "", "", "", ""]
    starid, date, band = f[0], f[1], f[4]
    return f"~{rel}|{' '.join(starid.upper().split())}|{date.strip()}|{band.strip().upper()}"


def _parse(text: str) -> list[dict[str, Any]]:
    """The data lines of a report as rows (with the ``#OBSCODE``/``#DATE`` in force)."""
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
            out.append({"jd": jd, "row_key": "", "obscode": obscode, "date_type": date_type,
                        "line": ln, "closed": 1})
    return out


def read_disk(path: Path) -> Disk:
    """Read a report file (a missing file gives ``exists=False``)."""
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return Disk(False)
    torn = len(raw) - (raw.rfind(b"\n") + 1)
    disk = Disk(True, raw, torn=torn)
    disk.rows = _parse(disk.text)
    return disk


def _row_ok(row: Mapping[str, Any]) -> bool:
    return validate_text(file_text([row])).ok


def assess(prior: Sequence[Any], state: Any, path: Path,
           disk: Disk | None = None) -> tuple[Disk, Damage | None, list[dict[str, Any]]]:
    """Compare a report file with its index.

    Parameters
    ----------
    prior : sequence of rows
        The index's rows of the file as last committed (``line``).
    state : mapping or None
        The file's ``aavso_files`` state (None: unknown, e.g. a lost database).
    path : Path
        The file.
    disk : Disk, optional
        The file already read.

    Returns
    -------
    tuple
        ``(disk, damage or None, the file's rows the index does not know)``.
    """
    disk = disk if disk is not None else read_disk(path)
    if not disk.exists:
        return disk, _deleted(prior, state, path), []
    if _as_committed(state, disk):
        return disk, None, []
    index = {r["line"] for r in prior}
    on_disk = set(disk.lines)
    missing = [r["line"] for r in prior if r["line"] not in on_disk]
    unknown = [d for d in disk.rows if d["line"] not in index]
    damage = _changed(path, disk, prior, missing, unknown)
    if damage is not None:
        return disk, damage, []
    return disk, None, unknown


def _deleted(prior: Sequence[Any], state: Any, path: Path) -> Damage | None:
    """The file is gone: damage when the index has rows of it (``complete`` when the index
    holds every row the file had)."""
    if not prior:
        return None
    complete = state is not None and state["rows"] is not None and \
        int(state["rows"]) <= len(prior)
    return Damage("deleted", path, f"{len(prior)} row(s) in the index",
                  missing=[r["line"] for r in prior], complete=complete)


def _as_committed(state: Any, disk: Disk) -> bool:
    """The file's checksum is the one last committed."""
    return bool(state is not None and state["sha256"]
                and hashlib.sha256(disk.raw).hexdigest() == state["sha256"])


def _changed(path: Path, disk: Disk, prior: Sequence[Any], missing: list[str],
             unknown: list[dict[str, Any]]) -> Damage | None:
    """Invalid, altered or truncated; None when the file only has rows the index lacks."""
    bad = [d["line"] for d in unknown if not _row_ok(d)]
    if bad or not validate_text(disk.text).ok:
        report = validate_text(disk.text)
        detail = "; ".join(str(f) for f in report.errors[:3]) or \
            f"{len(bad)} line(s) that are not valid rows"
        return Damage("invalid", path, detail, missing, [d["line"] for d in unknown])
    if missing and unknown:
        return Damage("altered", path, f"{len(unknown)} row(s) differ from the "
                      f"index, e.g. {unknown[0]['line'][:60]!r}", missing,
                      [d["line"] for d in unknown])
    if missing:
        return Damage("truncated", path, f"{len(missing)} of {len(prior)} row(s) "
                      "missing", missing)
    return None


def _upload_state(space: str) -> str:
    return "none" if space == DRY else "manual"


def adopt(table: ReportRows, space: str, rel: str, night: str | None,
          rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Put lines of the file the index does not know into the index (foreign rows), so no
    rewrite can drop them; returns them as index rows."""
    out = []
    for d in rows:
        key = foreign_key(rel, d["line"])
        n = 1
        while (old := table.row(space, key)) is not None and old["line"] != d["line"]:
            n += 1
            key = f"{foreign_key(rel, d['line'])}#{n}"
        if old is None:
            f = [*_fields(d["line"]), "", "", "", "", ""]
            table.insert_row(space, key, obscode=d["obscode"], starid=f[0], band=f[4],
                             night=night or "", date_type=d["date_type"],
                             file=rel, bin_start=None, bin_end=None, jd=d["jd"],
                             line=d["line"], n=0, closed=True, upload=_upload_state(space))
        out.append({**d, "row_key": key})
    if out:
        log.warning("the report %s has %d row(s) the index did not know (a lost or restored "
                    "database?); they are kept in the file and now in the index", rel, len(out))
    return out


# ----------------------------------------------------------------------------- checksums
#: The running sha256 of report files this process appended to: path -> (size, inode, hash).
_HASHES: dict[str, tuple[int, int, Any]] = {}


def _hasher(path: Path, size: int, ino: int) -> Any:
    cached = _HASHES.get(str(path))
    if cached is not None and cached[0] == size and cached[1] == ino:
        return cached[2]
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        h.update(fh.read(size))
    return h


def _commit_state(table: ReportRows, space: str, rel: str, path: Path, sha: str,
                  **values: Any) -> tuple[int, int]:
    st = path.stat()
    table.set_file_state(space, rel, size=st.st_size, ino=st.st_ino, mtime_ns=st.st_mtime_ns,
                         sha256=sha, **values)
    return st.st_size, st.st_ino


def _matches(state: Any, st: os.stat_result | None) -> bool:
    """The file is byte for byte what was last committed (same size, inode and mtime)."""
    return bool(state is not None and st is not None and state["sha256"]
                and state["size"] == st.st_size and state["ino"] == st.st_ino
                and state["mtime_ns"] == st.st_mtime_ns)


# ----------------------------------------------------------------------------- writing
def _appendable(state: Any, row: Mapping[str, Any]) -> bool:
    if not state["rows"] or not row["closed"]:
        return False
    comments = json.loads(state["comments"] or "[]")
    return "SYNTHETIC DATA" not in row["line"] or any("SYNTHETIC" in c for c in comments)


def _append(table: ReportRows, space: str, rel: str, path: Path, state: Any,
            row: Mapping[str, Any]) -> Written:
    report = validate_text(file_text([row]), path.name)   # the new row against the header
    if not report.ok:
        raise InvalidReport("; ".join(str(f) for f in report.errors[:5]))
    text = ""
    if row["obscode"] != state["obscode"]:
        text += f"#OBSCODE={row['obscode']}\n"
    if row["date_type"] != state["date_type"]:
        text += f"#DATE={row['date_type']}\n"
    data = (text + row["line"] + "\n").encode("ascii")
    h = _hasher(path, int(state["size"]), int(state["ino"]))
    _HASHES.pop(str(path), None)
    size, ino = append_line(path, data)
    h.update(data)
    _HASHES[str(path)] = (size, ino, h)
    _commit_state(table, space, rel, path, h.hexdigest(), rows=state["rows"] + 1,
                  last_jd=row["jd"], last_key=row["row_key"], obscode=row["obscode"],
                  date_type=row["date_type"])
    return Written("append", state["rows"] + 1, size, hashlib.sha256(data).hexdigest(), report)


def _order(rows: Sequence[Any], disk: Disk, replaced: Mapping[str, str]) -> list[Any]:
    """The file's lines in their order (a replaced bin line in its place), then the rows the
    file does not have yet, by time."""
    by_line = {r["line"]: r for r in rows}
    by_key = {r["row_key"]: r for r in rows}
    out: list[Any] = []
    placed: set[str] = set()
    for d in disk.rows:
        r = by_line.get(d["line"])
        if r is None and d["line"] in replaced:
            r = by_key.get(replaced[d["line"]])
        if r is not None and r["row_key"] not in placed:
            placed.add(r["row_key"])
            out.append(r)
        else:
            out.append(d)               # kept as it is (e.g. a line written twice)
    out += sorted((r for r in rows if r["row_key"] not in placed),
                  key=lambda r: (r["jd"], r["row_key"]))
    return out


def _rewrite(table: ReportRows, space: str, rel: str, path: Path, night: str | None,
             disk: Disk, replaced: Mapping[str, str]) -> Written:
    rows: list[Any] = list(table.file_rows(space, rel))
    ordered = _order(rows, disk, replaced)
    comments = file_comments(rows, night)
    text = file_text(ordered, comments, sort=False)
    report = validate_text(text, path.name)
    if not report.ok:
        # Never replace a valid file with an invalid one.
        raise InvalidReport("; ".join(str(f) for f in report.errors[:5]))
    data = text.encode("ascii")
    private_dir(path.parent)
    _HASHES.pop(str(path), None)
    sha = atomic_write(path, data, mode=FILE_MODE)
    last = ordered[-1]
    _commit_state(table, space, rel, path, sha, rows=len(ordered), last_jd=last["jd"],
                  last_key=last["row_key"], obscode=last["obscode"],
                  date_type=last["date_type"], comments=json.dumps(comments))
    return Written("rewrite", len(ordered), len(data), sha, report)


def _cut_torn(path: Path, disk: Disk) -> None:
    """Bytes after the file's last newline never ended a write: cut them."""
    if not disk.torn:
        return
    log.warning("%s: cutting %d byte(s) after the last complete line (a write that never "
                "finished: disk full or a killed writer; it is written again)", path, disk.torn)
    with open(path, "r+b") as fh:
        fh.truncate(len(disk.raw) - disk.torn)
        os.fsync(fh.fileno())
    disk.raw = disk.raw[:len(disk.raw) - disk.torn]
    disk.torn = 0


def write_night(table: ReportRows, space: str, rel: str, path: Path, night: str | None,
                new_row: Mapping[str, Any] | None = None,
                changed: Mapping[str, str | None] | None = None, *,
                present: bool = False) -> Written:
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
    changed : mapping, optional
        Rows this transaction inserted or changed: row key -> the line it had before (None for
        a new row); the file is compared with the index as it was before them.
    present : bool
        The new row's line is already in the file (an adopted row it claims): never append.

    Returns
    -------
    Written

    Raises
    ------
    InvalidReport
        The new row or the rebuilt file would not validate; the file is unchanged.
    DamagedReport
        The file is truncated, altered or invalid (:func:`assess`); nothing was written.
    OSError
        The file cannot be written.
    """
    changed = dict(changed or {})
    if new_row is not None:
        changed.setdefault(str(new_row["row_key"]), None)
    state = table.file_state(space, rel)
    if new_row is not None and _can_append(state, path, new_row, present):
        return _append(table, space, rel, path, state, new_row)
    rows = list(table.file_rows(space, rel))
    disk, unknown = _sound_disk(rows, changed, state, path)
    new_lines = {r["line"] for r in rows if r["row_key"] in changed}
    adopt(table, space, rel, night, [d for d in unknown if d["line"] not in new_lines])
    replaced = {old: key for key, old in changed.items() if old}
    if new_row is not None and new_row["line"] in disk.lines and not replaced:
        return _already_written(table, space, rel, path, disk, new_row)
    return _rewrite(table, space, rel, path, night, disk, replaced)


def _can_append(state: Any, path: Path, new_row: Mapping[str, Any], present: bool) -> bool:
    """The new row may simply be appended: not in the file yet, the file as committed."""
    return not present and _matches(state, _stat(path)) and _appendable(state, new_row)


def _sound_disk(rows: list[Any], changed: Mapping[str, str | None], state: Any,
                path: Path) -> tuple[Disk, list[dict[str, Any]]]:
    """The file compared with the index as it was before this transaction's changes; a
    torn tail cut. Returns the file and its rows the index does not know.

    Raises
    ------
    DamagedReport
        The file is damaged (a deleted file the index holds completely is rebuilt instead).
    """
    prior: list[Any] = [r for r in rows if r["row_key"] not in changed]
    prior += [{"line": old} for old in changed.values() if old]
    disk, damage, unknown = assess(prior, state, path)
    if damage is not None and not (damage.kind == "deleted" and damage.complete):
        raise DamagedReport(damage)
    if damage is not None:
        log.warning("%s; rebuilding it from the index", damage.message())
    elif disk.exists:
        _cut_torn(path, disk)
    return disk, unknown


def _already_written(table: ReportRows, space: str, rel: str, path: Path, disk: Disk,
                     new_row: Mapping[str, Any]) -> Written:
    """A writer killed before its COMMIT wrote this very line: it is there once already."""
    st = path.stat()
    sha = hashlib.sha256(disk.raw).hexdigest()
    last = disk.rows[-1]
    comments = [ln[2:] for ln in disk.text.splitlines() if ln.startswith("# ")]
    _commit_state(table, space, rel, path, sha, rows=len(disk.rows), last_jd=last["jd"],
                  last_key=new_row["row_key"], obscode=last["obscode"],
                  date_type=last["date_type"], comments=json.dumps(comments))
    log.info("%s: the row was already in the file (written before a stop); kept once", path)
    return Written("adopt", len(disk.rows), st.st_size, sha, validate_text(disk.text))


# ----------------------------------------------------------------------------- the audit
def _last_record(path: Path) -> dict[str, Any] | None:
    """The audit's last complete record (read from its end), or None."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 262_144))
            tail = fh.read()
    except FileNotFoundError:
        return None
    lines = tail.rstrip(b"\n").rsplit(b"\n", 1)
    with contextlib.suppress(ValueError):
        rec = json.loads(lines[-1])
        return rec if isinstance(rec, dict) else None
    return None


def audit_append(table: ReportRows, space: str, rel: str, path: Path, line: str) -> None:
    """Append one audit line exactly once (inside the rows' transaction).

    A record a writer killed before its COMMIT left at the end of the audit is the one its
    retry writes: it is not written twice. A torn last line (no newline) is cut. Nothing else
    is ever cut from the audit (it rebuilds the index after a lost database).
    """
    rec = json.loads(line)
    last = _last_record(path)
    if last is not None and rec.get("event") == "measurement" and \
            last.get("event") == "measurement" and last.get("key") == rec.get("key") and \
            last.get("row") == rec.get("row"):
        return
    st = _stat(path)
    if st is not None and st.st_size:
        with open(path, "rb") as fh:
            fh.seek(st.st_size - 1)
            if fh.read(1) != b"\n":
                raw = path.read_bytes()
                with open(path, "r+b") as out:
                    out.truncate(raw.rfind(b"\n") + 1)
    size, ino = append_line(path, line.encode("utf-8"))
    if st is None:
        with contextlib.suppress(OSError):
            fsync_dir(path.parent)
    table.set_file_state(space, rel, audit_size=size, audit_ino=ino)
