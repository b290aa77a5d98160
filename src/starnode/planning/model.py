"""The plan as typed records: the contract between the planner, the telescope runner and the hub.

Every time is an aware :class:`~datetime.datetime` in UTC; on the wire (JSON) it is ISO 8601 with
a ``Z`` suffix. A plan is for one observing night (the evening's date, as elsewhere in starnode),
carries a hash of its content, and expires: a runner refuses a plan for another night or past its
expiry, and skips (never runs late) an item whose window has passed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["Exclusion", "Plan", "PlanItem", "iso_utc", "parse_utc"]


def iso_utc(t: datetime) -> str:
    """``2025-09-14T20:10:00Z``: an aware datetime as ISO 8601 UTC (naive datetimes are refused)."""
    if t.tzinfo is None:
        raise ValueError(f"naive datetime {t!r}: plan times must be aware (UTC)")
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: str) -> datetime:
    """The inverse of :func:`iso_utc`; accepts ``Z`` or an explicit offset, refuses naive text."""
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        raise ValueError(f"{text!r}: a plan time needs its offset (UTC, 'Z')")
    return t.astimezone(UTC)


@dataclass(frozen=True)
class PlanItem:
    """One target's slot: observe ``target`` from ``start`` to ``end`` (UTC) in ``frames``
    exposures of ``exposure_s`` seconds each (the runner stops at ``end`` or the count,
    whichever comes first)."""

    target: str
    ra_deg: float  # ICRS
    dec_deg: float  # ICRS
    start: datetime
    end: datetime
    exposure_s: float
    frames: int
    score: float = 0.0
    reason: str = ""  # why it was chosen, in words ("alert", "cadence debt 3.2 d", ...)
    min_altitude_deg: float = 0.0  # the lowest altitude over the window, as planned
    max_altitude_deg: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["start"] = iso_utc(self.start)
        d["end"] = iso_utc(self.end)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PlanItem:
        kw = dict(d)
        kw["start"] = parse_utc(str(d["start"]))
        kw["end"] = parse_utc(str(d["end"]))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in kw.items() if k in known})


@dataclass(frozen=True)
class Exclusion:
    """A candidate left out of the plan, and why (one sentence a member can hear)."""

    target: str
    reason: str
    code: str = ""  # machine-readable: sun, altitude, moon, saturates, too_faint, cadence, ...

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Plan:
    """Tonight's plan for one site and telescope."""

    night: str  # YYYY-MM-DD, the evening's date
    created: datetime
    expires: datetime
    items: tuple[PlanItem, ...] = ()
    excluded: tuple[Exclusion, ...] = ()
    # The dark window: dusk = the sun crossing the limit downwards (evening), dawn = crossing
    # it upwards (morning: park by then). When the sun stays below the limit all day (polar
    # winter) they are the night's edges (local mean noon); None when it is never dark.
    dusk: datetime | None = None
    dawn: datetime | None = None
    site: dict[str, float] = field(default_factory=dict)  # lat_deg, lon_deg, height_m
    sun_limit_deg: float | None = None  # telescope.sun_limit the plan was made with
    instrument: str = ""  # the instrument profile (s50, s30, s30pro, generic)
    notes: tuple[str, ...] = ()  # what a member should know (Target Tool offline, ...)

    @property
    def hash(self) -> str:
        """A content hash of what the telescope would do (night, items), not of when it was
        computed, so the same plan computed twice has the same hash."""
        body = json.dumps({"night": self.night, "items": [i.to_dict() for i in self.items]},
                          sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    def expired(self, now: datetime) -> bool:
        return now >= self.expires

    def to_dict(self) -> dict[str, Any]:
        return {
            "night": self.night,
            "hash": self.hash,
            "created": iso_utc(self.created),
            "expires": iso_utc(self.expires),
            "dusk": iso_utc(self.dusk) if self.dusk else None,
            "dawn": iso_utc(self.dawn) if self.dawn else None,
            "site": dict(self.site),
            "sun_limit_deg": self.sun_limit_deg,
            "instrument": self.instrument,
            "notes": list(self.notes),
            "items": [i.to_dict() for i in self.items],
            "excluded": [e.to_dict() for e in self.excluded],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        plan = cls(
            night=str(d["night"]),
            created=parse_utc(str(d["created"])),
            expires=parse_utc(str(d["expires"])),
            items=tuple(PlanItem.from_dict(i) for i in d.get("items", ())),
            excluded=tuple(Exclusion(**e) for e in d.get("excluded", ())),
            dusk=parse_utc(str(d["dusk"])) if d.get("dusk") else None,
            dawn=parse_utc(str(d["dawn"])) if d.get("dawn") else None,
            site={k: float(v) for k, v in dict(d.get("site") or {}).items()},
            sun_limit_deg=(float(d["sun_limit_deg"]) if d.get("sun_limit_deg") is not None
                           else None),
            instrument=str(d.get("instrument") or ""),
            notes=tuple(str(n) for n in d.get("notes") or ()),
        )
        if "hash" in d and d["hash"] != plan.hash:
            raise ValueError(f"plan hash {d['hash']!r} does not match its content ({plan.hash})")
        return plan
