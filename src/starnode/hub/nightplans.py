"""The network's nights on the hub's database: what is wanted, the allocation of a night
(persisted, idempotent), each node's current assignment and alerts, and the nodes' answers.

:mod:`.allocation` computes; this module reads its inputs from the database (every node's
profile and health, the wanted targets with their cadence debt) and writes what it decided:
one ``assignments`` row per node and night (content hash, expiry, the node's answer) and one
``assignment_items`` row per wish. An allocation whose inputs have not changed since the last
one of the night changes nothing (the inputs' fingerprint is kept in ``allocations``); when they
change (a new alert, a weather veto, a member's request) only the nodes whose wishes changed get
a new hash, which they pick up with their next heartbeat.

Acknowledgements are facts the hub checks: a node may answer only for itself, only the current
assignment of a night that has not expired, only an alert sent to it, and each only once (a
replay is refused with 409, an expired one with 410); nothing moves on a refusal.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from typing import Any

import sqlalchemy as sa

from ..frame.timesite import night_of
from ..util.jd import jd_from_unix, unix_from_jd
from . import db
from .allocation import (
    KIND_PRIORITY,
    Allocation,
    Item,
    NodeSpec,
    Wish,
    allocate,
    assignment_hash,
    iso,
    visibility,
)
from .store import HubError, HubStore, Principal, target_key
from .wire import AlertAck, AssignmentAck

log = logging.getLogger(__name__)

__all__ = [
    "KINDS",
    "ack_alert",
    "ack_assignment",
    "add_wanted",
    "auto_plan",
    "check_coords",
    "check_name",
    "current_assignment",
    "heartbeat_answer",
    "load_plan",
    "node_specs",
    "pending_alerts",
    "plan_night",
    "post_alert",
    "wishes",
]

KINDS = ("alert", "campaign", "request", "list")


def _epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _night_end(night: str) -> float:
    """The latest moment of a night anywhere: the next day's noon at longitude -180."""
    d = dt.date.fromisoformat(night) + dt.timedelta(days=1)
    return dt.datetime(d.year, d.month, d.day, 12, tzinfo=dt.UTC).timestamp() + 12 * 3600.0


# ---------------------------------------------------------------------------- inputs
def node_specs(store: HubStore, now: float | None = None) -> list[NodeSpec]:
    """Every node that has told the hub its site, with why it gets nothing, if it does not.

    Parameters
    ----------
    store : HubStore
        The hub.
    now : float, optional
        UTC epoch seconds (default: the clock).

    Returns
    -------
    list of NodeSpec
        Sorted by name. ``unusable`` says why a node gets nothing: a weather veto, held,
        failing (its heartbeat reports errors), or silent for longer than
        ``hub.plan_max_heartbeat_age``.
    """
    now = time.time() if now is None else now
    max_age = float(store.cfg.hub.plan_max_heartbeat_age)
    n, p = db.nodes, db.node_profiles
    q = (sa.select(n.c.name, n.c.held, n.c.disabled, n.c.last_heartbeat, n.c.heartbeat, p)
         .select_from(n.join(p, p.c.node_id == n.c.id))
         .where(p.c.latitude.is_not(None)).order_by(n.c.name))
    out = []
    with store.engine.connect() as conn:
        for r in conn.execute(q).mappings():
            if r["disabled"]:
                continue
            hb = r["heartbeat"] or {}
            why = ""
            if r["weather_veto"]:
                why = f"weather veto ({r['weather_reason'] or 'no reason given'})"
            elif r["held"]:
                why = "held for review"
            elif r["last_heartbeat"] is None or now - r["last_heartbeat"] > max_age:
                why = "no heartbeat for over " + f"{max_age / 60:.0f} min"
            elif _own_errors(hb):
                why = f"failing ({_own_errors(hb)[0][:120]})"
            out.append(NodeSpec(
                name=r["name"], latitude=r["latitude"], longitude=r["longitude"],
                height=r["height"] or 0.0,
                sun_limit=-12.0 if r["sun_limit"] is None else r["sun_limit"],
                min_altitude=30.0 if r["min_altitude"] is None else r["min_altitude"],
                max_altitude=80.0 if r["max_altitude"] is None else r["max_altitude"],
                horizon=tuple((float(a), float(b)) for a, b in (r["horizon"] or [])),
                bright_limit=r["bright_limit"], faint_limit=r["faint_limit"], unusable=why))
    return out


#: The forwarder's own errors about reaching the hub: not a sign of a sick telescope.
_HUB_ERRORS = ("hub unreachable", "hub refused", "push failed", "push refused",
               "assignment refused")


def _own_errors(hb: dict[str, Any]) -> list[str]:
    """The heartbeat's recent errors that are the node's own (failed frames and the like)."""
    return [str(e) for e in hb.get("recent_errors") or []
            if not str(e).startswith(_HUB_ERRORS)]


def _last_confirmed(conn: sa.Connection) -> dict[str, float]:
    """Per target, the UTC epoch of its last measurement the cross-check confirmed."""
    m = db.measurements
    q = sa.select(m.c.target, sa.func.max(m.c.jd)).where(m.c.flag == "ok").group_by(m.c.target)
    return {t: unix_from_jd(jd) for t, jd in conn.execute(q)}


def wishes(store: HubStore, night: str, now: float | None = None
           ) -> tuple[list[Wish], list[dict[str, str]]]:
    """What the network wants on ``night``, with each wish's priority in words.

    A target wanted several ways (an alert and a member's request) is one wish of its most
    urgent kind. Cadence debt: a wish with ``cadence_days`` gains priority for each cadence
    missed since the hub's last cross-validated (``ok``) measurement of it.

    Parameters
    ----------
    store : HubStore
        The hub.
    night : str
        The night.
    now : float, optional
        UTC epoch seconds.

    Returns
    -------
    (list of Wish, list of dict)
        The wishes, and the wanted targets that cannot be wishes (no coordinates) with why.
    """
    now = time.time() if now is None else now
    w = db.wanted
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(w).where(sa.or_(w.c.until.is_(None), w.c.until >= night))
                            .order_by(w.c.id)).mappings().all()
        last = _last_confirmed(conn)
    best: dict[str, dict[str, Any]] = {}
    members: dict[str, set[str]] = {}
    coords: dict[str, tuple[float, float]] = {}
    for row in rows:
        r: dict[str, Any] = dict(row)
        if r["ra"] is not None and r["dec"] is not None:
            coords.setdefault(r["target"], (r["ra"], r["dec"]))
        if r["member"]:
            members.setdefault(r["target"], set()).add(r["member"])
        prio = KIND_PRIORITY.get(r["kind"], 0.0) + float(r["priority"] or 0.0)
        old = best.get(r["target"])
        if old is None or prio > old["_prio"]:
            best[r["target"]] = {**r, "_prio": prio}
    out, missing = [], []
    for key, b in best.items():
        r = b
        if key not in coords:
            missing.append({"target": r["name"], "reason": "no coordinates known (give --ra "
                            "and --dec, or add the star to the network's list)"})
            continue
        prio, why = r["_prio"], [r["kind"]]
        if key in members:
            why.append("asked for by " + ", ".join(sorted(members[key])))
        cadence = r["cadence_days"]
        if cadence:
            seen = last.get(key)
            missed = 10.0 if seen is None else max(0.0, (now - seen) / 86400.0 / cadence - 1)
            prio += 10.0 * min(missed, 10.0)
            why.append("never confirmed by the network" if seen is None
                       else f"cadence debt {missed:.1f} cycles")
        out.append(Wish(target=key, name=r["name"], kind=r["kind"], ra=coords[key][0],
                        dec=coords[key][1], priority=prio, brightest=r["brightest"],
                        faintest=r["faintest"], reason="; ".join(why)))
    return out, missing


def check_name(name: str) -> None:
    """A star name that can go into a report field: 1-64 printable ASCII, no ``,|#``."""
    if (not name.strip() or len(name) > 64 or not name.isascii() or not name.isprintable()
            or any(c in name for c in ",|#")):
        raise HubError(f"star name {name[:80]!r}: 1 to 64 printable ASCII characters, no "
                       "comma, '|' or '#'", 422)


def check_coords(ra: float | None, dec: float | None) -> None:
    """Both ICRS coordinates in range, or neither (422 otherwise)."""
    if (ra is None) != (dec is None):
        raise HubError("give both ra and dec, or neither", 422)
    if ra is not None and dec is not None and not (0 <= ra < 360 and -90 <= dec <= 90):
        raise HubError(f"ra {ra} / dec {dec}: ra must be 0..360 and dec -90..90 degrees", 422)


def add_wanted(store: HubStore, name: str, *, kind: str = "list", ra: float | None = None,
               dec: float | None = None, member: str = "", until: str | None = None,
               brightest: float | None = None, faintest: float | None = None,
               cadence_days: float | None = None, priority: float = 0.0,
               source: str | None = None, now: float | None = None) -> None:
    """Add (or update) a wanted target.

    Parameters
    ----------
    store : HubStore
        The hub.
    name : str
        The star.
    kind : str
        ``alert``, ``campaign``, ``request`` or ``list``.
    ra, dec : float, optional
        ICRS degrees (a request may come without: the network's list may know them).
    member : str
        The requesting member's observer code (requests only).
    until : str, optional
        The last night it is wanted.
    brightest, faintest : float, optional
        Its range (magnitudes), gated against each node's instrument.
    cadence_days : float, optional
        How often it should be observed.
    priority : float
        Added to the kind's base priority.
    source : str, optional
        Where it came from (``target-tool``, ``admin``, ...).
    now : float, optional
        UTC epoch seconds.

    Raises
    ------
    HubError
        422 for an unknown kind or coordinates out of range.
    """
    if kind not in KINDS:
        raise HubError(f"kind {kind!r}: one of {', '.join(KINDS)}", 422)
    check_coords(ra, dec)
    check_name(name)
    row = {"target": target_key(name), "name": name.strip(), "kind": kind,
           "member": member.upper(), "ra": ra, "dec": dec, "brightest": brightest,
           "faintest": faintest, "cadence_days": cadence_days, "priority": priority,
           "until": until, "source": source, "created": time.time() if now is None else now}
    w = db.wanted
    with store.engine.begin() as conn:
        key = ((w.c.target == row["target"]) & (w.c.kind == kind)
               & (w.c.member == row["member"]))
        if conn.execute(sa.select(w.c.id).where(key)).first():
            conn.execute(w.update().where(key).values(**{k: v for k, v in row.items()
                                                         if k != "created"}))
        else:
            conn.execute(w.insert().values(**row))


# ---------------------------------------------------------------------------- allocation
def _fingerprint(specs: list[NodeSpec], wish: list[Wish], night: str) -> str:
    body = json.dumps([night, [s.__dict__ for s in specs],
                       [w.__dict__ for w in wish]], sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()[:32]


def _params(store: HubStore) -> dict[str, Any]:
    h = store.cfg.hub
    return {"step_minutes": float(h.plan_step_minutes),
            "min_window_minutes": float(h.plan_min_window_minutes),
            "slot_minutes": float(h.plan_slot_minutes), "alert_nodes": int(h.plan_alert_nodes)}


def plan_night(store: HubStore, night: str, *, now: float | None = None, force: bool = False,
               not_before: float | None = None) -> dict[str, Any]:
    """Allocate ``night`` (when its inputs changed, or ``force``) and return the plan.

    Parameters
    ----------
    store : HubStore
        The hub.
    night : str
        ``YYYY-MM-DD``.
    now : float, optional
        UTC epoch seconds (health, cadence debt, what has expired).
    force : bool
        Allocate even when nothing changed.
    not_before : float, optional
        Nothing is assigned before this UTC epoch (an allocation made mid-night).

    Returns
    -------
    dict
        :func:`load_plan`'s answer plus ``changed`` (whether anything was written) and
        ``stats`` of this allocation when one ran.
    """
    now = time.time() if now is None else now
    specs = node_specs(store, now)
    wish, missing = wishes(store, night, now)
    fp = _fingerprint(specs, wish, night)
    with store.engine.connect() as conn:
        old = conn.execute(sa.select(db.allocations.c.fingerprint)
                           .where(db.allocations.c.night == night)).scalar()
    if old == fp and not force:
        return {**load_plan(store, night), "changed": False}
    result = allocate(specs, wish, night, not_before=not_before,
                      previous=_previous(store, night), **_params(store))
    result.unassigned.extend(missing)
    t0 = time.perf_counter()
    changed = _persist(store, result, fp, now)
    stats = {**result.stats(), "write_seconds": round(time.perf_counter() - t0, 3),
             "nodes_changed": changed}
    log.info("night %s allocated: %d item(s) over %d node(s), %d target(s) (%d doubled), "
             "%d unassigned, %.2f s", night, stats["items"], len(result.expires),
             stats["targets"], stats["doubled"], stats["unassigned"], result.seconds)
    return {**load_plan(store, night), "changed": bool(changed), "stats": stats}


def _previous(store: HubStore, night: str) -> dict[str, set[str]]:
    """target key -> the nodes that have it in the night's current allocation."""
    it, n = db.assignment_items, db.nodes
    out: dict[str, set[str]] = {}
    with store.engine.connect() as conn:
        for target, node in conn.execute(sa.select(it.c.target, n.c.name).select_from(
                it.join(n, n.c.id == it.c.node_id)).where(it.c.night == night)):
            out.setdefault(target, set()).add(node)
    return out


def _persist(store: HubStore, result: Allocation, fingerprint: str, now: float) -> int:
    """Write what changed; a node whose assignment has expired keeps it (history)."""
    a, it = db.assignments, db.assignment_items
    night = result.night
    by_node = result.by_node()
    with store.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(87500002)"))
        ids = dict(conn.execute(sa.select(db.nodes.c.name, db.nodes.c.id)).all())
        existing = {r.node_id: r for r in conn.execute(
            sa.select(a.c.node_id, a.c.hash, a.c.expires).where(a.c.night == night))}
        rows, changed = [], []
        for name, items in by_node.items():
            nid = ids[name]
            h = assignment_hash(name, night, items, result.notes.get(name))
            ex = existing.get(nid)
            if ex is not None and (ex.hash == h or ex.expires <= now):
                continue
            changed.append(nid)
            rows.append({"node_id": nid, "night": night, "hash": h, "created": now,
                         "expires": result.expires[name], "note": result.notes.get(name)})
        items_rows = [{"node_id": ids[i.node], "night": night, "target": i.target,
                       "name": i.name, "kind": i.kind, "ra": i.ra, "dec": i.dec,
                       "start": i.start, "end": i.end, "priority": i.priority,
                       "reason": i.reason[:1000]}
                      for i in result.items if ids[i.node] in set(changed)]
        if changed:
            conn.execute(it.delete().where((it.c.night == night) & it.c.node_id.in_(changed)))
            conn.execute(a.delete().where((a.c.night == night) & a.c.node_id.in_(changed)))
            conn.execute(a.insert(), rows)
            if items_rows:
                conn.execute(it.insert(), items_rows)
            _deliver_alerts(conn, [i for i in result.items if ids[i.node] in set(changed)],
                            ids, night, now)
        conn.execute(db.allocations.delete().where(db.allocations.c.night == night))
        conn.execute(db.allocations.insert().values(
            night=night, fingerprint=fingerprint, created=now, seconds=result.seconds,
            summary={"unassigned": result.unassigned, "stats": result.stats()}))
    return len(changed)


def _deliver_alerts(conn: sa.Connection, items: list[Item], ids: dict[str, int], night: str,
                    now: float) -> None:
    """An alert item given to a node is also delivered to it as an alert (once)."""
    al, d = db.alerts, db.alert_deliveries
    targets = {i.target for i in items if i.kind == "alert"}
    if not targets:
        return
    live = dict(conn.execute(sa.select(al.c.target, sa.func.max(al.c.id))
                             .where(al.c.target.in_(targets) & (al.c.expires > now))
                             .group_by(al.c.target)).all())
    for i in items:
        aid = live.get(i.target)
        if i.kind != "alert" or aid is None:
            continue
        stmt = db.insert_ignore(conn.engine, d, ["alert_id", "node_id"]).values(
            alert_id=aid, node_id=ids[i.node], night=night, start=i.start, end=i.end,
            created=now, status="pending")
        conn.execute(stmt)


def load_plan(store: HubStore, night: str) -> dict[str, Any]:
    """The stored plan of a night, as ``starnode hub plan --format json`` prints it.

    Parameters
    ----------
    store : HubStore
        The hub.
    night : str
        The night.

    Returns
    -------
    dict
        ``night``, ``assignments`` (one per item: ``node``, ``target``, ``start``, ``end``
        ISO 8601 UTC, ``kind``, ``ra_deg``, ``dec_deg``, ``priority``, ``reason``, ``hash``,
        ``expires``), ``nodes`` (per node: ``hash``, ``expires``, ``items``, ``note``, the
        node's answer), ``unassigned`` (``target``, ``reason``), ``created``.
    """
    a, it, n = db.assignments, db.assignment_items, db.nodes
    with store.engine.connect() as conn:
        run = conn.execute(sa.select(db.allocations).where(db.allocations.c.night == night)
                           ).mappings().first()
        heads = conn.execute(sa.select(a, n.c.name).select_from(a.join(n, n.c.id == a.c.node_id))
                             .where(a.c.night == night).order_by(n.c.name)).mappings().all()
        items = conn.execute(sa.select(it, n.c.name.label("node"))
                             .select_from(it.join(n, n.c.id == it.c.node_id))
                             .where(it.c.night == night)
                             .order_by(n.c.name, it.c.start, it.c.target)).mappings().all()
    head = {h["node_id"]: h for h in heads}
    out_items = []
    for r in items:
        h = head.get(r["node_id"])
        out_items.append({
            "node": r["node"], "target": r["name"], "start": iso(r["start"]),
            "end": iso(r["end"]), "kind": r["kind"], "ra_deg": r["ra"], "dec_deg": r["dec"],
            "priority": r["priority"], "reason": r["reason"],
            "hash": h["hash"] if h else None,
            "expires": iso(h["expires"]) if h else None})
    nodes = [{"node": h["name"], "hash": h["hash"], "expires": iso(h["expires"]),
              "items": sum(1 for r in items if r["node_id"] == h["node_id"]),
              "note": h["note"], "ack": h["ack_status"], "ack_reason": h["ack_reason"],
              "ack_at": iso(h["ack_at"]) if h["ack_at"] else None,
              "ack_current": h["ack_hash"] == h["hash"]} for h in heads]
    summary: dict[str, Any] = dict(run["summary"] or {}) if run else {}
    return {"night": night, "created": iso(run["created"]) if run else None,
            "assignments": out_items, "unassigned": list(summary.get("unassigned", [])),
            "nodes": nodes}


def auto_plan(store: HubStore, now: float | None = None) -> list[dict[str, Any]]:
    """The periodic allocation: plan each night whose first dusk is near, idempotently.

    For each node, its current night (the evening's date at its longitude) is due once its
    dusk is less than ``hub.plan_lead_hours`` away; a due night is allocated (again only when
    its inputs changed: a new alert, a veto, a request), never assigning anything before now.

    Parameters
    ----------
    store : HubStore
        The hub.
    now : float, optional
        UTC epoch seconds.

    Returns
    -------
    list of dict
        ``night``, ``changed`` and ``stats`` of each night looked at.
    """
    now = time.time() if now is None else now
    specs = node_specs(store, now)
    if not specs:
        return []
    jd = jd_from_unix(now)
    nights = sorted({night_of(jd, s.longitude) for s in specs})
    lead = float(store.cfg.hub.plan_lead_hours) * 3600.0
    out = []
    for night in nights:
        vis = visibility(specs, [], night, step_minutes=float(store.cfg.hub.plan_step_minutes))
        dusks = [d for d in vis.dusk.tolist() if d == d]
        dawns = [d for d in vis.dawn.tolist() if d == d]
        if not dusks or min(dusks) - now > lead or max(dawns) < now:
            continue  # not due yet, or over everywhere
        res = plan_night(store, night, now=now, not_before=now)
        out.append({"night": night, "changed": res["changed"], "stats": res.get("stats")})
    return out


# ---------------------------------------------------------------------------- node side of it
def current_assignment(store: HubStore, who: Principal, now: float | None = None
                       ) -> dict[str, Any] | None:
    """The node's assignment for the night in progress (or, once it has expired, the next
    one), for its heartbeat.

    Parameters
    ----------
    store : HubStore
        The hub.
    who : Principal
        The node.
    now : float, optional
        UTC epoch seconds.

    Returns
    -------
    dict or None
        ``node``, ``night``, ``hash``, ``created``, ``expires`` (ISO 8601 UTC), ``note``,
        ``items`` (``target``, ``ra_deg``, ``dec_deg``, ``start``, ``end``, ``kind``,
        ``priority``, ``reason``); None when it has none.
    """
    now = time.time() if now is None else now
    a, it = db.assignments, db.assignment_items
    with store.engine.connect() as conn:
        # the night in progress (or the next one): tomorrow's assignment, allocated before a
        # node further east reaches its dusk, waits until tonight's has expired
        h = conn.execute(sa.select(a).where((a.c.node_id == who.node_id) & (a.c.expires > now))
                         .order_by(a.c.night).limit(1)).mappings().first()
        if h is None:
            return None
        items = conn.execute(sa.select(it).where((it.c.node_id == who.node_id)
                                                 & (it.c.night == h["night"]))
                             .order_by(it.c.start, it.c.target)).mappings().all()
    return {"node": who.node, "night": h["night"], "hash": h["hash"],
            "created": iso(h["created"]), "expires": iso(h["expires"]), "note": h["note"],
            "items": [{"target": r["name"], "ra_deg": r["ra"], "dec_deg": r["dec"],
                       "start": iso(r["start"]), "end": iso(r["end"]), "kind": r["kind"],
                       "priority": r["priority"], "reason": r["reason"]} for r in items]}


def pending_alerts(store: HubStore, who: Principal, now: float | None = None
                   ) -> list[dict[str, Any]]:
    """Alerts sent to the node that it has not answered and that are still observable.

    Parameters
    ----------
    store : HubStore
        The hub.
    who : Principal
        The node.
    now : float, optional
        UTC epoch seconds.

    Returns
    -------
    list of dict
        ``id``, ``target``, ``ra_deg``, ``dec_deg``, ``start``, ``end`` (the node's window),
        ``expires``, ``note``.
    """
    now = time.time() if now is None else now
    al, d = db.alerts, db.alert_deliveries
    q = (sa.select(al, d.c.start, d.c.end).select_from(d.join(al, al.c.id == d.c.alert_id))
         .where((d.c.node_id == who.node_id) & (d.c.status == "pending")
                & (al.c.expires > now) & (d.c.end > now)).order_by(al.c.id))
    with store.engine.connect() as conn:
        rows = conn.execute(q).mappings().all()
    return [{"id": r["id"], "target": r["name"], "ra_deg": r["ra"], "dec_deg": r["dec"],
             "start": iso(r["start"]), "end": iso(r["end"]), "expires": iso(r["expires"]),
             "note": r["note"]} for r in rows]


def heartbeat_answer(store: HubStore, who: Principal, now: float | None = None
                     ) -> dict[str, Any]:
    """What the hub answers a heartbeat: the node's current assignment and new alerts.

    Parameters
    ----------
    store : HubStore
        The hub.
    who : Principal
        The node.
    now : float, optional
        UTC epoch seconds.

    Returns
    -------
    dict
        ``ok``, ``now`` (the hub's clock, ISO 8601 UTC), ``assignment`` (or None),
        ``alerts``.
    """
    now = time.time() if now is None else now
    return {"ok": True, "now": iso(now), "assignment": current_assignment(store, who, now),
            "alerts": pending_alerts(store, who, now)}


def _node_only(who: Principal, node: str) -> int:
    """The node's row id, once ``who`` is that node's token (a node answers only for itself)."""
    if who.role != "node" or who.node_id is None:
        raise HubError("only a node token may acknowledge", 403)
    if node != who.node:
        raise HubError(f"this token belongs to node {who.node!r}, not {node!r}: a node answers "
                       "only for itself", 403)
    return who.node_id


def _record_ack(conn: sa.Connection, node_id: int, subject: str, ack: AssignmentAck | AlertAck,
                now: float) -> None:
    """Keep the node's answer to ``subject`` (the row :func:`_replayed` looks for)."""
    conn.execute(db.acks.insert().values(node_id=node_id, subject=subject, status=ack.status,
                                         reason=ack.reason, at=_epoch(ack.at), received=now))


def _replayed(conn: sa.Connection, node_id: int, subject: str) -> None:
    k = db.acks
    prev = conn.execute(sa.select(k.c.status, k.c.received).where(
        (k.c.node_id == node_id) & (k.c.subject == subject))).first()
    if prev is not None:
        raise HubError(f"replayed acknowledgement: {subject} was already answered "
                       f"({prev.status}, received {iso(prev.received)}); nothing changed", 409)


def ack_assignment(store: HubStore, who: Principal, ack: AssignmentAck,
                   now: float | None = None) -> dict[str, Any]:
    """Record a node's answer to its assignment.

    Parameters
    ----------
    store : HubStore
        The hub.
    who : Principal
        The node.
    ack : AssignmentAck
        Its answer.
    now : float, optional
        UTC epoch seconds.

    Returns
    -------
    dict
        ``ok``, ``subject``.

    Raises
    ------
    HubError
        403 another node's, 404 no assignment for that night, 409 replayed or not the
        current assignment (replaced since), 410 expired.
    """
    node_id = _node_only(who, ack.node)
    now = time.time() if now is None else now
    a = db.assignments
    with store.engine.begin() as conn:
        row = conn.execute(sa.select(a).where((a.c.node_id == node_id)
                                              & (a.c.night == ack.night))).mappings().first()
        if row is None:
            raise HubError(f"node {who.node} has no assignment for the night of {ack.night}",
                           404)
        # the same content may be issued again later (a veto lifted and set again): each
        # issue is answered once
        subject = f"assignment:{ack.night}:{ack.hash}@{row['created']:.3f}"
        _replayed(conn, node_id, subject)
        if row["hash"] != ack.hash:
            raise HubError(f"assignment {ack.hash} is not this node's current assignment for "
                           f"{ack.night} ({row['hash']}): it was replaced or belongs to another "
                           "node; nothing changed", 409)
        if row["expires"] <= now:
            raise HubError(f"the assignment for {ack.night} expired at {iso(row['expires'])}; "
                           "nothing changed", 410)
        _record_ack(conn, node_id, subject, ack, now)
        conn.execute(a.update().where((a.c.node_id == node_id) & (a.c.night == ack.night))
                     .values(ack_hash=ack.hash, ack_status=ack.status, ack_reason=ack.reason,
                             ack_at=_epoch(ack.at)))
    log.info("node %s %s its assignment %s for %s%s", who.node, ack.status, ack.hash,
             ack.night, f": {ack.reason}" if ack.reason else "")
    return {"ok": True, "subject": subject}


def ack_alert(store: HubStore, who: Principal, alert_id: int, ack: AlertAck,
              now: float | None = None) -> dict[str, Any]:
    """Record what a node did with an alert: scheduled at T, or refused and why.

    Parameters
    ----------
    store : HubStore
        The hub.
    who : Principal
        The node.
    alert_id : int
        The alert.
    ack : AlertAck
        Its answer.
    now : float, optional
        UTC epoch seconds.

    Returns
    -------
    dict
        ``ok``, ``subject``.

    Raises
    ------
    HubError
        403 another node's, 404 an alert not sent to this node, 409 replayed, 410 expired.
    """
    node_id = _node_only(who, ack.node)
    now = time.time() if now is None else now
    al, d = db.alerts, db.alert_deliveries
    subject = f"alert:{alert_id}"
    with store.engine.begin() as conn:
        row = conn.execute(sa.select(d.c.status, al.c.expires, al.c.name)
                           .select_from(d.join(al, al.c.id == d.c.alert_id))
                           .where((d.c.alert_id == alert_id) & (d.c.node_id == node_id))
                           ).first()
        if row is None:
            raise HubError(f"alert {alert_id} was not sent to node {who.node}; nothing changed",
                           404)
        _replayed(conn, node_id, subject)
        if row.expires <= now:
            raise HubError(f"alert {alert_id} ({row.name}) expired at {iso(row.expires)}; "
                           "nothing changed", 410)
        _record_ack(conn, node_id, subject, ack, now)
        conn.execute(d.update().where((d.c.alert_id == alert_id)
                                      & (d.c.node_id == node_id))
                     .values(status=ack.status, at=_epoch(ack.at), reason=ack.reason))
    log.info("node %s %s alert %d (%s)%s", who.node, ack.status, alert_id, row.name,
             f": {ack.reason}" if ack.reason else "")
    return {"ok": True, "subject": subject}


def post_alert(store: HubStore, name: str, ra: float, dec: float, *, until: str | None = None,
               note: str | None = None, nodes: list[str] | None = None,
               now: float | None = None) -> dict[str, Any]:
    """Post an alert: wanted urgently, allocated at once to nodes that can observe it.

    Parameters
    ----------
    store : HubStore
        The hub.
    name : str
        The star.
    ra, dec : float
        ICRS degrees.
    until : str, optional
        The last night it is wanted (default: two nights from now).
    note : str, optional
        What the alert is about (an AAVSO Alert Notice number, ...).
    nodes : list of str, optional
        Send it to these nodes only; each must be able to observe it tonight, else nothing is
        stored (422 naming the node and why).
    now : float, optional
        UTC epoch seconds.

    Returns
    -------
    dict
        ``id``, ``target``, ``nodes`` (where it went, with windows), ``nights``.

    Raises
    ------
    HubError
        422 bad coordinates or a named node that cannot observe it; 404 an unknown node.
    """
    now = time.time() if now is None else now
    check_name(name)
    check_coords(ra, dec)
    jd = jd_from_unix(now)
    until = until or (dt.date.fromisoformat(night_of(jd, 0.0)) + dt.timedelta(days=2)
                      ).isoformat()
    key = target_key(name)
    specs = {s.name: s for s in node_specs(store, now)}
    chosen: list[tuple[NodeSpec, float, float, str]] = []
    if nodes:
        wish = Wish(target=key, name=name, kind="alert", ra=ra, dec=dec)
        for nm in nodes:
            spec = specs.get(nm)
            if spec is None:
                raise HubError(f"node {nm!r} is unknown or has not told the hub its site", 404)
            night = night_of(jd, spec.longitude)
            vis = visibility([spec], [wish], night,
                             step_minutes=float(store.cfg.hub.plan_step_minutes),
                             not_before=now)
            if vis.window[0, 0] < float(store.cfg.hub.plan_min_window_minutes):
                why = vis.why[0, 0] or "not observable long enough"
                raise HubError(f"alert {name}: node {nm} cannot observe it tonight ({why}); "
                               "nothing stored", 422)
            chosen.append((spec, float(vis.start[0, 0]), float(vis.end[0, 0]), night))
    with store.engine.begin() as conn:
        aid = conn.execute(db.alerts.insert().values(
            target=key, name=name, ra=ra, dec=dec, note=note, created=now,
            expires=_night_end(until)).returning(db.alerts.c.id)).scalar_one()
        ids = dict(conn.execute(sa.select(db.nodes.c.name, db.nodes.c.id)).all())
        for spec, start, end, night in chosen:
            conn.execute(db.alert_deliveries.insert().values(
                alert_id=aid, node_id=ids[spec.name], night=night, start=start, end=end,
                created=now, status="pending"))
    nights: list[str] = []
    if not nodes:
        add_wanted(store, name, kind="alert", ra=ra, dec=dec, until=until, source="alert",
                   now=now)
        for night in sorted({night_of(jd, s.longitude) for s in specs.values()}):
            plan_night(store, night, now=now, not_before=now)
            nights.append(night)
    with store.engine.connect() as conn:
        d, n = db.alert_deliveries, db.nodes
        went = conn.execute(sa.select(n.c.name, d.c.start, d.c.end)
                            .select_from(d.join(n, n.c.id == d.c.node_id))
                            .where(d.c.alert_id == aid).order_by(n.c.name)).all()
    log.info("alert %d: %s sent to %d node(s)", aid, name, len(went))
    return {"id": aid, "target": name, "nights": nights,
            "nodes": [{"node": w.name, "start": iso(w.start), "end": iso(w.end)}
                      for w in went]}
