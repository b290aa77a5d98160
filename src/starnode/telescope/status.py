"""The telescope's part of ``starnode status`` (and of the local page's status data): parked or
not as the mount last reported it, the alarm of a failed park, the current activity and the
last journal steps. Read-only."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["telescope_lines", "telescope_status"]


def telescope_status(cfg: Any, last: int = 8) -> dict[str, Any] | None:
    """``{"driver", "motion", "parked", "alarm", "activity", "steps"}``, or None when the
    telescope is not configured and never ran."""
    from ..store import Store
    from ..store.telescope import TelescopeJournal

    try:
        with TelescopeJournal(Store.open(cfg)) as j:
            state = j.state()
            steps = j.steps(limit=last) if last else []
    except Exception as exc:  # a damaged database must not hide the rest of the status
        log.warning("cannot read the telescope journal: %s", exc)
        return None
    if cfg.telescope.driver == "none" and not state and not steps:
        return None

    def val(key: str) -> str | None:
        return state.get(key, {}).get("value")

    return {"driver": cfg.telescope.driver, "motion": bool(cfg.telescope.motion),
            "parked": val("parked") or "unknown", "alarm": val("alarm"),
            "activity": val("activity"), "updated": state.get("activity", {}).get("updated"),
            "steps": [{k: s[k] for k in ("t_utc", "target", "step", "detail")} for s in steps]}


def telescope_lines(t: dict[str, Any] | None) -> list[str]:
    """The text form."""
    if t is None:
        return []
    out = []
    if t.get("alarm"):
        out.append(f"TELESCOPE ALARM: {t['alarm']}")
    out.append(f"telescope ({t['driver']}, motion {'on' if t['motion'] else 'off'}): parked "
               f"{t['parked']}" + (f"; last: {t['activity']} at {t['updated']}"
                                   if t.get("activity") else ""))
    for s in t.get("steps") or []:
        out.append(f"  {s['t_utc'][:19]}Z {s['step']:<12} {s['target'] or '':<12} "
                   f"{s['detail'] or ''}".rstrip())
    return out
