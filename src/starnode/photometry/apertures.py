"""Aperture photometry of stars at given plane positions: centring, FWHM, flux and its error.

Why separate from the pipeline: the same code measures the target, the comparison and check
stars, and (in tests/photometry/test_photometry_real.py and the benchmarks) arbitrary field
stars, so the error model is checked on real data exactly as the pipeline uses it. Method:
docs/photometry.md, Methods 3-7.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import Config, resolve
from ..frame.load import GREEN_SITES, Frame
from ..frame.timesite import young_scintillation
from ..instruments import profile
from .cfa import CfaModel, fit_cfa, green_asymmetry, native_centroids, site_levels, site_sums
from .masks import circular_masks, masked_cutout, masked_sums, overlap_slices
from .noise import aperture_excess
from .sky import local_skies

log = logging.getLogger("starnode.photometry")

__all__ = ["StarMeasurement", "geometry", "measure_fwhm", "measure_stars", "scintillation"]

#: variance of the robust sky estimate relative to a plain mean's (measured on simulated skies)
_SKY_EST_VAR = 1.3


def _first_green(frame: Frame) -> tuple[int, int]:
    """(row, col) of a 2x2 cell's first green site: the frame's Bayer pattern, else the one of
    the model its header names (:mod:`starnode.instruments`)."""
    model = profile(header=frame.header).bayer_pattern or ""
    return GREEN_SITES.get(frame.bayer or model, GREEN_SITES.get(model, ((0, 0), (1, 1))))[0]


def _site_levels(frame: Frame, raw: np.ndarray) -> np.ndarray:
    """:func:`.cfa.site_levels` of the frame's raw mosaic, computed once per frame (the
    pipeline measures a frame's stars twice: the catalogued ones, then the starlist's)."""
    kept = frame.site_levels
    if kept is not None and kept[0] is raw:
        return kept[1]
    levels = site_levels(raw)
    frame.site_levels = (raw, levels)
    return levels


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
    #: the frame's excess noise (mag, :mod:`.noise`), already in ``mag_err``; 0 when unmeasured
    excess_mag: float = 0.0
    #: stars it was measured on
    excess_stars: int = 0
    #: of which: the spread of the aperture corrections (mag, :func:`.noise.aperture_excess`)
    aperture_excess_mag: float = 0.0
    #: the frame's CFA sampling model (:mod:`.cfa`; None: not a sub, too few bright stars, or
    #: off); its residual error is in ``excess_mag``
    cfa: CfaModel | None = None
    #: per star: the excess actually added to its error (mag): the aperture term and the CFA
    #: sampling left after the correction (all of it for a star whose phase is unknown)
    star_excess: np.ndarray | None = None
    #: the relative scintillation noise used for every star (Young x factor, at ``airmass``)
    scintillation: float = 0.0
    #: the airmass the scintillation was computed at (None: unknown, 1 used)
    airmass: float | None = None

    def frame_terms(self) -> tuple[Any, ...]:
        """The frame's error terms and CFA model, for ``measure_stars(excess=...)``."""
        return (self.aperture_excess_mag, 0.0, self.excess_stars, self.cfa)


def geometry(fwhm: float, cfg: Config) -> tuple[float, float, float]:
    """The one aperture geometry for a frame's FWHM.

    Parameters
    ----------
    fwhm : float
        Plane px.
    cfg : Config
        ``photometry.aperture_*`` / ``annulus_*``.

    Returns
    -------
    (float, float, float)
        Aperture radius, annulus inner and outer radius (plane px).
    """
    ph = cfg.photometry
    # a floor in pixels: an undersampled PSF's flux in a ~2 px aperture depends on where the
    # star falls on the pixel grid (docs/photometry.md, Method 7)
    r = (float(ph.aperture_radius_px) if ph.aperture_radius_px
         else max(ph.aperture_fwhm * fwhm, float(ph.aperture_min_px)))
    r_in = r + ph.annulus_gap_fwhm * fwhm
    r_out = r_in + ph.annulus_width_fwhm * fwhm
    return r, r_in, max(r_out, r_in + 2.0)


def _cut(plane: np.ndarray, x: float, y: float, half: int) -> tuple[np.ndarray, int, int]:
    ny, nx = plane.shape
    ix, iy = round(x), round(y)
    x0, y0 = max(ix - half, 0), max(iy - half, 0)
    return plane[y0:min(iy + half + 1, ny), x0:min(ix + half + 1, nx)], x0, y0


def _centroid_com(d: np.ndarray) -> tuple[float, float]:
    """photutils' ``centroid_com`` (x, y) of a 2-D cut-out, the same sums in the same order,
    without its per-call input checks (non-finite pixels count as 0, as there)."""
    data = np.asarray(d, dtype=float)
    if not np.isfinite(data).all():
        data = np.where(np.isfinite(data), data, 0.0)
    total = data.sum()
    if abs(total) < 1.0e-30:
        return math.nan, math.nan
    # np.ogrid's index arrays (int), without its slice parsing
    iy = np.arange(data.shape[0])[:, None]
    ix = np.arange(data.shape[1])[None, :]
    return float((ix * data).sum() / total), float((iy * data).sum() / total)


def _recentre(frame: Frame, x: float, y: float, fwhm: float, sky: float, sky_sigma: float,
              max_shift: float) -> tuple[float, float, bool]:
    """Centroid (first moments, :func:`_centroid_com`) within 1.5 FWHM, twice; keep the
    prediction when the star is too faint to centre or the centroid runs away."""
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
        noise = sky_sigma * math.sqrt(max(int(np.count_nonzero(inside)), 1))
        if not (signal > 10.0 * noise):
            return x, y, False
        d = np.maximum(d, 0.0)  # np.clip(d, 0.0, None)'s values
        if not d.any():
            return x, y, False
        gx, gy = _centroid_com(d)
        if not (math.isfinite(gx) and math.isfinite(gy)):
            return x, y, False
        cx, cy = x0 + gx, y0 + gy
    if math.hypot(cx - x, cy - y) > max_shift:
        return x, y, False
    return cx, cy, True


def measure_fwhm(frame: Frame, xy: np.ndarray, sky: np.ndarray, guess: float,
                 peaks: np.ndarray | None = None) -> tuple[float, int]:
    """Median FWHM (plane px) of the given stars from their half-light radius
    (``sep.flux_radius``, FWHM = 2 r50 for a Gaussian); (guess, 0) when none is usable.

    Parameters
    ----------
    frame : Frame
    xy : numpy.ndarray
        (n, 2) star positions.
    sky : numpy.ndarray
        Their sky levels.
    guess : float
        FWHM guess (plane px).
    peaks : numpy.ndarray, optional
        Peak ADU; saturated stars are skipped.

    Returns
    -------
    (float, int)
        FWHM and the number of stars used.
    """
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


def scintillation(config: Config, frame: Frame, airmass: float | None) -> float:
    """Relative (fractional) scintillation noise of one star's flux in this frame.

    Young (1967) times ``photometry.scintillation_factor``
    (:func:`.young_scintillation`) for ``camera.aperture_mm``, the site height
    and the total exposure (a stack: STACKCNT x EXPTIME).

    Parameters
    ----------
    config : Config
        The resolved configuration.
    frame : Frame
        The frame (exposure, STACKCNT).
    airmass : float or None
        Unknown: 1.

    Returns
    -------
    float
    """
    cfg = config
    return young_scintillation(cfg.camera.aperture_mm, airmass,
                               frame.exptime * max(frame.stackcnt, 1), cfg.site.elevation,
                               cfg.photometry.scintillation_factor)


def _inside_all(frame: Frame, xy: np.ndarray) -> np.ndarray:
    """Which positions lie on the plane (0 <= x < nx, 0 <= y < ny)."""
    ny, nx = frame.plane.shape
    return (xy[:, 0] >= 0) & (xy[:, 0] < nx) & (xy[:, 1] >= 0) & (xy[:, 1] < ny)


def _first_pass(frame: Frame, xy: np.ndarray, cfg: Config, guess: float, others: np.ndarray,
                recentre: bool, shift: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Provisional sky with a generous annulus, then re-centring: (positions, sky, recentred)."""
    n = len(xy)
    _, g_in, g_out = geometry(guess, cfg)
    mask_r = 2.0 * guess
    sky0, sig0 = np.zeros(n), np.zeros(n)
    pos = xy.copy()
    recentred = np.zeros(n, dtype=bool)
    measured = np.zeros(n, dtype=bool)
    ok = np.flatnonzero(_inside_all(frame, xy))
    for i, s in zip(ok, local_skies(frame, xy[ok], g_in, g_out, others, mask_r), strict=True):
        if s is not None:
            sky0[i], sig0[i], measured[i] = s.mean, s.sigma, True
    if recentre and measured.any():
        _recentre_many(frame, xy, np.flatnonzero(measured), guess, sky0, sig0, shift, pos,
                       recentred)
    return pos, sky0, recentred


def _recentre_many(frame: Frame, xy: np.ndarray, idx: np.ndarray, fwhm: float,
                   sky: np.ndarray, sigma: np.ndarray, max_shift: float, pos: np.ndarray,
                   recentred: np.ndarray) -> None:
    """:func:`_recentre` of the stars ``idx``, into ``pos`` and ``recentred``: the stars whose
    cut-outs lie inside the plane together (each sum over the same elements in the same order
    as :func:`_recentre`'s), the others one by one."""
    plane = frame.plane
    ny, nx = plane.shape
    r = max(1.5 * fwhm, 2.0)
    half = math.ceil(r) + 1
    off = np.arange(-half, half + 1)
    grid = np.arange(2 * half + 1)
    weak = np.result_type(plane.dtype, 0.0)
    cx, cy = xy[idx, 0].copy(), xy[idx, 1].copy()
    live = np.ones(len(idx), dtype=bool)  # still being centred together
    alone = np.zeros(len(idx), dtype=bool)  # a cut-out leaves the plane: one by one
    for _ in range(2):
        ix, iy = np.rint(cx).astype(int), np.rint(cy).astype(int)  # round(): half to even
        full = (ix - half >= 0) & (iy - half >= 0) & (ix + half < nx) & (iy + half < ny)
        alone |= live & ~full
        live &= full
        k = np.flatnonzero(live)
        if k.size == 0:
            break
        rows, cols = iy[k, None] + off, ix[k, None] + off  # (m, size)
        cut = plane[rows[:, :, None], cols[:, None, :]]
        inside = ((cols[:, None, :] - cx[k, None, None]) ** 2
                  + (rows[:, :, None] - cy[k, None, None]) ** 2) <= r * r
        # cut - sky, sky a Python float (weak): in the plane's float dtype (float64 for ints)
        d = np.where(inside, cut - sky[idx[k]].astype(weak)[:, None, None], 0.0)
        signal = np.array([float(d[j][inside[j]].sum()) for j in range(k.size)])
        noise = sigma[idx[k]] * np.sqrt(np.maximum(inside.reshape(k.size, -1).sum(axis=1), 1))
        d = np.maximum(d, 0.0)
        ok = (signal > 10.0 * noise) & d.reshape(k.size, -1).any(axis=1)
        data = np.asarray(d, dtype=float)
        data = np.where(np.isfinite(data), data, 0.0)
        total = data.reshape(k.size, -1).sum(axis=1)
        ok &= ~(np.abs(total) < 1.0e-30)
        with np.errstate(invalid="ignore", divide="ignore"):
            gx = (grid[None, None, :] * data).reshape(k.size, -1).sum(axis=1) / total
            gy = (grid[None, :, None] * data).reshape(k.size, -1).sum(axis=1) / total
        ok &= np.isfinite(gx) & np.isfinite(gy)
        live[k[~ok]] = False
        cx[k], cy[k] = (ix[k] - half) + gx, (iy[k] - half) + gy
    x0, y0 = xy[idx, 0], xy[idx, 1]
    far = np.array([math.hypot(a, b) > max_shift for a, b in zip(cx - x0, cy - y0, strict=True)],
                   dtype=bool)
    good = live & ~far
    pos[idx[good], 0], pos[idx[good], 1] = cx[good], cy[good]
    recentred[idx[good]] = True
    for j in np.flatnonzero(alone):
        i = idx[j]
        # Python floats, as the sky estimate's (a numpy scalar would promote the plane)
        pos[i, 0], pos[i, 1], recentred[i] = _recentre(frame, xy[i, 0], xy[i, 1], fwhm,
                                                      float(sky[i]), float(sigma[i]),
                                                      max_shift)


@dataclass
class _Sky:
    mean: np.ndarray
    sigma: np.ndarray
    n: np.ndarray
    clipped_value: np.ndarray


def _final_sky(frame: Frame, pos: np.ndarray, r: float, r_in: float, r_out: float, fwhm: float,
               others: np.ndarray) -> _Sky:
    n = len(pos)
    out = _Sky(np.full(n, np.nan), np.full(n, np.nan), np.zeros(n), np.zeros(n))
    mask_r = max(r + 0.5 * fwhm, 1.5 * fwhm)
    ok = np.flatnonzero(_inside_all(frame, pos))
    for i, s in zip(ok, local_skies(frame, pos[ok], r_in, r_out, others, mask_r), strict=True):
        if s is None:
            continue
        out.mean[i], out.sigma[i], out.n[i] = s.mean, s.sigma, s.n
        out.clipped_value[i] = s.clipped_value if s.clipped_fraction > 0 else 0.0
    return out


def _aperture_sums(frame: Frame, pos: np.ndarray, inside: np.ndarray, r: float,
                   clip_val: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """(raw aperture sums, sum of the squared exact-overlap weights) per star, and the masks
    of the stars ``inside`` (reused for the green sites' sums).

    The weights' squares give the sky noise of a weighted sum (a little less than the area,
    because of the partial pixels on the rim). Pixels the firmware clipped at 0 inside the
    aperture get the same expected value as the clipped pixels of the annulus, so that sky and
    aperture are treated alike (else a faint star's aperture keeps the clipping's positive
    bias).
    """
    n = len(pos)
    raw_sum = np.full(n, np.nan)
    area_w2 = np.full(n, math.pi * r * r)
    if not inside.any():
        return raw_sum, area_w2, []
    masks = circular_masks(pos[inside], r)
    # the masks are made once: the sums as photutils' aperture_photometry makes them from them
    raw_sum[inside] = masked_sums(frame.plane, masks)
    index = np.flatnonzero(inside)
    # masks of one shape together (each sum over the same elements in the same order)
    for group in _same_shape(masks):
        weights = np.stack([masks[j].data for j in group])
        area_w2[index[group]] = (weights * weights).reshape(len(group), -1).sum(axis=1)
    sites = frame.green if frame.green is not None else (frame.plane,)
    clipped = [j for j, i in enumerate(index) if clip_val[i] != 0.0]
    n0 = _clipped_weights([masks[j] for j in clipped], sites)
    for j, w0 in zip(clipped, n0, strict=True):
        raw_sum[index[j]] += w0 * clip_val[index[j]]
    return raw_sum, area_w2, masks


def _clipped_weights(masks: list[Any], sites: tuple[np.ndarray, ...]) -> np.ndarray:
    """Per mask, the summed weights of its pixels at 0 in each site plane (added site by
    site): the masks inside the planes together, by shape; the others one by one on
    NaN-filled cut-outs."""
    n0 = np.zeros(len(masks))
    for group in _same_shape(masks):
        slices = {j: overlap_slices(masks[j], sites[0].shape) for j in group}
        whole = [j for j in group if slices[j][0] is not None
                 and _covers(slices[j][1], masks[j].data.shape)]
        for j in sorted(set(group) - set(whole)):
            for site in sites:
                cut = masked_cutout(masks[j], site)
                if cut is not None:
                    n0[j] += float(np.sum(masks[j].data * (cut == 0)))
        if whole:
            weights = np.stack([masks[j].data for j in whole])
            for site in sites:
                cuts = np.stack([site[slices[j][0]] for j in whole])
                n0[whole] += (weights * (cuts == 0)).reshape(len(whole), -1).sum(axis=1)
    return n0


def _covers(small: Any, shape: tuple[int, ...]) -> bool:
    """Whether a mask's overlap slices cover all of it (the mask lies inside the plane)."""
    return bool((small[0].stop - small[0].start, small[1].stop - small[1].start) == shape)


def _same_shape(masks: list[Any]) -> list[list[int]]:
    """The indices of ``masks`` grouped by mask shape (in order)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for j, m in enumerate(masks):
        groups.setdefault(m.data.shape, []).append(j)
    return list(groups.values())


def _flux_errors(frame: Frame, flux: np.ndarray, sky: _Sky, area: float, area_w2: np.ndarray,
                 scint: float) -> np.ndarray:
    """CCD-equation error of each flux (ADU), docs/photometry.md Method 6."""
    g = frame.gain_e_per_adu
    # per-pixel sky + dark + read-noise variance as measured in the annulus; the read noise
    # alone as a floor
    var_pix = np.maximum(sky.sigma**2, (frame.read_noise_e / g) ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (frame.source_var_factor * np.clip(flux, 0, None) / g
               + frame.sky_var_factor * area_w2 * var_pix
               + frame.sky_var_factor * area**2 * var_pix * _SKY_EST_VAR
               / np.maximum(sky.n, 1)
               + (scint * np.clip(flux, 0, None)) ** 2)
        return np.asarray(np.sqrt(var))


def measure_stars(frame: Frame, xy: np.ndarray, config: Config | None = None, *,
                  fwhm: float | None = None, recentre: bool = True,
                  neighbours: np.ndarray | None = None, max_shift: float | None = None,
                  fwhm_stars: np.ndarray | None = None,
                  airmass: float | None = None,
                  excess: tuple[Any, ...] | None = None) -> StarMeasurement:
    """Aperture photometry of the stars at plane positions ``xy``.

    Parameters
    ----------
    frame : Frame
        The loaded frame.
    xy : numpy.ndarray
        (n, 2) plane positions, 0-based.
    config : Config, optional
        The configuration (default: the built-in defaults).
    fwhm : float, optional
        Plane px; None: measured from the stars flagged in ``fwhm_stars`` (default all).
    recentre : bool
        Re-centre bright stars (photutils ``centroid_com``).
    neighbours : numpy.ndarray, optional
        (m, 2) positions masked in the annuli (the stars themselves are masked in each other's
        annuli anyway).
    max_shift : float, optional
        Largest accepted centroid shift (plane px).
    fwhm_stars : numpy.ndarray, optional
        Boolean mask of the stars that size the aperture.
    airmass : float, optional
        Sets the scintillation term (see :func:`scintillation`).
    excess : tuple, optional
        The frame's terms, from :meth:`StarMeasurement.frame_terms`: (aperture excess, unused,
        stars, CFA model), used instead of estimating them from these stars, so that the field
        stars of a starlist get the frame's terms and correction, not ones of their own.

    Returns
    -------
    StarMeasurement
        The same aperture / gap / annulus for every star.
    """
    cfg = resolve(config)
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    scale = frame.plane_scale_arcsec
    guess = fwhm or (9.0 / scale if scale else 2.0)
    others = xy if neighbours is None else np.vstack([xy, np.asarray(neighbours, float)])
    ny, nx = frame.plane.shape
    shift = max_shift if max_shift is not None else max(2.0, guess)
    pos, sky0, recentred = _first_pass(frame, xy, cfg, guess, others, recentre, shift)
    if fwhm is None:
        sel = recentred if fwhm_stars is None else (recentred & np.asarray(fwhm_stars, bool))
        peaks_guess = frame.peak_adus(pos[sel], 1.5 * guess)
        fwhm, nf = measure_fwhm(frame, pos[sel], sky0[sel], guess, peaks_guess)
        if nf == 0:
            log.debug("%s: no star for the FWHM, using %.2f px", frame.path.name, guess)
    r, r_in, r_out = geometry(float(fwhm), cfg)
    margin = r_out + cfg.photometry.edge_margin_px
    edge = ((pos[:, 0] < margin) | (pos[:, 1] < margin)
            | (pos[:, 0] > nx - 1 - margin) | (pos[:, 1] > ny - 1 - margin))
    others = pos if neighbours is None else np.vstack([pos, np.asarray(neighbours, float)])
    sky = _final_sky(frame, pos, r, r_in, r_out, float(fwhm), others)
    inside = (pos[:, 0] >= 0) & (pos[:, 0] < nx) & (pos[:, 1] >= 0) & (pos[:, 1] < ny)
    raw_sum, area_w2, masks = _aperture_sums(frame, pos, inside, r, sky.clipped_value)
    area = math.pi * r * r
    flux = raw_sum - area * sky.mean
    scint = scintillation(cfg, frame, airmass)
    peaks = np.zeros(len(pos))
    peaks[inside] = frame.peak_adus(pos[inside], r)
    saturated = peaks >= frame.saturation_adu
    err = _flux_errors(frame, flux, sky, area, area_w2, scint)
    if excess is not None:
        ap_ex, n_ex = excess[0], excess[2]
    else:  # before the CFA correction: the core is in both apertures, its sampling cancels
        with np.errstate(invalid="ignore", divide="ignore"):
            ap_ex, n_ex = _excess(frame, pos, inside, r, float(fwhm), sky, flux, err,
                                  flux / err)
    cfa = None
    # the phase of every recentred star, from the full-resolution mosaic (its site classes'
    # sky levels found once, for the centroids and the site sums)
    phase_pos, levels = pos, None
    # the first green site (from the instrument profile: looked up once)
    site = _first_green(frame) if frame.green is not None else None
    if frame.green is not None and frame.raw is not None and cfg.photometry.cfa_correction:
        levels = _site_levels(frame, frame.raw)
        phase_pos = native_centroids(frame.raw, pos, levels=levels)
    if cfg.photometry.cfa_correction and excess is None:
        usable = inside & ~saturated & ~edge & recentred
        # the bright stars' masks: those of the aperture sums (every star inside), reused
        mask_of = dict(zip(np.flatnonzero(inside).tolist(), masks, strict=True))
        cfa = _cfa_model(frame, pos, phase_pos, usable, r, sky, flux, err, scint,
                         float(fwhm), levels, mask_of, site)
    elif excess is not None and len(excess) > 3:
        cfa = excess[3]
    # per-star CFA sampling error (mag): what the correction leaves, or all of it when the
    # star's phase is unknown (not recentred)
    samp = np.zeros(len(pos))
    if cfa is not None:
        site = _first_green(frame) if site is None else site
        factor = np.where(recentred, cfa.factor(phase_pos, site), 1.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            snr_c = flux / np.sqrt(np.maximum(err**2 - (scint * flux) ** 2, 1e-30))
        flux, err = flux / factor, err / factor
        samp = np.where(recentred, cfa.left_mag(snr_c), cfa.uncorrected_mag)
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = flux / err
        mag = -2.5 * np.log10(flux / frame.exptime)
        mag_err = 2.5 / math.log(10.0) / snr
    mag = np.where(flux > 0, mag, np.nan)
    total = np.hypot(ap_ex, samp)
    if cfg.photometry.excess_noise:
        mag_err = np.hypot(mag_err, total)
    return StarMeasurement(x=pos[:, 0], y=pos[:, 1], recentred=recentred, flux=flux,
                           flux_err=err, sky=sky.mean, sky_sigma=sky.sigma, snr=snr, mag=mag,
                           mag_err=mag_err, peak=peaks, saturated=saturated,
                           edge=edge, radius=r, r_in=r_in, r_out=r_out, fwhm=float(fwhm),
                           excess_mag=float(math.hypot(ap_ex, cfa.sampling_mag if cfa else 0.0)),
                           excess_stars=n_ex, aperture_excess_mag=float(ap_ex), cfa=cfa,
                           star_excess=total, scintillation=scint, airmass=airmass)


def _cfa_model(frame: Frame, pos: np.ndarray, phase_pos: np.ndarray, usable: np.ndarray,
               r: float, sky: _Sky, flux: np.ndarray, err: np.ndarray, scint: float,
               fwhm: float, levels: np.ndarray | None = None,
               mask_of: dict[int, Any] | None = None,
               site: tuple[int, int] | None = None) -> CfaModel | None:
    """The frame's CFA sampling model (:mod:`.cfa`) from its recentred stars with SNR >= 20
    (a sub's two green sites; None for stacks and mono frames)."""
    if frame.green is None:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = flux / err
    bright = usable & np.isfinite(snr) & (snr >= 20.0) & np.isfinite(sky.mean)
    if int(bright.sum()) < 5:
        return None
    masks = ([mask_of[i] for i in np.flatnonzero(bright).tolist()] if mask_of is not None
             else None)
    asym = green_asymmetry(frame.green, pos[bright], r, sky.mean[bright], masks)
    f = flux[bright]
    # scintillation multiplies both sites alike: not in the asymmetry's noise
    var = np.clip(err[bright] ** 2 - (scint * f) ** 2, 0.0, None)
    site = _first_green(frame) if site is None else site
    # the SNR that sets a centroid's precision: without scintillation
    snr_c = f / np.sqrt(np.maximum(var, 1e-30))
    sums = (site_sums(frame.raw, pos[bright], r, sky.mean[bright], levels)
            if frame.raw is not None else None)
    return fit_cfa(asym, np.sqrt(var) / f, phase_pos[bright], site, snr=snr_c,
                   fwhm_native=fwhm * frame.binning, sums=sums)


def _excess(frame: Frame, pos: np.ndarray, inside: np.ndarray, r: float, fwhm: float,
            sky: _Sky, flux: np.ndarray, err: np.ndarray, snr: np.ndarray) -> tuple[float, int]:
    """The frame's excess noise from its stars' aperture corrections
    (:func:`.noise.aperture_excess`): m(r) - m(r + FWHM) per star and the CCD-equation error
    of that difference (the ring's photon and sky noise; scintillation is common to both
    apertures and cancels)."""
    bright = inside & np.isfinite(snr) & (snr >= 30.0)
    if int(bright.sum()) < 5:
        return 0.0, int(bright.sum())
    r2 = r + fwhm
    raw2, _, _ = _aperture_sums(frame, pos, bright, r2, sky.clipped_value)
    area1, area2 = math.pi * r * r, math.pi * r2 * r2
    flux2 = raw2 - area2 * sky.mean
    ring = flux2 - flux
    g = frame.gain_e_per_adu
    var_pix = np.maximum(sky.sigma**2, (frame.read_noise_e / g) ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        var_ring = (frame.source_var_factor * np.clip(ring, 0, None) / g
                    + frame.sky_var_factor * (area2 - area1) * var_pix)
        delta = -2.5 * np.log10(flux / flux2)
        # d(delta) = 1.0857 (dF1 (1/F2 - 1/F1) + dRing / F2); the aperture's own error enters
        # weighted by the ring's share only
        d_err = 1.0857 * np.sqrt(err**2 * (ring / (flux * flux2)) ** 2 + var_ring / flux2**2)
    return aperture_excess(delta[bright], d_err[bright], snr[bright])
