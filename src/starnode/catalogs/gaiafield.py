"""Gaia DR3 stars of one field, deeper than the bundled G < 10 catalogue, cached for offline use.

Why: away from the Milky Way a Seestar field (0.7 x 1.3 deg) holds only 3-6 Gaia G < 10 stars,
too few to verify a WCS (``astrometry.min_matches`` = 6), while the sub shows dozens of stars to
G = 13-14. One TAP query per field (a cone a little larger than the field, to
``astrometry.deep_gaia_g``) fixes that; the answer is kept in the node's catalogue cache
(kind ``gaia-field``) whenever a query succeeds and is reused, offline too, for any later
frame whose field lies inside the cached cone. Stars do not change: a cached cone never expires.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from starnode.config import Config
from starnode.errors import CatalogError
from starnode.store import CatalogCache

from .fetch import CLIENT
from .types import at, snippet

log = logging.getLogger("starnode.catalogs")

__all__ = ["FIELD_KIND", "FieldStars", "cached_field", "gaia_field_stars", "parse_field_csv"]

#: The catalogue-cache kind of these answers.
FIELD_KIND = "gaia-field"
#: Extra radius (deg) queried around the field, so that the next pointing reuses the answer.
_MARGIN_DEG = 0.25
#: Most rows asked for (brightest first): a Milky Way field at G < 14 has more, and needs none.
_TOP = 4000
_COLUMNS = ("ra", "dec", "phot_g_mean_mag", "pmra", "pmdec")


@dataclass(frozen=True)
class FieldStars:
    """Gaia DR3 stars of a cone (epoch 2016.0), brightest first.

    Attributes
    ----------
    ra, dec, g, pmra, pmdec : numpy.ndarray
        Degrees, G magnitude, proper motions in mas/yr (0 where Gaia has none).
    cone : (float, float, float)
        The cone queried: centre RA, Dec and radius (degrees).
    g_limit : float
        The faintest G asked for.
    origin : str
        ``network`` or ``cache``.
    """

    ra: np.ndarray
    dec: np.ndarray
    g: np.ndarray
    pmra: np.ndarray
    pmdec: np.ndarray
    cone: tuple[float, float, float]
    g_limit: float
    origin: str

    def at_epoch(self, epoch: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ra, dec, G)`` moved from 2016.0 to the Julian year ``epoch``."""
        dt = epoch - 2016.0
        dec = self.dec + self.pmdec * dt / 3.6e6
        cosd = np.maximum(np.cos(np.radians(self.dec)), 1e-6)
        ra = np.mod(self.ra + self.pmra * dt / 3.6e6 / cosd, 360.0)
        return ra, dec, self.g


def _key(ra: float, dec: float, radius: float, g_limit: float) -> str:
    return f"ra={ra:.4f}|dec={dec:.4f}|r={radius:.3f}|g={g_limit:.1f}"


def _parse_key(key: str) -> tuple[float, float, float, float] | None:
    try:
        parts = dict(p.split("=", 1) for p in key.split("|"))
        return float(parts["ra"]), float(parts["dec"]), float(parts["r"]), float(parts["g"])
    except (KeyError, ValueError):
        return None


def _sep_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    r1, d1, r2, d2 = map(math.radians, (ra1, dec1, ra2, dec2))
    c = math.sin(d1) * math.sin(d2) + math.cos(d1) * math.cos(d2) * math.cos(r1 - r2)
    return math.degrees(math.acos(min(1.0, max(-1.0, c))))


def _adql(ra: float, dec: float, radius: float, g_limit: float) -> str:
    return (f"SELECT TOP {_TOP} {', '.join(_COLUMNS)} FROM gaiadr3.gaia_source "
            f"WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), "
            f"CIRCLE('ICRS', {ra:.6f}, {dec:.6f}, {radius:.4f})) "
            f"AND phot_g_mean_mag < {g_limit:.2f} ORDER BY phot_g_mean_mag")


def parse_field_csv(text: str, *, cone: tuple[float, float, float], g_limit: float,
                    origin: str = "", source: str = "network") -> FieldStars:
    """A TAP CSV answer (columns ra, dec, phot_g_mean_mag, pmra, pmdec) -> :class:`FieldStars`.

    Parameters
    ----------
    text : str
        The answer.
    cone : (float, float, float)
        The cone it answers (degrees).
    g_limit : float
        The G limit asked for.
    origin : str
        Where it came from, for messages.
    source : str
        ``network`` or ``cache``.

    Returns
    -------
    FieldStars
        Rows without a position or G are left out (counted in the DEBUG log).

    Raises
    ------
    CatalogError
        Not the expected CSV (an error page, missing columns).
    """
    if text.lstrip().startswith("<"):
        raise CatalogError(f"Gaia TAP answered XML/HTML, not CSV{at(origin)}: "
                           f"{snippet(text)!r}")
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in _COLUMNS[:3] if c not in (reader.fieldnames or [])]
    if missing:
        raise CatalogError(f"Gaia TAP answer lacks columns {missing}{at(origin)}: "
                           f"{snippet(text)!r}")
    rows, bad = [], 0
    for row in reader:
        try:
            ra, dec, g = (float(row[k]) for k in _COLUMNS[:3])
        except (TypeError, ValueError):
            bad += 1
            continue
        pm = [_float0(row.get(k)) for k in ("pmra", "pmdec")]
        rows.append((ra, dec, g, *pm))
    if bad:
        log.debug("%d Gaia field rows without position or G%s", bad, at(origin))
    a = np.array(rows, dtype=float).reshape(-1, 5)
    a = a[np.argsort(a[:, 2], kind="stable")]
    return FieldStars(a[:, 0], a[:, 1], a[:, 2], a[:, 3], a[:, 4], cone, g_limit, source)


def _float0(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return 0.0
    return f if math.isfinite(f) else 0.0


def cached_field(config: Config, ra: float, dec: float, radius_deg: float,
                 g_limit: float) -> FieldStars | None:
    """The cached cone that covers this one (at least as deep), or None; never the network.

    Parameters
    ----------
    config : Config
        Its ``db_path``.
    ra, dec, radius_deg : float
        The field's cone (degrees).
    g_limit : float
        The depth needed.

    Returns
    -------
    FieldStars or None
        ``origin`` is ``cache``.
    """
    cfg = config
    if not cfg.db_path.exists():
        return None
    cache = CatalogCache(cfg.db_path)
    for key, _ in cache.keys(FIELD_KIND):
        k = _parse_key(key)
        if k is None or k[3] < g_limit - 1e-6:
            continue
        if _sep_deg(ra, dec, k[0], k[1]) + radius_deg <= k[2] + 1e-6:
            entry = cache.get(FIELD_KIND, key)
            if entry is None:
                continue
            try:
                return parse_field_csv(str(entry.payload), cone=(k[0], k[1], k[2]),
                                       g_limit=k[3], origin=entry.url or "", source="cache")
            except CatalogError as exc:
                log.warning("cached Gaia field %s unusable: %s", key, exc)
    return None


def gaia_field_stars(config: Config, ra: float, dec: float, radius_deg: float, *,
                     g_limit: float = 14.0) -> FieldStars:
    """Gaia DR3 stars to ``g_limit`` within ``radius_deg``: the cache, else one TAP query.

    A cached cone that covers this one is used whatever its age (offline too); otherwise the
    archive (``catalogs.gaia_tap_url``) is asked for a cone ``0.25 deg`` wider, and the
    answer is kept in the catalogue cache.

    Parameters
    ----------
    config : Config
        ``catalogs.offline``, ``catalogs.gaia_tap_url``, ``catalogs.http_*``,
        ``db_path``.
    ra, dec, radius_deg : float
        The field's cone (degrees).
    g_limit : float
        The faintest G.

    Returns
    -------
    FieldStars
        Brightest first; ``origin`` says whether the network was asked.

    Raises
    ------
    CatalogError
        Not cached, and offline or the query failed.
    """
    cfg = config
    hit = cached_field(cfg, ra, dec, radius_deg, g_limit)
    if hit is not None:
        log.debug("Gaia field stars for %.3f %+.3f from the cache (%d stars)", ra, dec,
                  len(hit.ra))
        return hit
    if cfg.catalogs.offline:
        raise CatalogError(f"no Gaia stars to G {g_limit:g} cached for the field at RA "
                           f"{ra:.3f} Dec {dec:+.3f}, and catalogs.offline is set")
    cone = (round(ra % 360.0, 4), round(dec, 4), round(radius_deg + _MARGIN_DEG, 3))
    url = cfg.catalogs.gaia_tap_url
    resp = CLIENT.request(cfg, "POST", url, what="Gaia DR3 TAP (field stars)",
                          data={"REQUEST": "doQuery", "LANG": "ADQL", "FORMAT": "csv",
                                "QUERY": _adql(*cone, g_limit)})
    stars = parse_field_csv(resp.text, cone=cone, g_limit=g_limit, origin=url)
    CatalogCache(cfg.db_path).put(FIELD_KIND, _key(*cone, g_limit), url, resp.text)
    log.info("Gaia DR3 field stars to G %g: %d within %.2f deg of %.3f %+.3f (cached for "
             "offline use)", g_limit, len(stars.ra), cone[2], cone[0], cone[1])
    return stars
