"""``measure()``: one frame in, one :class:`~starnode.records.Measurement` out.

Why a list of named steps: each step is one idea of the method (docs/photometry.md), testable
and replaceable on its own, and the order of the steps is the method:

1. load the frame (:func:`starnode.frame.load.load_frame`);
2. target and comparison sequence (:mod:`starnode.catalogs`);
3. a verified WCS (:func:`starnode.astrometry.solve_frame`);
4. where the target and the comps fall in the plane;
5. times, HJD and airmass (:mod:`starnode.frame.timesite`);
6. aperture photometry of all of them (:func:`~starnode.photometry.apertures.measure_stars`);
7. target gates (edge, saturation, SNR);
8. ensemble zero point and check star (:mod:`~starnode.photometry.ensemble`);
9. quality flag (:mod:`~starnode.photometry.quality`) and the record.
10. opt-in: V from the colour planes (:mod:`~starnode.photometry.colour`).

The measuring core, :func:`measure_frame`, takes a loaded frame, its references
(:func:`references`: the target and its comparison sequence) and the night's check-star
choices, and returns a :class:`Measured`: the record, the frame's starlist (its columns) and the
check star to keep for the night. It writes no file and no check star: the node does, in its
own process (:func:`starnode.photometry.night.keep_night`). :func:`measure` is the whole
thing for one path (load, references, core, keep): the seed API's and the command line's.

``run_pipeline`` is the seed API: :func:`measure` as a plain dict, and ``None`` (reason kept
per thread) for a frame that cannot or must not be measured.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import astrometry
from ..catalogs import CompStar, Sequence, Target, get_sequence, resolve_target
from ..catalogs.field import fov_arcmin, stars_for_solver
from ..config import Config, ConfigLike, resolve
from ..errors import CatalogError, ConfigError, FrameRejected, RejectCategory
from ..frame.load import Frame, load_frame
from ..frame.timesite import Times, geodetic, night_of, times
from ..records import SCHEMA_VERSION, Aperture, Astrometry, Measurement
from ..util.values import name_key
from .apertures import StarMeasurement, measure_stars, scintillation
from .colour import transform_measurement
from .ensemble import (
    EnsembleFit,
    check_result,
    comp_results,
    comp_rows,
    fit_ensemble,
    rounded,
)
from .night import (
    CheckLookup,
    NightCheck,
    finish_measurement,
    keep_night,
    night_check_star,
    no_checks,
    stored_checks,
)
from .quality import grade_quality

log = logging.getLogger("starnode.photometry")

__all__ = ["Measured", "References", "last_rejection", "measure", "measure_frame",
           "references", "run_pipeline"]

_tls = threading.local()
_QUIET = (RejectCategory.NOT_LIGHT, RejectCategory.NO_TARGET)


def last_rejection() -> FrameRejected | None:
    """Why the last :func:`run_pipeline` of this thread returned None.

    Returns
    -------
    FrameRejected or None
        None when it measured the frame (or was not called in this thread).
    """
    return getattr(_tls, "last", None)


def run_pipeline(path: str | os.PathLike[str], config: ConfigLike = None) -> dict[str, Any] | None:
    """Measure the variable in one frame, as a plain dict (the seed API).

    Parameters
    ----------
    path : str or os.PathLike
        The FITS frame.
    config : Config, mapping, path or None
        Anything :func:`starnode.config.resolve` accepts.

    Returns
    -------
    dict or None
        :meth:`Measurement.to_dict`; None (reason logged and kept in :func:`last_rejection`)
        when the frame cannot or must not be measured.
    """
    _tls.last = None
    try:
        return measure(path, config).to_dict()
    except FrameRejected as exc:
        _tls.last = exc
        level = logging.INFO if exc.category in _QUIET else logging.WARNING
        log.log(level, "%s not measured (%s): %s", Path(path).name, exc.category, exc.reason)
        return None


# --------------------------------------------------------------------------------------------
# steps


def _config(config: ConfigLike) -> Config:
    try:
        return resolve(config)
    except ConfigError as exc:
        raise FrameRejected(f"configuration: {exc}", RejectCategory.CONFIG) from exc


@dataclass(frozen=True)
class References:
    """What a frame is measured against: the target and its comparison sequence (the comps
    usable in the frame's band)."""

    target: Target
    sequence: Sequence
    comps: list[CompStar]


def references(frame: Frame, config: Config) -> References:
    """The frame's target and comparison sequence (catalogue look-ups, cached in the store).

    The catalogue module applies ``photometry.target`` / ``target_aliases`` and
    ``catalogs.sequence_file`` itself.

    Parameters
    ----------
    frame : Frame
        The loaded frame.
    config : Config, mapping, path or None
        Anything :func:`starnode.config.resolve` accepts.

    Returns
    -------
    References

    Raises
    ------
    FrameRejected
        No target or sequence (``catalog``), or no usable comparison star
        (``too_few_comps``).
    """
    cfg = _config(config)
    try:
        target = resolve_target(cfg, frame.object, frame.ra_deg, frame.dec_deg)
        seq = get_sequence(cfg, target, fov_arcmin=fov_arcmin(frame), band=frame.band)
    except CatalogError as exc:
        raise FrameRejected(f"{frame.path.name}: {exc}", RejectCategory.CATALOG) from exc
    return References(target, seq, _usable_comps(frame, seq))


def _usable_comps(frame: Frame, seq: Sequence) -> list[CompStar]:
    comps = seq.usable(frame.band)
    if not comps:
        raise FrameRejected(f"{frame.path.name}: the {seq.source} sequence has no usable "
                            f"{frame.band} comparison stars", RejectCategory.TOO_FEW_COMPS)
    return comps


def _solve(frame: Frame, cfg: Config, comps: list[CompStar], target: Target) -> Any:
    ra, dec, mags = stars_for_solver(frame, comps, target)
    try:
        return astrometry.solve_frame(frame, cfg, ref_ra=ra, ref_dec=dec,
                                      ref_mag=mags, hint=astrometry.HEADER_HINT)
    except astrometry.AstrometryError as exc:  # starnode.errors' once the package is in
        raise FrameRejected(f"{frame.path.name}: no verified WCS: {exc}",
                            RejectCategory.ASTROMETRY) from exc


@dataclass
class _Placed:
    """Plane positions: target first, then the in-frame comps (``idx`` into the comps)."""

    xy: np.ndarray
    idx: np.ndarray
    max_shift: float


def _place(frame: Frame, sol: Any, target: Target, comps: list[CompStar]) -> _Placed:
    ny, nx = frame.plane.shape
    cra = np.array([c.ra_deg for c in comps])
    cdec = np.array([c.dec_deg for c in comps])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tx, ty = (float(v) for v in
                  sol.wcs.all_world2pix([[target.ra_deg, target.dec_deg]], 0)[0])
        cx, cy = sol.wcs.all_world2pix(cra, cdec, 0)
    if not (0 <= tx < nx and 0 <= ty < ny):
        raise FrameRejected(f"{frame.path.name}: {target.name} is outside the frame (pixel "
                            f"{tx:.0f}, {ty:.0f} of {nx}x{ny})", RejectCategory.NO_TARGET)
    infield = (cx >= 0) & (cx < nx) & (cy >= 0) & (cy < ny)
    for ci in np.flatnonzero(~infield):
        log.debug("%s: comp %s outside the frame", frame.path.name, comps[ci].name)
    idx = np.flatnonzero(infield)
    xy = np.vstack([[tx, ty], np.column_stack([cx[idx], cy[idx]])])
    max_shift = max(2.0, 3.0 * float(getattr(sol, "rms_px", 1.0) or 1.0))
    return _Placed(xy, idx, max_shift)


def _photometry(frame: Frame, cfg: Config, placed: _Placed,
                airmass: float | None) -> StarMeasurement:
    # all catalogued stars mask each other's annuli; the variable does not size the aperture
    fwhm_sel = np.ones(len(placed.xy), dtype=bool)
    fwhm_sel[0] = False
    return measure_stars(frame, placed.xy, cfg, max_shift=placed.max_shift,
                         fwhm_stars=fwhm_sel, airmass=airmass)


def _gate_target(frame: Frame, cfg: Config, target: Target, sm: StarMeasurement) -> float:
    """Reject an edge, saturated or faint target; its SNR otherwise."""
    name = frame.path.name
    if sm.edge[0]:
        raise FrameRejected(f"{name}: {target.name} too close to the frame edge",
                            RejectCategory.EDGE)
    if sm.saturated[0]:
        raise FrameRejected(f"{name}: {target.name} saturated (peak {sm.peak[0]:.0f} ADU >= "
                            f"{frame.saturation_adu:.0f})", RejectCategory.SATURATED)
    t_snr = float(sm.snr[0])
    if not (math.isfinite(t_snr) and t_snr >= cfg.photometry.min_snr):
        raise FrameRejected(f"{name}: {target.name} SNR {t_snr:.1f} < "
                            f"{cfg.photometry.min_snr}", RejectCategory.LOW_SNR)
    return t_snr


def _target_auid(target: Target, seq: Sequence) -> str | None:
    if target.auid:
        return target.auid
    return seq.star_auid if name_key(seq.star) == name_key(target.name) else None


@dataclass
class _Steps:
    """What the steps found, for the record."""

    frame: Frame
    cfg: Config
    target: Target
    seq: Sequence
    sol: Any
    t: Times
    sm: StarMeasurement
    fit: EnsembleFit
    snr: float


def _site_fields(frame: Frame) -> dict[str, float | None]:
    if frame.site is None:
        return {"site_longitude": None, "site_latitude": None, "site_height": None}
    lon, lat, height, _, _ = geodetic(frame.site)
    return {"site_longitude": lon, "site_latitude": lat, "site_height": height}


def _night(frame: Frame, cfg: Config, jd: float) -> str:
    """The observing night by the AAVSO reports' rule: the configured longitude, else the
    header's SITELONG as written (UTC without either)."""
    lon: float | None = cfg.site.longitude
    if lon is None:
        try:
            card = frame.header.get("SITELONG")
            lon = float(card) if card is not None else None
        except (TypeError, ValueError):
            lon = None
    return night_of(jd, lon)


def _record(s: _Steps) -> Measurement:
    frame, sm, fit = s.frame, s.sm, s.fit
    t_mag = float(sm.mag[0]) + fit.zp
    t_err = math.hypot(float(sm.mag_err[0]), fit.zp_err)
    check = check_result(fit, sm)
    flag, reasons = grade_quality(s.cfg, s.snr, t_err, fit.n_used, check, s.t.airmass, frame)
    scale = frame.plane_scale_arcsec
    site = _site_fields(frame)
    return Measurement(
        magnitude=round(t_mag, 4), uncertainty=round(t_err, 4), quality_flag=flag,
        quality_reasons=tuple(reasons), target_name=s.target.name,
        auid=_target_auid(s.target, s.seq), target_ra=s.target.ra_deg,
        target_dec=s.target.dec_deg, filter=frame.filter, band=frame.band, transformed=False,
        jd=round(s.t.jd, 6), hjd=round(s.t.hjd, 6),
        time_uncertainty_s=frame.time_uncertainty_s, exptime=frame.exptime,
        airmass=rounded(s.t.airmass, 3), altitude_deg=rounded(s.t.altitude_deg, 2),
        fwhm=round(sm.fwhm, 3), fwhm_arcsec=rounded(sm.fwhm * scale if scale else None, 2),
        snr=round(s.snr, 1),
        scintillation_mag=rounded(1.0857 * scintillation(s.cfg, frame, s.t.airmass)),
        instrumental_mag=round(float(sm.mag[0]), 4),
        instrumental_err=round(float(sm.mag_err[0]), 4), comparison_stars=fit.n_used,
        comps=comp_results(fit, sm), zero_point=round(fit.zp, 4),
        zp_error=round(fit.zp_err, 4), zp_scatter=round(fit.scatter, 4), check_star=check,
        chart_id=s.seq.chart_id if s.seq.source == "vsp" else None,
        sequence_source=s.seq.source, frame_kind=frame.kind, file=str(frame.path),
        object=frame.object, telescope=frame.telescope,
        astrometry=Astrometry(method=getattr(s.sol, "method", None),
                              n_matched=getattr(s.sol, "n_matched", None),
                              rms_px=rounded(getattr(s.sol, "rms_px", None)),
                              scale_arcsec=rounded(getattr(s.sol, "scale_arcsec", None))),
        aperture=Aperture(radius_px=round(sm.radius, 3), annulus_in_px=round(sm.r_in, 3),
                          annulus_out_px=round(sm.r_out, 3)),
        target_x=round(float(sm.x[0]), 2), target_y=round(float(sm.y[0]), 2),
        target_recentred=bool(sm.recentred[0]), sky_adu=rounded(float(sm.sky[0]), 2),
        binning=frame.binning, stackcnt=frame.stackcnt, date_obs=frame.start.isot,
        synthetic=frame.synthetic, file_sha1=frame.sha1, schema_version=SCHEMA_VERSION,
        night=_night(frame, s.cfg, s.t.jd), site_longitude=site["site_longitude"],
        site_latitude=site["site_latitude"], site_height=site["site_height"],
    )


@dataclass(frozen=True)
class Measured:
    """What measuring one frame gives: the record, and what the node keeps for it.

    ``starlist`` is the frame's :class:`~.starlist.Starlist` (None: ``photometry.starlists``
    off, or it could not be built; ``.table()``: as an astropy table), not yet written;
    ``check`` the check star to keep for the night (None: one is kept already, pinned, or
    this frame is not good enough to choose).
    """

    measurement: Measurement
    starlist: Any = None
    check: NightCheck | None = None


def measure_frame(frame: Frame, refs: References, config: Config, *,
                  kept: CheckLookup = no_checks) -> Measured:
    """Measure the variable star in a loaded frame (no file or database written).

    Parameters
    ----------
    frame : Frame
        :func:`starnode.frame.load.load_frame`'s.
    refs : References
        :func:`references` of the frame.
    config : Config, mapping, path or None
        Anything :func:`starnode.config.resolve` accepts.
    kept : callable
        The night's check-star choices, ``(normalised target, night) -> label or None``
        (:data:`starnode.photometry.night.CheckLookup`).

    Returns
    -------
    Measured

    Raises
    ------
    FrameRejected
        The frame cannot or must not be measured; ``category`` says why
        (:class:`~starnode.errors.RejectCategory`).
    """
    cfg = _config(config)
    target, seq, comps = refs.target, refs.sequence, refs.comps
    sol = _solve(frame, cfg, comps, target)
    placed = _place(frame, sol, target, comps)
    t = times(frame.mid, frame.site, target.ra_deg, target.dec_deg)
    sm = _photometry(frame, cfg, placed, t.airmass)
    snr = _gate_target(frame, cfg, target, sm)
    choice = night_check_star(cfg, target.name, _night(frame, cfg, t.jd), kept)
    fit = fit_ensemble(cfg, comp_rows(comps, placed.idx, frame.band), sm, frame.path.name,
                       shape=frame.plane.shape, night_choice=choice)
    m = _record(_Steps(frame, cfg, target, seq, sol, t, sm, fit, snr))
    m, check, starlist = finish_measurement(m, frame, cfg, sol.wcs, sm, fit, target.name,
                                            choice)
    if cfg.photometry.transform:  # V from the colour planes, when good enough
        m = transform_measurement(m, frame, cfg, sm, fit)
    log.info("%s: %s %s = %.3f +/- %.3f (%s, %d comps, SNR %.0f)", frame.path.name,
             target.name, m.filter, m.magnitude, m.uncertainty, m.quality_flag,
             m.comparison_stars, snr)
    return Measured(m, starlist, check)


def measure(path: str | os.PathLike[str], config: ConfigLike = None) -> Measurement:
    """Measure the variable star in one frame, and keep what the night keeps.

    Loads the frame, looks up its references, measures it (:func:`measure_frame`, with the
    night's check star read from the node's database) and keeps the result
    (:func:`starnode.photometry.night.keep_night`: the night's check star recorded, the
    starlist written). The node does the same in two processes: the measuring in a worker,
    the keeping in the node.

    Parameters
    ----------
    path : str or os.PathLike
        The FITS frame.
    config : Config, mapping, path or None
        Anything :func:`starnode.config.resolve` accepts.

    Returns
    -------
    Measurement

    Raises
    ------
    FrameRejected
        The frame cannot or must not be measured; ``category`` says why
        (:class:`~starnode.errors.RejectCategory`).
    """
    cfg = _config(config)
    frame = load_frame(path, cfg)
    done = measure_frame(frame, references(frame, cfg), cfg, kept=stored_checks(cfg))
    m = done.measurement
    starlist = keep_night(cfg, done.check, done.starlist, m.night, frame.path)
    return m.replace(starlist=starlist) if starlist else m
