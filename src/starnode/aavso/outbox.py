"""The outbox: report files, the audit trail and the listing ``starnode status`` shows.

Everything lives under ``data_dir/outbox``: one report file per night, target and observer
(``<night>/<night>_<star>_<obscode>.txt``; dry runs under ``dry_run/``), an ``audit/`` folder
with one JSON line per event (measurement written, upload attempted, skip, error) and copies
of every uploaded file and every WebObs answer. Files are replaced atomically
(:func:`starnode.util.fsio.atomic_write`) or appended to durably
(:mod:`starnode.aavso.reportfile`) so a crash never leaves half a report, and audit lines are
fsynced; a report's audit line is written inside the rows' transaction and cut again if that
transaction never commits, so a retry after a kill never duplicates it. Everything is created
owner-only (folders 0700, files 0600): reports, audit and WebObs answers are the observer's.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from starnode.config import Config
from starnode.store import ReportRows
from starnode.store.reports import DRY, REAL
from starnode.util.fsio import atomic_write, private_dir

from .entries import slug
from .reportfile import FILE_MODE, append_line, audit_append

log = logging.getLogger(__name__)

__all__ = ["audit", "audit_path", "event", "outbox_dir", "outbox_files", "relpath", "write_file"]


def now() -> str:
    """UTC now, ISO 8601 to the second (the audit's and the tables' time stamps)."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def outbox_dir(config: Config) -> Path:
    """``data_dir/outbox``: report files, ``audit/`` records and kept WebObs answers.

    Parameters
    ----------
    config : Config or anything :func:`starnode.config.resolve` accepts

    Returns
    -------
    Path
    """
    return config.data_dir / "outbox"


def relpath(space: str, night: str, starid: str, obscode: str) -> str:
    """A report file's path relative to the outbox (``dry_run/...`` for dry runs)."""
    name = f"{night}/{night}_{slug(starid)}_{obscode}.txt"
    return f"dry_run/{name}" if space == DRY else name


def audit_path(outbox: Path, rel: str) -> Path:
    """The JSON-lines audit file of one report file."""
    return outbox / "audit" / Path(rel).with_suffix(".jsonl")


def _jsonl(record: Mapping[str, Any]) -> str:
    return json.dumps({"time": now(), **record}, default=str, sort_keys=True) + "\n"


def audit(outbox: Path, rel: str, record: Mapping[str, Any], table: ReportRows | None = None,
          space: str = REAL) -> None:
    """Append a time-stamped record to a report file's audit (fsynced, owner-only).

    Parameters
    ----------
    outbox : Path
        The outbox folder.
    rel : str
        The report file, relative to the outbox.
    record : mapping
        The record (JSON).
    table : ReportRows, optional
        Inside the rows' transaction: the line is written exactly once even if this process is
        killed before the COMMIT and the write is retried (:func:`reportfile.audit_append`).
    space : str
        The report file's space (with ``table``).

    Raises
    ------
    OSError
        The audit cannot be written.
    """
    path = audit_path(outbox, rel)
    private_dir(outbox / "audit")
    if table is None:
        append_line(path, _jsonl(record).encode("utf-8"))
    else:
        audit_append(table, space, rel, path, _jsonl(record))


def event(cfg: Config, record: Mapping[str, Any]) -> None:
    """Append a record to ``audit/events.jsonl`` (skips and errors); never raises."""
    try:
        folder = private_dir(outbox_dir(cfg) / "audit")
        append_line(folder / "events.jsonl", _jsonl(record).encode("utf-8"))
    except OSError as exc:
        log.warning("cannot write the AAVSO audit record: %s", exc)


def write_file(path: Path, text: str) -> str:
    """Replace a report (or audit copy) atomically, owner-only; returns its sha256.

    Raises
    ------
    UnicodeEncodeError
        ``text`` is not ASCII (rows are sanitised, so this is a bug, never silent).
    """
    private_dir(path.parent)
    return atomic_write(path, text.encode("ascii"), mode=FILE_MODE)


def outbox_files(config: Config) -> list[dict[str, Any]]:
    """The report files, oldest night first.

    Parameters
    ----------
    config : Config or anything :func:`starnode.config.resolve` accepts

    Returns
    -------
    list of dict
        ``path``, ``night``, ``target``, ``obscode``, ``dry_run``, ``rows``, ``open_bins``,
        ``exists``, ``sha256``, ``synthetic`` (rows of synthetic frames: never to upload) and
        ``states``: the rows' upload states (``manual`` = for the observer to upload,
        ``pending``, ``uploading``, ``sent``, ``uncertain``, ``none`` = dry run) with their
        counts.
    """
    cfg = config
    outbox = outbox_dir(cfg)
    with ReportRows(cfg) as table:
        rows = table.outbox_rows()
    files: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        entry = files.get((r["space"], r["file"]))
        if entry is None:
            path = outbox / r["file"]
            entry = files[(r["space"], r["file"])] = {
                "path": str(path), "night": r["night"], "target": r["starid"],
                "obscode": r["obscode"], "dry_run": r["space"] == DRY, "rows": 0,
                "open_bins": 0, "exists": path.exists(), "sha256": None, "synthetic": 0,
                "states": {},
            }
            if entry["exists"]:
                entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        entry["rows"] += 1
        entry["open_bins"] += 0 if r["closed"] else 1
        entry["synthetic"] += int(r["synthetic"] or 0)
        entry["states"][r["upload"]] = entry["states"].get(r["upload"], 0) + 1
    return list(files.values())
