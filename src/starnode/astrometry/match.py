"""Verifying a WCS guess: match detections to reference stars, fit, re-match, sigma-clip.

Every candidate WCS (a hint, the previous frame's, the header's, an asterism match, a blind
solver's answer) goes through :func:`refine` and is accepted by :func:`accept` only when enough
stars match with a small residual: nothing is taken on trust.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from astropy.wcs import WCS
from scipy.spatial import cKDTree

from starnode.frame.detect import Stars

from .geometry import Shape, center_world, fit_tan, in_frame, is_mirrored, world_to_pix
from .reference import Refs

__all__ = ["AFFINE_MIN_STARS", "Fit", "Reject", "accept", "guided_start", "match", "refine"]

#: fewer matched stars than this: the CD matrix is fitted as a similarity (4 parameters)
AFFINE_MIN_STARS = 12


class Reject(Exception):
    """A fitted solution that contradicts a known fact (e.g. the pixel scale)."""


@dataclass
class Fit:
    """A fitted WCS and the matched (detection, reference) pairs."""

    wcs: WCS
    det_idx: np.ndarray
    ref_idx: np.ndarray
    rms: float
    n_in_field: int


def match(pix: np.ndarray, tree: cKDTree, radius: float) -> tuple[np.ndarray, np.ndarray,
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


def refine(w: WCS, stars: Stars, refs: Refs, shape: Shape,
            radii: tuple[float, ...], clip: float = 3.0) -> Fit | None:
    """Fit, re-match all detections within a few px, refit, sigma-clip."""
    det = stars.xy
    tree = cKDTree(det)
    fit: Fit | None = None
    parity = 1.0 if is_mirrored(w) else -1.0  # kept: a similarity fit of that parity
    for r in radii:
        pix = world_to_pix(w, refs.ra, refs.dec)
        inside = in_frame(pix, shape)
        pix = np.where(inside[:, None], pix, np.nan)
        ri, di, _ = match(pix, tree, r)
        if len(ri) < 3:
            return fit
        crval = center_world(w, shape)
        for _ in range(4):  # sigma clipping
            # few stars: a similarity; enough: a general linear fit (differential refraction
            # at low altitude compresses the field along the vertical by up to ~1e-3)
            # ... and a similarity again when the stars cover only part of the frame
            spread = min(np.ptp(det[di, 0]) / shape[1], np.ptp(det[di, 1]) / shape[0])
            general = len(ri) >= AFFINE_MIN_STARS and spread > 0.4
            w_new = fit_tan(det[di, 0], det[di, 1], refs.ra[ri], refs.dec[ri], shape, crval,
                             parity=None if general else parity, guess=w)
            res = world_to_pix(w_new, refs.ra[ri], refs.dec[ri]) - det[di]
            dist = np.hypot(res[:, 0], res[:, 1])
            sigma = max(1.4826 * float(np.median(dist)) * 1.2, 0.15)
            bad = dist > clip * sigma
            if not bad.any() or len(ri) - bad.sum() < 3:
                break
            ri, di = ri[~bad], di[~bad]
        w = w_new
        res = world_to_pix(w, refs.ra[ri], refs.dec[ri]) - det[di]
        rms = float(np.sqrt(np.mean(np.sum(res ** 2, axis=1))))
        n_in = int(in_frame(world_to_pix(w, refs.ra, refs.dec), shape, margin=-1.0).sum())
        fit = Fit(w, di, ri, rms, n_in)
    return fit


def guided_start(guess: WCS, stars: Stars, refs: Refs, shape: Shape,
                  max_shift_px: float) -> WCS | None:
    """Correct a guess by the translation most detections agree on (a vote), so that a guess a
    few arcminutes off (a stack's on-board WCS) still lands on the right stars."""
    pix = world_to_pix(guess, refs.ra, refs.dec)
    inside = in_frame(pix, shape, margin=max_shift_px)
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
    box = np.sum([hp[i:i + h.shape[0], j:j + h.shape[1]] for i in range(3) for j in range(3)],
                 axis=0)
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


def accept(fit: Fit | None, min_matches: int, max_rms: float) -> str:
    if fit is None:
        return "fewer than 3 matched stars"
    n = len(fit.ref_idx)
    if n < min_matches:
        return f"{n} matched stars (need astrometry.min_matches={min_matches})"
    if not fit.rms < max_rms:
        return f"residual {fit.rms:.2f} px > astrometry.max_rms_px={max_rms}"
    return ""
