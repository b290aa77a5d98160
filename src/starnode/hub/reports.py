"""Per-member AAVSO reports: each member's own points, under their own observer code.

Why the hub does not write its own formatter: rows come from the node's writer
(:mod:`starnode.aavso`: sanitising, quality and check-star gates, the row format, the
exactly-once key) and every file is checked by :mod:`starnode.aavso.validator`, so a row from
the hub is byte for byte what the member's own node would have written.

A member's report for a night holds only the points of the member's nodes that passed the
cross-check (``ok``, or ``unchecked`` where too few nodes observed); outliers and points of a
node held for review are left out and listed in the file's comments with the reason. Each row
is stored once under (observer code, measurement key) with ``ON CONFLICT DO NOTHING``; a row
whose point was flagged later is withdrawn, so the file always reflects the current verdict.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from .._version import SOFTWARE
from ..aavso.entries import gate, measurement_from_result
from ..aavso.rows import format_row, header_lines, measurement_key
from ..aavso.validator import validate_text
from ..errors import FieldError
from ..records import consistency_problems
from ..util.fsio import atomic_write
from . import db
from .consensus import crosscheck
from .store import HubError, HubStore

log = logging.getLogger(__name__)

__all__ = ["member_report", "reports_dir"]

_COLUMNS = "#NAME,DATE,MAG,MERR,FILT,TRANS,MTYPE,CNAME,CMAG,KNAME,KMAG,AMASS,GROUP,CHART,NOTES"


def reports_dir(store: HubStore) -> Path:
    """Where the hub writes members' reports.

    Parameters
    ----------
    store : HubStore
        The hub.

    Returns
    -------
    Path
        ``data_dir/hub-reports`` (one folder per observer code).
    """
    return store.cfg.data_dir / "hub-reports"


def _not_reportable(p: Any, held: dict[int, str]) -> str | None:
    """Why a stored point stays out of its member's report before the row gates, or None."""
    if p.flag == "outlier":
        return f"flagged by the cross-check: {p.flag_reason}"
    if p.node_id in held:
        return held[p.node_id]
    problems = consistency_problems(p.payload)  # stored before the door checked
    return f"inconsistent record: {'; '.join(problems)}" if problems else None


def member_report(store: HubStore, obscode: str, night: str, *,
                  check: bool = True) -> dict[str, Any]:
    """Write (and validate) a member's AAVSO report of a night.

    Parameters
    ----------
    store : HubStore
        The hub.
    obscode : str
        The member's AAVSO observer code.
    night : str
        The observing night, YYYY-MM-DD.
    check : bool
        Run :func:`~.consensus.crosscheck` of the night first (default).

    Returns
    -------
    dict
        ``path``, ``text``, ``rows``, ``left_out`` (the points left out, with the reason) and
        ``findings`` (the validator's).

    Raises
    ------
    HubError
        404 when the member is unknown or has nothing to report, 500 when the file does not
        validate.
    """
    code = obscode.strip().upper()
    cfg = store.cfg
    date_type = str(cfg.hub.date_type)
    if check:
        crosscheck(store, night)
    held, points = _member_points(store, code, night)
    rows: list[dict[str, Any]] = []
    left_out: list[str] = []
    excluded: list[int] = []
    now = time.time()
    for p in points:
        frame = str(p.payload.get("file", "?"))
        row, why = _report_row(cfg, p, held, code, night, date_type, now)
        if row is not None:
            rows.append(row)
        if why is not None:
            excluded.append(p.id)
            left_out.append(f"{frame} (JD {p.jd:.5f}): {why}")
    lines = _store_rows(store, code, night, rows, excluded)
    if not lines:
        raise HubError(f"observer {code} has no reportable point on night {night} "
                       f"({len(left_out)} left out: {'; '.join(left_out[:5])})", 404)
    text = _report_text(code, night, date_type, lines, left_out)
    findings = validate_text(text, f"{night}_{code}.txt")
    if not findings.ok:
        raise HubError(f"the report of {code} for {night} does not validate: "
                       f"{findings.summary()}", 500)
    path = reports_dir(store) / code / f"{night}_{code}.txt"
    atomic_write(path, text.encode("ascii"))
    log.info("report of %s for %s: %d row(s), %d left out -> %s", code, night, len(lines),
             len(left_out), path)
    return {"path": str(path), "text": text, "rows": len(lines), "left_out": left_out,
            "findings": [f.as_dict() for f in findings]}


def _member_points(store: HubStore, code: str, night: str) -> tuple[dict[int, str], list[Any]]:
    """The member's held nodes (id -> why) and the points of its nodes on the night, by time.

    Raises
    ------
    HubError
        404: no node belongs to the observer code.
    """
    m, n = db.measurements, db.nodes
    with store.engine.connect() as conn:
        members = conn.execute(sa.select(n.c.id, n.c.name, n.c.held, n.c.hold_reason)
                               .where(n.c.observer_code == code)).all()
        if not members:
            raise HubError(f"no node belongs to observer code {code!r}", 404)
        held = {r.id: f"node {r.name} is held for review: {r.hold_reason}"
                for r in members if r.held}
        points = conn.execute(
            sa.select(m.c.id, m.c.node_id, m.c.payload, m.c.flag, m.c.flag_reason, m.c.jd)
            .where(m.c.node_id.in_([r.id for r in members]), m.c.night == night)
            .order_by(m.c.jd)).all()
    return held, list(points)


def _report_row(cfg: Any, p: Any, held: dict[int, str], code: str, night: str,
                date_type: str, now: float) -> tuple[dict[str, Any] | None, str | None]:
    """One point's report row, or why it is left out."""
    why = _not_reportable(p, held)
    if why is not None:
        return None, why
    try:
        meas = measurement_from_result(p.payload, date_type)
        why = gate(meas, submit_poor_quality=bool(cfg.aavso.submit_poor_quality),
                   max_check_deviation=float(cfg.aavso.max_check_deviation))
        if why is not None:
            return None, why
        return {"obscode": code, "measurement_id": p.id, "night": night,
                "mkey": measurement_key(code, meas.starid, meas.band, meas.jd),
                "jd": meas.jd, "line": format_row([meas], date_type), "created": now}, None
    except FieldError as exc:
        return None, str(exc)


def _store_rows(store: HubStore, code: str, night: str, rows: list[dict[str, Any]],
                excluded: list[int]) -> list[str]:
    """Withdraw the rows of points left out, store the new ones once; returns the night's
    lines of the member, by time."""
    r = db.report_rows
    with store.engine.begin() as conn:
        if excluded:
            conn.execute(r.delete().where(r.c.obscode == code,
                                          r.c.measurement_id.in_(excluded)))
        if rows:
            conn.execute(db.insert_ignore(store.engine, r, ["obscode", "mkey"]), rows)
        return [x.line for x in conn.execute(
            sa.select(r.c.line).where(r.c.obscode == code, r.c.night == night)
            .order_by(r.c.jd, r.c.mkey))]


def _report_text(code: str, night: str, date_type: str, lines: list[str],
                 left_out: list[str]) -> str:
    text_lines = header_lines(code, date_type, SOFTWARE)
    text_lines.append(f"# starnode hub report: observing night of {night}, observer {code}")
    if any("SYNTHETIC DATA" in x for x in lines):
        text_lines.append("# SYNTHETIC DATA - never upload this file to the AAVSO")
    text_lines += [f"# left out: {x}" for x in left_out]
    text_lines.append(_COLUMNS)
    return "\n".join(text_lines + lines) + "\n"
