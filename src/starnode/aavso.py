"""AAVSO reporting: :func:`submit` turns a photometry result into AAVSO Extended File Format rows.

    from starnode.aavso import submit
    answer = submit(result, config)   # {"status", "message", "report_path", "rows", ...}

Statuses: ``queued`` (in the outbox, for the observer to upload at WebObs), ``dry_run``,
``accepted`` / ``rejected`` (webobs mode), ``skipped`` (quality or check-star gate, with the
reason), ``duplicate`` (already reported: nothing written), ``error`` (with the reason).

Everything lives under ``data_dir``: the SQLite database (``config.db_path``) holds every
reported measurement under its exactly-once key and every row; the outbox files are regenerated
from it. See docs/aavso.md for the file format, the outbox layout, the modes, binning and the
night definition.

Public API: :func:`submit`, :func:`flush`, :func:`report_text`, :func:`outbox_files`,
:func:`resolve_uncertain`, :func:`outbox_dir`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import re
import sqlite3
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from . import SOFTWARE
from .aavso_report import (
    FieldError,
    Measurement,
    bin_of,
    format_row,
    gate,
    header_lines,
    measurement_from_result,
    measurement_key,
    night_of,
    slug,
)
from .config import Config, ConfigError, resolve
from .db import connect, transaction
from .validator import validate_text

log = logging.getLogger(__name__)

__all__ = [
    "STATUSES",
    "AavsoError",
    "flush",
    "outbox_dir",
    "outbox_files",
    "report_text",
    "resolve_uncertain",
    "submit",
]

STATUSES = ("queued", "dry_run", "accepted", "rejected", "skipped", "duplicate", "error")
_REAL, _DRY = "real", "dry_run"
# aavso_rows.upload: manual (outbox mode: the observer uploads), none (dry run), pending (webobs,
# to upload), uploading (a request is under way, or a process died during it), sent (WebObs
# confirmed), uncertain (may or may not have reached WebObs: never resent automatically).
_LOCKED = ("uploading", "sent", "uncertain")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS aavso_measurements (
    space    TEXT NOT NULL,
    mkey     TEXT NOT NULL,
    row_key  TEXT NOT NULL,
    obscode  TEXT NOT NULL,
    starid   TEXT NOT NULL,
    band     TEXT NOT NULL,
    night    TEXT NOT NULL,
    jd       REAL NOT NULL,
    data     TEXT NOT NULL,
    result   TEXT NOT NULL,
    created  TEXT NOT NULL,
    PRIMARY KEY (space, mkey)
);
CREATE INDEX IF NOT EXISTS aavso_measurements_row ON aavso_measurements (space, row_key);
CREATE TABLE IF NOT EXISTS aavso_rows (
    space     TEXT NOT NULL,
    row_key   TEXT NOT NULL,
    obscode   TEXT NOT NULL,
    starid    TEXT NOT NULL,
    band      TEXT NOT NULL,
    night     TEXT NOT NULL,
    date_type TEXT NOT NULL,
    file      TEXT NOT NULL,
    bin_start REAL,
    bin_end   REAL,
    jd        REAL NOT NULL,
    line      TEXT NOT NULL,
    n         INTEGER NOT NULL,
    closed    INTEGER NOT NULL,
    upload    TEXT NOT NULL,
    upload_id TEXT,
    updated   TEXT NOT NULL,
    PRIMARY KEY (space, row_key)
);
CREATE INDEX IF NOT EXISTS aavso_rows_file ON aavso_rows (space, file);
"""


class AavsoError(RuntimeError):
    """A report cannot be produced (e.g. :func:`report_text` finds no rows)."""


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------

def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def outbox_dir(config: Any) -> Path:
    """``data_dir/outbox``: report files, ``audit/`` records and kept WebObs answers."""
    return resolve(config).data_dir / "outbox"


def _connect(cfg: Config) -> sqlite3.Connection:
    conn = connect(cfg.db_path)
    conn.executescript(_SCHEMA)
    return conn


def _obscode(cfg: Config) -> str:
    code = (cfg.aavso.observer_code or "").strip()
    if not code:
        raise ConfigError("aavso.observer_code is not set: starnode reports under your AAVSO "
                          "observer code and writes nothing without it")
    if not code.isascii() or not code.isalnum() or len(code) > 6:
        raise ConfigError(f"aavso.observer_code {code!r} is not an AAVSO observer code "
                          "(1-6 letters/digits)")
    if code.upper() in ("XXX", "XXXX", "XXXXX", "ABC", "ABCD", "NA", "NONE", "TEST",
                        "TST01", "YOURCODE", "CHANGEME", "OBSCODE"):
        raise ConfigError(f"aavso.observer_code {code!r} is a placeholder; set your own code")
    return code.upper()


def _longitude(cfg: Config, result: Mapping[str, Any]) -> float | None:
    if cfg.site.longitude is not None:
        return float(cfg.site.longitude)
    for value in (result.get("site_longitude"),
                  (result.get("site") or {}).get("longitude")
                  if isinstance(result.get("site"), Mapping) else None):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    path = result.get("file")
    if path and os.path.exists(str(path)):
        from .fitsheader import read_header

        value = read_header(str(path)).get("SITELONG")
        try:
            return float(value) if value is not None else None
        except (TypeError, ValueError):
            return None
    return None


def _relpath(space: str, night: str, starid: str, obscode: str) -> str:
    name = f"{night}/{night}_{slug(starid)}_{obscode}.txt"
    return f"dry_run/{name}" if space == _DRY else name


def _audit_path(outbox: Path, rel: str) -> Path:
    return outbox / "audit" / Path(rel).with_suffix(".jsonl")


def _append_jsonl(path: Path, record: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(_dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _atomic_write(path: Path, data: bytes) -> str:
    """Write temp + fsync + os.replace (+ fsync of the folder); returns the sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        pass
    else:
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)
    return hashlib.sha256(data).hexdigest()


def _file_text(rows: Iterable[sqlite3.Row], comments: Iterable[str] = ()) -> str:
    """Header + rows (sorted by time); #OBSCODE/#DATE lines repeat where they change."""
    rows = sorted(rows, key=lambda r: (r["jd"], r["row_key"]))
    if not rows:
        raise AavsoError("no rows")
    first = rows[0]
    lines = header_lines(first["obscode"], first["date_type"], SOFTWARE)
    lines += [f"# {c}" for c in comments]
    lines.append("#NAME,DATE,MAG,MERR,FILT,TRANS,MTYPE,CNAME,CMAG,KNAME,KMAG,AMASS,GROUP,CHART,"
                 "NOTES")
    code, dtype = first["obscode"], first["date_type"]
    for r in rows:
        if r["obscode"] != code:
            code = r["obscode"]
            lines.append(f"#OBSCODE={code}")
        if r["date_type"] != dtype:
            dtype = r["date_type"]
            lines.append(f"#DATE={dtype}")
        lines.append(r["line"])
    return "\n".join(lines) + "\n"


def _comments(rows: list[sqlite3.Row], night: str | None) -> list[str]:
    out = []
    if night:
        out.append(f"starnode report: observing night of {night} (local evening date at the "
                   "site)")
    if any(not r["closed"] for r in rows):
        out.append("a time bin is still open: its row may change until the bin closes")
    if any("SYNTHETIC DATA" in r["line"] for r in rows):
        out.append("SYNTHETIC DATA - never upload this file to the AAVSO")
    return out


def _answer(status: str, message: str, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"status": status, "message": message, "report_path": None,
                           "rows": [], "accepted": 0, "rejected": 0}
    out.update(extra)
    return out


# ---------------------------------------------------------------------------------------------
# submit
# ---------------------------------------------------------------------------------------------

def submit(result: Mapping[str, Any], config: Any) -> dict[str, Any]:
    """Report one photometry result (see the module docstring). Never raises for bad input or a
    failed upload: the answer's ``status`` and ``message`` say what happened.

    Answer keys: ``status``, ``message``, ``report_path`` (the night's report file or None),
    ``rows`` (the data line(s) this measurement is in), ``accepted`` / ``rejected`` (rows WebObs
    confirmed / refused during this call), plus ``key``, ``night``, ``target``.
    """
    try:
        cfg = resolve(config)
    except ConfigError as exc:
        log.error("AAVSO report not written: %s", exc)
        return _answer("error", f"configuration: {exc}")
    try:
        return _submit(result, cfg)
    except (OSError, sqlite3.Error) as exc:
        log.exception("AAVSO report failed")
        return _answer("error", f"{type(exc).__name__}: {exc}")


def _event(cfg: Config, record: dict[str, Any]) -> None:
    try:
        _append_jsonl(outbox_dir(cfg) / "audit" / "events.jsonl", {"time": _now(), **record})
    except OSError as exc:
        log.warning("cannot write the AAVSO audit record: %s", exc)


def _submit(result: Mapping[str, Any], cfg: Config) -> dict[str, Any]:
    a = cfg.aavso
    try:
        obscode = _obscode(cfg)
    except ConfigError as exc:
        log.error("AAVSO report not written: %s", exc)
        return _answer("error", str(exc))
    date_type = a.date_type
    try:
        m = measurement_from_result(result, date_type)
    except FieldError as exc:
        name = result.get("target_name") if isinstance(result, Mapping) else None
        log.error("AAVSO row not written for %r (%s): %s", name,
                  result.get("file") if isinstance(result, Mapping) else None, exc)
        _event(cfg, {"event": "error", "reason": str(exc), "measurement": result})
        return _answer("error", f"cannot write this measurement: {exc}")

    reason = gate(m, submit_poor_quality=a.submit_poor_quality,
                  max_check_deviation=a.max_check_deviation)
    if reason is None and m.synthetic and a.mode == "webobs":
        reason = "synthetic data are never uploaded to the AAVSO"
    night = night_of(m.jd, _longitude(cfg, result))
    key = measurement_key(obscode, m.starid, m.band, m.jd)
    common = {"key": key, "night": night, "target": m.starid}
    if reason is not None:
        log.info("AAVSO: %s at JD %.5f skipped: %s", m.starid, m.jd, reason)
        _event(cfg, {"event": "skipped", "key": key, "reason": reason, "measurement": result})
        return _answer("skipped", reason, **common)

    space = _DRY if a.mode == "dry_run" else _REAL
    binned = a.bin_minutes > 0
    if binned:
        row_key, bin_start, bin_end = bin_of(obscode, m.starid, m.band, m.jd, a.bin_minutes)
    else:
        row_key, bin_start, bin_end = key, None, None
    rel = _relpath(space, night, m.starid, obscode)
    outbox = outbox_dir(cfg)
    path = outbox / rel

    conn = _connect(cfg)
    try:
        answer = _record(conn, cfg, result, m, space, key, row_key, bin_start, bin_end, rel,
                         path, obscode, night, common)
        if answer["status"] == "queued" and a.mode == "webobs":
            answer = _after_upload(conn, cfg, answer, space, row_key, rel)
    finally:
        conn.close()
    return answer


def _record(conn: sqlite3.Connection, cfg: Config, result: Mapping[str, Any], m: Measurement,
            space: str, key: str, row_key: str, bin_start: float | None, bin_end: float | None,
            rel: str, path: Path, obscode: str, night: str,
            common: dict[str, Any]) -> dict[str, Any]:
    """The transaction: duplicate check, insert, rebuild the row and the night's file."""
    try:
        return _record_tx(conn, cfg, result, m, space, key, row_key, bin_start, bin_end, rel,
                          path, obscode, night, common)
    except _Abort as exc:
        log.error("AAVSO: the report would not validate, measurement not written: %s",
                  exc.reason)
        _event(cfg, {"event": "error", "key": key, "reason": exc.reason, "measurement": result})
        return _answer("error", f"the report would not pass validation: {exc.reason}",
                       **common)


class _Abort(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _record_tx(conn: sqlite3.Connection, cfg: Config, result: Mapping[str, Any],
               m: Measurement, space: str, key: str, row_key: str, bin_start: float | None,
               bin_end: float | None, rel: str, path: Path, obscode: str, night: str,
               common: dict[str, Any]) -> dict[str, Any]:
    a = cfg.aavso
    with transaction(conn):
        old = conn.execute("SELECT row_key FROM aavso_measurements WHERE space=? AND mkey=?",
                           (space, key)).fetchone()
        if old is not None:
            prev = conn.execute("SELECT line, file FROM aavso_rows WHERE space=? AND row_key=?",
                                (space, old["row_key"])).fetchone()
            msg = "already reported: this measurement is in the outbox/WebObs once"
            log.info("AAVSO: %s at JD %.5f is a duplicate", m.starid, m.jd)
            return _answer("duplicate", msg, **common,
                           report_path=str(outbox_dir(cfg) / prev["file"]) if prev else None,
                           rows=[prev["line"]] if prev else [])
        row = conn.execute("SELECT * FROM aavso_rows WHERE space=? AND row_key=?",
                           (space, row_key)).fetchone()
        if row is not None and row["upload"] in _LOCKED:
            reason = (f"its {a.bin_minutes:g}-min time bin was already uploaded to WebObs "
                      f"({row['upload']}); a late frame cannot change a submitted row")
            log.warning("AAVSO: %s at JD %.5f skipped: %s", m.starid, m.jd, reason)
            _event(cfg, {"event": "skipped", "key": key, "reason": reason, "measurement": result})
            return _answer("skipped", reason, **common)
        members = [Measurement.from_dict(json.loads(r["data"])) for r in conn.execute(
            "SELECT data FROM aavso_measurements WHERE space=? AND row_key=? ORDER BY jd",
            (space, row_key))]
        if members and members[0].signature() != m.signature():
            reason = ("differs from the other frames of its time bin (check star, comparison "
                      "or chart changed) and cannot be averaged with them")
            _event(cfg, {"event": "skipped", "key": key, "reason": reason, "measurement": result})
            return _answer("skipped", reason, **common)
        members = sorted([*members, m], key=lambda x: x.jd)
        try:
            line = format_row(members, a.date_type)
        except FieldError as exc:
            _event(cfg, {"event": "error", "key": key, "reason": str(exc),
                         "measurement": result})
            return _answer("error", f"cannot write this measurement: {exc}", **common)
        conn.execute(
            "INSERT INTO aavso_measurements (space, mkey, row_key, obscode, starid, band, night, "
            "jd, data, result, created) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (space, key, row_key, obscode, m.starid, m.band, night, m.jd, _dumps(m.as_dict()),
             _dumps(result), _now()))
        upload = {"outbox": "manual", "dry_run": "none", "webobs": "pending"}[a.mode]
        row_jd = (members[0].jd + members[-1].jd) / 2
        closed = 0 if bin_start is not None else 1
        if row is None:
            conn.execute(
                "INSERT INTO aavso_rows (space, row_key, obscode, starid, band, night, date_type,"
                " file, bin_start, bin_end, jd, line, n, closed, upload, upload_id, updated) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,NULL,?)",
                (space, row_key, obscode, m.starid, m.band, night, a.date_type, rel, bin_start,
                 bin_end, row_jd, line, len(members), closed, upload, _now()))
        else:
            conn.execute("UPDATE aavso_rows SET line=?, n=?, jd=?, date_type=?, updated=? "
                         "WHERE space=? AND row_key=?",
                         (line, len(members), row_jd, a.date_type, _now(), space, row_key))
        # A bin closes when a later measurement of this observer falls outside it.
        conn.execute("UPDATE aavso_rows SET closed=1, updated=? WHERE space=? AND obscode=? "
                     "AND closed=0 AND bin_end IS NOT NULL AND bin_end <= ?",
                     (_now(), space, obscode, m.jd))
        file_rows = conn.execute("SELECT * FROM aavso_rows WHERE space=? AND file=?",
                                 (space, rel)).fetchall()
        text = _file_text(file_rows, _comments(file_rows, night))
        report = validate_text(text, path.name)
        if not report.ok:
            # Never replace a valid file with an invalid one: roll back, say why.
            reason = "; ".join(str(f) for f in report.errors[:5])
            raise _Abort(reason)
        sha = _atomic_write(path, text.encode("ascii"))
        _append_jsonl(_audit_path(outbox_dir(cfg), rel), {
            "time": _now(), "event": "measurement", "mode": a.mode, "key": key,
            "row_key": row_key, "measurement": result, "row": line, "rows_in_file":
            len(file_rows), "file": str(path), "sha256": sha, "validator": report.as_dict(),
        })
    status = "dry_run" if space == _DRY else "queued"
    where = "dry run, nothing will be marked as sent" if space == _DRY else (
        "in the outbox for upload at WebObs" if a.mode == "outbox" else "saved")
    bin_note = f" (time bin of {len(members)} frames, still open)" if bin_start is not None \
        else ""
    # DEBUG: the caller (the node) logs the one INFO line per frame, with this answer in it
    log.debug("AAVSO: %s %s %.3f±%.3f at JD %.5f -> %s%s", m.starid, m.band, m.mag, m.err, m.jd,
              path, bin_note)
    return _answer(status, f"{where}: {path}{bin_note}", **common, report_path=str(path),
                   rows=[line], validation=report.as_dict())


def _after_upload(conn: sqlite3.Connection, cfg: Config, answer: dict[str, Any], space: str,
                  row_key: str, rel: str) -> dict[str, Any]:
    """webobs mode: upload the closed, pending rows of this file; fold the outcome in."""
    summary = _upload_pending(conn, cfg)
    answer["accepted"] = summary["accepted"]
    answer["rejected"] = summary["rejected"]
    row = conn.execute("SELECT closed, upload FROM aavso_rows WHERE space=? AND row_key=?",
                       (space, row_key)).fetchone()
    if not row["closed"]:
        answer["message"] += "; uploaded to WebObs when its time bin closes"
        if summary["messages"]:
            answer["message"] += "; " + "; ".join(summary["messages"])
        return answer
    state = row["upload"]
    if state == "sent":
        answer["status"], answer["message"] = "accepted", "WebObs confirmed the upload; " + \
            answer["message"]
    else:
        reason = "; ".join(summary["messages"]) or f"upload state {state}"
        rejected = summary["outcomes"].get(rel) == "rejected"
        answer["status"] = "rejected" if rejected else "error"
        answer["message"] = f"not uploaded ({reason}); the row stays in {answer['report_path']}"
    return answer


# ---------------------------------------------------------------------------------------------
# uploading (webobs mode)
# ---------------------------------------------------------------------------------------------

def _upload_pending(conn: sqlite3.Connection, cfg: Config,
                    files: list[str] | None = None) -> dict[str, Any]:
    from .webobs import CredentialsError, load_credentials, upload

    summary: dict[str, Any] = {"accepted": 0, "rejected": 0, "messages": [], "outcomes": {}}
    query = "SELECT * FROM aavso_rows WHERE space=? AND upload='pending' AND closed=1"
    params: list[Any] = [_REAL]
    if files is not None:
        query += f" AND file IN ({','.join('?' * len(files))})"
        params += files
    if conn.execute(query, params).fetchone() is None:
        return summary
    try:
        re.compile(cfg.aavso.webobs_success_pattern)
    except re.error as exc:
        msg = f"aavso.webobs_success_pattern is not a valid regular expression: {exc}"
        log.error("WebObs upload not attempted: %s", msg)
        summary["messages"].append(msg)
        return summary
    try:
        creds = load_credentials(cfg)
    except CredentialsError as exc:
        log.error("WebObs upload not attempted: %s", exc)
        summary["messages"].append(str(exc))
        return summary
    outbox = outbox_dir(cfg)
    batches: dict[str, tuple[str, list[sqlite3.Row]]] = {}
    with transaction(conn):
        for r in conn.execute(query, params).fetchall():
            if r["file"] not in batches:
                batches[r["file"]] = (uuid.uuid4().hex[:12], [])
            batches[r["file"]][1].append(r)
        for upload_id, rows in batches.values():
            conn.executemany("UPDATE aavso_rows SET upload='uploading', upload_id=?, updated=? "
                             "WHERE space=? AND row_key=?",
                             [(upload_id, _now(), _REAL, r["row_key"]) for r in rows])
    for rel, (upload_id, rows) in batches.items():
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        upload_name = f"{stamp}_{upload_id}_{Path(rel).name}"
        text = _file_text(rows)
        report = validate_text(text, upload_name)
        sent_copy = outbox / "audit" / "uploads" / upload_name
        sha = _atomic_write(sent_copy, text.encode("ascii"))
        if not report.ok:
            outcome_d = {"status": "error", "reason": "upload file does not validate: " +
                         "; ".join(str(f) for f in report.errors[:5])}
            new_state = "pending"
        else:
            log.info("WebObs: uploading %d row(s) of %s (%s)", len(rows), rel, upload_id)
            try:
                outcome = upload(text.encode("ascii"), Path(rel).name, len(rows), cfg, creds,
                                 outbox / "audit" / "responses", upload_id)
                outcome_d = outcome.as_dict()
            except Exception as exc:  # unknown whether anything was sent: never resend blindly
                log.exception("WebObs upload %s failed unexpectedly", upload_id)
                outcome_d = {"status": "uncertain", "reason": f"unexpected {type(exc).__name__} "
                             "during the upload; check WebObs before sending again"}
            new_state = {"accepted": "sent", "uncertain": "uncertain"}.get(
                outcome_d["status"], "pending")
        with transaction(conn):
            conn.executemany("UPDATE aavso_rows SET upload=?, updated=? WHERE space=? AND "
                             "row_key=? AND upload_id=?",
                             [(new_state, _now(), _REAL, r["row_key"], upload_id) for r in rows])
        status = outcome_d["status"]
        summary["outcomes"][rel] = status
        if status == "accepted":
            summary["accepted"] += len(rows)
            log.info("WebObs accepted %d row(s) of %s", len(rows), rel)
        else:
            if status == "rejected":
                summary["rejected"] += len(rows)
            summary["messages"].append(f"WebObs {status}: {outcome_d['reason']}")
            log.error("WebObs upload of %s %s: %s", rel, status, outcome_d["reason"])
        _append_jsonl(_audit_path(outbox, rel), {
            "time": _now(), "event": "upload", "upload_id": upload_id, "url":
            cfg.aavso.webobs_url, "rows": [r["line"] for r in rows], "row_keys":
            [r["row_key"] for r in rows], "file": str(sent_copy), "sha256": sha,
            "validator": report.as_dict(), "outcome": outcome_d, "state": new_state,
        })
    return summary


# ---------------------------------------------------------------------------------------------
# flush, reports, outbox listing
# ---------------------------------------------------------------------------------------------

def _where(night: str | None, target: str | None) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if night:
        clauses.append("night=?")
        params.append(night)
    if target:
        clauses.append("UPPER(starid)=?")
        params.append(" ".join(target.upper().split()))
    return "".join(f" AND {c}" for c in clauses), params


def flush(config: Any, night: str | None = None, target: str | None = None) -> dict[str, Any]:
    """Close every open time bin (matching ``night``/``target``) and, in webobs mode, upload all
    closed rows still pending (also rows whose earlier upload failed). Call it at the end of a
    session or before ``starnode report``. Returns ``{"status", "message", "closed",
    "accepted", "rejected"}``."""
    cfg = resolve(config)
    space = _DRY if cfg.aavso.mode == "dry_run" else _REAL
    where, params = _where(night, target)
    conn = _connect(cfg)
    try:
        with transaction(conn):
            cur = conn.execute(f"UPDATE aavso_rows SET closed=1, updated=? WHERE space=? AND "
                               f"closed=0{where}", [_now(), space, *params])
            closed = cur.rowcount
            if closed:
                files = conn.execute(f"SELECT DISTINCT file, night FROM aavso_rows WHERE "
                                     f"space=?{where}", [space, *params]).fetchall()
                for f in files:  # drop the "bin still open" comment
                    rows = conn.execute("SELECT * FROM aavso_rows WHERE space=? AND file=?",
                                        (space, f["file"])).fetchall()
                    text = _file_text(rows, _comments(rows, f["night"]))
                    if validate_text(text).ok:
                        _atomic_write(outbox_dir(cfg) / f["file"], text.encode("ascii"))
        summary: dict[str, Any] = {"accepted": 0, "rejected": 0, "messages": []}
        if cfg.aavso.mode == "webobs":
            files_sel = None
            if night or target:
                files_sel = [r["file"] for r in conn.execute(
                    f"SELECT DISTINCT file FROM aavso_rows WHERE space=?{where}",
                    [_REAL, *params])]
            summary = _upload_pending(conn, cfg, files=files_sel)
    finally:
        conn.close()
    status = "error" if summary["messages"] else "ok"
    msg = f"{closed} bin(s) closed; {summary['accepted']} row(s) accepted by WebObs"
    if summary["messages"]:
        msg += "; " + "; ".join(summary["messages"])
    return {"status": status, "message": msg, "closed": closed,
            "accepted": summary["accepted"], "rejected": summary["rejected"]}


def report_text(config: Any, night: str | None = None, target: str | None = None) -> str:
    """One valid AAVSO Extended File Format text with every reported row (of the dry-run space
    when ``aavso.mode`` is dry_run) of ``night`` (``YYYY-MM-DD``, the evening date) and/or
    ``target`` (AAVSO name, case-insensitive); all nights and targets when None. Read-only:
    rows of still-open bins are included as they stand. Raises :class:`AavsoError` when nothing
    matches."""
    cfg = resolve(config)
    space = _DRY if cfg.aavso.mode == "dry_run" else _REAL
    where, params = _where(night, target)
    conn = _connect(cfg)
    try:
        rows = conn.execute(f"SELECT * FROM aavso_rows WHERE space=?{where}",
                            [space, *params]).fetchall()
    finally:
        conn.close()
    if not rows:
        what = ", ".join(x for x in (f"night {night}" if night else "",
                                     f"target {target}" if target else "") if x) or "any night"
        raise AavsoError(f"no reported observations for {what}")
    return _file_text(rows, _comments(rows, night))


def outbox_files(config: Any) -> list[dict[str, Any]]:
    """The report files, oldest night first: ``path``, ``night``, ``target``, ``obscode``,
    ``dry_run``, ``rows``, ``open_bins``, ``exists``, ``sha256`` and the rows' upload states
    (``manual`` = for the observer to upload, ``pending``, ``uploading``, ``sent``,
    ``uncertain``, ``none`` = dry run)."""
    cfg = resolve(config)
    outbox = outbox_dir(cfg)
    conn = _connect(cfg)
    try:
        rows = conn.execute("SELECT space, file, night, starid, obscode, closed, upload "
                            "FROM aavso_rows ORDER BY night, file").fetchall()
    finally:
        conn.close()
    files: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        entry = files.get((r["space"], r["file"]))
        if entry is None:
            path = outbox / r["file"]
            entry = files[(r["space"], r["file"])] = {
                "path": str(path), "night": r["night"], "target": r["starid"],
                "obscode": r["obscode"], "dry_run": r["space"] == _DRY, "rows": 0,
                "open_bins": 0, "exists": path.exists(), "sha256": None,
                "states": {},
            }
            if entry["exists"]:
                entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        entry["rows"] += 1
        entry["open_bins"] += 0 if r["closed"] else 1
        entry["states"][r["upload"]] = entry["states"].get(r["upload"], 0) + 1
    return list(files.values())


def resolve_uncertain(config: Any, *, sent: bool, night: str | None = None,
                      target: str | None = None) -> int:
    """Settle rows whose upload may or may not have reached WebObs (a timeout after sending, a
    process killed mid-upload, a partial confirmation): ``sent=True`` after you found them on
    WebObs, ``sent=False`` to let them be uploaded again. Returns the number of rows changed."""
    cfg = resolve(config)
    where, params = _where(night, target)
    conn = _connect(cfg)
    try:
        with transaction(conn):
            cur = conn.execute(
                f"UPDATE aavso_rows SET upload=?, updated=? WHERE space=? AND upload IN "
                f"('uncertain', 'uploading'){where}",
                ["sent" if sent else "pending", _now(), _REAL, *params])
            changed = cur.rowcount
    finally:
        conn.close()
    log.info("AAVSO: %d uncertain row(s) marked %s", changed, "sent" if sent else "pending")
    return changed
