"""The zero point across the field: constant, or radial when the comps show vignetting.

Why: raw Seestar subs are not flat-fielded, so a star in a corner is measured fainter than the
same star in the centre (vignetting, ~10-20 % in the corners). An ensemble of comps spread over
such a field gets a zero point that holds nowhere in particular, and the target, wherever it
is, inherits the difference. A radial term zp(rho) = a + b rho^2 (rho: distance from the plane
centre over the half-diagonal) models it with one parameter; it is kept only when the comps
are enough and spread enough to constrain it and an F-test says it is significant (p < 0.01).
Method: docs/photometry.md, Method 9.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import f as f_dist

__all__ = ["RadialFit", "fit_radial", "rho2"]

#: fewest comps for a radial term
MIN_COMPS = 6
#: the comps must span at least this much of rho^2 (0 = centre, 1 = corner)
MIN_SPREAD = 0.25
#: significance needed to keep the radial term
P_MAX = 0.01


def rho2(x: np.ndarray, y: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Squared distance from the plane's centre over its half-diagonal squared.

    Parameters
    ----------
    x, y : numpy.ndarray
        Plane positions (0-based).
    shape : (int, int)
        The plane's (rows, columns).

    Returns
    -------
    numpy.ndarray
        0 at the centre, 1 in the corners.
    """
    cy, cx = (shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0
    return np.asarray(((x - cx) ** 2 + (y - cy) ** 2) / (cx * cx + cy * cy))


@dataclass(frozen=True)
class RadialFit:
    """zp(rho^2) = a + b rho^2 with the covariance of (a, b), or why not."""

    a: float
    b: float
    cov: np.ndarray  # 2 x 2, chi2-inflated
    p_value: float
    n: int
    keep: bool
    reason: str | None

    def zp_at(self, r2: float) -> tuple[float, float]:
        """Zero point and its error at squared radius ``r2``."""
        g = np.array([1.0, r2])
        return self.a + self.b * r2, math.sqrt(max(float(g @ self.cov @ g), 0.0))


def fit_radial(zp_i: np.ndarray, var: np.ndarray, r2: np.ndarray, force: bool = False
               ) -> RadialFit | None:
    """Weighted least squares of a radial zero point, tested against a constant one.

    Parameters
    ----------
    zp_i : numpy.ndarray
        Each comp's zero point (catalogue - instrumental).
    var : numpy.ndarray
        Their variances.
    r2 : numpy.ndarray
        Their :func:`rho2`.
    force : bool
        Keep the radial term whatever the F-test says (``photometry.illumination: radial``),
        when it can be fitted at all.

    Returns
    -------
    RadialFit or None
        None when the comps cannot constrain it (too few, or not spread).
    """
    n = len(zp_i)
    if n < MIN_COMPS:
        return None
    if float(np.ptp(r2)) < MIN_SPREAD:
        return None
    w = 1.0 / var
    a_mat = np.column_stack([np.ones(n), r2])
    aw = a_mat * w[:, None]
    cov0 = np.linalg.inv(a_mat.T @ aw)
    coef = cov0 @ (aw.T @ zp_i)
    chi2_r = float(np.sum(w * (zp_i - a_mat @ coef) ** 2))
    c0 = float(np.sum(w * zp_i) / np.sum(w))
    chi2_c = float(np.sum(w * (zp_i - c0) ** 2))
    dof = n - 2
    red = chi2_r / dof
    f_stat = (chi2_c - chi2_r) / max(red, 1e-12)
    p = float(f_dist.sf(f_stat, 1, dof))
    keep = force or p < P_MAX
    return RadialFit(float(coef[0]), float(coef[1]), cov0 * max(red, 1.0), p, n, keep,
                     None if keep else f"radial term not significant (p = {p:.2g})")
