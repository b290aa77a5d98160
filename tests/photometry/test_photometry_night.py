"""The night's check star, the illumination model and the excess noise (issue 11, items 1, 2
and 6), on synthetic SS Cyg subs measured by the real pipeline with a real SQLite store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from starnode import synthetic
from starnode.config import Config
from starnode.photometry import measure
from starnode.photometry.apertures import geometry
from starnode.photometry.illumination import fit_radial
from starnode.photometry.noise import aperture_excess, excess_variance, pair_chi2
from starnode.store.checkstars import CheckStars


def _cfg(tmp_path: Path, **phot: object) -> Config:
    return Config({"data_dir": str(tmp_path / "data"),
                   "photometry": {"sequence_file": str(synthetic.DEMO_SEQUENCE_FILE), **phot}})


def _sub(tmp_path: Path, k: int, **kw: object) -> Path:
    minute = 30 + 2 * k
    hdul, _ = synthetic.make_sub(seed=40 + k, date_obs=f"2026-08-20T21:{minute:02d}:00.000000",
                                 pointing_offset_arcmin=(5.0, 3.0), rotation_deg=20.0, **kw)
    return synthetic.write_frame(tmp_path / f"Light_SS Cyg_10.0s_IRCUT_{k:02d}.fit", hdul)


def test_one_check_star_for_the_whole_night_even_after_a_restart(tmp_path: Path) -> None:
    # the variable brightens through the night: the comp closest in magnitude changes, the
    # check star must not (0.1.0 went 000-BCP-207 -> 241 -> 202 -> 183)
    labels = []
    for k, v in enumerate((12.4, 11.9, 11.3, 10.8, 10.3)):
        m = measure(_sub(tmp_path, k, target_mag=v), _cfg(tmp_path))  # a fresh config: restart
        assert m.check_star is not None
        labels.append(m.check_star.label)
    assert len(set(labels)) == 1, labels
    kept = CheckStars(_cfg(tmp_path)).get("sscyg", "2026-08-20")
    assert kept is not None and kept.label == labels[0]


def test_night_check_star_unusable_means_no_check_star(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    first = measure(_sub(tmp_path, 0), cfg)
    assert first.check_star is not None
    label = first.check_star.label
    # the same star saturated in a later frame: no check star there, not another one
    m = measure(_sub(tmp_path, 1, mag_overrides={label: 6.0}), cfg)
    assert m.check_star is None
    assert m.check_star_note and label in m.check_star_note and "saturated" in m.check_star_note
    assert any("no check star" in r for r in m.quality_reasons)
    assert measure(_sub(tmp_path, 2), cfg).check_star.label == label  # type: ignore[union-attr]


def test_pinned_check_star_wins_over_the_nights_choice(tmp_path: Path) -> None:
    first = measure(_sub(tmp_path, 0), _cfg(tmp_path))
    assert first.check_star is not None
    other = next(c.label for c in first.comps if c.used)
    m = measure(_sub(tmp_path, 1), _cfg(tmp_path, check_star=other))
    assert m.check_star is not None and m.check_star.label == other


@pytest.mark.parametrize("seed", [0, 3])
def test_vignetted_field_target_error_within_10_mmag(tmp_path: Path, seed: int) -> None:
    hdul, truth = synthetic.make_sub(seed=300 + seed, vignetting=0.2, noise=False)
    path = synthetic.write_frame(tmp_path / "v.fit", hdul)
    m = measure(path, _cfg(tmp_path))
    assert m.illumination is not None and m.illumination.model == "radial"
    assert m.illumination.coefficient == pytest.approx(2.5 * np.log10(0.8), abs=0.05)
    assert abs(m.magnitude - truth.target_mag) <= 0.01
    flat = measure(path, _cfg(tmp_path, illumination="constant"))
    assert abs(flat.magnitude - truth.target_mag) > 0.02  # what the model removes


def test_flat_field_keeps_a_constant_zero_point(tmp_path: Path) -> None:
    m = measure(_sub(tmp_path, 0), _cfg(tmp_path))
    assert m.illumination is not None and m.illumination.model == "constant"
    assert m.excess_noise_mag is not None and m.excess_noise_mag < 0.01


def test_radial_fit_needs_enough_spread_comps() -> None:
    rng = np.random.default_rng(1)
    r2 = rng.uniform(0, 1, 12)
    zp = 20.0 - 0.24 * r2 + rng.normal(0, 0.01, 12)
    fit = fit_radial(zp, np.full(12, 0.01**2), r2)
    assert fit is not None and fit.keep and fit.b == pytest.approx(-0.24, abs=0.03)
    assert fit_radial(zp[:5], np.full(5, 1e-4), r2[:5]) is None  # too few
    assert fit_radial(zp, np.full(12, 1e-4), np.full(12, 0.5)) is None  # not spread
    flat = fit_radial(20.0 + rng.normal(0, 0.01, 12), np.full(12, 0.01**2), r2)
    assert flat is not None and not flat.keep


def test_excess_noise_estimators() -> None:
    rng = np.random.default_rng(2)
    err = np.full(400, 0.01)
    resid = rng.normal(0, np.hypot(0.01, 0.02), 400)
    assert np.sqrt(excess_variance(resid, err**2)) == pytest.approx(0.02, abs=0.003)
    assert excess_variance(rng.normal(0, 0.005, 50), np.full(50, 1e-4)) == 0.0
    delta = 0.05 + rng.normal(0, np.hypot(0.003, 0.01), 300)
    ex, n = aperture_excess(delta, np.full(300, 0.003), np.full(300, 100.0))
    assert n == 300 and ex == pytest.approx(0.01, abs=0.002)
    assert aperture_excess(delta[:3], np.full(3, 0.003), np.full(3, 100.0)) == (0.0, 3)


def test_aperture_floor_for_undersampled_psf() -> None:
    assert geometry(1.4, Config({}))[0] == pytest.approx(2.5)
    assert geometry(3.0, Config({}))[0] == pytest.approx(4.5)
    assert geometry(1.4, Config({"photometry": {"aperture_min_px": 0}}))[0] == pytest.approx(2.1)


def test_pair_chi2_is_one_for_honest_errors() -> None:
    rng = np.random.default_rng(3)
    e = rng.uniform(0.005, 0.05, 2000)
    m1 = 12 + rng.normal(0, e)
    m2 = 12.3 + rng.normal(0, e)
    chi, n = pair_chi2(m1, e, m2, e)
    assert n == 2000 and chi == pytest.approx(1.0, abs=0.1)
    chi_small, _ = pair_chi2(m1, e / 1.5, m2, e / 1.5)
    assert chi_small == pytest.approx(2.25, abs=0.25)
