"""Cross-validation: telescopes that observed the same star at the same time must agree.

Why: one Seestar alone cannot tell a wrong comparison sequence, a mis-identified star or a
drifting flat from a real brightening. Several, observing the same star in the same minutes,
can: the network consensus shows which one is off, by how much, and whether it is a single bad
frame or a systematic offset of that node for the night.

For every target and band of a night, measurements fall into fixed time windows of
``hub.window_minutes`` (a grid counted from JD 0, so a point's window never depends on what
else arrived). In a window with points from at least ``hub.min_nodes`` different nodes:

1. each node contributes one value, the weighted mean of its points (w = 1/(σ² + 0.02²)), so a
   node that sends many frames does not outvote the others;
2. the consensus is the **weighted median** of those node values (weights 1/(σ_node² +
   0.02²): the floor keeps one very confident node from deciding alone); its error is the
   larger of 1.2533/√ΣW (the median's efficiency) and the nodes' scatter (1.4826·MAD/√k);
3. a point further from the consensus than max(``outlier_sigma``·σ, ``outlier_min_mag``), with
   σ² = σ_point² + σ_consensus², is flagged ``outlier`` with that reason; the others are ``ok``.

Windows with fewer nodes are ``unchecked`` (reported, but nothing could confirm them). Then,
per node, target and night, the weighted mean residual is the node's **offset** with its error
(the larger of the formal error and the scatter's); an offset beyond both ``offset_sigma``·error
and ``offset_min_mag`` holds the node for review (``starnode hub release`` after a look).
"""

from __future__ import annotations

import io
import logging
import math
import time
from collections import defaultdict
from typing import Any

import numpy as np
import sqlalchemy as sa

from . import db
from .store import HubStore

log = logging.getLogger(__name__)

__all__ = ["crosscheck", "lightcurve", "lightcurve_png", "weighted_median"]

#: Systematic floor (mag) added in quadrature to weights: no point is more certain than this.
FLOOR = 0.02


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The weighted median.

    Parameters
    ----------
    values, weights : numpy.ndarray
        Same length; weights positive.

    Returns
    -------
    float
        The value where the cumulative weight reaches half; halfway between two values when it
        falls exactly on their boundary.
    """
    order = np.argsort(values)
    v, w = values[order], weights[order]
    cum = np.cumsum(w)
    half = cum[-1] / 2.0
    i = int(np.searchsorted(cum, half))
    if i < len(v) - 1 and math.isclose(cum[i], half, rel_tol=1e-12):
        return float((v[i] + v[i + 1]) / 2.0)
    return float(v[i])


def _node_means(mag: np.ndarray, err: np.ndarray, node: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nodes = np.unique(node)
    means = np.empty(len(nodes))
    errs = np.empty(len(nodes))
    for k, n in enumerate(nodes):
        sel = node == n
        w = 1.0 / (err[sel] ** 2 + FLOOR ** 2)
        means[k] = float(np.sum(w * mag[sel]) / np.sum(w))
        errs[k] = 1.0 / math.sqrt(float(np.sum(w)))
    return nodes, means, errs


def crosscheck(store: HubStore, night: str) -> dict[str, Any]:
    """Cross-validate every target of a night: flags, consensus curve, node offsets, holds.

    Idempotent: recomputed from the stored measurements each time.

    Parameters
    ----------
    store : HubStore
        The hub.
    night : str
        The observing night, YYYY-MM-DD.

    Returns
    -------
    dict
        ``night``, ``measurements``, ``targets``, ``windows``, ``outliers``, ``unchecked``,
        ``offsets`` (per node, target and band), ``held`` (nodes held now), ``seconds``.
    """
    h = store.cfg.hub
    width = float(h.window_minutes) / 1440.0
    m = db.measurements
    t0 = time.perf_counter()
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(m.c.id, m.c.node_id, m.c.target, m.c.band, m.c.jd,
                                      m.c.magnitude, m.c.uncertainty)
                            .where(m.c.night == night)).all()
        names = dict(conn.execute(sa.select(db.nodes.c.id, db.nodes.c.name)).all())
    groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for r in rows:
        groups[(r.target, r.band)].append(r)

    check = _Windows(h, night)
    for (target, band), members in groups.items():
        check.group(target, band, members, width)
    offsets = _offsets(h, night, check.residuals, time.time())
    held = _store_results(store, night, check.updates, check.curve, offsets, names)
    updates, curve = check.updates, check.curve
    summary = {
        "night": night, "measurements": len(rows), "targets": len(groups),
        "windows": len(curve),
        "outliers": sum(1 for u in updates if u["b_flag"] == "outlier"),
        "unchecked": sum(1 for u in updates if u["b_flag"] == "unchecked"),
        "offsets": [{**o_, "node": names.get(o_["node_id"])} for o_ in offsets],
        "held": held, "seconds": time.perf_counter() - t0}
    log.info("cross-check of %s: %d measurement(s), %d window(s), %d outlier(s), %d "
             "unchecked, held: %s (%.2f s)", night, len(rows), len(curve), summary["outliers"],
             summary["unchecked"], ", ".join(held) or "none", summary["seconds"])
    return summary


class _Windows:
    """The flags of one night's points, its consensus curve and each node's residuals."""

    def __init__(self, h: Any, night: str) -> None:
        self.h = h
        self.night = night
        self.updates: list[dict[str, Any]] = []
        self.curve: list[dict[str, Any]] = []
        self.residuals: dict[tuple[int, str, str], list[tuple[float, float]]] = \
            defaultdict(list)

    def group(self, target: str, band: str, members: list[Any], width: float) -> None:
        """One target and band: its points by time window."""
        ids = np.array([r.id for r in members], dtype=np.int64)
        node = np.array([r.node_id for r in members], dtype=np.int64)
        jd = np.array([r.jd for r in members])
        mag = np.array([r.magnitude for r in members])
        err = np.array([r.uncertainty for r in members])
        win = np.floor(jd / width + 1e-9).astype(np.int64)
        order = np.argsort(win, kind="stable")
        bounds = np.flatnonzero(np.diff(win[order])) + 1
        for idx in np.split(order, bounds):
            k_nodes = len(np.unique(node[idx]))
            if k_nodes < int(self.h.min_nodes):
                self._unchecked(ids[idx], k_nodes)
                continue
            self._window(target, band, idx, ids, node, jd, mag, err, win)

    def _unchecked(self, ids: np.ndarray, k_nodes: int) -> None:
        h = self.h
        why = (f"only {k_nodes} node(s) in this {h.window_minutes:g}-min window; "
               f"{h.min_nodes} needed for a consensus")
        self.updates += [{"b_id": int(i), "b_flag": "unchecked", "b_reason": why,
                          "b_cons": None, "b_res": None} for i in ids]

    def _window(self, target: str, band: str, idx: np.ndarray, ids: np.ndarray,
                node: np.ndarray, jd: np.ndarray, mag: np.ndarray, err: np.ndarray,
                win: np.ndarray) -> None:
        """A window with enough nodes: the consensus point and each point's flag."""
        h = self.h
        nodes, means, nerrs = _node_means(mag[idx], err[idx], node[idx])
        weights = 1.0 / (nerrs ** 2 + FLOOR ** 2)
        cons = weighted_median(means, weights)
        mad = float(np.median(np.abs(means - cons)))
        cons_err = max(1.2533 / math.sqrt(float(np.sum(weights))),
                       1.4826 * mad / math.sqrt(len(nodes)))
        self.curve.append({"night": self.night, "target": target, "band": band,
                           "win": int(win[idx[0]]), "jd": float(np.mean(jd[idx])),
                           "magnitude": cons, "error": cons_err, "n_nodes": len(nodes),
                           "n_points": len(idx)})
        for i in idx:
            res = float(mag[i] - cons)
            sigma = math.sqrt(float(err[i]) ** 2 + cons_err ** 2)
            limit = max(float(h.outlier_sigma) * sigma, float(h.outlier_min_mag))
            bad = abs(res) > limit
            reason = (f"{res:+.3f} mag from the network consensus {cons:.3f} ± "
                      f"{cons_err:.3f} ({len(nodes)} nodes); limit {limit:.3f} = max("
                      f"{h.outlier_sigma:g}σ, {h.outlier_min_mag:g} mag)")
            self.updates.append({"b_id": int(ids[i]), "b_flag": "outlier" if bad else "ok",
                                 "b_reason": reason, "b_cons": cons, "b_res": res})
            self.residuals[(int(node[i]), target, band)].append((res, sigma))


def _offsets(h: Any, night: str,
             residuals: dict[tuple[int, str, str], list[tuple[float, float]]],
             now: float) -> list[dict[str, Any]]:
    """Each node's weighted mean residual per target and band, and whether it is significant."""
    offsets = []
    for (nid, target, band), pairs in residuals.items():
        res_arr = np.array([p[0] for p in pairs])
        w = 1.0 / np.array([p[1] for p in pairs]) ** 2
        off = float(np.sum(w * res_arr) / np.sum(w))
        off_err = 1.0 / math.sqrt(float(np.sum(w)))
        if len(res_arr) > 1:
            off_err = max(off_err, float(np.std(res_arr, ddof=1)) / math.sqrt(len(res_arr)))
        sig = (abs(off) > float(h.offset_sigma) * off_err
               and abs(off) > float(h.offset_min_mag))
        offsets.append({"node_id": nid, "night": night, "target": target, "band": band,
                        "mag_offset": off, "error": off_err, "n": len(res_arr),
                        "significant": sig, "computed": now})
    return offsets


def _store_results(store: HubStore, night: str, updates: list[dict[str, Any]],
                   curve: list[dict[str, Any]], offsets: list[dict[str, Any]],
                   names: dict[Any, Any]) -> list[str]:
    """Store the flags, the curve and the offsets; hold the nodes newly offset (returned)."""
    held: list[str] = []
    o = db.offsets
    with store.engine.begin() as conn:
        db.update_flags(conn, updates)
        conn.execute(db.consensus.delete().where(db.consensus.c.night == night))
        if curve:
            conn.execute(db.consensus.insert(), curve)
        before = {(r.node_id, r.target, r.band) for r in conn.execute(
            sa.select(o.c.node_id, o.c.target, o.c.band)
            .where(o.c.night == night, o.c.significant))}
        conn.execute(o.delete().where(o.c.night == night))
        if offsets:
            conn.execute(o.insert(), offsets)
        for rec in offsets:
            if rec["significant"] and (rec["node_id"], rec["target"], rec["band"]) not in before:
                held.append(_hold(conn, night, rec, names))
    return held


def _hold(conn: Any, night: str, rec: dict[str, Any], names: dict[Any, Any]) -> str:
    """Hold a node for review over its offset; returns its name."""
    reason = (f"night {night}, {rec['target']} {rec['band']}: offset "
              f"{rec['mag_offset']:+.3f} ± {rec['error']:.3f} mag from the "
              f"network consensus over {rec['n']} point(s)")
    conn.execute(db.nodes.update().where(db.nodes.c.id == rec["node_id"])
                 .values(held=True, hold_reason=reason))
    name: str = names.get(rec["node_id"], str(rec["node_id"]))
    log.warning("node %s held for review: %s", name, reason)
    return name


def lightcurve(store: HubStore, target: str, night: str | None = None,
               band: str | None = None) -> dict[str, Any]:
    """The consensus light curve of a target (JSON-ready), with each node's points.

    Parameters
    ----------
    store : HubStore
        The hub.
    target : str
        The star's name (case and blanks do not matter).
    night : str, optional
        Only this night.
    band : str, optional
        Only this filter.

    Returns
    -------
    dict
        ``target``, ``night``, ``consensus`` (one point per window) and ``measurements``
        (every node's points with their flags).
    """
    from .store import target_key

    key = target_key(target)
    c, m, n = db.consensus, db.measurements, db.nodes
    q = sa.select(c).where(c.c.target == key).order_by(c.c.jd)
    qm = (sa.select(m.c.jd, m.c.magnitude, m.c.uncertainty, m.c.band, m.c.flag, n.c.name)
          .select_from(m.join(n, m.c.node_id == n.c.id)).where(m.c.target == key)
          .order_by(m.c.jd))
    if night:
        q, qm = q.where(c.c.night == night), qm.where(m.c.night == night)
    if band:
        q, qm = q.where(c.c.band == band.upper()), qm.where(m.c.band == band.upper())
    with store.engine.connect() as conn:
        points = [dict(r) for r in conn.execute(q).mappings()]
        raw = [dict(r) for r in conn.execute(qm).mappings()]
    for p in points:
        p["window"] = p.pop("win")
    return {"target": key, "night": night, "consensus": points,
            "measurements": [{"node": r["name"], "jd": r["jd"], "magnitude": r["magnitude"],
                              "uncertainty": r["uncertainty"], "band": r["band"],
                              "flag": r["flag"]} for r in raw]}


def lightcurve_png(data: dict[str, Any]) -> bytes:
    """A PNG of :func:`lightcurve`'s data: node points (flagged ones crossed), the consensus.

    Parameters
    ----------
    data : dict
        :func:`lightcurve`'s answer.

    Returns
    -------
    bytes
        The PNG file.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.5), dpi=100)
    ax = fig.add_subplot()
    by_node: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in data["measurements"]:
        by_node[p["node"]].append(p)
    for name, pts in sorted(by_node.items()):
        _plot_node(ax, name, pts)
    cons = data["consensus"]
    if cons:
        ax.errorbar([p["jd"] for p in cons], [p["magnitude"] for p in cons],
                    [p["error"] for p in cons], fmt="s-", color="black", ms=5,
                    label="network consensus")
    ax.invert_yaxis()
    ax.set_xlabel("JD (UTC)")
    ax.set_ylabel("magnitude")
    ax.set_title(f"{data['target']}" + (f" - night {data['night']}" if data["night"] else ""))
    if by_node or cons:
        ax.legend(fontsize=7, loc="best")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _plot_node(ax: Any, name: str, pts: list[dict[str, Any]]) -> None:
    """One node's points: error bars, its flagged ones as red crosses."""
    ok = [p for p in pts if p["flag"] != "outlier"]
    bad = [p for p in pts if p["flag"] == "outlier"]
    if ok:
        ax.errorbar([p["jd"] for p in ok], [p["magnitude"] for p in ok],
                    [p["uncertainty"] for p in ok], fmt="o", ms=3, alpha=0.5, label=name)
    if bad:
        ax.plot([p["jd"] for p in bad], [p["magnitude"] for p in bad], "x", color="red",
                label=f"{name} (flagged)")
