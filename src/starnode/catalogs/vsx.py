"""AAVSO VSX: a variable star by name (``api.object``) or around a position (``api.list``).

VSX answers ``{"VSXObject": {...}}`` with every value a string and coordinates in degrees; an
unknown name gives ``{}``, ``[]`` or an empty ``VSXObject``. Answers go through the cache
(:func:`starnode.catalogs.fetch.cached`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from starnode.config import Config
from starnode.errors import CatalogError
from starnode.util.values import normalize_name

from .fetch import CLIENT, cached
from .types import Target, at, separation_deg, snippet

log = logging.getLogger("starnode.catalogs")

__all__ = ["parse_vsx_list", "parse_vsx_object", "vsx_cone", "vsx_object"]


def parse_vsx_object(data: Any, *, origin: str = "") -> Target | None:
    """A VSX ``api.object`` answer -> :class:`Target` (source "vsx"); None for an unknown name.

    VSX answers ``{"VSXObject": {...}}`` with every value a string and coordinates in degrees;
    an unknown name gives ``{}``, ``[]`` or an empty ``VSXObject``.
    """
    if data in ({}, [], None, ""):
        return None
    if not isinstance(data, Mapping):
        raise CatalogError(f"VSX answer is not an object{at(origin)}: {snippet(repr(data))}")
    if "VSXObject" not in data and "Name" not in data:
        raise CatalogError(f"VSX answer has no VSXObject{at(origin)}: {snippet(repr(data))}")
    obj = data.get("VSXObject", data)
    if obj in ({}, [], None, ""):
        return None
    if not isinstance(obj, Mapping):
        raise CatalogError(f"VSX answer has no VSXObject{at(origin)}: {snippet(repr(data))}")
    return _vsx_target(obj, origin)


def _vsx_target(obj: Mapping[str, Any], origin: str) -> Target:
    try:
        name = str(obj["Name"]).strip()
        ra = float(obj["RA2000"])
        dec = float(obj["Declination2000"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CatalogError(f"malformed VSX object{at(origin)}: {exc!r}") from exc
    if not name or not (0.0 <= ra < 360.0 and -90.0 <= dec <= 90.0):
        raise CatalogError(f"malformed VSX object{at(origin)}: name {name!r}, RA {ra}, "
                           f"Dec {dec}")

    def text(key: str) -> str | None:
        v = obj.get(key)
        return (str(v).strip() or None) if v is not None else None

    period = None
    try:
        period = float(obj["Period"]) if text("Period") else None
    except (TypeError, ValueError):
        period = None
    return Target(name=name, ra_deg=ra, dec_deg=dec, auid=text("AUID"),
                  var_type=text("VariabilityType"), max_mag=text("MaxMag"),
                  min_mag=text("MinMag"), source="vsx", period_days=period)


def parse_vsx_list(data: Any, *, origin: str = "") -> list[Target]:
    """A VSX ``api.list`` (cone search) answer -> targets (no AUID: the list view has none)."""
    if data in ({}, [], None, ""):
        return []
    if not isinstance(data, Mapping) or "VSXObjects" not in data:
        raise CatalogError(f"VSX list answer has no VSXObjects{at(origin)}: "
                           f"{snippet(repr(data))}")
    objs = data["VSXObjects"]
    if objs in ({}, [], None, ""):
        return []
    if not isinstance(objs, Mapping):
        raise CatalogError(f"malformed VSX list{at(origin)}: {snippet(repr(objs))}")
    rows = objs.get("VSXObject") or []
    if isinstance(rows, Mapping):
        rows = [rows]
    if not isinstance(rows, list):
        raise CatalogError(f"malformed VSX list{at(origin)}: {snippet(repr(rows))}")
    out = []
    for r in rows:
        try:
            if not isinstance(r, Mapping):
                raise CatalogError(f"not an object: {snippet(repr(r))}")
            out.append(_vsx_target(r, origin))
        except CatalogError as exc:
            log.warning("VSX list row skipped%s: %s", at(origin), exc)
    if rows and not out:
        raise CatalogError(f"no readable row in the VSX list{at(origin)}")
    return out


def vsx_object(config: Config, name: str) -> Target | None:
    """Look ``name`` up in VSX (cache first). None when VSX knows no such star."""
    cfg = config
    url = cfg.catalogs.vsx_url
    params = {"view": "api.object", "ident": name, "format": "json"}

    def fetch() -> tuple[Any, str]:
        return CLIENT.get_json(cfg, url, params, what="VSX"), url

    got = cached(cfg, "vsx", normalize_name(name), what="VSX object", fetch=fetch,
                  parse=lambda d: parse_vsx_object(d, origin=url))
    return got.value


def vsx_cone(config: Config, ra_deg: float, dec_deg: float, radius_deg: float) -> list[Target]:
    """VSX cone search (``api.list``), cached; targets sorted by distance from the centre.

    The query centre is snapped to a 0.05° grid (radius enlarged to match) so the frames of a
    series, whose header RA/DEC wander a little, share one cache entry.
    """
    cfg = config
    url = cfg.catalogs.vsx_url
    step = 0.05
    qra = round(ra_deg / step) * step % 360.0
    qdec = max(-90.0, min(90.0, round(dec_deg / step) * step))
    qradius = radius_deg + step
    params = {"view": "api.list", "ra": f"{qra:.2f}", "dec": f"{qdec:.2f}",
              "radius": f"{qradius:.4f}", "format": "json"}
    key = f"ra={qra:.2f}|dec={qdec:.2f}|r={qradius:.4f}"

    def fetch() -> tuple[Any, str]:
        return CLIENT.get_json(cfg, url, params, what="VSX cone search"), url

    got = cached(cfg, "vsx-cone", key, what="VSX cone search", fetch=fetch,
                  parse=lambda d: parse_vsx_list(d, origin=url))
    found = [(t, separation_deg(ra_deg, dec_deg, t.ra_deg, t.dec_deg)) for t in got.value]
    return [t for t, sep in sorted(found, key=lambda p: p[1]) if sep <= radius_deg]
