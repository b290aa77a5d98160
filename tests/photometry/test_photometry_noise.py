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
