"""The planner's lines of ``starnode doctor``: site, candidates, Target Tool cache, and an
offline ephemeris for tonight (never the Target Tool key itself)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..config import Config

if TYPE_CHECKING:
    from starnode.diagnostics import Check

__all__ = ["health"]


def _target_tool(config: Config) -> list[Check]:
    from starnode.diagnostics import Check, Level
    from starnode.store import CatalogCache

    from .targettool import CACHE_KIND, ENV_KEY, target_tool_key

    if target_tool_key(config) is None:
        return []
    where = "target_tool.key" if config.target_tool.key else f"${ENV_KEY}"
    ages = []
    cache = CatalogCache(config.db_path) if config.db_path.exists() else None
    for section in config.target_tool.sections:
        entry = cache.get(CACHE_KIND, section) if cache is not None else None
        ages.append(f"{section}: " + ("never fetched" if entry is None else
                                      f"{(time.time() - entry.fetched_at) / 3600:.0f} h old"))
    return [Check(Level.OK, "target tool", f"key set ({where}); cached answers: "
                  + ", ".join(ages))]


def health(config: Config) -> list[Check]:
    """Planning checks for ``starnode doctor``."""
    from starnode.diagnostics import Check, Level
    from starnode.errors import ConfigError

    from .ephemeris import dark_window, night_of, site_from_config

    out: list[Check] = []
    n_targets = len(config.targets or [])
    has_tool = bool(config.target_tool.key or os.environ.get("STARNODE_TARGET_TOOL_KEY"))
    driving = config.telescope.driver != "none"
    if not n_targets and not has_tool:
        out.append(Check(Level.WARN if driving else Level.OK, "plan",
                         "no targets: add a targets: list or a target_tool.key for "
                         "'starnode plan'"))
    else:
        out.append(Check(Level.OK, "plan", f"{n_targets} target(s) in the config"
                         + (", and the AAVSO Target Tool" if has_tool else "")))
    out.extend(_target_tool(config))
    try:
        site = site_from_config(config)
    except ConfigError as exc:
        out.append(Check(Level.FAIL if driving else Level.WARN, "site", str(exc)))
        return out
    limit = float(config.telescope.sun_limit)
    night = night_of(datetime.now(UTC), site.lon_deg)
    try:
        dark = dark_window(site, night, limit)
    except Exception as exc:  # the ephemeris itself: nothing may move without it
        out.append(Check(Level.FAIL, "ephemeris", f"cannot compute the sun offline: "
                         f"{type(exc).__name__}: {exc}"))
        return out
    if dark.dark and dark.start and dark.end:
        out.append(Check(Level.OK, "ephemeris", f"night {night}: dark (sun below "
                         f"{limit:g}°) from {dark.start:%H:%M} to {dark.end:%H:%M} UTC, "
                         "computed offline"))
    else:
        out.append(Check(Level.OK, "ephemeris", f"night {night}: the sun never reaches "
                         f"{limit:g}° (no darkness), computed offline"))
    return out
