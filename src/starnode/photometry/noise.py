"""The noise the CCD equation does not explain, measured on each frame's own stars.

Why: the CCD equation (photon noise, sky, read noise) plus scintillation is the whole error
budget only for a well-sampled, flat-fielded frame. Raw Seestar subs are neither: the green
plane's PSF is ~1.4 px (undersampled), the pixels respond unevenly within and between them (no
flat), and alt-az subs smear. Each of these makes a star's aperture flux depend on where it falls
on the pixel grid, which changes from sub to sub: errors computed from the CCD equation alone
were 1.4-1.6x too small on such subs (issue 11).

Two per-frame estimates, the larger one is carried into every star's error (hence the ensemble
weights, the zero point and the target):

- **aperture correction spread** (field and comparison stars): the magnitude difference between
  the measuring aperture and a larger one is the same for every star of a frame when flux does
  not depend on sub-pixel position; its scatter beyond what the CCD equation predicts for that
  difference is the position-dependent part;
- **ensemble excess** (comparison stars): the extra variance that makes the comps' residuals
  about the zero point agree with their errors (a DerSimonian-Laird-type estimate), computed in
  :mod:`.ensemble` and applied there.

:func:`pair_chi2` is the test of the result: for two consecutive subs, the per-star differences
(their mean removed) against the reported errors; honest errors give chi2/dof ~ 1, and
:func:`honest_bin_chi2` says how far from 1 a bin of given stars may read by chance alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["aperture_excess", "excess_variance", "honest_bin_chi2", "pair_chi2", "pair_z2",
           "pair_z2_by_snr", "snr_bins", "star_snr"]

#: fewest stars for a spread (fewer: no estimate, 0)
MIN_STARS = 5


def _robust_var(x: np.ndarray) -> float:
    med = float(np.median(x))
    return float((1.4826 * np.median(np.abs(x - med))) ** 2)


def aperture_excess(delta: np.ndarray, delta_err: np.ndarray, snr: np.ndarray,
                    min_snr: float = 30.0) -> tuple[float, int]:
    """Excess rms (mag) of a frame from the spread of its stars' aperture corrections.

    Parameters
    ----------
    delta : numpy.ndarray
        m(aperture) - m(larger aperture) per star.
    delta_err : numpy.ndarray
        The CCD-equation error of that difference.
    snr : numpy.ndarray
        Each star's SNR in the measuring aperture; only stars above ``min_snr`` count.
    min_snr : float
        Bright stars only: their spread is not dominated by photon noise.

    Returns
    -------
    (float, int)
        The excess rms in mag (0 when the spread is explained) and the stars used.
    """
    ok = np.isfinite(delta) & np.isfinite(delta_err) & np.isfinite(snr) & (snr >= min_snr)
    n = int(ok.sum())
    if n < MIN_STARS:
        return 0.0, n
    extra = _robust_var(delta[ok]) - float(np.median(delta_err[ok] ** 2))
    return (math.sqrt(extra) if extra > 0 else 0.0), n


def excess_variance(resid: np.ndarray, var: np.ndarray) -> float:
    """The variance to add to every ``var`` so that the residuals' chi2/dof is 1.

    Solves sum(r^2 / (var + s2)) = n - 1 for s2 >= 0 (bisection; 0 when already <= n - 1).

    Parameters
    ----------
    resid : numpy.ndarray
        Residuals about a weighted mean.
    var : numpy.ndarray
        Their variances.

    Returns
    -------
    float
        s2 (mag^2).

    Examples
    --------
    Four comparison stars 0.1 mag either side of the mean, each with an error of 0.05 mag:
    chi2/dof is 16/3, and s2 = 4 x 0.1^2 / 3 - 0.05^2 brings it to 1.

    >>> s2 = excess_variance(np.array([0.1, -0.1, 0.1, -0.1]), np.full(4, 0.05**2))
    >>> round(s2, 6), round(4 * 0.1**2 / 3 - 0.05**2, 6)
    (0.010833, 0.010833)

    Residuals their errors explain need nothing added:

    >>> excess_variance(np.array([0.01, -0.01, 0.01]), np.full(3, 0.02**2))
    0.0
    """
    n = len(resid)
    if n < 3:
        return 0.0
    target = n - 1

    def chi2(s2: float) -> float:
        return float(np.sum(resid**2 / (var + s2)))

    if chi2(0.0) <= target:
        return 0.0
    # chi2(s2) <= sum(r^2) / s2, so the root is at most sum(r^2) / (n - 1) (max(r^2) is not
    # enough: equal residuals need n / (n - 1) of it)
    lo, hi = 0.0, float(np.sum(resid**2)) / target
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if chi2(mid) > target:
            lo = mid
        else:
            hi = mid
    return hi


def pair_chi2(m1: np.ndarray, e1: np.ndarray, m2: np.ndarray, e2: np.ndarray
              ) -> tuple[float, int]:
    """Per-star chi2/dof between two subs of the same stars.

    Parameters
    ----------
    m1, e1, m2, e2 : numpy.ndarray
        Instrumental magnitudes and errors of the same stars in two subs (non-finite: skipped).

    Returns
    -------
    (float, int)
        chi2 / (n - 1) of the differences about their weighted mean (the zero-point change),
        and n.
    """
    d = m2 - m1
    v = e1**2 + e2**2
    ok = np.isfinite(d) & np.isfinite(v) & (v > 0)
    d, v = d[ok], v[ok]
    n = int(ok.sum())
    if n < 2:
        return math.nan, n
    w = 1.0 / v
    zp = float(np.sum(w * d) / np.sum(w))
    return float(np.sum((d - zp) ** 2 * w) / (n - 1)), n


def pair_z2(m1: np.ndarray, e1: np.ndarray, m2: np.ndarray, e2: np.ndarray,
            ok: np.ndarray) -> np.ndarray:
    """Each star's squared normalised difference between two subs, about the zero-point change.

    Parameters
    ----------
    m1, e1, m2, e2 : numpy.ndarray
        Instrumental magnitudes and errors of the same stars in two subs (the stars along the
        last axis; magnitudes may carry leading axes, e.g. simulated sets, each with its own
        zero-point change).
    ok : numpy.ndarray of bool
        The stars that define the zero-point change (finite, unsaturated, ...).

    Returns
    -------
    numpy.ndarray
        z^2 per star (the magnitudes' shape), z = (d - <d>) / sqrt(v - 1 / W): d = m2 - m1,
        v = e1^2 + e2^2, <d> the weighted mean of d over the ``ok`` stars and W the sum of
        their weights 1 / v. The
        zero point is fitted on the stars themselves and takes most of its dof from the
        heaviest (brightest) ones: d - <d> has variance v - 1 / W, not v (the leverage of a
        weighted mean), so without it a bin of bright stars reads low (a star holding 10 % of
        the weight: 0.9 with honest errors). Honest errors give z^2 a mean of 1 in every bin.
        Only the ``ok`` entries are meaningful.

    Examples
    --------
    >>> import numpy as np
    >>> z2 = pair_z2(np.array([10.0, 11.0, 12.0]), np.full(3, 0.1),
    ...              np.array([10.5, 11.5, 12.7]), np.full(3, 0.1), np.ones(3, bool))
    >>> [round(float(x), 2) for x in z2]
    [0.33, 0.33, 1.33]
    """
    d, v = m2 - m1, e1**2 + e2**2
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = float(np.sum((1 / v)[ok]))
        d = d - np.sum((d / v)[..., ok], axis=-1, keepdims=True) / weight
        return np.asarray(d**2 / (v - 1.0 / weight))


def pair_z2_by_snr(m1: np.ndarray, e1: np.ndarray, m2: np.ndarray, e2: np.ndarray,
                   snr: np.ndarray, ok: np.ndarray, bins: Iterable[tuple[float, float]],
                   keep: np.ndarray | None = None) -> dict[tuple[float, float], list[float]]:
    """Each star's squared normalised difference between two subs, per S/N bin.

    Parameters
    ----------
    m1, e1, m2, e2 : numpy.ndarray
        Instrumental magnitudes and errors of the same stars in two subs.
    snr : numpy.ndarray
        Each star's S/N over the subs (:func:`star_snr`; not the fainter sub's: that one moves
        the stars whose two measures disagree into the lower bin).
    ok : numpy.ndarray of bool
        The stars to use (finite magnitudes, unsaturated, ...).
    bins : iterable of (float, float)
        S/N bins ``[lo, hi)``.
    keep : numpy.ndarray of bool, optional
        The stars whose z^2 is returned (default: all the ``ok`` ones); the zero-point change
        is always taken over all the ``ok`` stars.

    Returns
    -------
    dict
        ``(lo, hi) -> [z^2, ...]``: z as :func:`pair_z2` gives it, d = m2 - m1 about its
        weighted mean over the ``ok`` stars (the zero-point change). The mean of z^2 over a
        bin is its chi2/dof; pooled over pairs, lists concatenate.
    """
    z2 = pair_z2(m1, e1, m2, e2, ok)
    sel = ok if keep is None else ok & keep
    return {b: list(z2[idx]) for b, idx in snr_bins(snr, sel, bins).items()}


def star_snr(snr_per_sub: Sequence[np.ndarray]) -> np.ndarray:
    """Each star's S/N over the subs: the mean of its finite per-sub S/N values.

    This is the S/N to put a star's differences between subs in a bin by, and to cut them at.
    The fainter sub's S/N of a pair, ``min(s1, s2) = (s1 + s2) / 2 - |s1 - s2| / 2``, falls
    with the very difference under test: a star whose two measures disagree by chance is
    moved down a bin (and out, at a lower cut), so the bin below an edge gains large
    differences and the bin above loses them, with honest errors. The mean over the subs is,
    for equal errors, independent of every difference between them (the sum and the
    difference of two independent normal values are independent), so the bins select on
    brightness alone.

    Parameters
    ----------
    snr_per_sub : sequence of numpy.ndarray
        Each sub's S/N of the same stars (same order); non-finite values are left out.

    Returns
    -------
    numpy.ndarray
        Per star; nan for a star with no finite S/N.

    Examples
    --------
    A star measured at S/N 21 and 17 (subs that disagree by chance) is a S/N 19 star, not a S/N 17
    one:

    >>> import numpy as np
    >>> star_snr([np.array([21.0, 40.0]), np.array([17.0, np.nan])]).tolist()
    [19.0, 40.0]
    """
    s = np.array([np.asarray(v, dtype=float) for v in snr_per_sub])
    finite = np.isfinite(s)
    n = finite.sum(axis=0)
    total = np.where(finite, s, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / n, np.nan)


def snr_bins(snr: np.ndarray, sel: np.ndarray, bins: Iterable[tuple[float, float]]
             ) -> dict[tuple[float, float], np.ndarray]:
    """The indices of the selected stars in each S/N bin ``[lo, hi)``.

    Parameters
    ----------
    snr : numpy.ndarray
        Each star's S/N.
    sel : numpy.ndarray of bool
        The stars to place.
    bins : iterable of (float, float)
        S/N bins.

    Returns
    -------
    dict
        ``(lo, hi) -> indices``, in the stars' order.

    Examples
    --------
    >>> import numpy as np
    >>> out = snr_bins(np.array([5.0, 30.0, 80.0, 25.0]), np.array([True, True, True, False]),
    ...                [(0, 20), (20, 50)])
    >>> {b: i.tolist() for b, i in out.items()}
    {(0, 20): [0], (20, 50): [1]}
    """
    return {(lo, hi): np.flatnonzero(sel & (snr >= lo) & (snr < hi)) for lo, hi in bins}


def honest_bin_chi2(errors: Sequence[np.ndarray], ok: Sequence[np.ndarray], snr: np.ndarray,
                    bins: Iterable[tuple[float, float]], draws: int = 2000,
                    seed: int = 0) -> dict[tuple[float, float], np.ndarray]:
    """What each S/N bin's chi2/dof of consecutive subs reads when the errors are honest.

    The same stars, errors, selections and bins as a measured set, with each sub's magnitudes
    drawn from normal distributions of exactly the reported errors; the statistic is made as
    :func:`pair_z2` and :func:`snr_bins` make it (the zero-point change removed per pair, the
    star-pairs of a bin pooled). The spread of the draws is how far a bin of *these* stars may
    stray from 1 by chance: a bin of a few dozen stars is not a measurement to +/- 0.1.

    Parameters
    ----------
    errors : sequence of numpy.ndarray
        Per sub, each star's reported magnitude error (the same stars in every sub).
    ok : sequence of numpy.ndarray of bool
        Per consecutive pair (``len(errors) - 1`` of them), the star-pairs counted (finite,
        unsaturated, ...), as for :func:`pair_z2`.
    snr : numpy.ndarray
        Each star's S/N over the subs (:func:`star_snr`).
    bins : iterable of (float, float)
        S/N bins ``[lo, hi)``.
    draws : int
        Simulated sets.
    seed : int
        Of the random generator (the answer is reproducible).

    Returns
    -------
    dict
        ``(lo, hi) -> draws`` chi2/dof values (empty for a bin without star-pairs).

    Examples
    --------
    >>> import numpy as np
    >>> err = [np.full(40, 0.05)] * 3
    >>> sims = honest_bin_chi2(err, [np.ones(40, bool)] * 2, np.full(40, 10.0), [(0, 20)],
    ...                        draws=500)
    >>> 0.9 < float(np.median(sims[(0, 20)])) < 1.1
    True
    """
    errs = [np.asarray(e, float) for e in errors]
    if len(ok) != len(errs) - 1:
        raise ValueError(f"{len(errs)} subs make {len(errs) - 1} pairs, got {len(ok)} masks")
    bins = list(bins)
    rng = np.random.default_rng(seed)
    mags = [rng.normal(0.0, 1.0, (draws, len(e))) * np.where(np.isfinite(e), e, 0.0)
            for e in errs]
    sums = {b: np.zeros(draws) for b in bins}
    counts = dict.fromkeys(bins, 0)
    for k, sel in enumerate(ok):
        sel = np.asarray(sel, bool)
        z2 = pair_z2(mags[k], errs[k], mags[k + 1], errs[k + 1], sel)  # (draws, stars)
        for b, idx in snr_bins(snr, sel, bins).items():
            sums[b] += z2[:, idx].sum(axis=1)
            counts[b] += len(idx)
    return {b: sums[b] / counts[b] if counts[b] else np.empty(0) for b in bins}
