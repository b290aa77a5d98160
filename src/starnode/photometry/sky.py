"""Sky level per star from its annulus, unbiased where the firmware clipped pixels at 0.

Why it is not astropy's sigma-clipped mean: the Seestar's dark-subtracted subs are clipped at 0,
so the lower tail of a faint sky is missing and a plain or sigma-clipped mean is biased high by
0.05-0.1 sigma, which is a systematic error in every faint star. :func:`robust_sky` models the
clipped tail instead (censored normal). The method and its tests: docs/photometry.md, Method 5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from ..frame.load import Frame

__all__ = ["SkyEstimate", "annulus_pixels", "local_skies", "local_sky", "robust_sky"]

_SQRT_2PI = math.sqrt(2.0 * math.pi)

#: stars whose annuli :func:`local_skies` makes at once
_CHUNK = 64


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

    Parameters
    ----------
    values : numpy.ndarray
        Annulus pixel values (any shape; non-finite ones are ignored).
    clip_level : float or None
        Level the data were clipped at (0 for the Seestar), None for unclipped data.
    k : float
        Upper-tail rejection in sigma.
    max_iter : int
        Rejection iterations at most.

    Returns
    -------
    SkyEstimate

    Raises
    ------
    ValueError
        Fewer than 8 usable pixels.
    """
    v = _sorted_values(values)
    n = v.size
    if n < 8:
        raise ValueError(f"too few sky pixels ({n})")
    # the same arithmetic as ever; numpy's methods called directly (a frame has ~60 annuli)
    n0 = int(v.searchsorted(clip_level, side="right")) if clip_level is not None else 0
    m = n
    med = sig = 0.0
    for _ in range(max_iter):
        q16, med, q84 = _sorted_quantiles(v, m, _Q3)
        p0 = n0 / m
        sig = (q84 - q16) / 2.0 if p0 < 0.15 else (q84 - med)
        if sig <= 0:
            sig = float(np.std(v[:m])) or 1.0
        new_m = int(v[:m].searchsorted(med + k * sig, side="right"))
        if new_m == m or new_m < 8:
            break
        m = new_m
    keep = v[:m]
    n0 = min(n0, m)
    p0 = n0 / m
    q16, q25, med, q84 = _sorted_quantiles(v, m, _Q4)
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
    total = float(np.add.reduce(keep[n0:]))  # ``keep[n0:].sum()``
    tail_low = float(clip_level) if clip_level is not None else 0.0
    if n0:
        a = (tail_low - med) / sig_lo  # tail_low is the clip level here
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


_Q3 = (0.15865525, 0.5, 0.84134475)
_Q4 = (0.15865525, 0.25, 0.5, 0.84134475)


def _sorted_values(values: np.ndarray) -> np.ndarray:
    """The finite values, as float64, sorted (an array of their own). Integers (the raw green
    sites) are all finite and sort in the same order as their float64 values: sorted first."""
    a = np.asarray(values)
    if a.dtype.kind in "ui":
        return np.sort(a, axis=None).astype(np.float64)
    v = np.array(values, dtype=np.float64).ravel()
    finite = np.isfinite(v)
    if not finite.all():
        v = v[finite]
    v.sort()
    return v


def _sorted_quantiles(s: np.ndarray, m: int, qs: tuple[float, ...]) -> list[float]:
    """Quantiles (linear interpolation, numpy's default) of the sorted ``s[:m]``."""
    out = []
    last = m - 1
    for q in qs:
        pos = q * last
        i = int(pos)
        f = pos - i
        if i >= last:
            out.append(float(s[i]))
        else:
            lo, hi = s[i:i + 2].tolist()
            out.append(lo + f * (hi - lo))
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


def annulus_pixels(shape: tuple[int, int], x: float, y: float, r_in: float, r_out: float,
                    others: np.ndarray | None, mask_r: float) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the plane pixels whose centres lie in the annulus, neighbours' discs
    masked.

    Parameters
    ----------
    shape : (int, int)
        Plane shape.
    x, y : float
        Star position (plane px).
    r_in, r_out : float
        Annulus radii.
    others : numpy.ndarray or None
        (m, 2) positions whose discs of radius ``mask_r`` are masked.
    mask_r : float
        Mask radius.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Rows and columns.
    """
    box = _annulus_box(shape, x, y, r_in, r_out, others, mask_r)
    if box is None:
        return np.empty(0, dtype=int), np.empty(0, dtype=int)
    rows, cols = np.nonzero(box[2])
    return rows + box[0].start, cols + box[1].start


def _annulus_box(shape: tuple[int, int], x: float, y: float, r_in: float, r_out: float,
                 others: np.ndarray | None, mask_r: float
                 ) -> tuple[slice, slice, np.ndarray] | None:
    """:func:`annulus_pixels` as (row slice, column slice, boolean mask of the box); None when
    the box is empty."""
    ny, nx = shape
    x0, x1 = max(math.floor(x - r_out), 0), min(math.ceil(x + r_out) + 1, nx)
    y0, y1 = max(math.floor(y - r_out), 0), min(math.ceil(y + r_out) + 1, ny)
    if x1 <= x0 or y1 <= y0:
        return None
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
    return slice(y0, y1), slice(x0, x1), w


def _sky_at(frame: Frame, box: tuple[slice, slice, np.ndarray] | None) -> SkyEstimate:
    """Sky per measured-plane pixel from the plane pixels of an :func:`_annulus_box`. For a raw
    sub the estimate is made on the raw green sites themselves (each one was clipped at 0 by the
    firmware, not their sum) and scaled to the plane (sum of two sites)."""
    def values(plane: np.ndarray) -> np.ndarray:
        return plane[box[0], box[1]][box[2]] if box is not None else plane[:0, :0].ravel()

    if frame.green is not None:
        return _sky_of(frame, np.concatenate([values(frame.green[0]), values(frame.green[1])]))
    return _sky_of(frame, values(frame.plane))


def _sky_of(frame: Frame, vals: np.ndarray) -> SkyEstimate:
    """:func:`robust_sky` of an annulus' values: the plane's, or a sub's two green sites'
    (then scaled to the plane)."""
    if frame.green is not None:
        s = robust_sky(vals, clip_level=_clip_level(vals))
        return SkyEstimate(2.0 * s.mean, math.sqrt(2.0) * s.sigma, s.n // 2,
                           s.clipped_fraction, s.clipped_value)
    return robust_sky(vals, clip_level=_clip_level(vals))


def _clip_level(vals: np.ndarray) -> float | None:
    """0 when the data look clipped there (no negative value), else None (a calibrated float
    frame with negative noise is not censored)."""
    if vals.dtype.kind == "u":  # unsigned (the raw green sites): never negative
        return 0.0 if vals.size else None
    return 0.0 if vals.size and float(np.min(vals)) >= 0.0 else None


def local_sky(frame: Frame, x: float, y: float, r_in: float, r_out: float,
               others: np.ndarray | None, mask_r: float) -> SkyEstimate:
    """Sky per measured-plane pixel of the star at (x, y) from its annulus.

    Parameters
    ----------
    frame : Frame
    x, y, r_in, r_out, others, mask_r
        As for :func:`annulus_pixels`; without 8 pixels the neighbours are not masked.

    Returns
    -------
    SkyEstimate

    Raises
    ------
    ValueError
        Too few pixels even so.
    """
    box = _annulus_box(frame.plane.shape, x, y, r_in, r_out, others, mask_r)
    if box is None or np.count_nonzero(box[2]) < 8:
        box = _annulus_box(frame.plane.shape, x, y, r_in, r_out, None, mask_r)
    return _sky_at(frame, box)


def _mask_neighbours(w: np.ndarray, xx: np.ndarray, yy: np.ndarray, pos: np.ndarray,
                     o: np.ndarray, reach: float, mask_r: float) -> None:
    """Clear in ``w`` (stars x rows x cols, the pixels at ``xx``, ``yy``) the discs of radius
    ``mask_r`` around the positions ``o`` within ``reach`` (per axis) of each star of ``pos``,
    the star itself excepted."""
    dx = np.abs(o[None, :, 0] - pos[:, 0, None])
    dy = np.abs(o[None, :, 1] - pos[:, 1, None])
    near = (dx < reach) & (dy < reach) & ~((dx < 1e-6) & (dy < 1e-6))  # not the star itself
    star, other = np.nonzero(near)
    if star.size:
        masked = ((xx[star] - o[other, 0, None, None]) ** 2
                  + (yy[star] - o[other, 1, None, None]) ** 2 > mask_r * mask_r)
        # the pairs come star by star (np.nonzero's order): AND each star's masks
        each, first = np.unique(star, return_index=True)
        w[each] &= np.logical_and.reduceat(masked, first, axis=0)


def local_skies(frame: Frame, pos: np.ndarray, r_in: float, r_out: float,
                others: np.ndarray | None, mask_r: float) -> list[SkyEstimate | None]:
    """:func:`local_sky` of every star at ``pos`` (None where it raises ``ValueError``).

    The annuli and their neighbours' masks are made for all stars at once (each pixel's
    distances computed as :func:`annulus_pixels` computes them); each star's sky is then
    estimated from the same pixels as by :func:`local_sky`.

    Parameters
    ----------
    frame : Frame
    pos : numpy.ndarray
        (n, 2) star positions (plane px).
    r_in, r_out, others, mask_r
        As for :func:`local_sky`.

    Returns
    -------
    list
        One :class:`SkyEstimate` or None per star (None too for a non-finite position).
    """
    pos = np.asarray(pos, float).reshape(-1, 2)
    finite = np.isfinite(pos).all(axis=1)
    if not finite.all():
        part = local_skies(frame, pos[finite], r_in, r_out, others, mask_r)
        out_all: list[SkyEstimate | None] = [None] * len(pos)
        for k, s in zip(np.flatnonzero(finite).tolist(), part, strict=True):
            out_all[k] = s
        return out_all
    n = len(pos)
    if n == 0:
        return []
    if n > _CHUNK:  # bounded temporary arrays (stars x neighbours x box) on crowded fields
        return [s for k in range(0, n, _CHUNK)
                for s in local_skies(frame, pos[k:k + _CHUNK], r_in, r_out, others, mask_r)]
    ny, nx = frame.plane.shape
    x, y = pos[:, 0], pos[:, 1]
    x0 = np.maximum(np.floor(x - r_out), 0).astype(int)
    x1 = np.minimum(np.ceil(x + r_out) + 1, nx).astype(int)
    y0 = np.maximum(np.floor(y - r_out), 0).astype(int)
    y1 = np.minimum(np.ceil(y + r_out) + 1, ny).astype(int)
    width, height = max(int((x1 - x0).max()), 1), max(int((y1 - y0).max()), 1)
    cols = x0[:, None] + np.arange(width)  # (n, width)
    rows = y0[:, None] + np.arange(height)
    xx, yy = cols.astype(float)[:, None, :], rows.astype(float)[:, :, None]
    d2 = (xx - x[:, None, None]) ** 2 + (yy - y[:, None, None]) ** 2
    ring = ((d2 >= r_in * r_in) & (d2 <= r_out * r_out)
            & (cols < x1[:, None])[:, None, :] & (rows < y1[:, None])[:, :, None])
    w = ring.copy()
    if others is not None and len(others):
        _mask_neighbours(w, xx, yy, pos, np.asarray(others, float).reshape(-1, 2),
                         r_out + mask_r, mask_r)
    # fewer than 8 pixels left: the neighbours are not masked
    few = w.reshape(n, -1).sum(axis=1) < 8
    w[few] = ring[few]
    rr = np.minimum(rows, ny - 1)[:, :, None]
    cc = np.minimum(cols, nx - 1)[:, None, :]
    planes = frame.green if frame.green is not None else (frame.plane,)
    # each star's annulus values, plane by plane: one selection of all stars' (in C order,
    # star after star: the values of ``cut[i][w[i]]``) split at the stars' counts
    bounds = np.cumsum(w.reshape(n, -1).sum(axis=1))[:-1]
    parts = [np.split(p[rr, cc][w], bounds) for p in planes]
    out: list[SkyEstimate | None] = []
    for i in range(n):
        vals = (np.concatenate([part[i] for part in parts]) if len(parts) > 1
                else parts[0][i])
        try:
            out.append(_sky_of(frame, vals))
        except ValueError:
            out.append(None)
    return out
