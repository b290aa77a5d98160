"""The stars the planner may choose from: the config's ``targets:`` list (completed through
VSX, cached) and the AAVSO Target Tool (:mod:`starnode.planning.targettool`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from starnode.errors import CatalogError
from starnode.util.values import name_key

from ..config import Config

log = logging.getLogger(__name__)

__all__ = ["Candidate", "config_candidates", "merge_candidates", "target_candidate"]


@dataclass(frozen=True)
class Candidate:
    """A star the plan may include.

    ``problem`` says why it cannot be planned at all (e.g. VSX does not know it and no
    coordinates were given); such a candidate is excluded with that reason.
    """

    name: str
    ra_deg: float | None = None
    dec_deg: float | None = None
    brightest: float | None = None  # magnitude at maximum light
    faintest: float | None = None  # magnitude at minimum light
    alert: bool = False  # AAVSO Alert / campaign: observed first
    priority: bool = False  # Target Tool priority flag
    cadence_days: float | None = None  # None: planning.cadence_days
    source: str = "config"  # config | target-tool:ac | target-tool:all | hub | caller
    problem: str | None = None
    #: The hub's wish: observe it within this UTC window when the gates allow (a wish: when
    #: no slot fits inside it, the rest of the night is used).
    window: tuple[datetime, datetime] | None = None


def _range_from_vsx(max_mag: str | None, min_mag: str | None
                    ) -> tuple[float | None, float | None]:
    from starnode.catalogs.types import parse_vsx_mag

    hi, lo = parse_vsx_mag(max_mag), parse_vsx_mag(min_mag)
    brightest = hi.value if hi is not None else None
    faintest = None
    if lo is not None:
        faintest = lo.value + brightest if lo.amplitude and brightest is not None else lo.value
        if lo.amplitude and brightest is None:
            faintest = None
    return brightest, faintest


def _resolve(config: Config, entry: dict[str, Any]) -> Candidate:
    name = str(entry["name"]).strip()
    cand = Candidate(name=name, ra_deg=entry.get("ra"), dec_deg=entry.get("dec"),
                     brightest=entry.get("brightest"), faintest=entry.get("faintest"),
                     cadence_days=entry.get("cadence_days"))
    complete = None not in (cand.ra_deg, cand.dec_deg, cand.brightest, cand.faintest)
    if complete:
        return cand
    from starnode.catalogs.vsx import vsx_object

    try:
        target = vsx_object(config, name)
    except CatalogError as exc:
        if cand.ra_deg is not None and (cand.brightest is not None or cand.faintest is not None):
            return cand  # enough to plan with
        return replace(cand, problem=f"not resolved through VSX ({exc})")
    if target is None:
        if cand.ra_deg is not None:
            return cand
        return replace(cand, problem="VSX does not know this name; give ra and dec")
    brightest, faintest = _range_from_vsx(target.max_mag, target.min_mag)
    return replace(
        cand,
        ra_deg=cand.ra_deg if cand.ra_deg is not None else target.ra_deg,
        dec_deg=cand.dec_deg if cand.dec_deg is not None else target.dec_deg,
        brightest=cand.brightest if cand.brightest is not None else brightest,
        faintest=cand.faintest if cand.faintest is not None else faintest)


def target_candidate(config: Config, entry: dict[str, Any]) -> Candidate:
    """One ``targets:``-style entry (``name``, optional ``ra``, ``dec``, ``brightest``,
    ``faintest``, ``cadence_days``) completed through VSX (cache first)."""
    return _resolve(config, dict(entry))


def config_candidates(config: Config) -> list[Candidate]:
    """The ``targets:`` list, each completed through VSX (cache first; offline from the cache)."""
    out = []
    for entry in config.targets or []:
        if isinstance(entry, str):
            entry = {"name": entry}
        out.append(_resolve(config, dict(entry)))
    return out


def merge_candidates(groups: Iterable[Iterable[Candidate]]) -> list[Candidate]:
    """One candidate per star (names compared loosely: ``SS Cyg`` = ``ss_cyg``): the first seen
    keeps its values, missing ones are filled from later ones; alert/priority flags add up and
    the shortest cadence wins."""
    merged: dict[str, Candidate] = {}
    for group in groups:
        for c in group:
            k = name_key(c.name)
            old = merged.get(k)
            if old is None:
                merged[k] = c
                continue
            cad = [x for x in (old.cadence_days, c.cadence_days) if x is not None]
            merged[k] = replace(
                old,
                ra_deg=old.ra_deg if old.ra_deg is not None else c.ra_deg,
                dec_deg=old.dec_deg if old.dec_deg is not None else c.dec_deg,
                brightest=old.brightest if old.brightest is not None else c.brightest,
                faintest=old.faintest if old.faintest is not None else c.faintest,
                alert=old.alert or c.alert, priority=old.priority or c.priority,
                window=old.window or c.window,
                cadence_days=min(cad) if cad else None,
                problem=old.problem if c.problem else None)
    return list(merged.values())
