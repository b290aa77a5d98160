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


def _measured_bins(mags: list[np.ndarray], errs: list[np.ndarray], snr: np.ndarray,
                   bins: list[tuple[float, float]]) -> dict[tuple[float, float], float]:
    """The bench's statistic of a measured set: star-pairs' z^2 pooled per bin."""
    from starnode.photometry.noise import pair_z2_by_snr

    z2s: dict[tuple[float, float], list[float]] = {b: [] for b in bins}
    for k in range(len(mags) - 1):
        for b, z2 in pair_z2_by_snr(mags[k], errs[k], mags[k + 1], errs[k + 1], snr,
                                    np.ones(len(snr), bool), bins).items():
            z2s[b] += z2
    return {b: float(np.mean(v)) for b, v in z2s.items()}


def test_honest_bin_chi2_places_honest_sets_inside_and_small_errors_in_the_tail() -> None:
    """The bin statistic of sets measured with honest errors falls where the simulation
    says (its P(>= observed) is spread over 0-1: about a tenth below 0.1), errors reported 25 %
    too small land in the tail, and a bin of 20 stars spreads more than a bin of 200 as
    sqrt(2 / star-pairs) says."""
    from starnode.photometry.noise import honest_bin_chi2

    rng = np.random.default_rng(5)
    n_faint, n_many = 20, 200
    snr = np.r_[np.full(n_faint, 10.0), np.full(n_many, 30.0)]
    errs = [np.r_[np.full(n_faint, 0.1), np.full(n_many, 0.03)] * rng.uniform(0.8, 1.2)
            for _ in range(5)]
    bins = [(0.0, 20.0), (20.0, 50.0)]
    sims = honest_bin_chi2(errs, [np.ones(len(snr), bool)] * 4, snr, bins, draws=3000, seed=1)
    faint, many = sims[(0.0, 20.0)], sims[(20.0, 50.0)]
    assert len(faint) == len(many) == 3000
    assert np.median(faint) == pytest.approx(1.0, abs=0.06)
    assert np.median(many) == pytest.approx(1.0, abs=0.03)
    # spread as sqrt(2 / n) of the pooled star-pairs (consecutive pairs share subs: close to it)
    assert np.std(faint) == pytest.approx(np.sqrt(2 / (4 * n_faint)), rel=0.35)
    assert np.std(many) == pytest.approx(np.sqrt(2 / (4 * n_many)), rel=0.35)
    assert np.std(faint) > 2.5 * np.std(many)

    p_honest, p_small = [], []
    for _ in range(40):
        true = rng.normal(12.0, 1.0, len(snr))
        zp = rng.normal(0.0, 0.05, 5)  # the zero point changes from sub to sub
        honest = [true + zp[k] + rng.normal(0.0, errs[k]) for k in range(5)]
        seen = _measured_bins(honest, errs, snr, bins)
        p_honest.append(float(np.mean(many >= seen[(20.0, 50.0)])))
        small = [true + zp[k] + rng.normal(0.0, errs[k] / 0.75) for k in range(5)]
        seen = _measured_bins(small, errs, snr, bins)
        p_small.append(float(np.mean(many >= seen[(20.0, 50.0)])))
    assert 0.3 < np.median(p_honest) < 0.7
    assert np.mean(np.array(p_honest) < 0.1) < 0.3
    assert max(p_small) < 0.01


def test_honest_bin_chi2_wants_a_mask_per_pair() -> None:
    from starnode.photometry.noise import honest_bin_chi2

    with pytest.raises(ValueError, match="3 subs make 2 pairs"):
        honest_bin_chi2([np.ones(4)] * 3, [np.ones(4, bool)], np.ones(4), [(0, 20)])
