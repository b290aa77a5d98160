"""The index rebuilt from the record: report files, their audit, and the frames.

The report files are the record and the database (``aavso_rows``, ``aavso_measurements``,
``aavso_files``) is their index. After a lost, restored or older database the index is rebuilt
from what the outbox itself carries, and nothing in a report file is lost:

- :func:`check_reports` (read-only; ``starnode status`` and ``doctor``): each report compared
  with the index and its checksum - deleted, truncated, altered, invalid, or with rows the index
  does not know - with what to do.
- :func:`reconcile` (the node's start, ``starnode repair``): for each report file, the audit's
  measurement records put back into the index (each measurement under its exactly-once key, each
  time bin with its members, so a re-measured frame is a ``duplicate`` and a bin keeps
  growing); lines neither knows adopted as they stand; a deleted file rebuilt from the index
  when the index has every row; frames the ledger has as ``reported`` but the index does not
  know are submitted again (the writer finds their line in the file and writes it once). With
  ``repair=True`` also a truncated, altered or invalid file is restored from the index, the
  damaged file kept beside it (``<name>.damaged-<utc>.txt``, owner-only).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starnode.config import Config
from starnode.errors import FieldError
from starnode.records import Measurement
from starnode.store import ReportRows
from starnode.store.reports import DRY, REAL

from .entries import ReportEntry, entry_from_measurement
from .outbox import audit_path, event, outbox_dir
from .reportfile import Damage, adopt, assess, read_disk, write_night
from .rows import format_row

log = logging.getLogger(__name__)

__all__ = ["ReportCheck", "check_reports", "reconcile"]

_UPLOAD = {"outbox": "manual", "dry_run": "none"}


@dataclass
class ReportCheck:
    """One report file compared with the index."""

    path: str
    space: str
    rel: str
    state: str              # ok | unindexed | deleted | truncated | altered | invalid
    message: str = ""
    rows: int = 0           # data lines in the file
    advice: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON."""
        return dict(self.__dict__)


def _files(cfg: Config, table: ReportRows) -> Iterator[tuple[str, str, Path]]:
    """``(space, rel, path)`` of every report file on disk or in the index."""
    outbox = outbox_dir(cfg)
    seen: set[tuple[str, str]] = set()
    for pattern, space in (("*/*.txt", REAL), ("dry_run/*/*.txt", DRY)):
        for p in sorted(outbox.glob(pattern)):
            rel = p.relative_to(outbox).as_posix()
            if rel.startswith(("audit/", "dry_run/")) and space == REAL:
                continue
            if ".damaged-" in p.name or not p.is_file():
                continue
            seen.add((space, rel))
    audit = outbox / "audit"
    for pattern, space in (("*/*.jsonl", REAL), ("dry_run/*/*.jsonl", DRY)):
        for p in sorted(audit.glob(pattern)):
            rel = p.relative_to(audit).with_suffix(".txt").as_posix()
            if not (space == REAL and rel.startswith("dry_run/")):
                seen.add((space, rel))
    seen.update(table.known_files())
    for space, rel in sorted(seen):
        yield space, rel, outbox / rel


def _night(rel: str) -> str:
    return Path(rel).parent.name


def check_reports(config: Config) -> list[ReportCheck]:
    """Every report file compared with the index, read-only.

    Parameters
    ----------
    config : Config or anything :func:`starnode.config.resolve` accepts

    Returns
    -------
    list of ReportCheck
        One per file; ``state`` ``ok``, ``unindexed`` (rows the index does not know: adopted
        at the next start or by ``starnode repair``), or a damage kind with ``advice``.
    """
    cfg = config
    out = []
    with ReportRows(cfg) as table:
        for space, rel, path in _files(cfg, table):
            rows = table.file_rows(space, rel)
            disk, damage, unknown = assess(rows, table.file_state(space, rel), path)
            check = ReportCheck(str(path), space, rel, "ok", rows=len(disk.rows))
            if damage is not None:
                check.state, check.message, check.advice = damage.kind, damage.detail, \
                    damage.advice
            elif unknown:
                check.state = "unindexed"
                check.message = f"{len(unknown)} row(s) the index does not know"
                check.advice = "adopted at the next start, or now by 'starnode repair'"
            out.append(check)
    return out


# ----------------------------------------------------------------------------- the audit
@dataclass
class _AuditRow:
    row_key: str
    mode: str
    line: str = ""
    members: list[dict[str, Any]] = field(default_factory=list)  # (key, measurement)
    uploaded: str | None = None


def _audit_rows(path: Path) -> dict[str, _AuditRow]:
    """The rows an audit file records, each with its members and last line."""
    rows: dict[str, _AuditRow] = {}
    sent: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return rows
    for ln in text.splitlines():
        try:
            rec = json.loads(ln)
        except ValueError:
            continue
        if not isinstance(rec, dict):
            continue
        if rec.get("event") == "upload":
            for line in rec.get("rows") or []:
                sent[str(line)] = str(rec.get("state") or "uncertain")
            continue
        if rec.get("event") != "measurement" or not rec.get("row_key") or not rec.get("key"):
            continue
        row = rows.setdefault(str(rec["row_key"]), _AuditRow(str(rec["row_key"]),
                                                            str(rec.get("mode") or "outbox")))
        row.line = str(rec.get("row") or row.line)
        if all(m["key"] != rec["key"] for m in row.members):
            row.members.append({"key": rec["key"], "measurement": rec.get("measurement")})
    for row in rows.values():
        row.uploaded = sent.get(row.line)
    return rows


def _bin(row_key: str) -> tuple[float, float] | None:
    """A bin row key's start and end JD (``...|bin<m>m|<index>``), None for a measurement."""
    parts = row_key.split("|")
    if len(parts) < 2 or not parts[-2].startswith("bin") or not parts[-2].endswith("m"):
        return None
    try:
        width = float(parts[-2][3:-1]) / 1440.0
        start = int(parts[-1]) * width
    except ValueError:
        return None
    return start, start + width


def _upload(space: str, row: _AuditRow) -> str:
    if space == DRY:
        return "none"
    if row.mode in _UPLOAD:
        return _UPLOAD[row.mode]
    # webobs: sent only when the audit shows WebObs's confirmation; otherwise never resent
    # automatically (it may have reached WebObs): 'uncertain' until the observer says
    return "sent" if row.uploaded == "sent" else "uncertain"


def _restore_row(table: ReportRows, space: str, rel: str, row: _AuditRow,
                 disk_rows: dict[str, dict[str, Any]], date_type: str) -> int:
    """One audit row back into the index; returns the measurements restored."""
    entries: list[tuple[str, ReportEntry, dict[str, Any]]] = []
    for m in row.members:
        if table.has_measurement(space, m["key"]) or not isinstance(m["measurement"], dict):
            continue
        try:
            e = entry_from_measurement(Measurement.from_dict(m["measurement"]), date_type)
        except (FieldError, TypeError, ValueError) as exc:
            log.warning("%s: an audit record cannot be read back (%s)", rel, exc)
            continue
        entries.append((m["key"], e, m["measurement"]))
    if not entries:
        return 0
    d = disk_rows.get(row.line)
    existing = table.row(space, row.row_key)
    if existing is not None:  # an older index: the members it lacks, the row's last line
        for key, e, result in entries:
            table.add_measurement(space, key, row.row_key, obscode=existing["obscode"],
                                  starid=e.starid, band=e.band, night=existing["night"],
                                  jd=e.jd, data=e.as_dict(), result=result)
        if row.line and d is not None:
            table.update_row(space, row.row_key, line=row.line,
                             n=int(existing["n"]) + len(entries), jd=d["jd"],
                             date_type=d["date_type"])
        return len(entries)
    obscode = d["obscode"] if d else row.row_key.split("|")[0]
    dtype = d["date_type"] if d else date_type
    members = sorted((e for _, e, _ in entries), key=lambda x: x.jd)
    line = row.line
    if not line:
        try:
            line = format_row(members, dtype)
        except FieldError:
            return 0
    first = members[0]
    for key, e, result in entries:
        table.add_measurement(space, key, row.row_key, obscode=obscode, starid=e.starid,
                              band=e.band, night=_night(rel), jd=e.jd, data=e.as_dict(),
                              result=result)
    span = _bin(row.row_key)
    table.insert_row(space, row.row_key, obscode=obscode, starid=first.starid, band=first.band,
                     night=_night(rel), date_type=dtype, file=rel,
                     bin_start=None if span is None else span[0],
                     bin_end=None if span is None else span[1],
                     jd=(members[0].jd + members[-1].jd) / 2, line=line, n=len(members),
                     closed=span is None, upload=_upload(space, row))
    return len(entries)


def _from_audit(cfg: Config, table: ReportRows, space: str, rel: str) -> int:
    """Measurements of one report's audit the index lacks, put back; returns how many."""
    disk = read_disk(outbox_dir(cfg) / rel)
    disk_rows = {d["line"]: d for d in disk.rows}
    n = 0
    for row in _audit_rows(audit_path(outbox_dir(cfg), rel)).values():
        n += _restore_row(table, space, rel, row, disk_rows, cfg.aavso.date_type)
    return n


# ----------------------------------------------------------------------------- reconcile
def _aside(path: Path) -> Path:
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.stem}.damaged-{stamp}{path.suffix}")
    shutil.copy2(path, target)
    target.chmod(0o600)
    return target


def _repair_damaged(cfg: Config, table: ReportRows, space: str, rel: str, path: Path,
                    damage: Damage, done: list[str]) -> None:
    """``starnode repair``: keep a copy of the damaged file, write the index's version, keep
    every valid line of the damaged file the index does not have."""
    copy = _aside(path)
    disk = read_disk(path)
    keep = [d for d in disk.rows if d["line"] in set(damage.unknown)]
    valid = [d for d in keep if damage.kind != "altered" and _valid(d)]
    adopt(table, space, rel, _night(rel), valid)
    path.unlink()
    table.set_file_state(space, rel, rows=0)
    write_night(table, space, rel, path, _night(rel))
    done.append(f"{path}: {damage.kind} ({damage.detail}); restored from the index, "
                f"the damaged file kept as {copy.name}")
    event(cfg, {"event": "repaired", "file": str(path), "damage": damage.kind,
                "detail": damage.detail, "copy": str(copy)})


def _valid(d: dict[str, Any]) -> bool:
    from .reportfile import _row_ok

    return _row_ok(d)


def _one_file(cfg: Config, table: ReportRows, space: str, rel: str, path: Path,
              repair: bool, done: list[str], problems: list[str]) -> None:
    with table.transaction():
        state = table.file_state(space, rel)
        disk, damage, unknown = assess(table.file_rows(space, rel), state, path)
        if not repair and state is not None and disk.exists and damage is None \
                and not unknown and not disk.torn:
            return  # the file is what the index says: its audit is not read (a quick start)
        restored = _from_audit(cfg, table, space, rel)
        if restored:
            done.append(f"{rel}: {restored} measurement(s) back in the index from the audit")
        rows = table.file_rows(space, rel)
        disk, damage, unknown = assess(rows, table.file_state(space, rel), path)
        if damage is None:
            if unknown:
                adopt(table, space, rel, _night(rel), unknown)
                done.append(f"{rel}: {len(unknown)} row(s) of the file adopted into the index")
            if (unknown or restored or disk.torn) and disk.exists:
                write_night(table, space, rel, path, _night(rel))
            return
        if damage.kind == "deleted" and (damage.complete or restored or repair):
            table.set_file_state(space, rel, rows=0)  # what the index has is what there is
            write_night(table, space, rel, path, _night(rel))
            done.append(f"{path}: was deleted; rebuilt from the index ({len(rows)} row(s))")
            event(cfg, {"event": "rebuilt", "file": str(path), "rows": len(rows)})
            return
        if repair:
            _repair_damaged(cfg, table, space, rel, path, damage, done)
            return
        problems.append(damage.message())


def reconcile(config: Config, *, repair: bool = False) -> dict[str, Any]:
    """Rebuild the index from the outbox, its audit and the frames (see the module doc).

    Parameters
    ----------
    config : Config or anything :func:`starnode.config.resolve` accepts
    repair : bool
        Also restore truncated, altered and invalid files from the index (``starnode
        repair``: the observer's say); without it they are only named.

    Returns
    -------
    dict
        ``done`` (lines: what was changed), ``problems`` (damaged files left as they are, with
        what to do), ``resubmit`` (frames put back to be submitted again).
    """
    cfg = config
    done: list[str] = []
    problems: list[str] = []
    with ReportRows(cfg) as table:
        for space, rel, path in list(_files(cfg, table)):
            try:
                _one_file(cfg, table, space, rel, path, repair, done, problems)
            except Exception as exc:  # one file must not stop the others
                problems.append(f"report {path}: {type(exc).__name__}: {exc}")
        with table.transaction():
            ids = table.unindexed_reported_frames()
            n = table.reopen_frames(ids)
        if n:
            done.append(f"{n} frame(s) reported earlier but unknown to the index: submitted "
                        "again (their rows are written once)")
    for line in done:
        log.warning("reports: %s", line)
    for line in problems:
        log.error("%s", line)
    return {"done": done, "problems": problems, "resubmit": n}
