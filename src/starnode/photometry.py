"""Differential aperture photometry of a variable star against the AAVSO comparison sequence.

``measure(path, config) -> dict`` (raises :class:`FrameRejected`) and
``run_pipeline(path, config) -> dict | None`` (``None`` on rejection; the reason in
:func:`last_rejection` for the calling thread). The result dict is described key by key in
docs/photometry.md; the method in short:

1. :func:`starnode.frames.load_frame` - the green plane (raw CFA green sites summed per 2x2 cell,
   the G plane of a stack, or a mono frame), mid-exposure time, site.
2. Target and sequence from :mod:`starnode.catalogs` (``resolve_target`` / ``get_sequence``, or
   ``photometry.sequence_file``); comps = ``Sequence.usable(band)``.
3. WCS from :func:`starnode.astrometry.solve_frame` (verified against the sequence stars).
4. Positions from the WCS, re-centred (photutils ``centroid_com``) when the star is bright enough;
   FWHM per frame (``sep.flux_radius`` of bright comps); aperture, gap and annulus from the FWHM,
   one geometry for target, comps and check.
5. Sky per star from its annulus with :func:`robust_sky` - unbiased when the firmware clipped
   dark-subtracted pixels at 0 - neighbours masked and the upper tail clipped.
6. Flux with photutils ``aperture_photometry`` (exact overlap), clipped pixels in the aperture
   valued like those of the annulus; uncertainty from the CCD equation (source + sky/dark/read
   noise + sky-estimate error) with ``camera.gain_e_per_adu``, plus scintillation (Young 1967,
   x ``photometry.scintillation_factor``; large for a 50 mm aperture).
7. Saturated (any raw CFA site / stack plane at ``camera.saturation_adu``) and edge stars never
   enter the ensemble; a saturated or edge target rejects the frame.
8. Ensemble zero point: weighted mean of (catalogue - instrumental) over the comps, outliers
   removed by iterative clipping, error inflated by the reduced chi-square; a check star kept
   out of the ensemble.
9. JD/HJD of mid-exposure, airmass (Pickering 2002), quality flag with reasons.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy import units as u
from astropy.coordinates import AltAz, EarthLocation, SkyCoord
from astropy.time import Time
from astropy.utils import iers
from astropy.wcs import WCS
from photutils.aperture import CircularAperture, aperture_photometry
from photutils.centroids import centroid_com
from scipy.special import ndtr

from . import astrometry
from .catalogs import CatalogError, CompStar, Sequence, Target, load_sequence_file
from .config import Config, ConfigError, resolve
from .frames import Frame, FrameRejected, load_frame

log = logging.getLogger(__name__)

__all__ = [
    "FrameRejected",
    "SkyEstimate",
    "StarMeasurement",
    "last_rejection",
    "measure",
    "measure_fwhm",
    "measure_stars",
    "robust_sky",
    "run_pipeline",
]

_tls = threading.local()
_SEQ_FILE_CACHE: dict[tuple[str, float], Sequence] = {}
_NAN_CATALOG_ERROR = 0.03  # mag assumed when the sequence gives no (or a zero) error
_SQRT_2PI = math.sqrt(2.0 * math.pi)
#: variance of the robust sky estimate relative to a plain mean's (measured on simulated skies)
_SKY_EST_VAR = 1.3
_GEOCENTRE = EarthLocation.from_geocentric(0.0, 0.0, 0.0, unit=u.m)


def last_rejection() -> FrameRejected | None:
    """Why the last :func:`run_pipeline` of this thread returned None (None if it did not)."""
    return getattr(_tls, "last", None)


def run_pipeline(path: str | os.PathLike[str], config: Any = None) -> dict[str, Any] | None:
    """Measure the variable in one frame; ``None`` (reason logged and kept in
    :func:`last_rejection`) when the frame cannot or must not be measured."""
    _tls.last = None
    try:
        return measure(path, config)
    except FrameRejected as exc:
        _tls.last = exc
        level = logging.INFO if exc.category in ("not_light", "no_target") else logging.WARNING
        log.log(level, "%s not measured (%s): %s", Path(path).name, exc.category, exc.reason)
        return None


# --------------------------------------------------------------------------------------------
# sky


@dataclass(frozen=True)
class SkyEstimate:
    mean: float  # per pixel, ADU
    sigma: float  # per-pixel scatter, ADU
    n: int  # pixels used
    clipped_fraction: float  # fraction of used pixels at or below the clip level
    #: expected true value of a pixel the firmware clipped (censored-normal model; per raw site
    #: for a sub), used for the clipped pixels inside the aperture too
    clipped_value: float = 0.0


def robust_sky(values: np.ndarray, clip_level: float | None = 0.0, k: float = 4.0,
               max_iter: int = 10) -> SkyEstimate:
    """Mean sky level of annulus pixels, unbiased by firmware clipping at ``clip_level``.

    The upper tail (stars, neighbours) is removed iteratively beyond ``k`` sigma of the median,
    where sigma comes from quantiles that the clipping does not reach (16/50/84 %, or the upper
    half alone when more than 15 % are clipped). Pixels above the clip level enter the mean
    with their values (so a skewed, Poisson sky keeps its true mean); the clipped ones are
    replaced by the expectation of a normal distribution below the clip level (censored-normal
    model), and the removed upper tail by its normal expectation. With more than half of the
    pixels clipped, a censored-normal maximum-likelihood fit is used.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = np.sort(v[np.isfinite(v)])
    n = v.size
    if n < 8:
        raise ValueError(f"too few sky pixels ({n})")
    n0 = int(np.searchsorted(v, clip_level, side="right")) if clip_level is not None else 0
    m = n
    med = sig = 0.0
    for _ in range(max_iter):
        keep = v[:m]
        q16, med, q84 = _sorted_quantiles(keep, (0.15865525, 0.5, 0.84134475))
        p0 = n0 / m
        sig = (q84 - q16) / 2.0 if p0 < 0.15 else (q84 - med)
        if sig <= 0:
            sig = float(np.std(keep)) or 1.0
        new_m = int(np.searchsorted(keep, med + k * sig, side="right"))
        if new_m == m or new_m < 8:
            break
        m = new_m
    keep = v[:m]
    n0 = min(n0, m)
    p0 = n0 / m
    q16, q25, med, q84 = _sorted_quantiles(keep, (0.15865525, 0.25, 0.5, 0.84134475))
    sig_up = q84 - med
    # the lower side of a Poisson-skewed sky is narrower than the upper one: model the clipped
    # tail with the width of the lower half (quantiles above the clip level)
    if p0 < 0.15:
        sig_lo = med - q16
    elif p0 < 0.25:
        sig_lo = (med - q25) / 0.6744898
    else:
        sig_lo = sig_up
    if p0 >= 0.5:
        med, sig_lo = _censored_fit(keep, float(clip_level))  # type: ignore[arg-type]
        sig_up = sig_lo
    sig_lo = sig_lo if sig_lo > 0 else sig
    sig_up = sig_up if sig_up > 0 else sig
    total = float(keep[n0:].sum())
    tail_low = float(clip_level) if clip_level is not None else 0.0
    if n0:
        a = (clip_level - med) / sig_lo
        cdf = max(float(ndtr(a)), 1e-12)
        tail_low = med - sig_lo * math.exp(-0.5 * a * a) / _SQRT_2PI / cdf
        total += n0 * tail_low
    # the clipped upper tail of the noise itself (normal model), beyond the clip
    kk = (float(keep[-1]) - med) / sig_up if keep.size else k
    kk = max(kk, 1.0)
    p_hi = float(ndtr(-kk))
    n_hi = m * p_hi / (1.0 - p_hi)
    mean_hi = med + sig_up * math.exp(-0.5 * kk * kk) / _SQRT_2PI / max(p_hi, 1e-300)
    mean = (total + n_hi * mean_hi) / (m + n_hi)
    sig = (q84 - q16) / 2.0 if p0 < 0.15 else sig_up
    return SkyEstimate(float(mean), float(sig), int(m), float(p0), float(tail_low))


def _sorted_quantiles(s: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """Quantiles (linear interpolation, numpy's default) of an already sorted array."""
    out = []
    last = s.size - 1
    for q in qs:
        pos = q * last
        i = int(pos)
        f = pos - i
        out.append(float(s[i] if i >= last else s[i] + f * (s[i + 1] - s[i])))
    return out


def _censored_fit(v: np.ndarray, c: float) -> tuple[float, float]:
    """Maximum-likelihood (mu, sigma) of a normal left-censored at ``c``."""
    from scipy.optimize import minimize
    from scipy.special import log_ndtr

    above = v[v > c]
    n0 = int((v <= c).sum())
    mu0 = float(np.median(v))
    s0 = float(np.std(above)) if above.size > 2 else 1.0

    def nll(p: np.ndarray) -> float:
        mu, ls = p
        s = math.exp(ls)
        z = (above - mu) / s
        return float(0.5 * np.sum(z * z) + above.size * ls - n0 * log_ndtr((c - mu) / s))

    res = minimize(nll, np.array([mu0, math.log(max(s0, 1e-3))]), method="Nelder-Mead")
    return float(res.x[0]), float(math.exp(res.x[1]))


# --------------------------------------------------------------------------------------------
# star measurements


@dataclass
class StarMeasurement:
    """Aperture photometry of stars at given plane positions (arrays, one entry per star)."""

    x: np.ndarray
    y: np.ndarray
    recentred: np.ndarray  # bool
    flux: np.ndarray  # ADU in the aperture, sky removed
    flux_err: np.ndarray
    sky: np.ndarray  # per pixel
    sky_sigma: np.ndarray
    snr: np.ndarray
    mag: np.ndarray  # instrumental, -2.5 log10(flux / exptime)
    mag_err: np.ndarray
    peak: np.ndarray  # raw ADU, highest CFA site / plane in the aperture
    saturated: np.ndarray
    edge: np.ndarray
    radius: float
    r_in: float
    r_out: float
    fwhm: float


def _geometry(fwhm: float, cfg: Config) -> tuple[float, float, float]:
    ph = cfg.photometry
    r = float(ph.aperture_radius_px) if ph.aperture_radius_px else ph.aperture_fwhm * fwhm
    r_in = r + ph.annulus_gap_fwhm * fwhm
    r_out = r_in + ph.annulus_width_fwhm * fwhm
    return r, r_in, max(r_out, r_in + 2.0)


def _cut(plane: np.ndarray, x: float, y: float, half: int) -> tuple[np.ndarray, int, int]:
    ny, nx = plane.shape
    ix, iy = round(x), round(y)
    x0, y0 = max(ix - half, 0), max(iy - half, 0)
    return plane[y0:min(iy + half + 1, ny), x0:min(ix + half + 1, nx)], x0, y0


def _annulus_pixels(shape: tuple[int, int], x: float, y: float, r_in: float, r_out: float,
                    others: np.ndarray | None, mask_r: float) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the plane pixels whose centres lie in the annulus, neighbours' discs
    masked."""
    ny, nx = shape
    x0, x1 = max(math.floor(x - r_out), 0), min(math.ceil(x + r_out) + 1, nx)
    y0, y1 = max(math.floor(y - r_out), 0), min(math.ceil(y + r_out) + 1, ny)
    if x1 <= x0 or y1 <= y0:
        return np.empty(0, dtype=int), np.empty(0, dtype=int)
    yy = np.arange(y0, y1, dtype=float)[:, None]
    xx = np.arange(x0, x1, dtype=float)[None, :]
    d2 = (xx - x) ** 2 + (yy - y) ** 2
    w = (d2 >= r_in * r_in) & (d2 <= r_out * r_out)
    if others is not None and len(others):
        near = others[(np.abs(others[:, 0] - x) < r_out + mask_r)
                      & (np.abs(others[:, 1] - y) < r_out + mask_r)]
        for ox, oy in near:
            if abs(ox - x) < 1e-6 and abs(oy - y) < 1e-6:
                continue
            w &= (xx - ox) ** 2 + (yy - oy) ** 2 > mask_r * mask_r
    rows, cols = np.nonzero(w)
    return rows + y0, cols + x0


def _sky_at(frame: Frame, rows: np.ndarray, cols: np.ndarray) -> SkyEstimate:
    """Sky per measured-plane pixel from these plane pixels. For a raw sub the estimate is made
    on the raw green sites themselves (each one was clipped at 0 by the firmware, not their
    sum) and scaled to the plane (sum of two sites)."""
    if frame.green is not None:
        g1, g2 = frame.green
        vals = np.concatenate([g1[rows, cols], g2[rows, cols]])
        s = robust_sky(vals, clip_level=_clip_level(vals))
        return SkyEstimate(2.0 * s.mean, math.sqrt(2.0) * s.sigma, s.n // 2,
                           s.clipped_fraction, s.clipped_value)
    vals = frame.plane[rows, cols]
    return robust_sky(vals, clip_level=_clip_level(vals))


def _clip_level(vals: np.ndarray) -> float | None:
    """0 when the data look clipped there (no negative value), else None (a calibrated float
    frame with negative noise is not censored)."""
    return 0.0 if vals.size and float(np.min(vals)) >= 0.0 else None


def _local_sky(frame: Frame, x: float, y: float, r_in: float, r_out: float,
               others: np.ndarray | None, mask_r: float) -> SkyEstimate:
    rows, cols = _annulus_pixels(frame.plane.shape, x, y, r_in, r_out, others, mask_r)
    if rows.size < 8:
        rows, cols = _annulus_pixels(frame.plane.shape, x, y, r_in, r_out, None, mask_r)
    return _sky_at(frame, rows, cols)


def _recentre(frame: Frame, x: float, y: float, fwhm: float, sky: float, sky_sigma: float,
              max_shift: float) -> tuple[float, float, bool]:
    """Centroid (photutils centroid_com) within 1.5 FWHM, twice; keep the prediction when the
    star is too faint to centre or the centroid runs away."""
    r = max(1.5 * fwhm, 2.0)
    half = math.ceil(r) + 1
    cx, cy = x, y
    for _ in range(2):
        cut, x0, y0 = _cut(frame.plane, cx, cy, half)
        if cut.size == 0:
            return x, y, False
        yy = np.arange(y0, y0 + cut.shape[0])[:, None]
        xx = np.arange(x0, x0 + cut.shape[1])[None, :]
        inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        d = np.where(inside, cut - sky, 0.0)
        signal = float(d[inside].sum())
        noise = sky_sigma * math.sqrt(max(int(inside.sum()), 1))
        if not (signal > 10.0 * noise):
            return x, y, False
        d = np.clip(d, 0.0, None)
        if not d.any():
            return x, y, False
        gx, gy = centroid_com(d)
        if not (np.isfinite(gx) and np.isfinite(gy)):
            return x, y, False
        cx, cy = x0 + float(gx), y0 + float(gy)
    if math.hypot(cx - x, cy - y) > max_shift:
        return x, y, False
    return cx, cy, True


def measure_fwhm(frame: Frame, xy: np.ndarray, sky: np.ndarray, guess: float,
                 peaks: np.ndarray | None = None) -> tuple[float, int]:
    """Median FWHM (plane px) of the given stars from their half-light radius
    (``sep.flux_radius``, FWHM = 2 r50 for a Gaussian); (guess, 0) when none is usable."""
    import sep

    rs = []
    half = math.ceil(4.0 * guess) + 2
    for i, (x, y) in enumerate(xy):
        if peaks is not None and peaks[i] >= frame.saturation_adu:
            continue
        cut, x0, y0 = _cut(frame.plane, x, y, half)
        if cut.shape[0] < 2 * half + 1 or cut.shape[1] < 2 * half + 1:
            continue
        data = np.ascontiguousarray(cut - np.float32(sky[i]), dtype=np.float32)
        try:
            r50, flag = sep.flux_radius(data, np.array([x - x0]), np.array([y - y0]),
                                        np.array([3.0 * guess]), 0.5, subpix=5)
        except Exception:
            continue
        if flag[0] == 0 and np.isfinite(r50[0]) and 0.3 < r50[0] < 3.0 * guess:
            rs.append(float(r50[0]))
    if not rs:
        return guess, 0
    return 2.0 * float(np.median(rs)), len(rs)


def scintillation(config: Any, frame: Frame, airmass: float | None) -> float:
    """Relative (fractional) scintillation noise of one star's flux in this frame: Young (1967)
    ``0.09 D[cm]^-2/3 X^1.75 exp(-h / 8000 m) / sqrt(2 t)`` times
    ``photometry.scintillation_factor`` (Osborn et al. 2015: Young's formula is ~1.5x low in
    median conditions). t = the total exposure (a stack: STACKCNT x EXPTIME). Unknown airmass:
    1."""
    cfg = resolve(config)
    fac = cfg.photometry.scintillation_factor
    if fac <= 0:
        return 0.0
    d_cm = cfg.camera.aperture_mm / 10.0
    x = airmass if airmass is not None and math.isfinite(airmass) else 1.0
    t = frame.exptime * max(frame.stackcnt, 1)
    h = cfg.site.elevation
    return fac * 0.09 * d_cm ** (-2.0 / 3.0) * x**1.75 * math.exp(-h / 8000.0) / math.sqrt(2 * t)


def measure_stars(frame: Frame, xy: np.ndarray, config: Any = None, *,
                  fwhm: float | None = None, recentre: bool = True,
                  neighbours: np.ndarray | None = None, max_shift: float | None = None,
                  fwhm_stars: np.ndarray | None = None,
                  airmass: float | None = None) -> StarMeasurement:
    """Aperture photometry of the stars at plane positions ``xy`` ((n, 2), 0-based).

    ``fwhm`` None: measured from the stars flagged in ``fwhm_stars`` (default all). The
    same aperture / gap / annulus for every star. ``neighbours`` ((m, 2)) are masked in the
    annuli (the stars themselves are masked in each other's annuli anyway). ``airmass`` sets
    the scintillation term (see :func:`scintillation`).
    """
    cfg = resolve(config)
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    n = len(xy)
    scale = frame.plane_scale_arcsec
    guess = fwhm or (9.0 / scale if scale else 2.0)
    others = xy if neighbours is None else np.vstack([xy, np.asarray(neighbours, float)])
    ny, nx = frame.plane.shape
    # pass 1: provisional sky with a generous annulus, re-centre, FWHM
    _, g_in, g_out = _geometry(guess, cfg)
    mask_r = 2.0 * guess
    sky0 = np.zeros(n)
    sig0 = np.ones(n)
    pos = xy.copy()
    recentred = np.zeros(n, dtype=bool)
    shift = max_shift if max_shift is not None else max(2.0, guess)
    for i, (x, y) in enumerate(xy):
        if not (0 <= x < nx and 0 <= y < ny):
            continue
        try:
            s = _local_sky(frame, x, y, g_in, g_out, others, mask_r)
        except ValueError:
            continue
        sky0[i], sig0[i] = s.mean, s.sigma
        if recentre:
            pos[i, 0], pos[i, 1], recentred[i] = _recentre(frame, x, y, guess, s.mean, s.sigma,
                                                          shift)
    peaks_guess = np.array([frame.peak_adu(x, y, 1.5 * guess) for x, y in pos])
    if fwhm is None:
        sel = recentred if fwhm_stars is None else (recentred & np.asarray(fwhm_stars, bool))
        fwhm, nf = measure_fwhm(frame, pos[sel], sky0[sel], guess, peaks_guess[sel])
        if nf == 0:
            log.debug("%s: no star for the FWHM, using %.2f px", frame.path.name, guess)
    r, r_in, r_out = _geometry(float(fwhm), cfg)
    margin = r_out + cfg.photometry.edge_margin_px
    edge = ((pos[:, 0] < margin) | (pos[:, 1] < margin)
            | (pos[:, 0] > nx - 1 - margin) | (pos[:, 1] > ny - 1 - margin))
    sky = np.full(n, np.nan)
    sky_sig = np.full(n, np.nan)
    n_sky = np.zeros(n)
    clip_val = np.zeros(n)
    mask_r = max(r + 0.5 * float(fwhm), 1.5 * float(fwhm))
    others = pos if neighbours is None else np.vstack([pos, np.asarray(neighbours, float)])
    for i, (x, y) in enumerate(pos):
        if not (0 <= x < nx and 0 <= y < ny):
            continue
        try:
            s = _local_sky(frame, x, y, r_in, r_out, others, mask_r)
        except ValueError:
            continue
        sky[i], sky_sig[i], n_sky[i] = s.mean, s.sigma, s.n
        clip_val[i] = s.clipped_value if s.clipped_fraction > 0 else 0.0
    inside = (pos[:, 0] >= 0) & (pos[:, 0] < nx) & (pos[:, 1] >= 0) & (pos[:, 1] < ny)
    raw_sum = np.full(n, np.nan)
    area = math.pi * r * r
    # sum of the squared exact-overlap weights: the sky noise of a weighted sum (a little less
    # than the area, because of the partial pixels on the rim)
    area_w2 = np.full(n, area)
    if inside.any():
        ap = CircularAperture(pos[inside], r)
        tbl = aperture_photometry(frame.plane, ap, method="exact")
        raw_sum[inside] = np.asarray(tbl["aperture_sum"], dtype=float)
        masks = ap.to_mask(method="exact")
        masks = masks if isinstance(masks, list) else [masks]
        area_w2[inside] = [float(np.sum(m.data * m.data)) for m in masks]
        # pixels the firmware clipped at 0 inside the aperture get the same expected value as
        # the clipped pixels of the annulus, so that sky and aperture are treated alike (else a
        # faint star's aperture keeps the clipping's positive bias)
        sites = frame.green if frame.green is not None else (frame.plane,)
        for i, m in zip(np.flatnonzero(inside), masks, strict=True):
            if clip_val[i] == 0.0:
                continue
            n0 = 0.0
            for site in sites:
                cut = m.cutout(site, fill_value=np.nan)
                if cut is not None:
                    n0 += float(np.sum(m.data * (cut == 0)))
            raw_sum[i] += n0 * clip_val[i]
    flux = raw_sum - area * sky
    g = frame.gain_e_per_adu
    # per-pixel sky + dark + read-noise variance as measured in the annulus; the read noise
    # alone as a floor
    var_pix = np.maximum(sky_sig**2, (frame.read_noise_e / g) ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (frame.source_var_factor * np.clip(flux, 0, None) / g
               + frame.sky_var_factor * area_w2 * var_pix
               + frame.sky_var_factor * area**2 * var_pix * _SKY_EST_VAR / np.maximum(n_sky, 1)
               + (scintillation(cfg, frame, airmass) * np.clip(flux, 0, None)) ** 2)
        err = np.sqrt(var)
        snr = flux / err
        mag = -2.5 * np.log10(flux / frame.exptime)
        mag_err = 2.5 / math.log(10.0) / snr
    mag = np.where(flux > 0, mag, np.nan)
    peaks = np.array([frame.peak_adu(x, y, r) if ok else 0.0
                      for (x, y), ok in zip(pos, inside, strict=True)])
    return StarMeasurement(x=pos[:, 0], y=pos[:, 1], recentred=recentred, flux=flux,
                           flux_err=err, sky=sky, sky_sigma=sky_sig, snr=snr, mag=mag,
                           mag_err=mag_err, peak=peaks, saturated=peaks >= frame.saturation_adu,
                           edge=edge, radius=r, r_in=r_in, r_out=r_out, fwhm=float(fwhm))


# --------------------------------------------------------------------------------------------
# target, sequence, astrometry


def _norm(name: str | None) -> str:
    return "".join(ch for ch in (name or "").lower() if ch.isalnum())


def _sequence_file(path: str) -> Sequence:
    p = Path(path).expanduser()
    try:
        key = (str(p.resolve()), p.stat().st_mtime)
    except OSError as exc:
        raise FrameRejected(f"sequence file {p}: {exc.strerror}", "catalog") from exc
    seq = _SEQ_FILE_CACHE.get(key)
    if seq is None:
        try:
            seq = load_sequence_file(p)
        except CatalogError as exc:
            raise FrameRejected(str(exc), "catalog") from exc
        _SEQ_FILE_CACHE[key] = seq
    return seq


def _object_name(frame: Frame, cfg: Config) -> str | None:
    ph = cfg.photometry
    if ph.target:
        return str(ph.target)
    obj = frame.object
    if obj:
        aliases = {_norm(k): v for k, v in ph.target_aliases.items()}
        if _norm(obj) in aliases:
            return aliases[_norm(obj)]
        if _norm(obj) in ("unknown", ""):
            return None
    return obj


def _target_and_sequence(frame: Frame, cfg: Config, fov_arcmin: float
                         ) -> tuple[Target, Sequence]:
    name = _object_name(frame, cfg)
    try:
        from .catalogs import get_sequence, resolve_target  # type: ignore[attr-defined]
    except ImportError:
        get_sequence = resolve_target = None  # type: ignore[assignment]
    if resolve_target is not None and get_sequence is not None:
        try:
            # the catalogue module applies photometry.target / target_aliases itself
            target = resolve_target(cfg, frame.object, frame.ra_deg, frame.dec_deg)
            seq = get_sequence(cfg, target, fov_arcmin=fov_arcmin, band=frame.band)
        except CatalogError as exc:
            raise FrameRejected(f"{frame.path.name}: {exc}", "catalog") from exc
        return target, seq
    # fallback while the catalogue module is not there: the local sequence file
    if not cfg.photometry.sequence_file:
        raise FrameRejected(f"{frame.path.name}: no comparison sequence (set "
                            "photometry.sequence_file)", "catalog")
    seq = _sequence_file(cfg.photometry.sequence_file)
    if seq.star_ra_deg is not None and seq.star_dec_deg is not None and (
            name is None or _norm(name) == _norm(seq.star) or cfg.photometry.target):
        target = Target(name=seq.star or name or "?", ra_deg=seq.star_ra_deg,
                        dec_deg=seq.star_dec_deg, auid=seq.star_auid, source="sequence")
    elif name is not None and frame.ra_deg is not None and frame.dec_deg is not None:
        target = Target(name=name, ra_deg=frame.ra_deg, dec_deg=frame.dec_deg, source="header")
    else:
        raise FrameRejected(f"{frame.path.name}: no target (OBJECT missing and no "
                            "photometry.target)", "no_target")
    return target, seq


def _solve(frame: Frame, cfg: Config, comps: list[CompStar], target: Target) -> Any:
    ra = np.array([c.ra_deg for c in comps] + [target.ra_deg])
    dec = np.array([c.dec_deg for c in comps] + [target.dec_deg])
    mags = []
    for c in comps:
        m = c.mag("V") or c.mag(frame.band)
        mags.append(m[0] if m else np.nan)
    mags.append(np.nan)
    try:
        return astrometry.solve_frame(frame.plane, frame.header, cfg, ref_ra=ra, ref_dec=dec,
                                      ref_mag=np.array(mags), binning=frame.binning,
                                      cache_key=frame.sha1, hint=frame.header_wcs)
    except astrometry.AstrometryError as exc:
        raise FrameRejected(f"{frame.path.name}: no verified WCS: {exc}", "astrometry") from exc


# --------------------------------------------------------------------------------------------
# time and airmass


_IERS_LOCK = threading.Lock()


@contextlib.contextmanager
def _offline_iers() -> Iterator[None]:
    # astropy's set_temp changes process-wide settings: one thread at a time
    with _IERS_LOCK, iers.conf.set_temp("auto_download", False), \
            iers.conf.set_temp("auto_max_age", None), \
            iers.conf.set_temp("iers_degraded_accuracy", "warn"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def times(frame: Frame, ra_deg: float, dec_deg: float) -> tuple[float, float, float | None,
                                                                 float | None]:
    """(JD, HJD, airmass, altitude_deg) of the frame's mid-exposure for the target."""
    coord = SkyCoord(ra_deg * u.deg, dec_deg * u.deg, frame="icrs")
    with _offline_iers():
        # without a site the geocentre (the topocentric term is at most 21 ms)
        loc = frame.site if frame.site is not None else _GEOCENTRE
        t = Time(frame.mid.utc, location=loc)
        ltt = t.light_travel_time(coord, kind="heliocentric")
        hjd = float((t.utc + ltt).jd)
        airmass = alt = None
        if frame.site is not None:
            altaz = coord.transform_to(AltAz(obstime=t, location=frame.site))
            alt = float(altaz.alt.deg)
            if alt > 0:
                # Pickering (2002), good to the horizon; equals sec z high up
                airmass = 1.0 / math.sin(math.radians(alt + 244.0 / (165.0 + 47.0 * alt**1.1)))
    return float(t.utc.jd), hjd, airmass, alt


# --------------------------------------------------------------------------------------------
# ensemble


def _cat_err(e: float) -> float:
    return e if (e is not None and math.isfinite(e) and e > 0) else _NAN_CATALOG_ERROR


def ensemble(cat: np.ndarray, cat_err: np.ndarray, inst: np.ndarray, inst_err: np.ndarray,
             clip_sigma: float, min_keep: int) -> tuple[float, float, float, np.ndarray]:
    """Weighted zero point with iterative clipping: (zp, zp_error, scatter, used mask)."""
    zp_i = cat - inst
    e2 = cat_err**2 + inst_err**2
    used = np.isfinite(zp_i) & np.isfinite(e2) & (e2 > 0)
    while True:
        w = 1.0 / e2[used]
        zp = float(np.sum(w * zp_i[used]) / np.sum(w))
        r = zp_i - zp
        k = int(used.sum())
        if k <= max(min_keep, 2):
            break
        mad = 1.4826 * float(np.median(np.abs(r[used] - np.median(r[used]))))
        scale = np.maximum(np.sqrt(e2), mad)
        z = np.where(used, np.abs(r) / scale, 0.0)
        worst = int(np.argmax(z))
        if z[worst] <= clip_sigma:
            break
        used[worst] = False
    w = 1.0 / e2[used]
    zp = float(np.sum(w * zp_i[used]) / np.sum(w))
    r = zp_i[used] - zp
    err = math.sqrt(1.0 / float(np.sum(w)))
    k = int(used.sum())
    if k > 1:
        chi2 = float(np.sum(w * r * r)) / (k - 1)
        if chi2 > 1.0:
            err *= math.sqrt(chi2)
    scatter = math.sqrt(float(np.sum(w * r * r) / np.sum(w))) if k > 1 else 0.0
    return zp, err, scatter, used


# --------------------------------------------------------------------------------------------
# measure


def _r(x: float | None, nd: int = 4) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return round(float(x), nd)


def measure(path: str | os.PathLike[str], config: Any = None) -> dict[str, Any]:
    """Measure the variable star in one frame; raises :class:`FrameRejected`."""
    try:
        cfg = resolve(config)
    except ConfigError as exc:
        raise FrameRejected(f"configuration: {exc}", "config") from exc
    frame = load_frame(path, cfg)
    name = frame.path.name
    ny, nx = frame.plane.shape
    pscale = frame.plane_scale_arcsec or 2.4 * frame.binning
    fov = math.hypot(nx, ny) * pscale / 60.0
    target, seq = _target_and_sequence(frame, cfg, fov)
    comps = seq.usable(frame.band)
    if not comps:
        raise FrameRejected(f"{name}: the {seq.source} sequence has no usable {frame.band} "
                            "comparison stars", "too_few_comps")
    sol = _solve(frame, cfg, comps, target)
    wcs: WCS = sol.wcs
    cra = np.array([c.ra_deg for c in comps])
    cdec = np.array([c.dec_deg for c in comps])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tx, ty = (float(v) for v in wcs.all_world2pix([[target.ra_deg, target.dec_deg]], 0)[0])
        cx, cy = wcs.all_world2pix(cra, cdec, 0)
    if not (0 <= tx < nx and 0 <= ty < ny):
        raise FrameRejected(f"{name}: {target.name} is outside the frame (pixel {tx:.0f}, "
                            f"{ty:.0f} of {nx}x{ny})", "no_target")
    infield = (cx >= 0) & (cx < nx) & (cy >= 0) & (cy < ny)
    idx = np.flatnonzero(infield)
    xy = np.vstack([[tx, ty], np.column_stack([cx[idx], cy[idx]])])
    # all catalogued stars mask each other's annuli
    max_shift = max(2.0, 3.0 * float(getattr(sol, "rms_px", 1.0) or 1.0))
    fwhm_sel = np.ones(len(xy), dtype=bool)
    fwhm_sel[0] = False  # the variable does not size the aperture
    jd, hjd, airmass, alt = times(frame, target.ra_deg, target.dec_deg)
    sm = measure_stars(frame, xy, cfg, max_shift=max_shift, fwhm_stars=fwhm_sel,
                       airmass=airmass)
    # ----- target
    if sm.edge[0]:
        raise FrameRejected(f"{name}: {target.name} too close to the frame edge", "edge")
    if sm.saturated[0]:
        raise FrameRejected(f"{name}: {target.name} saturated (peak {sm.peak[0]:.0f} ADU >= "
                            f"{frame.saturation_adu:.0f})", "saturated")
    t_snr = float(sm.snr[0])
    if not (math.isfinite(t_snr) and t_snr >= cfg.photometry.min_snr):
        raise FrameRejected(f"{name}: {target.name} SNR {t_snr:.1f} < "
                            f"{cfg.photometry.min_snr}", "low_snr")
    # ----- comps
    band = frame.band
    rows = []
    for j, ci in enumerate(idx, start=1):
        c = comps[ci]
        m, e = c.mag(band)  # type: ignore[misc]
        rows.append({"i": j, "comp": c, "cat": float(m), "cat_err": _cat_err(e)})
    for ci in np.flatnonzero(~infield):
        log.debug("%s: comp %s outside the frame", name, comps[ci].name)

    def ok(j: int) -> tuple[bool, str]:
        if sm.edge[j]:
            return False, "edge"
        if sm.saturated[j]:
            return False, "saturated"
        if not (np.isfinite(sm.snr[j]) and sm.snr[j] >= 10.0):
            return False, "low snr"
        return True, ""

    good = [row for row in rows if ok(row["i"])[0]]
    check_row = _choose_check(cfg, good, rows, float(sm.mag[0]), sm, name)
    pool = [row for row in good if row is not check_row]
    if len(pool) > cfg.photometry.max_comps:
        zp_guess = float(np.median([row["cat"] - sm.mag[row["i"]] for row in pool]))
        t_std = float(sm.mag[0]) + zp_guess
        pool.sort(key=lambda row: abs(row["cat"] - t_std))
        pool = pool[:cfg.photometry.max_comps]
    if len(pool) < cfg.photometry.min_comps:
        raise FrameRejected(f"{name}: {len(pool)} usable comparison stars, "
                            f"{cfg.photometry.min_comps} needed", "too_few_comps")
    cat = np.array([row["cat"] for row in pool])
    cat_err = np.array([row["cat_err"] for row in pool])
    inst = np.array([sm.mag[row["i"]] for row in pool])
    inst_err = np.array([sm.mag_err[row["i"]] for row in pool])
    zp, zp_err, zp_scatter, used = ensemble(cat, cat_err, inst, inst_err,
                                            cfg.photometry.comp_clip_sigma,
                                            cfg.photometry.min_comps)
    n_used = int(used.sum())
    if n_used < cfg.photometry.min_comps:
        raise FrameRejected(f"{name}: {n_used} comparison stars left after clipping",
                            "too_few_comps")
    t_mag = float(sm.mag[0]) + zp
    t_err = math.hypot(float(sm.mag_err[0]), zp_err)
    used_ids = {id(row) for row, u_ in zip(pool, used, strict=True) if u_}
    comp_out = []
    for row in rows:
        c: CompStar = row["comp"]
        j = row["i"]
        inst_j = _r(float(sm.mag[j]))
        comp_out.append({
            "name": c.name, "auid": c.auid, "label": c.label, "catalog_mag": row["cat"],
            "catalog_err": _r(row["cat_err"]), "instrumental_mag": inst_j,
            "residual": _r(row["cat"] - (float(sm.mag[j]) + zp)) if inst_j is not None else None,
            "used": id(row) in used_ids,
            "excluded": (None if id(row) in used_ids else
                         ("check star" if row is check_row else
                          (ok(j)[1] or ("clipped" if any(row is p for p in pool)
                                        else "not needed")))),
            "error": _r(float(sm.mag_err[j])), "x": _r(float(sm.x[j]), 2),
            "y": _r(float(sm.y[j]), 2),
        })
    check = None
    if check_row is not None:
        j = check_row["i"]
        k_mag = float(sm.mag[j]) + zp
        c = check_row["comp"]
        check = {"name": c.name, "label": c.label, "auid": c.auid, "mag": _r(k_mag),
                 "catalog_mag": check_row["cat"], "instrumental_mag": _r(float(sm.mag[j])),
                 "deviation": _r(k_mag - check_row["cat"]),
                 "error": _r(math.hypot(float(sm.mag_err[j]), zp_err))}
    fwhm_arcsec = sm.fwhm * frame.plane_scale_arcsec if frame.plane_scale_arcsec else None
    flag, reasons = _quality(cfg, t_snr, t_err, n_used, check, airmass, frame)
    astro = {"method": getattr(sol, "method", None), "n_matched": getattr(sol, "n_matched", None),
             "rms_px": _r(getattr(sol, "rms_px", None)),
             "scale_arcsec": _r(getattr(sol, "scale_arcsec", None))}
    result: dict[str, Any] = {
        "magnitude": round(t_mag, 4),
        "uncertainty": round(t_err, 4),
        "quality_flag": flag,
        "quality_reasons": reasons,
        "target_name": target.name,
        "auid": target.auid or (seq.star_auid if _norm(seq.star) == _norm(target.name)
                                else None),
        "target_ra": target.ra_deg,
        "target_dec": target.dec_deg,
        "filter": frame.filter,
        "band": band,
        "transformed": False,
        "jd": round(jd, 6),
        "hjd": round(hjd, 6),
        "time_uncertainty_s": frame.time_uncertainty_s,
        "exptime": frame.exptime,
        "airmass": _r(airmass, 3),
        "altitude_deg": _r(alt, 2),
        "fwhm": round(sm.fwhm, 3),
        "fwhm_arcsec": _r(fwhm_arcsec, 2),
        "snr": round(t_snr, 1),
        "scintillation_mag": _r(1.0857 * scintillation(cfg, frame, airmass)),
        "instrumental_mag": round(float(sm.mag[0]), 4),
        "instrumental_err": round(float(sm.mag_err[0]), 4),
        "comparison_stars": n_used,
        "comps": comp_out,
        "zero_point": round(zp, 4),
        "zp_error": round(zp_err, 4),
        "zp_scatter": round(zp_scatter, 4),
        "check_star": check,
        "chart_id": seq.chart_id if seq.source == "vsp" else None,
        "sequence_source": seq.source,
        "frame_kind": frame.kind,
        "file": str(frame.path),
        "object": frame.object,
        "telescope": frame.telescope,
        "astrometry": astro,
        "aperture": {"radius_px": round(sm.radius, 3), "annulus_in_px": round(sm.r_in, 3),
                     "annulus_out_px": round(sm.r_out, 3)},
        "target_x": round(float(sm.x[0]), 2),
        "target_y": round(float(sm.y[0]), 2),
        "target_recentred": bool(sm.recentred[0]),
        "sky_adu": _r(float(sm.sky[0]), 2),
        "binning": frame.binning,
        "stackcnt": frame.stackcnt,
        "date_obs": frame.start.isot,
        "synthetic": frame.synthetic,
        "file_sha1": frame.sha1,
    }
    log.info("%s: %s %s = %.3f +/- %.3f (%s, %d comps, SNR %.0f)", name, target.name,
             frame.filter, t_mag, t_err, flag, n_used, t_snr)
    return result


def _choose_check(cfg: Config, good: list[dict[str, Any]], rows: list[dict[str, Any]],
                  t_inst: float, sm: StarMeasurement, name: str) -> dict[str, Any] | None:
    want = cfg.photometry.check_star
    if want:
        for row in rows:
            c = row["comp"]
            if want.strip().lower() in (c.label.lower(), (c.auid or "").lower()):
                if any(row is g for g in good):
                    return row
                log.warning("%s: check star %s not measurable here", name, want)
                return None
        log.warning("%s: check star %s not in the sequence / frame", name, want)
        return None
    if len(good) < cfg.photometry.min_comps + 1 or not math.isfinite(t_inst):
        return None
    zp_guess = float(np.median([row["cat"] - sm.mag[row["i"]] for row in good]))
    t_std = t_inst + zp_guess
    # close in magnitude to the target, with a trustworthy catalogue value
    return min(good, key=lambda row: (abs(row["cat"] - t_std)
                                      + (0.5 if row["cat_err"] > 0.05 else 0.0),
                                      row["comp"].label))


def _quality(cfg: Config, snr: float, err: float, n: int, check: Mapping[str, Any] | None,
             airmass: float | None, frame: Frame) -> tuple[str, list[str]]:
    q = cfg.quality
    reasons: list[str] = []
    level = 0  # 0 good, 1 acceptable, 2 poor

    def grade(value: float | None, good_lim: float, acc_lim: float, what: str, higher: bool,
              fmt: str = "{:.3g}") -> None:
        nonlocal level
        if value is None:
            return
        bad_good = value < good_lim if higher else value > good_lim
        bad_acc = value < acc_lim if higher else value > acc_lim
        if bad_acc:
            level = max(level, 2)
            reasons.append(f"{what} {fmt.format(value)} {'<' if higher else '>'} "
                           f"{fmt.format(acc_lim)}")
        elif bad_good:
            level = max(level, 1)
            reasons.append(f"{what} {fmt.format(value)} {'<' if higher else '>'} "
                           f"{fmt.format(good_lim)}")

    grade(snr, q.good_snr, q.acceptable_snr, "SNR", True, "{:.0f}")
    grade(err, q.good_max_error, q.acceptable_max_error, "uncertainty", False)
    if n < q.good_min_comps:
        level = max(level, 1)
        reasons.append(f"{n} comparison stars < {q.good_min_comps}")
    if check is None:
        level = max(level, 2)
        reasons.append("no check star")
    else:
        grade(abs(check["deviation"]), q.good_max_check_deviation,
              q.acceptable_max_check_deviation, "check star deviation", False)
    if airmass is None:
        level = max(level, 1)
        reasons.append("airmass unknown (no site)" if frame.site is None
                       else "target below the horizon")
    else:
        grade(airmass, q.good_max_airmass, q.acceptable_max_airmass, "airmass", False)
    if frame.time_uncertainty_s > 0:
        reasons.append(f"stack: time uncertain by {frame.time_uncertainty_s:.0f} s")
    return ("good", "acceptable", "poor")[level], reasons
