"""The network's night at the node: the hub's assignment turned into tonight's plan, and the
telescope runner's link to the hub's assignment and alerts (:class:`NodeNetwork`).

The hub sends wishes (targets with UTC windows), never motion. When the node holds a current
assignment for the night being planned (for this node, not expired: the forwarder refused
anything else before writing it), :func:`network_plan` plans the assignment's targets, each
with its window as a wish, through the node's own planner and gates; without one (no hub, the
hub unreachable before any assignment, an assignment for another night) the node plans from its
own ``targets:`` list and the Target Tool as before. A target's magnitude range comes from the
node's own list or VSX (cached); the hub's item gives the name, coordinates and window.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import resolve
from ..planning.candidates import Candidate, target_candidate
from ..planning.model import Plan
from ..telescope.network import Alert, NewPlan
from ..util.values import name_key
from . import assignment as nodeplan

log = logging.getLogger(__name__)

__all__ = ["NodeNetwork", "assignment_candidates", "network_plan"]


def _utc(text: Any) -> dt.datetime:
    t = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if t.tzinfo is None:
        raise ValueError(f"{text!r}: a time without its UTC offset")
    return t.astimezone(dt.UTC)


def assignment_candidates(config: Any, assignment: dict[str, Any]) -> list[Candidate]:
    """The assignment's targets as the planner's candidates: the hub's name, coordinates and
    window (a wish), ``alert`` for an alert; the range from the node's own ``targets:`` entry
    of the same star, else VSX (through the cache).

    Parameters
    ----------
    config : Config or anything :func:`starnode.config.resolve` accepts
        The node's configuration.
    assignment : dict
        :func:`starnode.node.assignment.current_assignment`'s answer.

    Returns
    -------
    list of Candidate
    """
    cfg = resolve(config)
    own_entries = {}
    for entry in cfg.targets or []:
        e = {"name": entry} if isinstance(entry, str) else dict(entry)
        own_entries[name_key(str(e["name"]))] = e
    wanted = []
    for it in assignment.get("items") or []:
        name = str(it["target"])
        own = own_entries.get(name_key(name), {})
        wanted.append({**own, "name": name, "ra": float(it["ra_deg"]),
                       "dec": float(it["dec_deg"])})
    out = []
    for entry, it in zip(_resolved(cfg, wanted), assignment.get("items") or [], strict=True):
        out.append(Candidate(
            name=entry.name, ra_deg=entry.ra_deg, dec_deg=entry.dec_deg,
            brightest=entry.brightest, faintest=entry.faintest,
            alert=str(it.get("kind")) == "alert", cadence_days=entry.cadence_days,
            source="hub", problem=entry.problem, window=(_utc(it["start"]), _utc(it["end"]))))
    return out


def _resolved(cfg: Any, entries: list[dict[str, Any]]) -> list[Candidate]:
    """Each entry completed like a ``targets:`` entry (VSX through the cache)."""
    return [replace(target_candidate(cfg, e), name=e["name"]) for e in entries]


def network_plan(config: Any, night: str | None = None, *, now: dt.datetime | None = None
                 ) -> tuple[Plan, str | None]:
    """Tonight's plan: from the hub's current assignment when the node holds one for the
    night, else from the node's own list.

    Parameters
    ----------
    config : Config or anything :func:`starnode.config.resolve` accepts
        The node's configuration.
    night : str, optional
        ``YYYY-MM-DD``; default: the planner's (tonight, or the coming night).
    now : datetime, optional
        Aware UTC (the runner's clock).

    Returns
    -------
    (Plan, str or None)
        The plan, and the hash of the assignment it was made from (None: the node's own
        list).
    """
    from ..planning.planner import plan_night

    cfg = resolve(config)
    now = now or dt.datetime.now(dt.UTC)
    held = nodeplan.current_assignment(cfg.data_dir, now)
    if held is not None:
        plan = plan_night(cfg, night or None, now=now, candidates=[])  # which night it is
        if held.get("night") == plan.night:
            cands = assignment_candidates(cfg, held)
            plan = plan_night(cfg, plan.night, now=now, candidates=cands)
            log.info("plan from hub assignment %s: %d of %d wishes planned", held["hash"],
                     len(plan.items), len(cands))
            return plan, str(held["hash"])
        log.info("hub assignment %s is for %s, not %s: planning from the node's own list",
                 held.get("hash"), held.get("night"), plan.night)
    return plan_night(cfg, night or None, now=now), None


class NodeNetwork:
    """:class:`starnode.telescope.network.NetworkLink` over the node's data folder (the
    forwarder's copy of the assignment and the alerts; works without the hub).

    Parameters
    ----------
    config : Config or anything :func:`starnode.config.resolve` accepts
        The node's configuration (``data_dir``; ``telescope.alert_min_minutes``,
        ``planning.slot_minutes``).
    """

    def __init__(self, config: Any) -> None:
        self.cfg = resolve(config)
        self.data_dir = Path(self.cfg.data_dir)
        self.min_alert_minutes = float(self.cfg.telescope.get("alert_min_minutes", 20.0))
        self.alert_slot_minutes = max(self.min_alert_minutes,
                                      float(self.cfg.planning.slot_minutes))
        self._tried: set[str] = set()

    def new_plan(self, now: dt.datetime, night: str, applied: str | None) -> NewPlan | None:
        held = nodeplan.current_assignment(self.data_dir, now)
        if held is None or held.get("night") != night:
            return None
        h = str(held["hash"])
        if h == applied or h in self._tried:
            return None
        if nodeplan.assignment_applied(self.data_dir, h):  # a restart: applied before
            return None
        self._tried.add(h)  # planned once, even if the planner fails
        from ..planning.planner import plan_night

        plan = plan_night(self.cfg, night, now=now,
                          candidates=assignment_candidates(self.cfg, held))
        return NewPlan(plan, h, night)

    def applied(self, night: str, assignment: str) -> None:
        nodeplan.mark_assignment_applied(self.data_dir, night, assignment)

    def alerts(self) -> list[Alert]:
        out = []
        for a in nodeplan.pending_alerts(self.data_dir):
            try:
                end = a.get("end") or a.get("expires")
                out.append(Alert(int(a["id"]), str(a["target"]), float(a["ra_deg"]),
                                 float(a["dec_deg"]), _utc(end) if end else None,
                                 start=_utc(a["start"]) if a.get("start") else None))
            except (KeyError, TypeError, ValueError) as exc:
                log.error("hub: alert %r cannot be used: %s", a.get("id"), exc)
        return out

    def answer(self, alert_id: int, *, scheduled_at: dt.datetime | None = None,
               refused: str | None = None) -> None:
        nodeplan.record_alert_outcome(self.data_dir, alert_id, scheduled_at=scheduled_at,
                                      refused=refused)
