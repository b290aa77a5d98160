"""The starlist of a frame that ``measure()`` cannot measure: every star, calibrated from the
best reference there is.

Why: a starlist is a record of every star of the frame; it must not depend on the variable being
measurable (no chart offline, target outside the frame, too faint or saturated). Whatever the
solver can place on the sky is measured instrumentally, with the pipeline's aperture and error
model (CFA correction, excess terms, scintillation at the frame centre's airmass), and
calibrated from the best reference available, which the ``reference`` column names:

1. ``vsp`` / ``gaia-dr3``: the frame's comparison sequence as ``measure()`` finds it (a cached or
   configured VSP chart, a cached Gaia-derived sequence, online when allowed);
2. ``gaia-dr3-g``: Gaia DR3 G magnitudes of the field (the per-field Gaia cache, online when
   allowed, else the bundled G < 10 stars). G is not V: the zero point carries the field's mean
   G - TG colour term, good to ~0.1 mag for stars of ordinary colour;
3. ``none``: instrumental magnitudes only (``mag`` NaN).
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import numpy as np
from astropy.stats import sigma_clip
from astropy.table import Table
from scipy.spatial import cKDTree

from ..config import Config, resolve
from ..errors import AstrometryError, CatalogError, FrameRejected, RejectCategory
from ..frame.detect import field_stars
from ..frame.load import Frame, load_frame
from ..frame.timesite import times
from .apertures import StarMeasurement, measure_stars

log = logging.getLogger("starnode.photometry")

__all__ = ["field_starlist"]

#: catalogue star -> detection match radius (plane px)
_MATCH_PX = 1.5


def _solve(frame: Frame, cfg: Config) -> tuple[Any, tuple[Any, Any, list[Any]] | None]:
    from ..astrometry import solve_frame
    from ..catalogs.field import frame_sequence, stars_for_solver

    found, _ = frame_sequence(frame, cfg)
    if found is not None:
        ra, dec, mag = stars_for_solver(frame, found[2], found[0])
    else:
        ra, dec, mag = np.empty(0), np.empty(0), np.empty(0)
    try:
        sol = solve_frame(frame, cfg, ref_ra=ra, ref_dec=dec, ref_mag=mag,
                          hint=frame.header_wcs)
    except AstrometryError as exc:
        raise FrameRejected(f"{frame.path.name}: no verified WCS: {exc}",
                            RejectCategory.ASTROMETRY) from exc
    return sol, found


def _catalogue(frame: Frame, cfg: Config, wcs: Any, found: Any
               ) -> tuple[str, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(reference, x, y, mag, labels) of the best reference's stars on the plane."""
    from ..astrometry.geometry import center_world

    ny, nx = frame.plane.shape
    if found is not None:
        _, seq, comps = found
        rows = [(c, c.mag(frame.band)) for c in comps]
        rows = [(c, m) for c, m in rows if m is not None]
        if rows:
            x, y = wcs.all_world2pix([c.ra_deg for c, _ in rows], [c.dec_deg for c, _ in rows], 0)
            return (seq.source, np.asarray(x), np.asarray(y),
                    np.array([m[0] for _, m in rows]), [c.label for c, _ in rows])
    cra, cdec = center_world(wcs, (ny, nx))
    scale = frame.plane_scale_arcsec or 4.75
    radius = 0.5 * math.hypot(nx, ny) * scale / 3600.0
    epoch = frame.mid.jyear
    try:
        from ..catalogs.gaiafield import gaia_field_stars

        ra, dec, g = gaia_field_stars(cfg, cra, cdec, radius + 0.05).at_epoch(epoch)
    except CatalogError as exc:
        log.debug("%s: no per-field Gaia stars (%s); the bundled G<10 stars", frame.path.name,
                  exc)
        from ..astrometry.reference import gaia_bright_stars

        ra, dec, g = gaia_bright_stars(cra, cdec, radius, epoch=epoch)
    if len(ra) == 0:
        return "none", np.empty(0), np.empty(0), np.empty(0), []
    x, y = wcs.all_world2pix(np.asarray(ra), np.asarray(dec), 0)
    return "gaia-dr3-g", np.asarray(x), np.asarray(y), np.asarray(g, float), [""] * len(ra)


def _zero_point(sm: StarMeasurement, idx: np.ndarray, cat: np.ndarray
                ) -> tuple[float, float, int]:
    """Weighted, sigma-clipped mean of catalogue - instrumental over the matched stars."""
    ok = (idx >= 0)
    j = idx[ok]
    good = (~sm.saturated[j] & ~sm.edge[j] & np.isfinite(sm.mag[j]) & (sm.snr[j] >= 10))
    if int(good.sum()) < 3:
        return math.nan, math.nan, int(good.sum())
    d = cat[ok][good] - sm.mag[j][good]
    e = np.hypot(sm.mag_err[j][good], 0.03)
    clipped = sigma_clip(d, sigma=3.0, maxiters=5)
    keep = ~np.ma.getmaskarray(clipped)
    w = 1.0 / e[keep] ** 2
    zp = float(np.sum(w * d[keep]) / np.sum(w))
    n = int(keep.sum())
    chi = float(np.sum(w * (d[keep] - zp) ** 2) / max(n - 1, 1))
    return zp, float(math.sqrt(1.0 / np.sum(w)) * math.sqrt(max(chi, 1.0))), n


def field_starlist(path: str | os.PathLike[str], config: Any) -> Table:
    """Every star of a frame, instrumental always, calibrated from the best reference.

    Parameters
    ----------
    path : str or os.PathLike
        The FITS frame.
    config : Any
        Anything :func:`starnode.config.resolve` accepts.

    Returns
    -------
    astropy.table.Table
        The starlist columns (:data:`starnode.photometry.starlist.COLUMNS`); ``reference``
        names what calibrates ``mag`` (``none``: NaN).

    Raises
    ------
    FrameRejected
        The frame cannot be read or solved.
    """
    from ..astrometry.geometry import center_world
    from .starlist import COLUMNS, frame_meta, frame_values, table_from_columns

    cfg = resolve(config)
    frame = load_frame(path, cfg)
    sol, found = _solve(frame, cfg)
    cra, cdec = center_world(sol.wcs, frame.plane.shape)
    t = times(frame.mid, frame.site, cra, cdec)
    det = field_stars(frame.plane, memo=frame.extractions, finite=frame.plane_is_finite)
    if len(det.x) == 0:
        raise FrameRejected(f"{frame.path.name}: no stars detected", RejectCategory.LOW_SNR)
    sm = measure_stars(frame, det.xy, cfg, airmass=t.airmass)
    ref, cx, cy, cmag, labels = _catalogue(frame, cfg, sol.wcs, found)
    idx = np.full(len(cx), -1)
    if len(cx):
        dist, near = cKDTree(np.column_stack([sm.x, sm.y])).query(
            np.column_stack([np.nan_to_num(cx, nan=-1e6), np.nan_to_num(cy, nan=-1e6)]))
        idx = np.where(dist < _MATCH_PX, near, -1)
    zp, zp_err, n_zp = _zero_point(sm, idx, cmag) if len(cx) else (math.nan, math.nan, 0)
    if not math.isfinite(zp):
        ref = "none"
    name = ["field"] * len(sm.x)
    for k, j in enumerate(idx):
        if j >= 0 and labels[k]:
            name[j] = labels[k]
    target_name = found[0].name if found is not None else None
    target = np.zeros(len(sm.x), dtype=bool)
    if found is not None:
        tx, ty = sol.wcs.all_world2pix([found[0].ra_deg], [found[0].dec_deg], 0)
        dd = np.hypot(sm.x - tx[0], sm.y - ty[0])
        if len(dd) and float(dd.min()) < _MATCH_PX:
            target[int(np.argmin(dd))] = True
            name[int(np.argmin(dd))] = str(target_name)
    ra, dec = sol.wcs.all_pix2world(sm.x, sm.y, 0)
    per_frame = frame_values(sm, None, ref)
    per_frame.update({"zero_point": round(zp, 4) if math.isfinite(zp) else math.nan,
                      "zp_error": round(zp_err, 4) if math.isfinite(zp_err) else math.nan})
    n = len(sm.x)
    cols: dict[str, Any] = {
        "name": name, "ra": ra, "dec": dec, "x": sm.x, "y": sm.y, "flux": sm.flux,
        "flux_err": sm.flux_err, "inst_mag": sm.mag, "inst_err": sm.mag_err,
        "mag": sm.mag + (zp if math.isfinite(zp) else math.nan),
        "mag_err": np.hypot(sm.mag_err, zp_err if math.isfinite(zp_err) else math.nan),
        "excess": (sm.star_excess if sm.star_excess is not None
                   else np.full(n, sm.excess_mag)),
        "fwhm": det.fwhm, "saturated": sm.saturated, "edge": sm.edge, "blended": det.blended,
        "comp": np.zeros(n, bool), "check": np.zeros(n, bool), "target": target,
        **{k: [per_frame[k]] * n for k in ("zero_point", "zp_error", "frame_excess", "airmass",
                                          "scintillation", "reference")},
    }
    table = table_from_columns({k: cols[k] for k in COLUMNS})
    meta = frame_meta(frame, sm, None, ref)
    meta.update({"zero_point": per_frame["zero_point"], "zp_error": per_frame["zp_error"],
                 "zp_stars": n_zp, "measured_by": "starlist without a measurement",
                 "astrometry": sol.method})
    table.meta.update(meta)
    log.info("%s: starlist of %d stars, reference %s (%d stars in the zero point)",
             frame.path.name, n, ref, n_zp)
    return table
