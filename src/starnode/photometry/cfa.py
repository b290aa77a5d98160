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

where T1, T2 are the PSF's transfer at the CFA's frequencies (pi, 0) and (pi, pi). Each frame
measures T1 from its bright stars' asymmetry against their centroids' phase; T2 = ``KAPPA`` x
T1^2 (measured on synthetic subs with a sharp core, and on the real pair: see
bench/errors_real.py); every recentred star's flux is divided by (1 + T2 cx cy). What the phase
does not explain (the asymmetry's residual beyond its noise) is the sampling error that stays,
carried in every star's error; stars that were not recentred (their phase unknown) are not
corrected and carry the full sampling error, T2 / 2 (uniform phases).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["KAPPA", "KAPPA_ERR", "CfaModel", "fit_cfa", "green_asymmetry", "native_centroids",
           "phases"]

#: T2 / T1^2 (the green sum's modulation over the square of the asymmetry's), see the module:
#: 1 for a Gaussian PSF; 1.75-2.4 for noise-free synthetic subs with a sharp core (core share
#: 0.3-0.5, core FWHM 1.0-1.4 native px, green FWHM 1.4-1.7 px); 1-2 minimises the scatter
#: between the two real older-firmware subs (bench/errors_real.py)
KAPPA = 2.0

#: its uncertainty, carried in every corrected star's error
KAPPA_ERR = 0.5

#: 2.5 / ln 10: relative flux error -> mag
_MAG = 2.5 / math.log(10.0)

#: fewest bright stars for a frame's model
MIN_STARS = 5

#: largest centroid phase error accepted, in FWHM / SNR (native px): a centre-of-mass
#: centroid's error is ~0.4-0.6 FWHM / SNR (0.45-0.57 measured on the synthetic sharp-core
#: subs); asymmetry residuals beyond this (1.5 on the real older-firmware pair) come from
#: irregular star shapes, not from the phase, and are not turned into flux error
MAX_CENTROID_K = 1.0

#: only stars this bright measure T1
MIN_SNR = 20.0


def green_asymmetry(green: tuple[np.ndarray, np.ndarray], pos: np.ndarray, radius: float,
                    sky: np.ndarray) -> np.ndarray:
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

    Returns
    -------
    numpy.ndarray
        The asymmetry (NaN where the sum is not positive).
    """
    from photutils.aperture import CircularAperture, aperture_photometry

    pos = np.asarray(pos, float).reshape(-1, 2)
    if len(pos) == 0:
        return np.zeros(0)
    ap = CircularAperture(pos, radius)
    area = math.pi * radius * radius
    g1, g2 = (np.asarray(aperture_photometry(site, ap, method="exact")["aperture_sum"], float)
              - 0.5 * area * np.asarray(sky, float) for site in green)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = (g1 - g2) / (g1 + g2)
    return np.where((g1 + g2) > 0, a, np.nan)


def native_centroids(raw: np.ndarray, pos: np.ndarray, half: int = 3, iters: int = 3
                     ) -> np.ndarray:
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

    Returns
    -------
    numpy.ndarray
        (n, 2) plane positions (the start where a stamp leaves the mosaic or holds no light).
    """
    pos = np.asarray(pos, float).reshape(-1, 2)
    data = np.asarray(raw)  # stamps are converted one at a time
    ny, nx = data.shape
    sky = np.array([[float(np.median(data[r::8, c::8])) for c in (0, 1)] for r in (0, 1)])
    out = pos.copy()
    for k, (x, y) in enumerate(pos):
        bx, by = 2.0 * x + 0.5, 2.0 * y + 0.5
        for _ in range(iters):
            ix, iy = round(bx), round(by)
            if not (half <= ix < nx - half and half <= iy < ny - half):
                break
            rows = np.arange(iy - half, iy + half + 1)[:, None]
            cols = np.arange(ix - half, ix + half + 1)[None, :]
            d = (data[iy - half:iy + half + 1, ix - half:ix + half + 1].astype(float)
                 - sky[rows % 2, cols % 2])
            w = np.zeros_like(d)
            for r in (0, 1):
                for c in (0, 1):
                    m = ((rows % 2) == r) & ((cols % 2) == c)
                    tot = float(d[m].sum())
                    if tot > 0:
                        w[m] = d[m] / tot
            w = np.clip(w, 0.0, None) * (((rows - by) ** 2 + (cols - bx) ** 2) <= half * half)
            tw = float(w.sum())
            if not tw > 0:
                break
            bx, by = float((w * cols).sum() / tw), float((w * rows).sum() / tw)
        else:
            out[k] = ((bx - 0.5) / 2.0, (by - 0.5) / 2.0)
    return out


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
    sampling_mag: float  # error left in a corrected star (mag)
    uncorrected_mag: float  # error of a star whose phase is unknown (mag)
    n: int  # stars it was fitted on
    resid_var: float = 0.0  # the asymmetry's variance about the fit beyond its noise
    #: phase error of a centroid in native px = ``centroid_k`` x FWHM (native px) / SNR,
    #: measured on the bright stars' asymmetry residuals (0: not measured)
    centroid_k: float = 0.0
    fwhm_native: float = 0.0

    def left_mag(self, snr: np.ndarray) -> np.ndarray:
        """Per star, the sampling error left after the correction (mag): the uncertainty of
        KAPPA and the phase error of its centroid (which grows as 1 / SNR), never more than
        the uncorrected error."""
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = self.centroid_k * self.fwhm_native / np.asarray(snr, float)
            phase = _MAG * KAPPA * self.t1 * self.t1 * math.pi * delta / math.sqrt(2.0)
        out = np.hypot(self.sampling_mag, np.nan_to_num(phase, nan=0.0, posinf=0.0))
        return np.minimum(out, max(self.uncorrected_mag, self.sampling_mag))

    def factor(self, pos: np.ndarray, site: tuple[int, int] = (0, 0)) -> np.ndarray:
        """What each green sum is divided by: 1 + KAPPA T1^2 cx cy."""
        cx, cy = phases(pos, site)
        return np.asarray(1.0 + KAPPA * self.t1 * self.t1 * cx * cy)


def fit_cfa(asym: np.ndarray, asym_err: np.ndarray, pos: np.ndarray,
            site: tuple[int, int] = (0, 0), snr: np.ndarray | None = None,
            fwhm_native: float = 0.0) -> CfaModel | None:
    """Fit T1 on the bright stars' asymmetry against their phases.

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
    # phases uniform: the rms of T2 cx cy is T2 / 2, all of it for an uncorrected star; a
    # corrected one keeps the error of KAPPA. The asymmetry's scatter about the fit (``resid``,
    # kept in the model) is not added: on the real pair the scatter left after the correction
    # is explained without it (docs/photometry.md)
    t2 = KAPPA * t1 * t1
    left = _MAG * KAPPA_ERR * t1 * t1 / 2.0
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
    return CfaModel(t1=t1, sampling_mag=min(left, _MAG * t2 / 2.0), resid_var=resid,
                    uncorrected_mag=_MAG * t2 / 2.0, n=n, centroid_k=k,
                    fwhm_native=fwhm_native)
