"""The network plans the nights: which node is asked to observe which target, and when.

Why the hub and not each node alone: twenty telescopes that each pick SS Cyg waste nineteen
nights, while a star in outburst goes unobserved. The hub knows every node's site, horizon,
limits and health (from the heartbeat, :mod:`.wire`) and what the network wants (alerts and
campaigns, members' requests, the network's list, cadence debt from its own cross-validated
measurements), and shares the wishes out:

* **no node gets a target it cannot observe**: the target must stay between the node's
  altitude floor (and its horizon mask at that azimuth) and its ceiling, with the sun at or
  below the node's limit, for at least ``hub.plan_min_window_minutes`` in one stretch, and its
  range must fit the instrument (not brighter than ``bright_limit`` at maximum, not fainter
  than ``faint_limit`` at minimum, when both are known);
* **alerts first, on at least two nodes** (``hub.plan_alert_nodes``) wherever two can see
  them: the first the node with the longest window, the second the one sharing most of that
  window (so the cross-check has pairs), any further ones as far away in longitude as possible
  (so the light curve spans the night around the world);
* then members' requests, campaigns, cadence debt and the list, each on one node, the least
  loaded one that can observe it; spare capacity then doubles up the most wanted targets on a
  node at least 30° of longitude away;
* **a weather veto or an unhealthy node gets nothing**: its wishes go to other nodes, and an
  empty assignment tells it why.

The hub never sends motion commands, only wishes: each item is a target with the UTC window in
which it is observable from that node; the node's own planner turns its assignment into a timed
plan with its own gates.

The geometry is vectorised: one astropy call gives each node's apparent sidereal time on its
night grid, one the sun's apparent place, one the targets' apparent places of date; altitudes
and azimuths of every (node, target, time) follow from the hour angle in numpy. Nothing is
downloaded: the IERS tables bundled with astropy are used as they are (``auto_download`` off,
``auto_max_age`` None), which is ample for scheduling.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "KIND_PRIORITY",
    "Allocation",
    "Item",
    "NodeSpec",
    "Visibility",
    "Wish",
    "allocate",
    "assignment_hash",
    "iso",
    "visibility",
]

log = logging.getLogger(__name__)

#: The base priority of each kind of wish (a wish's own priority and cadence debt add to it).
KIND_PRIORITY = {"alert": 1000.0, "request": 300.0, "campaign": 200.0, "list": 0.0}
#: The longitude distance (degrees) a doubled-up target's second node keeps from the first.
DOUBLE_SPACING_DEG = 30.0


def iso(epoch: float) -> str:
    """``2025-09-14T20:10:00Z``: UTC epoch seconds as ISO 8601 UTC.

    Parameters
    ----------
    epoch : float
        Seconds since 1970-01-01 UTC.

    Returns
    -------
    str
    """
    return dt.datetime.fromtimestamp(round(epoch), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class NodeSpec:
    """A node as the allocation sees it (its heartbeat's site, limits and instrument)."""

    name: str
    latitude: float
    longitude: float  # east positive, -180..180
    sun_limit: float = -12.0
    min_altitude: float = 30.0
    max_altitude: float = 80.0
    horizon: tuple[tuple[float, float], ...] = ()  # (azimuth, altitude), degrees
    bright_limit: float | None = None
    faint_limit: float | None = None
    height: float = 0.0
    #: Why the node gets nothing tonight (weather veto, stale, failing, held); '' when usable.
    unusable: str = ""


@dataclass(frozen=True)
class Wish:
    """A target the network wants observed."""

    target: str  # the key (upper case)
    name: str
    kind: str  # alert | request | campaign | list
    ra: float  # ICRS degrees
    dec: float
    priority: float = 0.0  # the kind's base, the wish's own and the cadence debt, summed
    brightest: float | None = None
    faintest: float | None = None
    reason: str = ""  # why it is wanted, in words


@dataclass(frozen=True)
class Item:
    """One wish given to one node: observe ``target`` between ``start`` and ``end``."""

    node: str
    target: str
    name: str
    kind: str
    ra: float
    dec: float
    start: float  # UTC epoch seconds
    end: float
    priority: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """The wire form (ISO 8601 UTC times)."""
        return {"node": self.node, "target": self.name, "key": self.target,
                "kind": self.kind, "ra_deg": round(self.ra, 6), "dec_deg": round(self.dec, 6),
                "start": iso(self.start), "end": iso(self.end),
                "priority": round(self.priority, 3), "reason": self.reason}


@dataclass
class Visibility:
    """Where each wish can be observed from each node on the night.

    ``window`` (nodes × wishes) is the longest observable stretch in minutes, ``start`` and
    ``end`` its UTC epoch bounds; ``why`` the main reason a pair is not observable;
    ``dark_minutes`` and ``dusk``/``dawn`` per node (NaN without darkness).
    """

    times: np.ndarray  # (nodes, samples) UTC epoch seconds
    window: np.ndarray
    start: np.ndarray
    end: np.ndarray
    why: np.ndarray  # (nodes, wishes) object: '' or a reason
    dark_minutes: np.ndarray
    dusk: np.ndarray
    dawn: np.ndarray


@dataclass
class Allocation:
    """What :func:`allocate` decided."""

    night: str
    items: list[Item] = field(default_factory=list)
    unassigned: list[dict[str, str]] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)  # node -> why it got nothing
    expires: dict[str, float] = field(default_factory=dict)  # node -> UTC epoch
    seconds: float = 0.0

    def by_node(self) -> dict[str, list[Item]]:
        """The items grouped per node (every node of the allocation, even with none)."""
        out: dict[str, list[Item]] = {n: [] for n in self.expires}
        for it in self.items:
            out.setdefault(it.node, []).append(it)
        return out

    def stats(self) -> dict[str, Any]:
        """Counts: items, targets covered, doubled-up targets and their share, alerts."""
        nodes_of: dict[str, set[str]] = {}
        for it in self.items:
            nodes_of.setdefault(it.target, set()).add(it.node)
        doubled = sum(1 for v in nodes_of.values() if len(v) > 1)
        alerts = {it.target for it in self.items if it.kind == "alert"}
        return {"items": len(self.items), "targets": len(nodes_of), "doubled": doubled,
                "doubled_share": round(doubled / len(nodes_of), 4) if nodes_of else 0.0,
                "alerts": {t: sorted(nodes_of[t]) for t in sorted(alerts)},
                "unassigned": len(self.unassigned), "seconds": round(self.seconds, 3)}


def assignment_hash(node: str, night: str, items: Sequence[Item], note: str | None = None
                    ) -> str:
    """A content hash of a node's assignment (the same wishes give the same hash).

    Parameters
    ----------
    node : str
        The node.
    night : str
        The night.
    items : sequence of Item
        Its wishes.
    note : str, optional
        Why it is empty, when it is.

    Returns
    -------
    str
        16 hex digits.
    """
    body = json.dumps({"node": node, "night": night, "note": note,
                       "items": sorted([it.target, iso(it.start), iso(it.end), it.kind]
                                       for it in items)},
                      separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def _night_grid(nodes: Sequence[NodeSpec], night: str, step_min: float) -> np.ndarray:
    """Each node's night, local mean noon to local mean noon, sampled every ``step_min``."""
    d = dt.date.fromisoformat(night)
    noon_utc = dt.datetime(d.year, d.month, d.day, 12, tzinfo=dt.UTC).timestamp()
    lon = np.array([n.longitude for n in nodes], dtype=float)
    t0 = noon_utc - lon / 15.0 * 3600.0
    k = np.arange(round(24 * 60 / step_min) + 1) * step_min * 60.0
    return t0[:, None] + k[None, :]


def _ephemeris(times: np.ndarray, lon: np.ndarray, ra: np.ndarray, dec: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Apparent sidereal time (rad), the sun's apparent RA/Dec (rad), the wishes' apparent
    RA/Dec of date (rad), all from astropy with its bundled IERS tables.

    Greenwich apparent sidereal time and the sun are computed on a 20-minute grid spanning
    all the nodes' nights and interpolated (the sidereal time after removing its steady rate:
    the rest, nutation, changes by milliseconds a day; the sun moves 2.5' an hour), so the
    cost does not grow with the number of nodes.
    """
    import astropy.units as u
    from astropy.coordinates import TETE, SkyCoord, get_sun
    from astropy.time import Time
    from astropy.utils import iers

    lo, hi = float(times.min()), float(times.max())
    coarse = np.arange(lo, hi + 1200.0, 1200.0)
    rate = 2.0 * np.pi * 1.00273781191135448 / 86400.0  # sidereal radians per UT second
    with iers.conf.set_temp("auto_download", False), \
            iers.conf.set_temp("auto_max_age", None):
        t = Time(coarse, format="unix", scale="utc")
        gast = t.sidereal_time("apparent", longitude=0.0 * u.deg).rad
        sun = get_sun(t).transform_to(TETE(obstime=t))
        mid = Time(0.5 * (lo + hi), format="unix", scale="utc")
        if len(ra):
            app = SkyCoord(ra=ra * u.deg, dec=dec * u.deg, frame="icrs").transform_to(
                TETE(obstime=mid))
            a_ra, a_dec = np.asarray(app.ra.rad), np.asarray(app.dec.rad)
        else:
            a_ra, a_dec = np.zeros(0), np.zeros(0)
    resid = np.unwrap(gast - rate * (coarse - lo))
    last = (np.interp(times, coarse, resid) + rate * (times - lo)
            + np.radians(lon)[:, None])
    sun_ra = np.interp(times, coarse, np.unwrap(sun.ra.rad))
    sun_dec = np.interp(times, coarse, sun.dec.rad)
    return last, np.stack([sun_ra, sun_dec]), a_ra, a_dec


def _altitude(lat: np.ndarray, ha: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Altitude (deg) from latitude, hour angle and declination (rad), broadcast."""
    s = np.sin(lat) * np.sin(dec) + np.cos(lat) * np.cos(dec) * np.cos(ha)
    return np.degrees(np.arcsin(np.clip(s, -1.0, 1.0)))


def _azimuth(lat: np.ndarray, ha: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Azimuth (deg, north through east) from latitude, hour angle and declination (rad)."""
    y = -np.cos(dec) * np.sin(ha)
    x = np.sin(dec) * np.cos(lat) - np.cos(dec) * np.sin(lat) * np.cos(ha)
    return np.degrees(np.arctan2(y, x)) % 360.0


def _floor(node: NodeSpec, az: np.ndarray) -> np.ndarray | float:
    """The node's lowest usable altitude at each azimuth: its floor or its horizon mask."""
    if not node.horizon:
        return node.min_altitude
    pts = np.array(sorted(node.horizon), dtype=float)
    xs = np.concatenate([pts[:, 0] - 360.0, pts[:, 0], pts[:, 0] + 360.0])
    ys = np.tile(pts[:, 1], 3)
    mask = np.interp(az, xs, ys).astype(np.float32)
    return np.maximum(mask, np.float32(node.min_altitude))


def _longest_run(ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per leading index, the longest run of True along the last axis: (length, last index)."""
    c = np.cumsum(ok, axis=-1, dtype=np.int32)
    reset = np.maximum.accumulate(np.where(ok, 0, c), axis=-1)
    run = c - reset
    last = run.argmax(axis=-1)
    return run.max(axis=-1), last


def _magnitude_ok(nodes: Sequence[NodeSpec], wishes: Sequence[Wish]) -> np.ndarray:
    """(nodes, wishes): False where the target's range does not fit the instrument."""
    bright = np.array([np.nan if w.brightest is None else w.brightest for w in wishes])
    faint = np.array([np.nan if w.faintest is None else w.faintest for w in wishes])
    ok = np.ones((len(nodes), len(wishes)), dtype=bool)
    for i, n in enumerate(nodes):
        if n.bright_limit is not None:
            ok[i] &= ~(bright < n.bright_limit)  # NaN (unknown) passes
        if n.faint_limit is not None:
            ok[i] &= ~(faint > n.faint_limit)
    return ok


def visibility(nodes: Sequence[NodeSpec], wishes: Sequence[Wish], night: str, *,
               step_minutes: float = 10.0, not_before: float | None = None) -> Visibility:
    """Where each wish is observable from each node on ``night``.

    Parameters
    ----------
    nodes : sequence of NodeSpec
        The nodes (all, usable or not: the reasons of the unassigned use them).
    wishes : sequence of Wish
        The targets.
    night : str
        ``YYYY-MM-DD``, the evening's date at each node.
    step_minutes : float
        The time grid's step.
    not_before : float, optional
        UTC epoch seconds: times before it are not usable (an allocation made mid-night).

    Returns
    -------
    Visibility
    """
    times = _night_grid(nodes, night, step_minutes)
    lat = np.radians([n.latitude for n in nodes])
    lon = np.array([n.longitude for n in nodes], dtype=float)
    ra = np.array([w.ra for w in wishes], dtype=float)
    dec = np.array([w.dec for w in wishes], dtype=float)
    last, sun, a_ra, a_dec = _ephemeris(times, lon, ra, dec)
    sun_alt = _altitude(lat[:, None], last - sun[0], sun[1])
    dark = sun_alt <= np.array([n.sun_limit for n in nodes])[:, None]
    if not_before is not None:
        dark &= times >= not_before
    ha = (last[:, None, :] - a_ra[None, :, None]).astype(np.float32)
    lat3 = lat[:, None, None].astype(np.float32)
    dec3 = a_dec[None, :, None].astype(np.float32)
    alt = _altitude(lat3, ha, dec3)
    n_nodes, n_wish = len(nodes), len(wishes)
    floor = np.empty_like(alt)
    for i, n in enumerate(nodes):  # the azimuth only where a horizon mask needs it
        floor[i] = _floor(n, _azimuth(lat3[i], ha[i], dec3[0])) if n.horizon else n.min_altitude
    ceiling = np.array([n.max_altitude for n in nodes], dtype=np.float32)[:, None, None]
    high = alt <= ceiling
    above = alt >= floor
    ok = above & high & dark[:, None, :]
    run, last_i = _longest_run(ok)
    fits = _magnitude_ok(nodes, wishes)
    step_s = step_minutes * 60.0
    window = np.where(run > 0, (run - 1) * step_minutes, 0.0)
    window = np.where(fits, window, 0.0)
    idx = np.arange(n_nodes)[:, None]
    end = times[idx, last_i]
    start = end - np.maximum(run - 1, 0) * step_s
    why = np.full((n_nodes, n_wish), "", dtype=object)
    dark_any: np.ndarray = np.asarray(dark.any(axis=1))
    why[~dark_any, :] = "no darkness there tonight (the sun stays above its limit)"
    in_dark_above = (above & dark[:, None, :]).any(axis=2)
    in_dark_below_ceiling = (above & high & dark[:, None, :]).any(axis=2)
    cond = dark_any[:, None] & ~in_dark_above
    why[cond] = "below the floor or horizon while it is dark"
    cond = dark_any[:, None] & in_dark_above & ~in_dark_below_ceiling
    why[cond] = "above the ceiling whenever it is above the floor in the dark"
    why[(why == "") & ~fits] = "its range does not fit the instrument's magnitude limits"
    n_dark = dark.sum(axis=1)
    first = np.where(dark_any, dark.argmax(axis=1), 0)
    last_dark = np.where(dark_any, dark.shape[1] - 1 - dark[:, ::-1].argmax(axis=1), 0)
    dusk = np.where(dark_any, times[np.arange(n_nodes), first], np.nan)
    dawn = np.where(dark_any, times[np.arange(n_nodes), last_dark], np.nan)
    return Visibility(times=times, window=window, start=start, end=end, why=why,
                      dark_minutes=np.maximum(n_dark - 1, 0) * step_minutes, dusk=dusk,
                      dawn=dawn)


def _lon_distance(a: float, b: np.ndarray) -> np.ndarray:
    d = np.abs((b - a + 180.0) % 360.0 - 180.0)
    return np.asarray(d)


class _Picker:
    """The greedy share-out over a visibility table."""

    def __init__(self, nodes: Sequence[NodeSpec], wishes: Sequence[Wish], vis: Visibility,
                 min_window: float, slot_minutes: float,
                 previous: dict[str, set[str]] | None = None) -> None:
        self.nodes, self.wishes, self.vis = nodes, wishes, vis
        # stability: a node keeps a wish it had in the night's last allocation when it still
        # can, so a veto or a new alert changes few other nodes' assignments
        prev = previous or {}
        names = [n.name for n in nodes]
        self.kept = np.array([[nm in prev.get(w.target, ()) for w in wishes] for nm in names],
                             dtype=bool).reshape(len(nodes), len(wishes)) * 1e5
        self.usable = np.array([not n.unusable for n in nodes], dtype=bool)
        self.can = (vis.window >= min_window) & self.usable[:, None]
        self.cap = np.floor(vis.dark_minutes / slot_minutes).astype(int)
        self.load = np.zeros(len(nodes), dtype=int)
        self.lon = np.array([n.longitude for n in nodes], dtype=float)
        self.chosen: dict[int, list[int]] = {}

    def first(self, j: int, ignore_capacity: bool) -> int | None:
        cand = self.can[:, j] & (ignore_capacity | (self.load < self.cap))
        if not cand.any():
            return None
        if self.wishes[j].kind == "alert":
            score = np.where(cand, self.kept[:, j] + self.vis.window[:, j], -1.0)
        else:  # the least loaded (relative to capacity), then the longest window
            free = (self.cap - self.load) / np.maximum(self.cap, 1)
            score = np.where(cand, self.kept[:, j] + free * 1e4 + self.vis.window[:, j],
                             -np.inf)
        return int(np.argmax(score))

    def partner(self, j: int, taken: list[int], ignore_capacity: bool, overlap: bool
                ) -> int | None:
        cand = self.can[:, j] & (ignore_capacity | (self.load < self.cap))
        cand[taken] = False
        if not cand.any():
            return None
        if overlap:  # share the first node's window: a cross-check pair
            a = taken[0]
            ov = (np.minimum(self.vis.end[:, j], self.vis.end[a, j])
                  - np.maximum(self.vis.start[:, j], self.vis.start[a, j]))
            score = np.where(cand, self.kept[:, j] + ov + self.vis.window[:, j], -np.inf)
        else:  # as far in longitude as possible from those chosen
            dist = np.min([_lon_distance(self.lon[t], self.lon) for t in taken], axis=0)
            if not ignore_capacity:
                cand &= dist >= DOUBLE_SPACING_DEG
                if not cand.any():
                    return None
            score = np.where(cand, self.kept[:, j] + dist * 1e3 + self.vis.window[:, j],
                             -np.inf)
        return int(np.argmax(score))

    def take(self, i: int, j: int) -> None:
        self.load[i] += 1
        self.chosen.setdefault(j, []).append(i)


def _unassigned_reason(p: _Picker, j: int) -> str:
    vis, nodes = p.vis, p.nodes
    seen_by = [i for i in range(len(nodes)) if vis.window[i, j] >= 0 and p.can[i, j]]
    if seen_by:
        return (f"every node that can observe it is full tonight ({len(seen_by)} could; "
                "raise its priority or add nodes)")
    blocked = sorted({nodes[i].unusable for i in range(len(nodes))
                      if nodes[i].unusable and vis.window[i, j] > 0})
    if blocked:
        return "the nodes that could observe it get nothing tonight: " + "; ".join(blocked)
    reasons = [str(r) for r in vis.why[:, j] if r]
    if reasons:
        counts = sorted({r: reasons.count(r) for r in reasons}.items(), key=lambda kv: -kv[1])
        return "not observable from any node tonight: " + "; ".join(
            f"{r} ({k} node{'' if k == 1 else 's'})" for r, k in counts)
    return "not observable long enough from any node tonight (shorter than the minimum window)"


def _items(p: _Picker) -> list[Item]:
    """The picker's choices as items, sorted by node and start."""
    out = []
    for j, chosen in p.chosen.items():
        w = p.wishes[j]
        for i in chosen:
            why = w.reason or w.kind
            if len(chosen) > 1:
                others = ", ".join(p.nodes[k].name for k in chosen if k != i)
                why = f"{why}; also asked of {others}"
            out.append(Item(node=p.nodes[i].name, target=w.target, name=w.name, kind=w.kind,
                            ra=w.ra, dec=w.dec, start=float(p.vis.start[i, j]),
                            end=float(p.vis.end[i, j]), priority=w.priority, reason=why))
    return sorted(out, key=lambda it: (it.node, it.start, it.target))


def allocate(nodes: Sequence[NodeSpec], wishes: Sequence[Wish], night: str, *,
             step_minutes: float = 10.0, min_window_minutes: float = 60.0,
             slot_minutes: float = 45.0, alert_nodes: int = 2, double_up: bool = True,
             not_before: float | None = None,
             previous: dict[str, set[str]] | None = None) -> Allocation:
    """Share the wishes out among the nodes for one night.

    Parameters
    ----------
    nodes : sequence of NodeSpec
        Every node with a known site (an unusable one gets nothing, with its reason).
    wishes : sequence of Wish
        What the network wants; the order of equal priorities is the order given.
    night : str
        ``YYYY-MM-DD``.
    step_minutes : float
        The time grid's step.
    min_window_minutes : float
        The shortest observable stretch worth assigning.
    slot_minutes : float
        Dark time per target: a node's capacity is its dark minutes over this.
    alert_nodes : int
        Nodes per alert target (wherever that many can see it).
    double_up : bool
        Give spare capacity to a second node for the most wanted targets.
    not_before : float, optional
        UTC epoch seconds: nothing is assigned before this (an allocation mid-night).
    previous : dict, optional
        target key -> nodes that had it in the night's last allocation: they keep it when
        they still can (a change moves few wishes).

    Returns
    -------
    Allocation
    """
    import time

    t0 = time.perf_counter()
    out = Allocation(night=night)
    if not nodes:
        out.unassigned = [{"target": w.name, "reason": "no node has told the hub its site"}
                          for w in wishes]
        return out
    vis = visibility(nodes, wishes, night, step_minutes=step_minutes, not_before=not_before)
    p = _Picker(nodes, wishes, vis, min_window_minutes, slot_minutes, previous)
    order = sorted(range(len(wishes)), key=lambda j: -wishes[j].priority)
    for j in order:
        w = wishes[j]
        alert = w.kind == "alert"
        i = p.first(j, ignore_capacity=alert)
        if i is None:
            out.unassigned.append({"target": w.name, "reason": _unassigned_reason(p, j)})
            continue
        p.take(i, j)
        for extra in range(1, max(1, alert_nodes) if alert else 1):
            k = p.partner(j, p.chosen[j], ignore_capacity=True, overlap=extra == 1)
            if k is None:
                break
            p.take(k, j)
    if double_up:
        for j in order:
            if j in p.chosen and len(p.chosen[j]) == 1:
                k = p.partner(j, p.chosen[j], ignore_capacity=False, overlap=False)
                if k is not None:
                    p.take(k, j)
    out.items = _items(p)
    for i, n in enumerate(nodes):
        dawn = vis.dawn[i]
        out.expires[n.name] = (float(dawn) + step_minutes * 60.0 if math.isfinite(dawn)
                               else float(vis.times[i, -1]))
        if n.unusable:
            out.notes[n.name] = f"nothing tonight: {n.unusable}"
        elif vis.dark_minutes[i] <= 0:
            out.notes[n.name] = "nothing tonight: the sun stays above its limit"
    out.seconds = time.perf_counter() - t0
    return out
