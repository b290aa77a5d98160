"""Asterism matching: detections against reference stars, any rotation, both parities.

Triangles of each star with its nearest neighbours are described by scale-free invariants
(astroalign-style: longest side, and the two side ratios); triangles of the detections and of
the reference stars projected at the nominal plane scale that agree are turned into candidate
similarity transforms, which vote (parity, angle, shift). The best few become starting WCSs for
:func:`.match.refine`. Written here rather than taken from astroalign because the pixel scale is
known (a strong constraint astroalign cannot use) and the result must be a TAN WCS.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np
from astropy.wcs import WCS
from scipy.spatial import cKDTree

from starnode.frame.detect import Stars

from .geometry import Shape, gnomonic, in_frame, make_wcs
from .match import match
from .reference import Refs

__all__ = ["triangle_match"]


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


def triangle_match(stars: Stars, refs: Refs, ra0: float, dec0: float, plane_scale: float,
                    shape: Shape, scale_tol: float, min_matches: int,
                    search_radius: float, reasons: list[str]) -> Iterator[WCS]:
    """Blind-in-rotation/parity match of detections to references: yields unverified TAN WCSs
    (starting points for :func:`.match.refine`), best first; appends why none fitted to reasons."""
    xi, eta = gnomonic(refs.ra, refs.dec, ra0, dec0)
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


def _voted_candidates(det_xy: np.ndarray, uv: np.ndarray, n_det: int, n_ref: int,
                      scale_tol: float) -> np.ndarray:
    """Similarity transforms uv -> xy from agreeing triangles, the 40 most voted (rows: a, b,
    c, d, tx, ty); transforms that agree in parity, angle (1 deg) and shift (8 px) pile up."""
    k = 5 if n_det > 20 else min(n_det - 1, 7)
    tri_d, f_d = _triangles(det_xy[:n_det], k)
    kr = 5 if n_ref > 20 else min(n_ref - 1, 7)
    tri_r, f_r = _triangles(uv[:n_ref], kr)
    if len(tri_d) == 0 or len(tri_r) == 0:
        return np.empty((0, 6))
    scl = np.array([1.0 / (math.log1p(scale_tol) + 0.015), 1 / 0.02, 1 / 0.02])
    pairs = cKDTree(f_d * scl).sparse_distance_matrix(
        cKDTree(f_r * scl), 1.0, output_type="ndarray")
    if len(pairs) == 0:
        return np.empty((0, 6))
    pairs = np.column_stack([pairs["i"], pairs["j"]])
    cand = _similarity_candidates(uv, det_xy, pairs, tri_r, tri_d, scale_tol)
    if len(cand) == 0:
        return cand
    par = np.sign(cand[:, 0] * cand[:, 3] - cand[:, 1] * cand[:, 2])
    ang = np.degrees(np.arctan2(cand[:, 2] - par * cand[:, 1], cand[:, 0] + par * cand[:, 3]))
    keys = np.column_stack([par, np.round(ang), np.round(cand[:, 4] / 8),
                            np.round(cand[:, 5] / 8)])
    _, inv, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inv = np.asarray(inv).ravel()
    top = np.argsort(-counts)[:40]
    return cand[np.array([np.nonzero(inv == t)[0][0] for t in top])]


def _count_inliers(cand: np.ndarray, uv: np.ndarray, det_xy: np.ndarray, det_tree: cKDTree,
                   shape: Shape) -> list[tuple[int, np.ndarray]]:
    """(matched stars, transform) per candidate, each refined as an affine on its inliers."""
    found: list[tuple[int, np.ndarray]] = []
    for c in cand:
        a_m = np.array([[c[0], c[1]], [c[2], c[3]]])
        pix = uv @ a_m.T + c[4:6]
        ri, di, _ = match(np.where(in_frame(pix, shape)[:, None], pix, np.nan), det_tree, 4.0)
        if len(ri) < 3:
            continue
        src = np.column_stack([uv[ri], np.ones(len(ri))])
        sol, *_ = np.linalg.lstsq(src, det_xy[di], rcond=None)
        pix2 = uv @ sol[:2] + sol[2]
        ri2, _, _ = match(np.where(in_frame(pix2, shape)[:, None], pix2, np.nan), det_tree, 3.0)
        if len(ri2) >= len(ri):
            found.append((len(ri2), np.concatenate([sol[:2].T.ravel(), sol[2]])))
        else:
            found.append((len(ri), c))
    return found


def _distinct_wcs(found: list[tuple[int, np.ndarray]], ra0: float, dec0: float,
                  plane_scale: float, shape: Shape) -> list[WCS]:
    """Up to 4 TAN WCSs from the best transforms, near-duplicates dropped."""
    centre = np.array([(shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0])
    out: list[WCS] = []
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    for _, c in sorted(found, key=lambda f: -f[0]):
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
        # pixel -> uv -> (xi, eta): a TAN WCS at (ra0, dec0), uv = (0, 0) at pixel t
        out.append(make_wcs((ra0, dec0), (float(t[0]), float(t[1])),
                            a_inv * plane_scale / 3600.0, shape))
        if len(out) >= 4:
            break
    return out


def _triangle_match_set(stars: Stars, uv_all: np.ndarray, ra0: float, dec0: float,
                        plane_scale: float, shape: Shape, scale_tol: float,
                        min_matches: int, search_radius: float) -> tuple[list[WCS], str]:
    field_area = float(shape[0] * shape[1])
    search_px = search_radius * 3600.0 / plane_scale + 0.5 * math.hypot(*shape)
    search_area = math.pi * search_px ** 2
    n_refs = len(uv_all)
    if n_refs < min_matches:
        return [], (f"only {n_refs} reference stars within {search_radius:.2f} deg + the field "
                    f"of the header position (need {min_matches})")
    expected = n_refs / search_area * field_area
    det_xy = stars.xy
    det_tree = cKDTree(det_xy[: min(len(det_xy), 250)])
    found: list[tuple[int, np.ndarray]] = []  # (inliers, [a, b, c, d, tx, ty])
    tried: set[tuple[int, int]] = set()
    for n_opt in sorted({int(np.clip(v, 6, 45)) for v in (expected * 1.5, expected * 3.0, 25, 45)}):
        n_det = min(n_opt, len(det_xy))
        n_ref = int(min(n_refs, max(n_det * search_area / field_area * 1.2, n_det)))
        if (n_det, n_ref) in tried or n_det < 3:
            continue
        tried.add((n_det, n_ref))
        cand = _voted_candidates(det_xy, uv_all, n_det, n_ref, scale_tol)
        found.extend(_count_inliers(cand, uv_all, det_xy, det_tree, shape))
        if found and max(f[0] for f in found) >= max(min_matches, 6):
            break
    found = [f for f in found if f[0] >= 3]
    if not found:
        return [], (f"no asterism of the {len(det_xy)} detected stars matches the "
                    f"{n_refs} reference stars (any rotation, both parities)")
    return _distinct_wcs(found, ra0, dec0, plane_scale, shape), ""
