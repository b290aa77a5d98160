"""What the runner asks at each safe boundary (between items, between frames, while waiting;
never mid-exposure): a new plan from the hub's assignment, the hub's alerts, the weather.

The telescope is a layer below the node, so the runner sees the network only through
:class:`NetworkLink` (implemented by :class:`starnode.node.nightwork.NodeNetwork`, over the
node's copy of its assignment and alerts) and the weather through :class:`WeatherSource`
(:mod:`.weather`). The hub sends wishes, never motion: whatever comes through here is still
gated by :class:`~.safety.SafetyManager` before anything moves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ..planning.model import Plan

__all__ = ["Alert", "NetworkLink", "NewPlan", "WeatherSource"]


@dataclass(frozen=True)
class NewPlan:
    """A plan made from a new assignment of the hub (``assignment`` is its hash)."""

    plan: Plan
    assignment: str
    night: str


@dataclass(frozen=True)
class Alert:
    """An alert of the hub, as the runner needs it."""

    id: int
    target: str
    ra_deg: float
    dec_deg: float
    end: datetime | None  # the alert's window ends (None: the night)
    exposure_s: float = 10.0
    start: datetime | None = None  # not before (the hub's window for this node starts)


class NetworkLink(Protocol):
    """The hub's side of the night, as the runner sees it (all on the runner's clock)."""

    min_alert_minutes: float  # an alert is refused unless observable this long from now
    alert_slot_minutes: float  # the time given to an inserted alert

    def new_plan(self, now: datetime, night: str, applied: str | None) -> NewPlan | None:
        """A plan made from the current assignment when it is not ``applied`` yet (None:
        nothing new, or no assignment for ``night``)."""
        ...

    def applied(self, night: str, assignment: str) -> None:
        """The plan from ``assignment`` is in the journal: it may be acknowledged."""
        ...

    def alerts(self) -> list[Alert]:
        """Alerts not answered yet."""
        ...

    def answer(self, alert_id: int, *, scheduled_at: datetime | None = None,
               refused: str | None = None) -> None:
        """What the runner did with an alert (after its journal has it)."""
        ...


class WeatherSource(Protocol):
    """A weather veto: ``(True, why)`` when it is not safe to observe."""

    def veto(self) -> tuple[bool, str | None]:
        ...

