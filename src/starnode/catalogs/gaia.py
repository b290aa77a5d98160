"""Gaia DR3 comparison stars, when VSP has no sequence for the field.

One ADQL query to the archive's TAP sync service (``catalogs.gaia_tap_url``), cached like the
VSP charts; V from G and BP-RP with the Riello et al. (2021) relation. Variables, likely
binaries (RUWE), colours outside the relation's range and blended stars are left out.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.coordinates import angular_separation

from starnode.config import Config
from starnode.errors import CatalogError

from .fetch import CLIENT, cached
from .types import CompStar, Sequence, Target, at, field_request, finite, snippet

log = logging.getLogger("starnode.catalogs")

__all__ = ["GAIA_G_MINUS_V", "gaia_g_to_v", "gaia_sequence", "parse_gaia_csv"]

# --- Gaia DR3 ---------------------------------------------------------------------------------

#: G - V = c0 + c1 x + c2 x^2 + c3 x^3 with x = BP - RP: Riello et al. 2021 (A&A 649, A3), Gaia
#: EDR3 documentation section 5.5.1, Table 5.7 "Johnson-Cousins relationships"; scatter 0.03017
#: mag, valid for -0.5 < BP-RP < 5.0. Gaia DR3 keeps the EDR3 photometry, so it applies as is.
_COEFFS = (-0.02704, 0.01424, -0.2156, 0.01426)
_SIGMA = 0.03017
_BP_RP_RANGE = (-0.5, 5.0)
GAIA_G_MINUS_V: dict[str, Any] = {"coeffs": _COEFFS, "sigma": _SIGMA,
                                  "bp_rp_range": _BP_RP_RANGE}

#: Gaia EDR3 passband zero-point uncertainties (mag), added to the photon-noise errors.
_GAIA_ZP_SIGMA = {"G": 0.0027553202, "BP": 0.0027901700, "RP": 0.0037793818}

#: Sources with an astrometric fit this poor are likely unresolved binaries (Lindegren+ 2021).
_GAIA_MAX_RUWE = 1.4

#: A comp with a neighbour (in the query, so brighter than the G limit) closer than this and
#: less than ``_GAIA_BLEND_DMAG`` fainter would be blended in a Seestar aperture.
_GAIA_BLEND_ARCSEC = 15.0
_GAIA_BLEND_DMAG = 3.0

_GAIA_COLUMNS = ("source_id", "ra", "dec", "phot_g_mean_mag", "phot_g_mean_flux_over_error",
                 "phot_bp_mean_mag", "phot_bp_mean_flux_over_error", "phot_rp_mean_mag",
                 "phot_rp_mean_flux_over_error", "bp_rp", "ruwe", "phot_variable_flag")


def gaia_g_to_v(g: float, bp_rp: float, *, sigma_g: float = 0.0,
                sigma_bp_rp: float = 0.0) -> tuple[float, float] | None:
    """Johnson V from Gaia G and BP-RP, and its error; None outside the valid colour range.

    The error combines the relation's scatter (0.03017 mag) with the catalogue errors of G and of
    the colour (through the slope of the polynomial).
    """
    lo, hi = _BP_RP_RANGE
    if not (finite(g, bp_rp) and lo < bp_rp < hi):
        return None
    c0, c1, c2, c3 = _COEFFS
    x = bp_rp
    g_minus_v = c0 + c1 * x + c2 * x * x + c3 * x ** 3
    slope = c1 + 2 * c2 * x + 3 * c3 * x * x
    err = math.sqrt(_SIGMA ** 2 + sigma_g ** 2 + (slope * sigma_bp_rp) ** 2)
    return g - g_minus_v, err


def _mag_err(flux_over_error: float | None, zp_sigma: float) -> float:
    if flux_over_error is None or not math.isfinite(flux_over_error) or flux_over_error <= 0:
        return math.nan
    return math.hypot(2.5 / math.log(10) / flux_over_error, zp_sigma)


def _gaia_adql(ra: float, dec: float, radius_deg: float, g_limit: float) -> str:
    return (f"SELECT TOP 2000 {', '.join(_GAIA_COLUMNS)} FROM gaiadr3.gaia_source "
            f"WHERE 1 = CONTAINS(POINT('ICRS', ra, dec), "
            f"CIRCLE('ICRS', {ra:.6f}, {dec:.6f}, {radius_deg:.5f})) "
            f"AND phot_g_mean_mag < {g_limit:.2f} AND bp_rp IS NOT NULL "
            f"ORDER BY phot_g_mean_mag")


@dataclass(frozen=True)
class _Row:
    """One Gaia DR3 source with a position and a G magnitude."""

    raw: Mapping[str, str]
    ra: float
    dec: float
    g: float
    bp_rp: float | None

    def num(self, key: str) -> float | None:
        return _num(self.raw, key)


def _num(row: Mapping[str, str], key: str) -> float | None:
    v = (row.get(key) or "").strip()
    try:
        return float(v) if v else None
    except ValueError:
        return None


def _read_rows(text: str, origin: str) -> tuple[list[_Row], int]:
    """The CSV's sources with a position and G, and how many lacked them."""
    if text.lstrip().startswith("<"):
        raise CatalogError(f"Gaia TAP answered XML/HTML, not CSV{at(origin)}: "
                           f"{snippet(text)!r}")
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ("source_id", "ra", "dec", "phot_g_mean_mag", "bp_rp")
               if c not in (reader.fieldnames or [])]
    if missing:
        raise CatalogError(f"Gaia TAP answer lacks columns {missing}{at(origin)}: "
                           f"{snippet(text)!r}")
    rows, bad = [], 0
    for raw in reader:
        ra, dec, g = (_num(raw, k) for k in ("ra", "dec", "phot_g_mean_mag"))
        if ra is None or dec is None or g is None:
            bad += 1
            continue
        rows.append(_Row(raw, ra, dec, g, _num(raw, "bp_rp")))
    return rows, bad


def _v_mag(row: _Row) -> tuple[float, float] | None:
    """V and its error from G and BP-RP with the catalogue's errors (None: colour invalid)."""
    assert row.bp_rp is not None
    s_g = _mag_err(row.num("phot_g_mean_flux_over_error"), _GAIA_ZP_SIGMA["G"])
    s_bp = _mag_err(row.num("phot_bp_mean_flux_over_error"), _GAIA_ZP_SIGMA["BP"])
    s_rp = _mag_err(row.num("phot_rp_mean_flux_over_error"), _GAIA_ZP_SIGMA["RP"])
    s_c = math.hypot(s_bp, s_rp)
    return gaia_g_to_v(row.g, row.bp_rp, sigma_g=0.0 if math.isnan(s_g) else s_g,
                       sigma_bp_rp=0.0 if math.isnan(s_c) else s_c)


def _blended(i: int, rows: list[_Row], ra: np.ndarray, dec: np.ndarray, g: np.ndarray) -> bool:
    """True when another source within 15″ is less than 3 mag fainter than source ``i``."""
    near = np.abs(dec - dec[i]) * 3600 < _GAIA_BLEND_ARCSEC
    near[i] = False
    near &= g < rows[i].g + _GAIA_BLEND_DMAG
    if not near.any():
        return False
    sep = angular_separation(np.radians(ra[i]), np.radians(dec[i]), np.radians(ra[near]),
                             np.radians(dec[near]))
    return bool(np.any(np.degrees(sep) * 3600 < _GAIA_BLEND_ARCSEC))


def _exclusion(row: _Row, vv: tuple[float, float] | None, maglimit: float) -> str | None:
    """Why a source is not a comp (before the blend test), or None."""
    if (row.raw.get("phot_variable_flag") or "").strip().upper() == "VARIABLE":
        return "Gaia variable"
    ruwe = row.num("ruwe")
    if ruwe is not None and ruwe > _GAIA_MAX_RUWE:
        return "RUWE > 1.4"
    if row.bp_rp is None:
        return "no BP-RP"
    if vv is None:
        return "BP-RP outside -0.5..5.0"
    if vv[0] > maglimit:
        return "fainter than maglimit"
    return None


def parse_gaia_csv(text: str, *, maglimit: float, origin: str = "") -> list[CompStar]:
    """Gaia DR3 TAP CSV rows -> V comparison stars (label = Gaia DR3 source_id).

    Parameters
    ----------
    text : str
        The TAP answer (``FORMAT=csv``) with the columns of the query.
    maglimit : float
        Faintest V kept.
    origin : str
        Where it came from, for messages.

    Returns
    -------
    list of CompStar
        Excluded, each counted in the DEBUG log: Gaia-flagged variables, RUWE > 1.4, colour
        outside the relation's range, missing photometry, V fainter than ``maglimit``, and
        stars with a neighbour within 15″ less than 3 mag fainter.

    Raises
    ------
    CatalogError
        The answer is not the expected CSV.
    """
    rows, bad = _read_rows(text, origin)
    skipped: Counter[str] = Counter({"no position or G": bad} if bad else {})
    ra = np.array([r.ra for r in rows])
    dec = np.array([r.dec for r in rows])
    g = np.array([r.g for r in rows])
    comps = []
    for i, row in enumerate(rows):
        vv = _v_mag(row) if row.bp_rp is not None else None
        reason = _exclusion(row, vv, maglimit)
        if reason is None and _blended(i, rows, ra, dec, g):
            reason = "close neighbour"
        if reason is not None or vv is None:
            skipped[reason or "?"] += 1
            continue
        sid = (row.raw.get("source_id") or "").strip()
        comps.append(CompStar(
            label=sid, ra_deg=row.ra, dec_deg=row.dec,
            mags={"V": (round(vv[0], 4), round(vv[1], 4))}, auid=None,
            comments=f"Gaia DR3 {sid}: V from G {row.g:.4f} and BP-RP {row.bp_rp:.4f} "
                     f"(Riello et al. 2021)"))
    if skipped:
        log.debug("Gaia DR3 stars not used as comps%s: %s", at(origin),
                  ", ".join(f"{n} {k}" for k, n in sorted(skipped.items())))
    return comps


def gaia_sequence(config: Config, target: Target, *, fov_arcmin: float,
                  maglimit: float | None = None) -> Sequence:
    """Gaia DR3 comps (V from G, BP-RP) around the target: source "gaia-dr3", no chart id.

    One ADQL query (``FORMAT=csv``) to ``catalogs.gaia_tap_url`` over a circle that covers a
    square field of ``fov_arcmin``; cached like the VSP charts.
    """
    ph = config.catalogs
    fov, mlim = field_request(fov_arcmin, maglimit, ph.maglimit)
    radius = fov / 60.0 / 2.0 * math.sqrt(2.0)
    # V - G is >= -0.03 over the valid colour range, so no star with V <= mlim has G >= mlim+0.1.
    adql = _gaia_adql(target.ra_deg, target.dec_deg, radius, mlim + 0.1)
    url = ph.gaia_tap_url
    key = (f"ra={target.ra_deg:.4f}|dec={target.dec_deg:.4f}|fov={fov:g}|maglimit={mlim:g}")

    def fetch() -> tuple[Any, str]:
        resp = CLIENT.request(config, "POST", url, what="Gaia DR3 TAP",
                        data={"REQUEST": "doQuery", "LANG": "ADQL", "FORMAT": "csv",
                              "QUERY": adql})
        return resp.text, url

    got = cached(config, "gaia", key, what="Gaia DR3 comps", fetch=fetch,
                  parse=lambda text: parse_gaia_csv(str(text), maglimit=mlim, origin=url))
    log.log(logging.WARNING if got.origin == "network" else logging.INFO,
            "no VSP sequence for %s: %d Gaia DR3 comps (V from G and BP-RP, lower quality)",
            target.name, len(got.value))
    return Sequence(source="gaia-dr3", comps=tuple(got.value), chart_id=None, star=target.name,
                    star_auid=target.auid, star_ra_deg=target.ra_deg,
                    star_dec_deg=target.dec_deg, fov_arcmin=fov, maglimit=mlim,
                    origin=url if got.origin == "network" else f"{got.origin}: {url}",
                    extra={"catalog": "Gaia DR3", "fetched_at": got.fetched_at,
                           "cache": got.origin, "request": key,
                           "transformation": "V = G - (-0.02704 + 0.01424 x - 0.2156 x^2 + "
                                             "0.01426 x^3), x = BP-RP (Riello et al. 2021)",
                           "transformation_sigma": GAIA_G_MINUS_V["sigma"]})
