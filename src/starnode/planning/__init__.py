"""Tonight's plan: which variable stars to observe, when, and with what exposures.

The plan is computed by :mod:`starnode.planning.planner` and executed by
:mod:`starnode.telescope.runner`; :mod:`starnode.planning.model` is the contract between them.
:mod:`starnode.planning.ephemeris` is the one source of sun, Moon and dusk/dawn events (offline
IERS). The model is imported at once; everything needing astropy is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .model import Exclusion, Plan, PlanItem, iso_utc, parse_utc

__all__ = ["Candidate", "DarkWindow", "Exclusion", "Plan", "PlanItem", "Site", "SunEvent",
           "dark_window", "iso_utc", "parse_utc", "plan_night", "pointing_problem",
           "site_from_config", "sun_altitude", "sun_events", "window_problem"]

_LAZY = {"plan_night": "planner", "Candidate": "candidates", "DarkWindow": "ephemeris",
         "Site": "ephemeris", "SunEvent": "ephemeris", "dark_window": "ephemeris",
         "site_from_config": "ephemeris", "sun_altitude": "ephemeris",
         "sun_events": "ephemeris", "pointing_problem": "gates", "window_problem": "gates"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'starnode.planning' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
