"""How the colour filter array samples a sharp star, and the correction of the green sum for it.

Why: on older-firmware alt-az subs the stars have a sharp seeing core (about 30 % of a star's
light in one native pixel although the green-plane FWHM is 1.4 px). The green plane sums the two
green sites of each 2x2 cell, so the share of a star's light it collects depends on whether the
core falls on a green site or on the red / blue one beside it: consecutive subs then disagree
by up to 0.15 mag for stars of SNR 40 (docs/photometry.md, "Why older-firmware alt-az subs
scatter"). Fourier view, with the native position (X, Y) of the star and
cx = cos(pi (X - c0)), cy = cos(pi (Y - r0)) for the first green site at (r0, c0):

- green sum      G = L/2 (1 + T2 cx cy)
- green asymmetry A = (G1 - G2) / (G1 + G2) ~ T1 (cx + cy)

- red and blue   ln R + ln B - 2 ln G = c + ln((1 - T2 cx cy)^2 - T1^2 (cx - cy)^2)
                                          - 2 ln(1 + T2 cx cy)

where T1, T2 are the PSF's transfer at the CFA's frequencies (pi, 0) and (pi, pi), and c a
colour term (the red and blue sites move in opposite directions with a star's colour, so c
scatters little between stars). Each frame measures T1 from its bright stars' asymmetry
against their centroids' phase, and T2 from their red and blue sites (:func:`fit_t2`); the
measured T2 is combined with the prior ``KAPPA`` x T1^2 +- ``KAPPA_ERR`` x T1^2 (weighted by
their variances: a crowded synthetic sub measures T2 to +-0.005, a real sub with 44 stars to
+-0.02-0.03, about as well as the prior). Every recentred star's flux is divided by
(1 + T2 cx cy); the uncertainty of T2 is the sampling error that stays, carried in every
star's error with its centroid's phase error; stars that were not recentred (their phase
unknown) are not corrected and carry the full sampling error, T2 / 2 (uniform phases).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .masks import circular_masks, masked_sums

__all__ = ["KAPPA", "KAPPA_ERR", "CfaModel", "fit_cfa", "fit_t2", "green_asymmetry",
           "native_centroids", "phases", "site_levels", "site_sums"]

#: T2 / T1^2 (the green sum's modulation over the square of the asymmetry's), see the module:
#: 1 for a Gaussian PSF; 1.75-2.4 for noise-free synthetic subs with a sharp core (core share
#: 0.3-0.5, core FWHM 1.0-1.4 native px, green FWHM 1.4-1.7 px); 1-2 minimises the scatter
#: between the two real older-firmware subs (bench/errors_real.py)
KAPPA = 2.0

#: its uncertainty: the prior's, combined with the frame's own measurement of T2
KAPPA_ERR = 0.5

#: fewest stars for a frame's own T2 (the red / blue fit)
MIN_T2_STARS = 15

#: 2.5 / ln 10: relative flux error -> mag
_MAG = 2.5 / math.log(10.0)

#: fewest bright stars for a frame's model
MIN_STARS = 5

#: largest centroid phase error accepted, in FWHM / SNR (native px): a centre-of-mass
#: centroid's error is ~0.4-0.6 FWHM / SNR (0.45-0.57 measured on the synthetic sharp-core
#: subs); asymmetry residuals beyond this (1.5 on the real older-firmware pair) come from
#: irregular star shapes, not from the phase, and are not turned into flux error
MAX_CENTROID_K = 0.6

#: only stars this bright measure T1
MIN_SNR = 20.0


def green_asymmetry(green: tuple[np.ndarray, np.ndarray], pos: np.ndarray, radius: float,
                    sky: np.ndarray, masks: list[Any] | None = None) -> np.ndarray:
    """Per star, (G1 - G2) / (G1 + G2) of the two green CFA sites' aperture sums.

    Parameters
    ----------
    green : (numpy.ndarray, numpy.ndarray)
        The two green-site planes (``Frame.green``), plane pixel grid.
    pos : numpy.ndarray
        (n, 2) plane positions.
    radius : float
        Aperture radius (plane px).
    sky : numpy.ndarray
        Sky per plane pixel (the two sites' sum) of each star.
    masks : list, optional
        The stars' :func:`.masks.circular_masks` of ``radius`` (made here when not given).

    Returns
    -------
    numpy.ndarray
        The asymmetry (NaN where the sum is not positive).
    """
    pos = np.asarray(pos, float).reshape(-1, 2)
    if len(pos) == 0:
        return np.zeros(0)
    masks = circular_masks(pos, radius) if masks is None else masks
    area = math.pi * radius * radius
    g1, g2 = (masked_sums(site, masks) - 0.5 * area * np.asarray(sky, float) for site in green)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = (g1 - g2) / (g1 + g2)
    return np.where((g1 + g2) > 0, a, np.nan)


def site_levels(raw: np.ndarray) -> np.ndarray:
    """The sky level of each CFA site class: the median of every fourth cell's site (a
    (2, 2) array indexed by the site's (row, col) in the cell; computed once per frame and
    shared by :func:`native_centroids` and :func:`site_sums`).

    Parameters
    ----------
    raw : numpy.ndarray
        The raw mosaic (native px).

    Returns
    -------
    numpy.ndarray
    """
    data = np.asarray(raw)
    return np.array([[_median(data[r::8, c::8]) for c in (0, 1)] for r in (0, 1)])


def _median(values: np.ndarray) -> float:
    """``numpy.median`` of the values; of integers (a raw mosaic) from one partition, the two
    middle values' mean computed as numpy's (numpy partitions at both, several times slower
    on a sky's many equal values)."""
    if values.dtype.kind not in "ui" or values.size == 0:
        return float(np.median(values))
    flat = values.ravel()
    k = flat.size // 2
    part = np.partition(flat, k)
    if flat.size % 2:
        return float(part[k])
    return (float(part[:k].max()) + float(part[k])) / 2.0


def native_centroids(raw: np.ndarray, pos: np.ndarray, half: int = 3, iters: int = 3,
                     levels: np.ndarray | None = None) -> np.ndarray:
    """Centroids on the full-resolution mosaic, each CFA site class normalised by its own sum
    (so the star's colour does not pull the centroid), as plane positions.

    The green plane bins 2x2 cells, so its centroid of a core narrower than a cell is pulled
    towards the cell's centre; the mosaic's is not (on the real older-firmware subs it raises
    the asymmetry's correlation with the phase from 0.83-0.84 to 0.89-0.91).

    Parameters
    ----------
    raw : numpy.ndarray
        The raw mosaic (native px).
    pos : numpy.ndarray
        (n, 2) plane positions to start from.
    half : int
        Half-size of the stamp (native px).
    iters : int
        Re-centring passes.
    levels : numpy.ndarray, optional
        :func:`site_levels` of ``raw`` (computed here when not given).

    Returns
    -------
    numpy.ndarray
        (n, 2) plane positions (the start where a stamp leaves the mosaic or holds no light).
    """
    pos = np.asarray(pos, float).reshape(-1, 2)
    data = np.asarray(raw)
    ny, nx = data.shape
    sky = site_levels(data) if levels is None else np.asarray(levels)
    out = pos.copy()
    # all stars at once; a star that leaves the mosaic or loses its light keeps its start
    # (every per-star sum runs over the same elements in the same order as a star's own)
    bx, by = 2.0 * pos[:, 0] + 0.5, 2.0 * pos[:, 1] + 0.5
    live = np.ones(len(pos), dtype=bool)
    off = np.arange(-half, half + 1)
    for _ in range(iters):
        ix, iy = np.rint(bx).astype(int), np.rint(by).astype(int)  # round half to even
        live &= (half <= ix) & (ix < nx - half) & (half <= iy) & (iy < ny - half)
        k = np.flatnonzero(live)
        if k.size == 0:
            break
        rows = iy[k, None, None] + off[None, :, None]
        cols = ix[k, None, None] + off[None, None, :]
        d = data[rows, cols].astype(float) - sky[rows % 2, cols % 2]
        w = _site_weights(d)
        w = np.clip(w, 0.0, None) * (((rows - by[k, None, None]) ** 2
                                      + (cols - bx[k, None, None]) ** 2) <= half * half)
        tw = w.reshape(k.size, -1).sum(axis=1)
        ok = tw > 0
        live[k[~ok]] = False
        k, w, rows, cols, tw = k[ok], w[ok], rows[ok], cols[ok], tw[ok]
        bx[k] = (w * cols).reshape(k.size, -1).sum(axis=1) / tw
        by[k] = (w * rows).reshape(k.size, -1).sum(axis=1) / tw
    out[live] = np.column_stack([(bx[live] - 0.5) / 2.0, (by[live] - 0.5) / 2.0])
    return out


def _site_weights(d: np.ndarray) -> np.ndarray:
    """Stamps ``d`` (n, h, w) with each CFA site class divided by its own sum (0 where that
    sum is not positive). A stamp's rows / columns of one parity are one site class whichever
    its first row and column are, so every stamp is normalised in the same four steps (each
    sum over the same elements in the same order as a stamp's own)."""
    n = d.shape[0]
    w = np.zeros_like(d)
    for sr in (0, 1):  # the stamp's rows / columns of one site class
        for sc in (0, 1):
            block = d[:, sr::2, sc::2]
            tot = block.reshape(n, -1).sum(axis=1)
            good = tot > 0
            w[:, sr::2, sc::2] = np.where(
                good[:, None, None], block / np.where(good, tot, 1.0)[:, None, None], 0.0)
    return w


def phases(pos: np.ndarray, site: tuple[int, int] = (0, 0)) -> tuple[np.ndarray, np.ndarray]:
    """(cx, cy) of plane positions: cos(pi (X - c0)), cos(pi (Y - r0)) with X = 2 x + 0.5
    the native column (plane pixel (i, j) is centred on native (2i + .5, 2j + .5)) and
    (r0, c0) the first green site.

    Parameters
    ----------
    pos : numpy.ndarray
        (n, 2) plane positions.
    site : (int, int)
        (row, col) of the first green site in the 2x2 cell.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
    """
    pos = np.asarray(pos, float).reshape(-1, 2)
    cx = np.cos(math.pi * (2.0 * pos[:, 0] + 0.5 - site[1]))
    cy = np.cos(math.pi * (2.0 * pos[:, 1] + 0.5 - site[0]))
    return cx, cy


@dataclass(frozen=True)
class CfaModel:
    """A frame's CFA sampling model."""

    t1: float  # asymmetry per unit cx + cy (the geometric mean of t1x and t1y)
    sampling_mag: float  # error left in a corrected star by the uncertainty of T2 (mag)
    uncorrected_mag: float  # error of a star whose phase is unknown (mag)
    n: int  # stars it was fitted on
    resid_var: float = 0.0  # the asymmetry's variance about the fit beyond its noise
    #: phase error of a centroid in native px = ``centroid_k`` x FWHM (native px) / SNR,
    #: measured on the bright stars' asymmetry residuals (0: not measured)
    centroid_k: float = 0.0
    fwhm_native: float = 0.0
    #: the green sum's modulation (NaN: the prior KAPPA T1^2) and its uncertainty
    t2: float = math.nan
    t2_err: float = math.nan
    #: the frame's own T2 from its red and blue sites, its error and star count (NaN, 0: none)
    t2_measured: float = math.nan
    t2_measured_err: float = math.nan
    t2_stars: int = 0

    @property
    def modulation(self) -> float:
        """T2: the frame's combined estimate (the prior KAPPA T1^2 when none was made)."""
        return self.t2 if math.isfinite(self.t2) else KAPPA * self.t1 * self.t1

    def left_mag(self, snr: np.ndarray) -> np.ndarray:
        """Per star, the sampling error left after the correction (mag): the uncertainty of
        KAPPA and the phase error of its centroid (which grows as 1 / SNR), never more than
        the uncorrected error."""
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = self.centroid_k * self.fwhm_native / np.asarray(snr, float)
            phase = _MAG * self.modulation * math.pi * delta / math.sqrt(2.0)
        out = np.hypot(self.sampling_mag, np.nan_to_num(phase, nan=0.0, posinf=0.0))
        return np.minimum(out, max(self.uncorrected_mag, self.sampling_mag))

    def factor(self, pos: np.ndarray, site: tuple[int, int] = (0, 0)) -> np.ndarray:
        """What each green sum is divided by: 1 + T2 cx cy."""
        cx, cy = phases(pos, site)
        return np.asarray(1.0 + self.modulation * cx * cy)


def fit_cfa(asym: np.ndarray, asym_err: np.ndarray, pos: np.ndarray,
            site: tuple[int, int] = (0, 0), snr: np.ndarray | None = None,
            fwhm_native: float = 0.0, sums: np.ndarray | None = None) -> CfaModel | None:
    """Fit T1 on the bright stars' asymmetry against their phases, and T2.

    Parameters
    ----------
    asym : numpy.ndarray
        :func:`green_asymmetry` of bright, unsaturated, recentred stars.
    asym_err : numpy.ndarray
        Its noise (the star's CCD-equation flux error without scintillation, over the flux).
    pos : numpy.ndarray
        Their (centroid) plane positions.
    site : (int, int)
        The first green site.
    snr : numpy.ndarray, optional
        Their SNR; with ``fwhm_native``, the centroids' phase error is measured as
        k x FWHM / SNR from the asymmetry's residuals (robust: a median).
    fwhm_native : float
        The frame's FWHM in native px.
    sums : numpy.ndarray, optional
        (n, 4) :func:`site_sums` of the same stars: T2 is then also measured on the frame's
        red and blue sites (:func:`fit_t2`) and combined with the prior KAPPA T1^2.

    Returns
    -------
    CfaModel or None
        None with fewer than :data:`MIN_STARS` usable stars.
    """
    cx, cy = phases(pos, site)
    ok = np.isfinite(asym) & np.isfinite(asym_err) & (np.abs(asym) < 0.8)
    n = int(ok.sum())
    if n < MIN_STARS:
        return None
    a, e = asym[ok], asym_err[ok]
    # an elongated (trailed) core is sampled differently along x and y: A = t1x cx + t1y cy
    design = np.column_stack([cx[ok], cy[ok]])
    (t1x, t1y), *_ = np.linalg.lstsq(design, a, rcond=None)
    t1 = math.sqrt(max(float(t1x * t1y), 0.0))
    noise = float(np.mean(e * e))
    resid = max(float(np.mean((a - design @ np.array([t1x, t1y])) ** 2)) - noise, 0.0)
    # T2: the prior KAPPA T1^2 +- KAPPA_ERR T1^2, and the frame's own measurement (red and
    # blue sites) when there is one, weighted by their variances. Phases uniform: the rms of
    # T2 cx cy is T2 / 2, all of it for an uncorrected star; a corrected one keeps the error
    # of T2. The asymmetry's scatter about the fit (``resid``, kept in the model) is not
    # added: on the real pair the scatter left after the correction is explained without it
    # (docs/photometry.md)
    prior, prior_err = KAPPA * t1 * t1, KAPPA_ERR * t1 * t1
    t2, t2_err = prior, prior_err
    meas = (math.nan, math.nan, 0)
    if sums is not None:
        meas = fit_t2(np.asarray(sums, float)[ok], np.asarray(pos, float).reshape(-1, 2)[ok],
                      t1, site)
        t2, t2_err = _combine(prior, prior_err, meas[0], meas[1])
    k = 0.0
    if snr is not None and fwhm_native > 0 and t1 > 0:
        # A - fit = T1 pi d (d: phase error, native px, per axis); d = k FWHM / SNR
        r2 = (a - design @ np.array([t1x, t1y])) ** 2 - e * e
        q = (t1 * math.pi * fwhm_native / np.asarray(snr, float)[ok]) ** 2
        good = np.isfinite(r2) & np.isfinite(q) & (q > 0)
        if good.sum() >= MIN_STARS:
            # the median of a chi-square(1) variable is 0.455 of its mean
            k = min(math.sqrt(max(float(np.median(r2[good] / q[good])) / 0.455, 0.0)),
                    MAX_CENTROID_K)
    whole = _MAG * abs(t2) / 2.0
    return CfaModel(t1=t1, sampling_mag=min(_MAG * t2_err / 2.0, whole), resid_var=resid,
                    uncorrected_mag=whole, n=n, centroid_k=k, fwhm_native=fwhm_native,
                    t2=t2, t2_err=t2_err, t2_measured=meas[0], t2_measured_err=meas[1],
                    t2_stars=meas[2])


def _combine(prior: float, prior_err: float, value: float, err: float) -> tuple[float, float]:
    """The inverse-variance weighted mean of the prior and a measurement, and its error (the
    prior alone when the measurement is missing or the prior exact)."""
    if not (math.isfinite(value) and math.isfinite(err) and err > 0):
        return prior, prior_err
    if not prior_err > 0:
        return prior, prior_err
    w1, w2 = 1.0 / prior_err**2, 1.0 / err**2
    return (w1 * prior + w2 * value) / (w1 + w2), 1.0 / math.sqrt(w1 + w2)


def site_sums(raw: np.ndarray, pos: np.ndarray, radius: float, sky: np.ndarray,
              levels: np.ndarray | None = None) -> np.ndarray:
    """Per star, the aperture sums of the four CFA site classes, sky removed.

    Parameters
    ----------
    raw : numpy.ndarray
        The raw mosaic (native px).
    pos : numpy.ndarray
        (n, 2) green-plane positions (native (2 x + 0.5, 2 y + 0.5)).
    radius : float
        Aperture radius (plane px: one site class's pixel pitch).
    sky : numpy.ndarray
        The local sky per plane pixel of the green sum (two sites), per star; each site's is
        scaled from it by the ratio of the site class's median to the green sites' mean.
    levels : numpy.ndarray, optional
        :func:`site_levels` of ``raw`` (computed here when not given).

    Returns
    -------
    numpy.ndarray
        (n, 4): the sums of sites (0, 0), (0, 1), (1, 0), (1, 1) of the 2x2 cell.
    """
    pos = np.asarray(pos, float).reshape(-1, 2)
    out = np.zeros((len(pos), 4))
    if len(pos) == 0:
        return out
    data = np.asarray(raw)
    med = site_levels(data) if levels is None else levels
    green = 0.5 * (med[0, 0] + med[1, 1]) if med[0, 0] + med[1, 1] > 0 else 1.0
    area = math.pi * radius * radius
    for i, (r, c) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        # site (r, c)'s pixel (i, j) sits at native (2 j + c, 2 i + r)
        p = np.column_stack([pos[:, 0] + (0.5 - c) / 2.0, pos[:, 1] + (0.5 - r) / 2.0])
        s = masked_sums(data[r::2, c::2], circular_masks(p, radius))
        local = 0.5 * np.asarray(sky, float) * med[r, c] / green
        out[:, i] = s - area * local
    return out


def fit_t2(sums: np.ndarray, pos: np.ndarray, t1: float, site: tuple[int, int] = (0, 0)
           ) -> tuple[float, float, int]:
    """The green sum's modulation T2, measured on the red and blue sites (see the module).

    ln R + ln B - 2 ln G = c + ln((1 - T2 p)^2 - T1^2 q^2) - 2 ln(1 + T2 p), p = cx cy,
    q = cx - cy, fitted robustly (soft L1) for c and T2 over the stars; its error from the
    fit's Jacobian and the residuals' robust scatter (stars' colours, photon noise).

    Parameters
    ----------
    sums : numpy.ndarray
        (n, 4) :func:`site_sums`.
    pos : numpy.ndarray
        (n, 2) the stars' (centroid) plane positions.
    t1 : float
        The frame's T1 (:func:`fit_cfa`).
    site : (int, int)
        (row, col) of the first green site.

    Returns
    -------
    (float, float, int)
        T2, its error, the stars used; (NaN, NaN, n) with fewer than :data:`MIN_T2_STARS`.
    """
    from scipy.optimize import least_squares

    sums = np.asarray(sums, float).reshape(-1, 4)
    r0, c0 = site
    index = {(0, 0): 0, (0, 1): 1, (1, 0): 2, (1, 1): 3}
    g = sums[:, index[(r0, c0)]] + sums[:, index[(1 - r0, 1 - c0)]]
    red, blue = sums[:, index[(r0, 1 - c0)]], sums[:, index[(1 - r0, c0)]]
    cx, cy = phases(pos, site)
    ok = (g > 0) & (red > 0) & (blue > 0) & np.isfinite(cx) & np.isfinite(cy)
    n = int(ok.sum())
    if n < MIN_T2_STARS:
        return math.nan, math.nan, n
    y = np.log(red[ok]) + np.log(blue[ok]) - 2.0 * np.log(g[ok])
    p, q = (cx * cy)[ok], (cx - cy)[ok]

    def resid(params: np.ndarray) -> np.ndarray:
        c, t2 = params
        inner = np.clip((1.0 - t2 * p) ** 2 - (t1 * q) ** 2, 1e-6, None)
        return np.asarray(c + np.log(inner) - 2.0 * np.log(np.clip(1.0 + t2 * p, 1e-6, None))
                          - y)

    c0_ = float(np.median(y))
    scale = max(float(np.median(np.abs(y - c0_))) / 0.6745, 1e-3)
    fit = least_squares(resid, [c0_, KAPPA * t1 * t1], loss="soft_l1", f_scale=scale,
                        bounds=([-np.inf, -0.5], [np.inf, 0.5]))
    sigma = float(np.median(np.abs(fit.fun))) / 0.6745
    try:
        cov = np.linalg.inv(fit.jac.T @ fit.jac) * sigma * sigma
    except np.linalg.LinAlgError:
        return math.nan, math.nan, n
    err = math.sqrt(cov[1, 1]) if cov[1, 1] > 0 else math.nan
    return float(fit.x[1]), err, n
