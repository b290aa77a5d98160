"""What the operator sees of the network's nights: per target, which nodes were asked to
observe it and which did, and when; per node, tonight's assignment, what it observed and the
alerts in flight. As data, text, and a PNG chart whose text alternative is the text.
"""

from __future__ import annotations

import datetime as dt
import io
import time
from typing import Any

import sqlalchemy as sa

from ..util.jd import unix_from_jd
from . import db
from .allocation import iso
from .store import HubStore

__all__ = ["coverage", "coverage_png", "coverage_text", "node_nights"]


def coverage(store: HubStore, night: str) -> dict[str, Any]:
    """Per target: the nodes asked to observe it, and the nodes that did (first and last
    measurement, count).

    Parameters
    ----------
    store : HubStore
        The hub.
    night : str
        The night.

    Returns
    -------
    dict
        ``night``, ``targets`` (``target``, ``assigned`` [``node``, ``start``, ``end``,
        ``kind``], ``observed`` [``node``, ``first``, ``last``, ``measurements``]), sorted by
        target.
    """
    it, m, n = db.assignment_items, db.measurements, db.nodes
    with store.engine.connect() as conn:
        assigned = conn.execute(
            sa.select(it.c.target, it.c.name, n.c.name.label("node"), it.c.start, it.c.end,
                      it.c.kind).select_from(it.join(n, n.c.id == it.c.node_id))
            .where(it.c.night == night).order_by(it.c.target, it.c.start)).all()
        observed = conn.execute(
            sa.select(m.c.target, n.c.name.label("node"), sa.func.min(m.c.jd),
                      sa.func.max(m.c.jd), sa.func.count())
            .select_from(m.join(n, n.c.id == m.c.node_id)).where(m.c.night == night)
            .group_by(m.c.target, n.c.name).order_by(m.c.target, n.c.name)).all()
    targets: dict[str, dict[str, Any]] = {}
    for a in assigned:
        t = targets.setdefault(a.target, {"target": a.name, "assigned": [], "observed": []})
        t["assigned"].append({"node": a.node, "start": iso(a.start), "end": iso(a.end),
                              "kind": a.kind})
    for o in observed:
        t = targets.setdefault(o[0], {"target": o[0], "assigned": [], "observed": []})
        t["observed"].append({"node": o[1], "first": iso(unix_from_jd(o[2])),
                              "last": iso(unix_from_jd(o[3])), "measurements": int(o[4])})
    return {"night": night, "targets": [targets[k] for k in sorted(targets)]}


def coverage_text(data: dict[str, Any]) -> str:
    """:func:`coverage` in words (also the PNG's text alternative).

    Parameters
    ----------
    data : dict
        :func:`coverage`'s answer.

    Returns
    -------
    str
    """
    lines = [f"Coverage of the night of {data['night']}: {len(data['targets'])} target(s)."]
    for t in data["targets"]:
        asked = ", ".join(f"{a['node']} ({a['start'][11:16]}-{a['end'][11:16]} UTC)"
                          for a in t["assigned"]) or "nobody"
        seen = "; ".join(f"{o['node']} from {o['first'][11:16]} to {o['last'][11:16]} UTC, "
                         f"{o['measurements']} measurement(s)" for o in t["observed"])
        lines.append(f"{t['target']}: asked of {asked}; "
                     + (f"observed by {seen}." if seen else "not observed."))
    return "\n".join(lines)


def coverage_png(data: dict[str, Any], max_targets: int = 40) -> bytes:
    """A chart of :func:`coverage`: per target (rows), the assigned windows (light bars) and
    the observed spans (dark bars), against UTC.

    Parameters
    ----------
    data : dict
        :func:`coverage`'s answer.
    max_targets : int
        Rows shown (alerts and the observed first).

    Returns
    -------
    bytes
        The PNG file.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.dates import DateFormatter, date2num
    from matplotlib.figure import Figure

    def t(s: str) -> float:
        return float(date2num(dt.datetime.fromisoformat(s.replace("Z", "+00:00"))))

    rows = sorted(data["targets"], key=lambda x: (not any(a["kind"] == "alert"
                                                          for a in x["assigned"]),
                                                  not x["observed"], x["target"]))[:max_targets]
    fig = Figure(figsize=(9, 1.5 + 0.3 * max(len(rows), 1)), dpi=100)
    ax = fig.add_subplot()
    for y, r in enumerate(rows):
        for a in r["assigned"]:
            ax.barh(y, t(a["end"]) - t(a["start"]), left=t(a["start"]), height=0.7,
                    color="#9ecae1", edgecolor="#3182bd")
        for o in r["observed"]:
            width = max(t(o["last"]) - t(o["first"]), 1 / 288)
            ax.barh(y, width, left=t(o["first"]), height=0.35, color="#08306b")
    ax.set_yticks(range(len(rows)), [r["target"] for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(DateFormatter("%H:%M"))
    ax.set_xlabel("UTC (light: assigned windows; dark: observed)")
    ax.set_title(f"Network coverage, night of {data['night']}")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Description": coverage_text(data)[:4000]})
    return buf.getvalue()


def node_nights(store: HubStore, now: float | None = None) -> dict[str, dict[str, Any]]:
    """Per node: its current assignment (the night in progress, else its last one: night,
    items, hash, its answer), what it observed that night, and the alerts in flight (sent,
    not answered).

    Parameters
    ----------
    store : HubStore
        The hub.
    now : float, optional
        UTC epoch seconds.

    Returns
    -------
    dict
        node name -> ``night``, ``items``, ``hash``, ``ack``, ``note``, ``observed``
        (measurements that night), ``targets_observed``, ``alerts_in_flight`` (names).
    """
    now = time.time() if now is None else now
    a, it, n, m = db.assignments, db.assignment_items, db.nodes, db.measurements
    d, al = db.alert_deliveries, db.alerts
    out: dict[str, dict[str, Any]] = {}
    with store.engine.connect() as conn:
        # the night in progress (the earliest not expired), else the last one
        latest = (sa.select(a.c.node_id, sa.func.coalesce(
            sa.func.min(sa.case((a.c.expires > now, a.c.night))),
            sa.func.max(a.c.night)).label("night")).group_by(a.c.node_id).subquery())
        heads = conn.execute(
            sa.select(n.c.name, a).select_from(
                a.join(latest, (latest.c.node_id == a.c.node_id)
                       & (latest.c.night == a.c.night)).join(n, n.c.id == a.c.node_id))
        ).mappings().all()
        counts: dict[int, int] = {int(k): int(v) for k, v in conn.execute(
            sa.select(it.c.node_id, sa.func.count()).select_from(
                it.join(latest, (latest.c.node_id == it.c.node_id)
                        & (latest.c.night == it.c.night))).group_by(it.c.node_id)).all()}
        obs = {(r[0], r[1]): (int(r[2]), int(r[3])) for r in conn.execute(
            sa.select(m.c.node_id, m.c.night, sa.func.count(), sa.func.count(sa.distinct(
                m.c.target))).select_from(m.join(latest, (latest.c.node_id == m.c.node_id)
                                                 & (latest.c.night == m.c.night)))
            .group_by(m.c.node_id, m.c.night))}
        flight = conn.execute(sa.select(n.c.name, al.c.name).select_from(
            d.join(al, al.c.id == d.c.alert_id).join(n, n.c.id == d.c.node_id))
            .where((d.c.status == "pending") & (al.c.expires > now))).all()
    for h in heads:
        seen = obs.get((h["node_id"], h["night"]), (0, 0))
        out[h["name"]] = {"night": h["night"], "items": int(counts.get(h["node_id"], 0)),
                          "hash": h["hash"], "expires": iso(h["expires"]),
                          "ack": (h["ack_status"] if h["ack_hash"] == h["hash"]
                                  else "not acknowledged"),
                          "note": h["note"], "observed": seen[0], "targets_observed": seen[1],
                          "alerts_in_flight": []}
    for node, star in flight:
        out.setdefault(node, {"night": None, "items": 0, "hash": None, "expires": None,
                              "ack": None, "note": None, "observed": 0,
                              "targets_observed": 0, "alerts_in_flight": []})
        out[node]["alerts_in_flight"].append(star)
    return out
