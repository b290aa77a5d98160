"""The exactly-once report writer: :func:`submit` and the session-level calls around it.

    from starnode.aavso import submit
    answer = submit(measurement, config)   # {"status", "message", "report_path", "rows", ...}

``measurement`` is a :class:`starnode.records.Measurement` or, as in the seed API, the dict
``run_pipeline`` returns. Statuses (:class:`starnode.errors.SubmitStatus`): ``queued`` (in the
outbox, for the observer to upload at WebObs), ``dry_run``, ``accepted`` / ``rejected``
(webobs mode), ``skipped`` (quality or check-star gate, with the reason), ``duplicate``
(already reported: nothing written), ``error`` (with the reason).

:func:`submit` reads as its steps: resolve the config and the observer code; turn the
measurement into a checked report entry; apply the gates; then, in one database transaction,
check the exactly-once key, add the entry to its row (or time bin), then append the new row to
the night's file (validated against the header) or, when a row changed, rebuild, validate and
replace the file (:mod:`starnode.aavso.reportfile`; a file that would not validate is never
written and the transaction rolls back). The observing night and the site come from the
measurement itself; nothing re-opens the frame. The tables belong to
:class:`starnode.store.ReportRows`.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starnode.config import OBSERVER_CODE_RULE, Config, ConfigLike, is_observer_code, resolve
from starnode.errors import AavsoError, ConfigError, FieldError, SubmitStatus
from starnode.frame.timesite import night_of
from starnode.records import Measurement
from starnode.store import ReportRows
from starnode.store.reports import DRY, LOCKED, REAL

from .entries import ReportEntry, entry_from_measurement, gate
from .outbox import audit, event, outbox_dir, relpath
from .reportfile import DamagedReport, InvalidReport, foreign_key, write_night
from .rows import bin_of, file_comments, file_text, format_row, measurement_key
from .spec import PLACEHOLDERS
from .webobs import upload_pending

log = logging.getLogger(__name__)

__all__ = ["STATUSES", "flush", "report_text", "resolve_uncertain", "submit"]

#: Every status :func:`submit` answers with.
STATUSES = tuple(s.value for s in SubmitStatus)
#: Upload state of a new row per mode: the observer uploads, nothing (dry run), or WebObs.
_UPLOAD_STATE = {"outbox": "manual", "dry_run": "none", "webobs": "pending"}


def _answer(status: SubmitStatus, message: str, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"status": status, "message": message, "report_path": None,
                           "rows": [], "accepted": 0, "rejected": 0}
    out.update(extra)
    return out


def _obscode(cfg: Config) -> str:
    """The observer code, upper case; :class:`ConfigError` when missing or a placeholder."""
    code = (cfg.aavso.observer_code or "").strip()
    if not code:
        raise ConfigError("aavso.observer_code is not set: starnode reports under your AAVSO "
                          "observer code and writes nothing without it")
    if not is_observer_code(code):
        raise ConfigError(f"aavso.observer_code {code!r} is not an AAVSO observer code "
                          f"({OBSERVER_CODE_RULE})")
    if code.upper() in PLACEHOLDERS:
        raise ConfigError(f"aavso.observer_code {code!r} is a placeholder; set your own code")
    return code.upper()


def _space(cfg: Config) -> str:
    return DRY if cfg.aavso.mode == "dry_run" else REAL


def _night(m: Measurement, cfg: Config) -> str:
    """The measurement's observing night; for a 0.1.0 dict without one, from its JD and the
    site longitude it carries (else the configured one, else Greenwich)."""
    if m.night:
        return str(m.night)
    lon = m.site_longitude if m.site_longitude is not None else cfg.site.longitude
    return night_of(float(m.jd), lon)


@dataclass
class _Job:
    """One measurement on its way into a report: where it goes and under which keys."""

    cfg: Config
    m: Measurement
    e: ReportEntry
    obscode: str
    night: str
    key: str
    space: str = REAL
    row_key: str = ""
    bin_start: float | None = None
    bin_end: float | None = None
    rel: str = ""
    common: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return outbox_dir(self.cfg) / self.rel

    def record(self) -> dict[str, Any]:
        return self.m.to_dict()


class _Abort(Exception):
    """Roll the transaction back: the rebuilt file would not validate (or, ``damaged``, the
    report file is damaged and nothing may be written to it until ``starnode repair``)."""

    def __init__(self, reason: str, *, damaged: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.damaged = damaged


#: Damaged report files already named in the log by this process (named once, not per frame).
_NAMED: set[str] = set()


# ---------------------------------------------------------------------------------------------
# submit
# ---------------------------------------------------------------------------------------------

def submit(result: Measurement | Mapping[str, Any], config: ConfigLike) -> dict[str, Any]:
    """Report one measurement (see the module docstring).

    Parameters
    ----------
    result : Measurement or dict
        What photometry produced (``run_pipeline``'s dict is read with
        :meth:`Measurement.from_dict`).
    config : Config or anything :func:`starnode.config.resolve` accepts

    Returns
    -------
    dict
        ``status`` (a :class:`~starnode.errors.SubmitStatus`, equal to its string),
        ``message``, ``report_path`` (the night's report file or None), ``rows`` (the data
        line(s) this measurement is in), ``accepted`` / ``rejected`` (rows WebObs confirmed /
        refused during this call), plus ``key``, ``night``, ``target`` once known, and
        ``retry: True`` for an error that may pass (disk full, read-only folder). Never raises
        for bad input or a failed upload: the status and message say what happened.
    """
    try:
        cfg = resolve(config)
        obscode = _obscode(cfg)
    except ConfigError as exc:
        log.error("AAVSO report not written: %s", exc)
        return _answer(SubmitStatus.ERROR, f"configuration: {exc}")
    try:
        job = _prepare(result, cfg, obscode)
        if isinstance(job, dict):
            return job
        return _write(job)
    except (OSError, sqlite3.Error) as exc:  # disk full, read-only...: passing, retried
        log.error("AAVSO report failed: %s: %s", type(exc).__name__, exc)
        return _answer(SubmitStatus.ERROR, f"{type(exc).__name__}: {exc}", retry=True)


def _refuse(cfg: Config, result: Any, reason: str) -> dict[str, Any]:
    log.error("AAVSO row not written for %r: %s", getattr(result, "target_name", None)
              or (result.get("target_name") if isinstance(result, Mapping) else None), reason)
    record = result.to_dict() if isinstance(result, Measurement) else result
    event(cfg, {"event": "error", "reason": reason, "measurement": record})
    return _answer(SubmitStatus.ERROR, f"cannot write this measurement: {reason}")


def _unfit(cfg: Config, m: Measurement, reason: str,
           common: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A measurement whose values do not fit the report (a bad OBJECT: a comma, ``|``, too
    long, an escape sequence...): a recorded skip with the reason, logged once, never retried
    at every start."""
    log.warning("AAVSO: %s not reported: %s", _shown(m.target_name), reason)
    event(cfg, {"event": "skipped", "reason": reason, "measurement": m.to_dict()})
    return _answer(SubmitStatus.SKIPPED, f"cannot be reported: {reason}", **(common or {}))


def _shown(name: Any) -> str:
    return repr(name).encode("ascii", "backslashreplace").decode("ascii")


def _prepare(result: Measurement | Mapping[str, Any], cfg: Config,
             obscode: str) -> _Job | dict[str, Any]:
    """Read, check and gate the measurement; the job, or the answer when it stops here."""
    a = cfg.aavso
    try:
        m = result if isinstance(result, Measurement) else Measurement.from_dict(result)
    except TypeError as exc:
        return _refuse(cfg, result, f"result must be a measurement dict ({exc})")
    try:
        e = entry_from_measurement(m, a.date_type)
    except FieldError as exc:  # the measurement itself: submitting it again never helps
        return _unfit(cfg, m, str(exc))
    job = _Job(cfg=cfg, m=m, e=e, obscode=obscode, night=_night(m, cfg),
               key=measurement_key(obscode, e.starid, e.band, e.jd), space=_space(cfg))
    job.common = {"key": job.key, "night": job.night, "target": e.starid}
    reason = gate(e, submit_poor_quality=a.submit_poor_quality,
                  max_check_deviation=a.max_check_deviation)
    if reason is None and e.synthetic and a.mode == "webobs":
        reason = "synthetic data are never uploaded to the AAVSO"
    if reason is not None:
        log.info("AAVSO: %s at JD %.5f skipped: %s", e.starid, e.jd, reason)
        event(cfg, {"event": "skipped", "key": job.key, "reason": reason,
                    "measurement": job.record()})
        return _answer(SubmitStatus.SKIPPED, reason, **job.common)
    if a.bin_minutes > 0:
        job.row_key, job.bin_start, job.bin_end = bin_of(obscode, e.starid, e.band, e.jd,
                                                         a.bin_minutes)
    else:
        job.row_key = job.key
    job.rel = relpath(job.space, job.night, e.starid, obscode)
    return job


def _write(job: _Job) -> dict[str, Any]:
    """The transaction, then (webobs mode) the upload of what became ready."""
    with ReportRows(job.cfg) as table:
        try:
            with table.transaction():
                answer = _record(table, job)
        except _Abort as exc:
            if exc.damaged:
                return _damaged(job, exc.reason)
            log.error("AAVSO: the report would not validate, measurement not written: %s",
                      exc.reason)
            event(job.cfg, {"event": "error", "key": job.key, "reason": exc.reason,
                            "measurement": job.record()})
            return _answer(SubmitStatus.ERROR, "the report would not pass validation: "
                           f"{exc.reason}", **job.common)
        if answer["status"] == SubmitStatus.QUEUED and job.cfg.aavso.mode == "webobs":
            answer = _after_upload(table, job, answer)
    return answer


def _damaged(job: _Job, reason: str) -> dict[str, Any]:
    """The report file is damaged: the measurement waits (``retry``) until it is repaired."""
    if reason not in _NAMED:
        _NAMED.add(reason)
        log.error("AAVSO: %s; new rows for it wait until then", reason)
        event(job.cfg, {"event": "damaged", "file": str(job.path), "reason": reason})
    return _answer(SubmitStatus.ERROR, f"not written: {reason}", **job.common, retry=True,
                   damaged=str(job.path))


def _duplicate_or_locked(table: ReportRows, job: _Job) -> dict[str, Any] | None:
    """The answer when the measurement is already reported or its bin already uploaded."""
    e = job.e
    old = table.measurement_row_key(job.space, job.key)
    if old is not None:
        prev = table.row(job.space, old)
        log.info("AAVSO: %s at JD %.5f is a duplicate", e.starid, e.jd)
        return _answer(SubmitStatus.DUPLICATE, "already reported: this measurement is in the "
                       "outbox/WebObs once", **job.common,
                       report_path=str(outbox_dir(job.cfg) / prev["file"]) if prev else None,
                       rows=[prev["line"]] if prev else [])
    row = table.row(job.space, job.row_key)
    if row is not None and row["upload"] in LOCKED:
        return _skip(job, f"its {job.cfg.aavso.bin_minutes:g}-min time bin was already uploaded "
                     f"to WebObs ({row['upload']}); a late frame cannot change a submitted row",
                     level=logging.WARNING)
    return None


def _skip(job: _Job, reason: str, level: int = logging.INFO) -> dict[str, Any]:
    log.log(level, "AAVSO: %s at JD %.5f skipped: %s", job.e.starid, job.e.jd, reason)
    event(job.cfg, {"event": "skipped", "key": job.key, "reason": reason,
                    "measurement": job.record()})
    return _answer(SubmitStatus.SKIPPED, reason, **job.common)


def _record(table: ReportRows, job: _Job) -> dict[str, Any]:
    """Inside the transaction: exactly-once check, the row, the file, the audit."""
    a, e = job.cfg.aavso, job.e
    stop = _duplicate_or_locked(table, job)
    if stop is not None:
        return stop
    members = [ReportEntry.from_dict(d) for d in table.member_data(job.space, job.row_key)]
    if members and members[0].signature() != e.signature():
        return _skip(job, "differs from the other frames of its time bin (check star, "
                     "comparison or chart changed) and cannot be averaged with them")
    members = sorted([*members, e], key=lambda x: x.jd)
    try:
        line = format_row(members, a.date_type)
    except FieldError as exc:
        return _unfit(job.cfg, job.m, str(exc), job.common)
    present = False
    if job.bin_start is None:  # a row the index adopted from the file (a lost ledger)?
        adopted = table.row(job.space, foreign_key(job.rel, line))
        if adopted is not None and adopted["line"] != line:
            log.info("AAVSO: %s at JD %.5f is already in %s (adopted row)", e.starid, e.jd,
                     job.rel)
            return _answer(SubmitStatus.DUPLICATE, "already reported: the report file has "
                           "this star, time and filter", **job.common,
                           report_path=str(job.path), rows=[adopted["line"]])
        if adopted is not None:  # this very line: it becomes this measurement's row
            table.delete_row(job.space, adopted["row_key"])
            present = True
    table.add_measurement(job.space, job.key, job.row_key, obscode=job.obscode,
                          starid=e.starid, band=e.band, night=job.night, jd=e.jd,
                          data=e.as_dict(), result=job.record())
    new_row, changed = _store_row(table, job, members, line)
    report, n_rows = _rewrite_file(table, job, line, new_row, changed, present)
    return _queued(job, members, line, report.as_dict(), n_rows)


def _store_row(table: ReportRows, job: _Job, members: list[ReportEntry],
               line: str) -> tuple[dict[str, Any] | None, dict[str, str | None]]:
    """Insert or update the row, and close the observer's bins this measurement ended.

    Returns the new row when it is the only change (it may then be appended to the file),
    None when the file must be rebuilt (a bin changed or closed); and the rows changed (row
    key -> its line before, None for a new row).
    """
    a, e = job.cfg.aavso, job.e
    row_jd = (members[0].jd + members[-1].jd) / 2
    new_row: dict[str, Any] | None = None
    old = table.row(job.space, job.row_key)
    changed: dict[str, str | None] = {job.row_key: None if old is None else str(old["line"])}
    if old is None:
        new_row = {"row_key": job.row_key, "obscode": job.obscode, "date_type": a.date_type,
                   "jd": row_jd, "line": line, "closed": job.bin_start is None}
        table.insert_row(job.space, job.row_key, obscode=job.obscode, starid=e.starid,
                         band=e.band, night=job.night, date_type=a.date_type, file=job.rel,
                         bin_start=job.bin_start, bin_end=job.bin_end, jd=row_jd, line=line,
                         n=len(members), closed=job.bin_start is None,
                         upload=_UPLOAD_STATE[a.mode])
    else:
        table.update_row(job.space, job.row_key, line=line, n=len(members), jd=row_jd,
                         date_type=a.date_type)
    # A bin closes when a later measurement of this observer falls outside it.
    if table.close_bins_ending_by(job.space, job.obscode, e.jd):
        new_row = None
    return new_row, changed


def _rewrite_file(table: ReportRows, job: _Job, line: str, new_row: dict[str, Any] | None,
                  changed: dict[str, str | None], present: bool) -> tuple[Any, int]:
    """Append the row to the night's file (or rebuild it), audit it; :class:`_Abort` if the
    result would not validate or the file is damaged (see :mod:`starnode.aavso.reportfile`)."""
    try:
        done = write_night(table, job.space, job.rel, job.path, job.night, new_row, changed,
                           present=present)
    except InvalidReport as exc:
        raise _Abort(str(exc)) from exc
    except DamagedReport as exc:
        raise _Abort(str(exc), damaged=True) from exc
    audit(outbox_dir(job.cfg), job.rel, {
        "event": "measurement", "mode": job.cfg.aavso.mode, "key": job.key,
        "row_key": job.row_key, "measurement": job.record(), "row": line,
        "rows_in_file": done.rows, "file": str(job.path), "write": done.how,
        "size": done.size, ("sha256" if done.how == "rewrite" else "sha256_row"): done.sha256,
        "validator": done.validation.as_dict()}, table=table, space=job.space)
    return done.validation, done.rows


def _queued(job: _Job, members: list[ReportEntry], line: str, validation: dict[str, Any],
            n_rows: int) -> dict[str, Any]:
    a, e, path = job.cfg.aavso, job.e, job.path
    dry = job.space == DRY
    status = SubmitStatus.DRY_RUN if dry else SubmitStatus.QUEUED
    where = "dry run, nothing will be marked as sent" if dry else (
        "in the outbox for upload at WebObs" if a.mode == "outbox" else "saved")
    bin_note = (f" (time bin of {len(members)} frames, still open)"
                if job.bin_start is not None else "")
    # DEBUG: the caller (the node) logs the one INFO line per frame, with this answer in it
    log.debug("AAVSO: %s %s %.3f±%.3f at JD %.5f -> %s%s (%d rows)", e.starid, e.band, e.mag,
              e.err, e.jd, path, bin_note, n_rows)
    return _answer(status, f"{where}: {path}{bin_note}", **job.common, report_path=str(path),
                   rows=[line], validation=validation)


def _after_upload(table: ReportRows, job: _Job, answer: dict[str, Any]) -> dict[str, Any]:
    """webobs mode: upload the closed, pending rows; fold the outcome into the answer."""
    summary = upload_pending(table, job.cfg)
    answer["accepted"] = summary["accepted"]
    answer["rejected"] = summary["rejected"]
    row = table.row(job.space, job.row_key)
    if row is None or not row["closed"]:
        answer["message"] += "; uploaded to WebObs when its time bin closes"
        if summary["messages"]:
            answer["message"] += "; " + "; ".join(summary["messages"])
        return answer
    if row["upload"] == "sent":
        answer["status"] = SubmitStatus.ACCEPTED
        answer["message"] = "WebObs confirmed the upload; " + answer["message"]
        return answer
    reason = "; ".join(summary["messages"]) or f"upload state {row['upload']}"
    rejected = summary["outcomes"].get(job.rel) == "rejected"
    answer["status"] = SubmitStatus.REJECTED if rejected else SubmitStatus.ERROR
    answer["message"] = f"not uploaded ({reason}); the row stays in {answer['report_path']}"
    return answer


# ---------------------------------------------------------------------------------------------
# flush, reports, uncertain uploads
# ---------------------------------------------------------------------------------------------

def flush(config: Config, night: str | None = None, target: str | None = None) -> dict[str, Any]:
    """Close open time bins and, in webobs mode, upload every closed row still pending.

    Call it at the end of a session or before ``starnode report``; rows whose earlier upload
    failed are retried too.

    Parameters
    ----------
    config : Config or anything :func:`starnode.config.resolve` accepts
    night : str, optional
        Only this observing night (``YYYY-MM-DD``).
    target : str, optional
        Only this star (AAVSO name, case-insensitive).

    Returns
    -------
    dict
        ``status`` (``ok`` or ``error``), ``message``, ``closed``, ``accepted``, ``rejected``.
    """
    cfg = config
    space = _space(cfg)
    with ReportRows(cfg) as table:
        with table.transaction():
            closed = table.close_open(space, night, target)
            if closed:
                for f in table.files(space, night, target):  # drop "bin still open"
                    try:
                        write_night(table, space, f["file"], outbox_dir(cfg) / f["file"],
                                    f["night"])
                    except (InvalidReport, DamagedReport) as exc:
                        log.error("AAVSO: %s not rewritten: %s", f["file"], exc)
        summary: dict[str, Any] = {"accepted": 0, "rejected": 0, "messages": []}
        if cfg.aavso.mode == "webobs":
            files = ([r["file"] for r in table.files(REAL, night, target)]
                     if night or target else None)
            summary = upload_pending(table, cfg, files=files)
    msg = f"{closed} bin(s) closed" + (f"; {summary['accepted']} row(s) accepted by WebObs"
                                       if cfg.aavso.mode == "webobs" else "")
    if summary["messages"]:
        msg += "; " + "; ".join(summary["messages"])
    return {"status": "error" if summary["messages"] else "ok", "message": msg,
            "closed": closed, "accepted": summary["accepted"], "rejected": summary["rejected"]}


def report_text(config: Config, night: str | None = None, target: str | None = None) -> str:
    """One valid AAVSO Extended File Format text with every reported row that matches.

    Rows of the dry-run space when ``aavso.mode`` is dry_run. Read-only: rows of still-open
    bins are included as they stand.

    Parameters
    ----------
    config : Config or anything :func:`starnode.config.resolve` accepts
    night : str, optional
        ``YYYY-MM-DD``, the evening date; all nights when None.
    target : str, optional
        AAVSO name, case-insensitive; all targets when None.

    Returns
    -------
    str

    Raises
    ------
    AavsoError
        Nothing matches.
    """
    cfg = config
    with ReportRows(cfg) as table:
        rows = table.rows(_space(cfg), night, target)
    if not rows:
        what = ", ".join(x for x in (f"night {night}" if night else "",
                                     f"target {target}" if target else "") if x) or "any night"
        raise AavsoError(f"no reported observations for {what}")
    return file_text(rows, file_comments(rows, night))


def resolve_uncertain(config: Config, *, sent: bool, night: str | None = None,
                      target: str | None = None) -> int:
    """Settle rows whose upload may or may not have reached WebObs.

    A timeout after sending, a process killed mid-upload or a partial confirmation leaves rows
    ``uncertain``; they are never resent automatically.

    Parameters
    ----------
    config : Config or anything :func:`starnode.config.resolve` accepts
    sent : bool
        True after you found them on WebObs; False to let them be uploaded again.
    night, target : str, optional
        Filters.

    Returns
    -------
    int
        Rows changed.
    """
    cfg = config
    with ReportRows(cfg) as table:
        changed = table.resolve_uncertain(sent=sent, night=night, target=target)
    log.info("AAVSO: %d uncertain row(s) marked %s", changed, "sent" if sent else "pending")
    return changed
