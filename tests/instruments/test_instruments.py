"""Instrument profiles: the S50 numbers are the ones the rest of starnode uses, the photometric
model agrees with the synthetic frames and with observers' reports, and a profile is found from a
frame's header."""

from __future__ import annotations

import math

import numpy as np
import pytest

from starnode.config import Config
from starnode.instruments import MODELS, PROFILES, model_from_header, profile
from starnode.synthetic.scene import S50_GAIN_E_PER_ADU, S50_SCALE_ARCSEC


def test_s50_agrees_with_the_code_in_use() -> None:
    s50, cam = profile("s50"), Config({}).camera
    assert s50.pixel_scale_arcsec == S50_SCALE_ARCSEC == 2.374
    assert s50.gain_e_per_adu == S50_GAIN_E_PER_ADU == cam.gain_e_per_adu
    assert s50.read_noise_e == cam.read_noise_e
    assert s50.linearity_limit_adu == cam.saturation_adu
    assert s50.aperture_mm == cam.aperture_mm
    assert s50.bayer_pattern == "GRBG"
    assert (s50.width_px, s50.height_px) == (1080, 1920)
    w, h = s50.field_deg
    assert w == pytest.approx(0.71, abs=0.01) and h == pytest.approx(1.27, abs=0.01)
    assert s50.computed_scale_arcsec == pytest.approx(2.39, abs=0.01)  # nominal optics
    assert s50.exposures_s == (10.0, 20.0, 30.0, 60.0) and s50.expert_exposures_s == (2.0, 5.0)


def test_saturation_matches_reports_and_the_synthetic_frames() -> None:
    """~8.5 mag saturates in 10 s at GAIN 80 (observers); the synthetic renderer's star of
    that magnitude peaks at the same ADU as the profile says."""
    s50 = profile("s50")
    assert s50.saturation_mag(10.0) == pytest.approx(8.5, abs=0.15)
    assert s50.saturation_mag(20.0) == pytest.approx(s50.saturation_mag(10.0) + 2.5 *
                                                     math.log10(2), abs=1e-9)
    # the synthetic scene: e- = t 10^(-0.4 (m - 18)), Gaussian FWHM 9", 2.374"/px, 0.065 e-/ADU
    sigma = 9.0 / 2.374 / 2.3548
    ys, xs = np.mgrid[-20:21, -20:21]
    prof = np.exp(-(xs ** 2 + ys ** 2) / (2 * sigma ** 2))
    prof /= prof.sum()
    peak = 10.0 * 10 ** (-0.4 * (8.5 - 18.0)) * prof.max() / 0.065
    assert s50.peak_adu(8.5, 10.0) == pytest.approx(peak, rel=0.02)


def test_faint_limit_and_snr_are_consistent() -> None:
    s50 = profile("s50")
    lim = s50.faint_limit(10.0, 10.0)
    assert s50.snr(lim, 10.0) == pytest.approx(10.0, rel=1e-3)
    assert 12.5 < lim < 14.5  # the reported 13-14 in 10 s subs
    assert s50.faint_limit(20.0, 10.0) > lim
    assert s50.faint_limit(10.0, 10.0, snr_scale=0.5) < lim
    s30 = profile("s30")
    assert s30.faint_limit(10.0, 10.0) < lim  # a smaller aperture reaches less deep


def test_allowed_exposures_respect_alt_az() -> None:
    s50 = profile("s50")
    assert s50.allowed_exposures(altaz=True) == (2.0, 5.0, 10.0, 20.0)
    assert s50.allowed_exposures(altaz=True, expert=False) == (10.0, 20.0)
    assert s50.allowed_exposures(altaz=False, expert=False) == (10.0, 20.0, 30.0, 60.0)


@pytest.mark.parametrize(("header", "model"), [
    ({"INSTRUME": "Seestar S50", "TELESCOP": "S50_5y47h3c1"}, "s50"),
    ({"TELESCOP": "S30 Pro_abc123", "INSTRUME": "imx585"}, "s30pro"),
    ({"INSTRUME": "imx585"}, "s30pro"),
    ({"TELESCOP": "S30_abc"}, "s30"),
    ({"INSTRUME": "ZWO ASI533MM"}, None),
    ({}, None),
])
def test_model_from_header(header: dict[str, str], model: str | None) -> None:
    assert model_from_header(header) == model
    assert profile(header=header).model == (model or "s50")


def test_profile_names() -> None:
    assert MODELS == ("s50", "s30", "s30pro", "generic")
    assert profile("S30 Pro").model == "s30pro" and profile("Seestar S50").model == "s50"
    with pytest.raises(KeyError, match="known: s50, s30, s30pro, generic"):
        profile("s100")
    for p in PROFILES.values():
        d = p.to_dict()
        assert d["model"] == p.model and d["field_deg"][0] > 0
        assert p.light_name("SS Cyg", 10.0, "IRCUT", "20250914-201000") == \
            "Light_SS Cyg_10.0s_IRCUT_20250914-201000.fit"


def test_header_cards_are_read_back_as_the_model() -> None:
    """Cards a driver writes from a profile: the pipeline reads the same scale, pattern and
    model back (wcsutil's scale from FOCALLEN/XPIXSZ, model_from_header)."""
    from astropy.io import fits

    from starnode.frame.wcs import pixel_scale

    for model in ("s50", "s30", "s30pro"):
        p = profile(model)
        h = fits.Header()
        for k, (v, c) in p.header_cards().items():
            h[k] = (v, c)
        assert model_from_header(dict(h)) == model
        assert h["BAYERPAT"] == p.bayer_pattern and h["IMAGETYP"] == "Light"
        assert pixel_scale(h) == pytest.approx(p.computed_scale_arcsec, rel=1e-3)


def test_the_synthetic_camera_is_the_s50_written_apart() -> None:
    """The synthetic frames keep their own camera (the truth the pipeline is tested against,
    synthetic/scene.py); here the two independent statements of the S50 are held together."""
    from starnode import synthetic
    from starnode.frame.wcs import pixel_scale

    s50 = profile("s50")
    hdul, truth = synthetic.make_sub(seed=1, noise=False)
    h = hdul[0].header
    assert hdul[0].data.shape == (s50.height_px, s50.width_px)
    assert h["BAYERPAT"] == s50.bayer_pattern and h["GAIN"] == s50.gain_setting
    assert model_from_header(h) == "s50"
    assert pixel_scale(h) == pytest.approx(s50.computed_scale_arcsec, rel=1e-6)
    assert truth.read_noise_e == s50.read_noise_e
    assert truth.zeropoint == s50.zeropoint_e
    assert s50.linearity_limit_adu < truth.full_scale <= s50.saturation_adu


def test_file_names_are_the_seestars() -> None:
    """Names as on real subs (../shared/data/seestar-s50), and the target read back."""
    s50 = profile("s50")
    name = s50.light_name("M 94", 10.0, s50.sub_filter, "20250326-212046")
    assert name == "Light_M 94_10.0s_IRCUT_20250326-212046.fit"
    assert s50.target_in_name(name) == "M 94"
    assert s50.target_in_name("Stacked_30_SS Cyg_10.0s_IRCUT_20250914-213000.fit") == "SS Cyg"
    assert s50.target_in_name("light_R CrB_60s_LP_20250914-191500.fit") == "R CrB"
    assert s50.target_in_name("DSO_Stacked_30_SS Cyg_10.0s_x.fit") is None  # as before
    assert s50.target_in_name("frame_0001.fit") is None


@pytest.mark.parametrize("model", ["s50", "s30", "s30pro", "generic"])
def test_the_telescope_writes_the_profiles_cards(model: str, tmp_path) -> None:
    """`starnode observe` writes each model's sub the way the profile says, and the pipeline
    reads the model, the pattern and the scale back."""
    from datetime import UTC, datetime

    from astropy.io import fits

    from starnode.frame.wcs import pixel_scale
    from starnode.telescope.driver import Exposure
    from starnode.telescope.fitsout import write_light
    from starnode.telescope.settings import TelescopeSettings

    p = profile(model)
    exp = Exposure(np.zeros((8, 6), dtype=np.uint16), datetime(2025, 9, 14, 19, 15, tzinfo=UTC),
                   20.0)
    path = write_light(tmp_path, exp, target="R CrB", ra_deg=240.0, dec_deg=28.0,
                       settings=TelescopeSettings(model=model))
    assert path.name == p.light_name("R CrB", 20.0, "IRCUT", "20250914-191500")
    h = fits.getheader(path)
    assert h["BAYERPAT"] == p.bayer_pattern and h["INSTRUME"] == p.name
    assert pixel_scale(h) == pytest.approx(p.computed_scale_arcsec, rel=1e-6)
    assert model_from_header(dict(h)) == (None if model == "generic" else model)
