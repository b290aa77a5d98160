"""Members ask the network for stars, and hear back in words.

A request (``starnode hub request STAR --member CODE``, ``POST /api/v1/requests``, the form on
the hub's page) becomes a wanted target of kind ``request`` under the member's code; the next
allocation gives it to a node that can observe it. :func:`news` answers "what became of my
requests" in sentences a member can hear: "SS Cyg was observed by 3 telescopes last night; 41
measurements reported under your code HKA."
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

import sqlalchemy as sa

from ..frame.timesite import night_of
from ..util.jd import jd_from_unix
from . import db
from .nightplans import add_wanted, check_coords
from .store import HubError, HubStore, Principal, target_key
from .wire import StarRequest

log = logging.getLogger(__name__)

__all__ = ["add_request", "news"]



def _known_coords(conn: sa.Connection, key: str) -> tuple[float, float] | None:
    w = db.wanted
    row = conn.execute(sa.select(w.c.ra, w.c.dec).where(
        (w.c.target == key) & w.c.ra.is_not(None)).limit(1)).first()
    return (float(row.ra), float(row.dec)) if row else None


def add_request(store: HubStore, who: Principal, req: StarRequest,
                now: float | None = None) -> dict[str, Any]:
    """Record a member's request for a star.

    Parameters
    ----------
    store : HubStore
        The hub.
    who : Principal
        An admin, or a node of the requesting member (a node cannot ask in another member's
        name: 403).
    req : StarRequest
        The validated request.
    now : float, optional
        UTC epoch seconds.

    Returns
    -------
    dict
        ``ok``, ``star``, ``member``, ``until``, ``message`` (in words).

    Raises
    ------
    HubError
        403 another member's name; 422 an ``until`` in the past.
    """
    member = req.member.upper()
    if who.role != "admin" and (who.observer_code or "").upper() != member:
        raise HubError(f"this token belongs to member {who.observer_code}, not {member}: a "
                       "member asks only in their own name", 403)
    now = time.time() if now is None else now
    today = night_of(jd_from_unix(now), 0.0)
    if req.until is not None and req.until < today:
        raise HubError(f"until {req.until} is in the past (today is {today})", 422)
    key = target_key(req.star)
    ra, dec = req.ra, req.dec
    check_coords(ra, dec)
    if ra is None:
        with store.engine.connect() as conn:
            known = _known_coords(conn, key)
        if known:
            ra, dec = known
    add_wanted(store, req.star, kind="request", ra=ra, dec=dec, member=member,
               until=req.until, source="member", now=now)
    span = f"until the night of {req.until}" if req.until else "until you withdraw it"
    msg = f"{req.star} is on the network's list for you, {member}, {span}."
    if ra is None:
        msg += (" Its position is not known to the hub yet, so it cannot be planned until an "
                "operator adds it.")
    log.info("member %s asked for %s (%s)", member, req.star, span)
    return {"ok": True, "star": req.star, "member": member, "until": req.until,
            "message": msg}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _when(night: str, today: str) -> str:
    yesterday = (dt.date.fromisoformat(today) - dt.timedelta(days=1)).isoformat()
    if night == yesterday:
        return "last night"
    if night == today:
        return "tonight"
    return f"on the night of {night}"


def _sentence(conn: sa.Connection, member: str, key: str, name: str, today: str,
              unassigned: dict[str, str]) -> str:
    m, n = db.measurements, db.nodes
    night = conn.execute(sa.select(sa.func.max(m.c.night)).where(m.c.target == key)).scalar()
    if night is None:
        it = db.assignment_items
        k = conn.execute(sa.select(sa.func.count(sa.distinct(it.c.node_id))).where(
            (it.c.target == key) & (it.c.night >= today))).scalar() or 0
        if k:
            return (f"{name} has not been observed yet; {_plural(int(k), 'telescope')} "
                    f"{'is' if k == 1 else 'are'} asked to observe it tonight.")
        why = unassigned.get(key)
        return (f"{name} has not been observed yet" + (f": {why}." if why else
                "; it waits for the next allocation."))
    on_night = (m.c.target == key) & (m.c.night == night)
    scopes = conn.execute(sa.select(sa.func.count(sa.distinct(m.c.node_id))).where(on_night)
                          ).scalar() or 0
    mine = conn.execute(sa.select(sa.func.count()).select_from(m.join(n, n.c.id == m.c.node_id))
                        .where(on_night & (n.c.observer_code == member)
                               & sa.or_(m.c.flag.is_(None), m.c.flag != "outlier"))
                        ).scalar() or 0
    return (f"{name} was observed by {_plural(int(scopes), 'telescope')} "
            f"{_when(night, today)}; {_plural(int(mine), 'measurement')} reported under your "
            f"code {member}.")


def news(store: HubStore, member: str, now: float | None = None) -> dict[str, Any]:
    """What became of a member's requests, one sentence per star.

    Parameters
    ----------
    store : HubStore
        The hub.
    member : str
        The observer code.
    now : float, optional
        UTC epoch seconds ("last night" is relative to it).

    Returns
    -------
    dict
        ``member``, ``requests`` (``star``, ``until``, ``message``).
    """
    member = member.strip().upper()
    now = time.time() if now is None else now
    today = dt.datetime.fromtimestamp(now, dt.UTC).date().isoformat()
    w = db.wanted
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(w.c.target, w.c.name, w.c.until).where(
            (w.c.kind == "request") & (w.c.member == member)).order_by(w.c.id)).all()
        runs = conn.execute(sa.select(db.allocations.c.summary).order_by(
            db.allocations.c.night.desc()).limit(1)).scalar()
        unassigned = {target_key(u["target"]): u["reason"]
                      for u in ((runs or {}).get("unassigned") or [])}
        out = [{"star": r.name, "until": r.until,
                "message": _sentence(conn, member, r.target, r.name, today, unassigned)}
               for r in rows]
    return {"member": member, "requests": out}
