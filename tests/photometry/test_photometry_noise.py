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
