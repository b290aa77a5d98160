"""The AAVSO Target Tool: the "Alerts & Campaigns" section and the general list, cached.

The API (``target_tool.url``) takes HTTP Basic authentication with the user's API key as user
name and the literal ``api_token`` as password, and answers ``{"targets": [...]}``. Field names
differ between clients and versions, so each target is read defensively (``star_name`` or
``name``; ``ra``/``dec`` in degrees; ``max_mag``/``min_mag``; ``obs_cadence``; ``priority``).

Every answer is kept in the node's catalogue cache (kind ``target-tool``, key = the section) so
that planning works offline from the last answer. The key comes from ``target_tool.key`` or
``$STARNODE_TARGET_TOOL_KEY``; it is sent only in the Authorization header and never appears in
a log message, an exception, the cache or a plan.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from starnode.errors import CatalogError
from starnode.store import CatalogCache
from starnode.util.http import make_session

from ..config import Config
from .candidates import Candidate

log = logging.getLogger(__name__)

__all__ = ["ENV_KEY", "TargetToolAnswer", "parse_targets", "target_tool_candidates",
           "target_tool_key"]

ENV_KEY = "STARNODE_TARGET_TOOL_KEY"
CACHE_KIND = "target-tool"
SECTION_NAMES = {"ac": "Alerts & Campaigns", "all": "the general list"}


def target_tool_key(config: Config) -> str | None:
    """The configured key (``target_tool.key``, else ``$STARNODE_TARGET_TOOL_KEY``), or None."""
    key = (config.target_tool.key or os.environ.get(ENV_KEY) or "").strip()
    return key or None


def _float(d: Mapping[str, Any], *names: str) -> float | None:
    for n in names:
        v = d.get(n)
        if v is None or v == "":
            continue
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if f == f:
            return f
    return None


def _truthy(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes", "y")
    return bool(v)


def parse_targets(data: Any, section: str) -> list[Candidate]:
    """A Target Tool answer -> candidates (rows without a name or position are skipped).

    Raises
    ------
    CatalogError
        Not a Target Tool answer at all.
    """
    if isinstance(data, Mapping):
        rows = data.get("targets")
    else:
        rows = data if isinstance(data, list) else None
    if not isinstance(rows, list):
        raise CatalogError("the Target Tool answer has no list of targets")
    alert_section = section == "ac"
    found = (_candidate(row, section, alert_section) for row in rows
             if isinstance(row, Mapping))
    return [c for c in found if c is not None]


def _position(row: Mapping[str, Any]) -> tuple[str, float, float] | None:
    """The row's name, RA and Dec (degrees); None without a name or a valid position."""
    name = str(row.get("star_name") or row.get("name") or "").strip()
    ra, dec = _float(row, "ra", "ra_deg", "RA"), _float(row, "dec", "dec_deg", "DEC")
    if not name or ra is None or dec is None or not (0 <= ra < 360 and -90 <= dec <= 90):
        return None
    return name, ra, dec


def _in_alert(row: Mapping[str, Any], alert_section: bool) -> bool:
    """Asked for by an alert or a campaign (the whole section, or the row's sections)."""
    sections = row.get("obs_section") or []
    if isinstance(sections, str):
        sections = [sections]
    return alert_section or any("alert" in str(s).lower() or "campaign" in str(s).lower()
                                for s in sections)


def _mag_range(row: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """(brightest, faintest), in that order whatever the row says."""
    brightest = _float(row, "max_mag", "maxmag", "brightest")
    faintest = _float(row, "min_mag", "minmag", "faintest")
    if brightest is not None and faintest is not None and brightest > faintest:
        brightest, faintest = faintest, brightest
    return brightest, faintest


def _candidate(row: Mapping[str, Any], section: str, alert_section: bool) -> Candidate | None:
    """One Target Tool row; None (logged) without a name or position."""
    where = _position(row)
    if where is None:
        log.debug("Target Tool row skipped (no name or position): %r", dict(row))
        return None
    name, ra, dec = where
    in_ac = _in_alert(row, alert_section)
    brightest, faintest = _mag_range(row)
    return Candidate(
        name=name, ra_deg=ra, dec_deg=dec, brightest=brightest, faintest=faintest,
        alert=in_ac, priority=_truthy(row.get("priority")),
        cadence_days=_float(row, "obs_cadence", "cadence", "cadence_days"),
        source=f"target-tool:{section}")


@dataclass(frozen=True)
class TargetToolAnswer:
    """The candidates of the configured sections and where they came from."""

    candidates: list[Candidate]
    origins: dict[str, str]  # section -> "network" | "cache" | "cache (stale, N h)" | error text


def _ask(config: Config, key: str, section: str) -> Any:
    tt = config.target_tool
    session = make_session(attempts=int(config.catalogs.http_retries),
                           backoff=float(config.catalogs.http_backoff),
                           timeout=float(tt.http_timeout))
    try:
        resp = session.get(tt.url, params={"obs_section": section},
                           auth=(key, "api_token"), timeout=float(tt.http_timeout))
    except requests.RequestException as exc:
        # the exception text names the URL, never the key (it is in a header only)
        raise CatalogError(f"Target Tool ({section}): cannot ask {tt.url}: "
                           f"{type(exc).__name__}") from None
    finally:
        session.close()
    if resp.status_code == 401:
        raise CatalogError("Target Tool: the API key was refused (HTTP 401): check "
                           "target_tool.key or $STARNODE_TARGET_TOOL_KEY")
    if resp.status_code >= 400:
        raise CatalogError(f"Target Tool ({section}): HTTP {resp.status_code} from {tt.url}")
    try:
        return resp.json()
    except ValueError:
        raise CatalogError(f"Target Tool ({section}): the answer is not JSON") from None


def _section(config: Config, key: str, section: str, cache: CatalogCache
             ) -> tuple[list[Candidate], str]:
    entry = cache.get(CACHE_KIND, section)
    hours = None if entry is None else (time.time() - entry.fetched_at) / 3600.0
    if entry is not None and hours is not None and hours <= float(config.target_tool.cache_hours):
        return parse_targets(entry.payload, section), "cache"
    if not config.catalogs.offline:
        try:
            raw = _ask(config, key, section)
            found = parse_targets(raw, section)
        except CatalogError as exc:
            if entry is None:
                raise
            log.warning("%s; planning from the Target Tool answer cached %.1f hours ago", exc,
                        hours)
        else:
            cache.put(CACHE_KIND, section, config.target_tool.url, raw)
            return found, "network"
    if entry is None:
        raise CatalogError(f"Target Tool ({section}): offline and never fetched")
    return parse_targets(entry.payload, section), f"cache (stale, {hours:.0f} h)"


def target_tool_candidates(config: Config) -> TargetToolAnswer:
    """The Target Tool's candidates (``target_tool.sections``), from the cache when fresh, else
    the network, else an older cached answer. Nothing (and no request) without a key.

    A section that cannot be had is logged at WARNING and noted in ``origins``; the others are
    still returned.
    """
    key = target_tool_key(config)
    if key is None:
        return TargetToolAnswer([], {})
    cache = CatalogCache(config.db_path)
    found: list[Candidate] = []
    origins: dict[str, str] = {}
    for section in config.target_tool.sections:
        try:
            got, origin = _section(config, key, section, cache)
        except CatalogError as exc:
            log.warning("%s: planning without %s", exc, SECTION_NAMES.get(section, section))
            origins[section] = str(exc)
            continue
        log.info("Target Tool %s: %d targets (%s)", SECTION_NAMES.get(section, section),
                 len(got), origin)
        origins[section] = origin
        found.extend(got)
    return TargetToolAnswer(found, origins)
