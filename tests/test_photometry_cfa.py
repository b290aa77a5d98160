"""The CFA sampling of sharp stars (issue 20): its model, the correction, and the errors.

Per-star chi2/dof between consecutive subs per S/N bin, on the real older-firmware NGC 7023 pair
(shared) and on synthetic sharp-core subs that reproduce its excess.
"""

from __future__ import annotations

import itertools
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from starnode import synthetic
from starnode.config import Config
from starnode.frame.detect import field_stars
from starnode.frame.load import Frame, load_frame
from starnode.photometry import measure_stars, times
from starnode.photometry.cfa import KAPPA, fit_cfa, green_asymmetry, native_centroids, phases
from starnode.photometry.register import register

BINS = ((0.0, 20.0), (20.0, 50.0), (50.0, math.inf))


def _chi2_bins(frames: list[Frame], positions: list[np.ndarray], cfg: Config,
               airmass: list[float | None]) -> dict[tuple[float, float], tuple[float, int]]:
    """chi2/dof = mean z^2 per S/N bin, pooled over consecutive pairs."""
    ms = [measure_stars(fr, pos, cfg, airmass=am)
          for fr, pos, am in zip(frames, positions, airmass, strict=True)]
    z2: dict[tuple[float, float], list[float]] = {b: [] for b in BINS}
    for a, b in itertools.pairwise(ms):
        ok = (~(a.saturated | b.saturated | a.edge | b.edge) & (a.snr > 5) & (b.snr > 5)
              & np.isfinite(a.mag) & np.isfinite(b.mag))
        d, v = b.mag - a.mag, a.mag_err**2 + b.mag_err**2
        d = d - float(np.sum((d / v)[ok]) / np.sum((1 / v)[ok]))
        snr = np.minimum(a.snr, b.snr)
        for lo, hi in BINS:
            m = ok & (snr >= lo) & (snr < hi)
            z2[(lo, hi)] += list((d**2 / v)[m])
    return {k: (float(np.mean(v)) if v else math.nan, len(v)) for k, v in z2.items()}


def test_phases_follow_the_green_sites() -> None:
    # plane pixel (i, j) is centred on native (2i + .5, 2j + .5); native (0, 0) is G1 in GRBG
    cx, cy = phases(np.array([[-0.25, -0.25], [0.25, 0.25], [0.25, -0.25]]))
    assert np.allclose(cx, [1, -1, -1]) and np.allclose(cy, [1, -1, 1])
    cx, _ = phases(np.array([[-0.25, 0.0]]), site=(0, 1))  # RGGB: G1 at column 1
    assert np.allclose(cx, [-1])


def test_fit_recovers_the_transfer_and_needs_enough_stars() -> None:
    rng = np.random.default_rng(3)
    pos = rng.uniform(10, 500, (40, 2))
    cx, cy = phases(pos)
    asym = 0.2 * (cx + cy) + rng.normal(0, 0.01, 40)
    model = fit_cfa(asym, np.full(40, 0.01), pos)
    assert model is not None and abs(model.t1 - 0.2) < 0.01
    assert model.uncorrected_mag == pytest.approx(2.5 / math.log(10) * KAPPA * 0.04 / 2,
                                                  rel=0.1)
    assert model.sampling_mag < model.uncorrected_mag
    assert fit_cfa(asym[:4], np.full(4, 0.01), pos[:4]) is None
    # with the stars' SNR the centroids' phase error is measured, and the error left after the
    # correction grows as 1 / SNR, never beyond the uncorrected one
    snr = rng.uniform(20, 200, 40)
    delta = 0.5 * 2.8 / snr  # k = 0.5 x FWHM (native px) / SNR per axis
    cx2, cy2 = phases(pos + rng.normal(0, 1, (40, 2)) * delta[:, None] / 2.0)
    noisy = 0.2 * (cx2 + cy2)
    m2 = fit_cfa(noisy, np.full(40, 1e-4), pos, snr=snr, fwhm_native=2.8)
    assert m2 is not None and 0.2 < m2.centroid_k < 1.0
    left = m2.left_mag(np.array([20.0, 50.0, 200.0]))
    assert left[0] > left[1] > left[2] >= m2.sampling_mag
    assert np.all(left <= m2.uncorrected_mag + 1e-12)


def _sharp_subs(tmp: Path, cfg: Config, core: float, n: int = 4) -> tuple[list[Frame],
                                                                          list[np.ndarray]]:
    frames, placed = [], []
    for k in range(n):
        hdul, truth = synthetic.make_sub(
            seed=100 + k, fwhm_arcsec=1.5 * 2 * synthetic.S50_SCALE_ARCSEC,
            pointing_offset_arcmin=(6.0, 2.0), rotation_deg=30.0, dither_px=3.0,
            extra_stars=600, prnu=0.01, field_seed=7, psf="moffat", moffat_beta=2.5,
            core_fraction=core, core_fwhm_px=1.1, zero_clip=False, pedestal_adu=450,
            sky_adu=350, airmass=1.2, zeropoint=20.0)
        frames.append(load_frame(synthetic.write_frame(tmp / f"c{core}_{k}.fit", hdul), cfg))
        placed.append({s.label: (s.plane_x, s.plane_y) for s in truth.stars if s.in_frame})
    common = sorted(set.intersection(*(set(p) for p in placed)))
    return frames, [np.array([p[c] for c in common]) for p in placed]


def test_asymmetry_and_native_centroids_see_the_core(tmp_path: Path) -> None:
    """A sharp core splits the light unevenly between the two green sites, as the phase of the
    star's true position says; without a core the sites agree."""
    cfg = Config({"data_dir": str(tmp_path / "d")})
    for core, expect in ((0.6, (0.1, 0.5)), (0.0, (-0.02, 0.02))):
        hdul, truth = synthetic.make_sub(seed=5, fwhm_arcsec=1.5 * 2 * 2.374, noise=False,
                                         psf="moffat", moffat_beta=2.5, core_fraction=core,
                                         core_fwhm_px=1.1, extra_stars=300, field_seed=7)
        fr = load_frame(synthetic.write_frame(tmp_path / f"a{core}.fit", hdul), cfg)
        stars = [s for s in truth.stars if s.in_frame and not s.saturated
                 and 20 < s.plane_x < 520 and 20 < s.plane_y < 940 and s.flux_adu > 3e4]
        pos = np.array([(s.plane_x, s.plane_y) for s in stars])
        asym = green_asymmetry(fr.green, pos, 2.5, np.full(len(pos), 350 * 2.0))  # type: ignore[arg-type]
        cx, cy = phases(pos)
        t1 = float(np.sum(asym * (cx + cy)) / np.sum((cx + cy) ** 2))
        assert expect[0] < t1 < expect[1], (core, t1)
        if core:
            found = native_centroids(fr.raw, pos + 0.2)  # type: ignore[arg-type]
            assert np.median(np.hypot(*(found - pos).T)) < 0.1


@pytest.mark.slow
def test_sharp_core_synthetic_pairs_chi2_per_snr_bin(tmp_path: Path) -> None:
    """Issue 20: the generator reproduces the excess (chi2/dof >= 2 for S/N 20-50 without the
    correction) and the corrected errors hold (0.8-1.25 in each populated bin)."""
    frames, pos = _sharp_subs(tmp_path, Config({"data_dir": str(tmp_path / "d")}), 0.6)
    am: list[float | None] = [1.2] * len(frames)
    before = _chi2_bins(frames, pos, Config({"data_dir": str(tmp_path / "d"),
                                             "photometry": {"cfa_correction": False}}), am)
    after = _chi2_bins(frames, pos, Config({"data_dir": str(tmp_path / "d")}), am)
    assert before[(20.0, 50.0)][1] >= 50 and before[(20.0, 50.0)][0] >= 2.0, before
    for k, (chi, n) in after.items():
        if n >= 30:
            assert 0.8 <= chi <= 1.25, (k, after)


@pytest.fixture(scope="module")
def ngc7023(shared: Path) -> tuple[list[Frame], list[np.ndarray], list[float | None]]:
    folder = shared / "data" / "seestar-s50" / "S50_NGC7023_2024-07-30_altaz"
    files = sorted(folder.glob("*.fit"))
    if len(files) != 2:
        pytest.skip(f"expected the two NGC 7023 subs in {folder}")
    cfg = Config({"data_dir": "/nonexistent"})
    frames = [load_frame(p, cfg) for p in files]
    det = [field_stars(fr.plane, min_area=2) for fr in frames]
    keep = ~det[0].blended
    ref = det[0].xy[keep]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        am = [times(fr, fr.ra_deg, fr.dec_deg)[2] for fr in frames]  # type: ignore[arg-type]
    return frames, [ref, register(ref, det[0].flux[keep], det[1].xy, det[1].flux)], am


def test_real_older_firmware_pair_chi2_per_snr_bin(ngc7023: tuple[list[Frame],
                                                                  list[np.ndarray],
                                                                  list[float | None]],
                                                   tmp_path: Path) -> None:
    """Issue 20 on the shared real pair: 0.2.0 gave chi2/dof 1.7 for S/N 20-50 (27 stars);
    corrected, the scatter of the bright stars drops (rms 0.071 -> 0.056 mag) and every bin is
    within 0.6-1.25 (the 27 bright stars' chi2/dof has a statistical spread of +-0.27; the
    errors are slightly conservative here: 0.71 for S/N 20-50, 0.80 below)."""
    frames, pos, am = ngc7023
    before = _chi2_bins(frames, pos, Config({"data_dir": str(tmp_path / "d"),
                                             "photometry": {"cfa_correction": False}}), am)
    after = _chi2_bins(frames, pos, Config({"data_dir": str(tmp_path / "d")}), am)
    assert before[(20.0, 50.0)][0] > 1.5, before
    for k, (chi, n) in after.items():
        if n >= 20:
            assert 0.6 <= chi <= 1.25, (k, after)
