"""starnode.photometry.noise.excess_variance brings chi2/dof to 1 however the residuals lie
(with equal residuals its root is above max(r^2), where the search used to stop)."""

from __future__ import annotations

import numpy as np
import pytest

from starnode.photometry.noise import excess_variance


@pytest.mark.parametrize(("resid", "err"), [
    ([0.1, -0.1, 0.1, -0.1], 0.05),          # equal residuals: the root is 4/3 of max(r^2) - e^2
    ([0.1, -0.1, 0.1], 0.001),               # three comps, tiny errors
    ([0.3, -0.02, 0.05, -0.1, 0.01], 0.01),  # one outlier
])
def test_the_excess_makes_chi2_per_dof_one(resid: list[float], err: float) -> None:
    r = np.array(resid)
    var = np.full(len(r), err**2)
    s2 = excess_variance(r, var)
    assert s2 > 0
    assert np.sum(r**2 / (var + s2)) / (len(r) - 1) == pytest.approx(1.0, rel=1e-6)


def test_pair_z2_is_one_in_every_bin_for_honest_errors_even_the_heaviest_stars() -> None:
    """A few bright stars hold most of the zero point's weight; with honest errors their
    bin's mean z^2 is still 1 (the leverage of the fitted zero point is taken out). Without
    it the bright bin reads ~0.8 here."""
    from starnode.photometry.noise import pair_z2

    rng = np.random.default_rng(5)
    e = np.array([0.01] * 4 + [0.05] * 6 + [0.15] * 20)  # 4 stars hold 86 % of the weight
    bright = e == 0.01
    z2_bright, z2_faint = [], []
    for _ in range(4000):
        m1 = rng.normal(0.0, e)
        m2 = rng.normal(0.3, e)  # a zero-point change between the subs
        z2 = pair_z2(m1, e, m2, e, np.ones(e.size, bool))
        z2_bright += list(z2[bright])
        z2_faint += list(z2[e == 0.15])
    assert 0.96 < np.mean(z2_bright) < 1.04
    assert 0.96 < np.mean(z2_faint) < 1.04


def _bins_at_an_edge(by_star: bool) -> tuple[float, float]:
    """Honest errors, stars just above the S/N 20 edge, two subs: mean z^2 below and above
    the edge, the stars placed by their S/N over both subs or by the fainter sub's."""
    from starnode.photometry.noise import pair_z2, snr_bins, star_snr

    rng = np.random.default_rng(11)
    below: list[float] = []
    above: list[float] = []
    for _ in range(300):
        true_snr = rng.uniform(19.0, 24.0, 40)
        flux = np.ones(40)
        err = flux / true_snr  # flux units; S/N noise is then 1 per measure
        f1, f2 = rng.normal(flux, err), rng.normal(flux, err)
        s1, s2 = f1 / err, f2 / err
        m1, m2 = -2.5 * np.log10(f1), -2.5 * np.log10(f2)
        e = 1.0857 * err / flux
        z2 = pair_z2(m1, e, m2, e, np.ones(40, bool))
        snr = star_snr([s1, s2]) if by_star else np.minimum(s1, s2)
        idx = snr_bins(snr, np.ones(40, bool), [(0.0, 20.0), (20.0, 50.0)])
        below += list(z2[idx[(0.0, 20.0)]])
        above += list(z2[idx[(20.0, 50.0)]])
    return float(np.mean(below)), float(np.mean(above))


def test_binning_by_the_stars_snr_keeps_honest_errors_at_one_either_side_of_an_edge() -> None:
    """Placed by the fainter sub's S/N, honest errors read high below an edge and low above it
    (pairs that disagree are moved down); placed by the star's S/N over the subs, one."""
    below, above = _bins_at_an_edge(by_star=True)
    assert 0.93 < below < 1.07 and 0.93 < above < 1.07
    below_min, above_min = _bins_at_an_edge(by_star=False)
    assert below_min > 1.25 and above_min < 0.92


def test_star_snr_leaves_out_what_was_not_measured() -> None:
    from starnode.photometry.noise import star_snr

    out = star_snr([np.array([10.0, np.nan, np.inf]), np.array([20.0, np.nan, 30.0])])
    assert out[0] == 15.0 and np.isnan(out[1]) and out[2] == 30.0
