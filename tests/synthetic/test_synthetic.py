"""The synthetic Seestar frame generator (issue 3): realistic files with a known truth."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from starnode import synthetic
from starnode.catalogs import load_sequence_file


def test_sub_looks_like_a_real_s50_sub(tmp_path: Path) -> None:
    hdul, truth = synthetic.make_sub(seed=1)
    path = synthetic.write_frame(tmp_path / "Light_SS Cyg_10.0s_IRCUT_20260820-233010.fit", hdul)
    assert path.stat().st_size == 4152960  # same byte count as a real S50 sub
    with fits.open(path) as h:
        hdr = h[0].header
        data = h[0].data
        assert len(h) == 1
        assert data.shape == (1920, 1080) and data.dtype == np.uint16
        assert hdr["BITPIX"] == 16 and hdr["BZERO"] == 32768
        assert hdr["BAYERPAT"] == "GRBG" and hdr["IMAGETYP"] == "Light"
        assert hdr["EXPTIME"] == 10.0 and hdr["GAIN"] == 80
        assert "CTYPE1" not in hdr and "CD1_1" not in hdr  # subs have no WCS
        assert hdr["DATE-OBS"] == truth.date_obs
        # RA/DEC are the requested target, the frame centre is 5-9' away
        assert hdr["RA"] == pytest.approx(truth.target_ra_deg, abs=1e-5)
        assert hdr["DEC"] == pytest.approx(truth.target_dec_deg, abs=1e-5)
        ra0, dec0 = truth.meta["frame_centre"]
        off = np.hypot((ra0 - hdr["RA"]) * np.cos(np.radians(dec0)), dec0 - hdr["DEC"]) * 60
        assert 5.0 <= off <= 9.0
        assert hdr["SITELAT"] == pytest.approx(44.7417) and "SITELONG" in hdr
    assert np.linalg.det(truth.wcs.wcs.cd) > 0  # mirrored like the Seestar
    assert truth.binning == 2 and truth.kind == "sub"


def test_deterministic_and_seeded() -> None:
    a, _ = synthetic.make_sub(seed=5, shape=(200, 200), pointing_offset_arcmin=(0, 0))
    b, _ = synthetic.make_sub(seed=5, shape=(200, 200), pointing_offset_arcmin=(0, 0))
    c, _ = synthetic.make_sub(seed=6, shape=(200, 200), pointing_offset_arcmin=(0, 0))
    assert np.array_equal(a[0].data, b[0].data)
    assert not np.array_equal(a[0].data, c[0].data)


def test_dark_sky_zero_clipping_and_saturation() -> None:
    hdul, truth = synthetic.make_sub(seed=2)
    data = hdul[0].data
    dark = data[data < np.percentile(data, 80)]
    frac0 = float(np.mean(data == 0))
    assert 0.03 < frac0 < 0.10, frac0  # ~6 % of dark-sky pixels clipped at 0 by the firmware
    assert dark.min() == 0
    assert data.max() == 65520  # saturated stars reach the full scale
    sat = [s for s in truth.stars if s.saturated and s.in_frame]
    assert sat and all(s.v_mag < 9.0 for s in sat)


def test_truth_positions_and_fluxes_match_the_pixels() -> None:
    hdul, truth = synthetic.make_sub(seed=3, noise=False, sky_adu=0.0)
    raw = hdul[0].data.astype(float)
    green = raw[0::2, 0::2] + raw[1::2, 1::2]  # GRBG
    pos = np.array([(t.plane_x, t.plane_y) for t in truth.stars])
    checked = 0
    for s in truth.stars:
        if not s.in_frame or s.saturated or s.v_mag > 12:
            continue
        d = np.hypot(pos[:, 0] - s.plane_x, pos[:, 1] - s.plane_y)
        if np.sort(d)[1] < 20:  # a neighbour in the box
            continue
        x, y = round(s.plane_x), round(s.plane_y)
        if not (15 <= x < green.shape[1] - 15 and 15 <= y < green.shape[0] - 15):
            continue
        box = green[y - 12:y + 13, x - 12:x + 13]
        assert box.sum() == pytest.approx(s.flux_adu, rel=0.01), s.label
        cy, cx = np.unravel_index(np.argmax(box), box.shape)
        assert abs(cx - 12 + x - s.plane_x) <= 1.0 and abs(cy - 12 + y - s.plane_y) <= 1.0
        checked += 1
    assert checked >= 5
    # plane WCS and native WCS agree: plane (i, j) is native (2i + 0.5, 2j + 0.5)
    t = truth.target
    assert t is not None and t.x == pytest.approx(2 * t.plane_x + 0.5, abs=1e-6)


def test_colour_term_and_target_magnitude() -> None:
    _, t0 = synthetic.make_sub(seed=4, colour_term=0.0, target_mag=10.0, noise=False)
    _, t1 = synthetic.make_sub(seed=4, colour_term=0.1, target_mag=11.0, noise=False)
    assert t1.target is not None and t0.target is not None
    assert t0.target.flux_adu / t1.target.flux_adu == pytest.approx(10 ** 0.4, rel=1e-6)
    red = max((s for s in t0.stars if s.auid), key=lambda s: s.bv)
    r0 = next(s for s in t0.stars if s.label == red.label)
    r1 = next(s for s in t1.stars if s.label == red.label)
    assert r1.flux_adu < r0.flux_adu  # a red star is fainter in green with a positive term


def test_stack_layout_and_onboard_wcs(tmp_path: Path) -> None:
    hdul, truth = synthetic.make_stack(seed=5, stackcnt=10)
    path = synthetic.write_frame(tmp_path / "DSO_Stacked_10_SS Cyg_10.0s_20260820_233010.fit",
                                 hdul)
    with fits.open(path) as h:
        data, hdr = h[0].data, h[0].header
    assert data.shape == (3, 1920, 1080) and data.dtype == np.uint16
    assert hdr["STACKCNT"] == 10 and hdr["TOTALEXP"] == 100.0 and hdr["BAYERPAT"] == "GRBG"
    assert hdr["CD1_1"] * hdr["CD2_2"] - hdr["CD1_2"] * hdr["CD2_1"] > 0
    assert 30 < truth.header_wcs_error_arcsec < 90  # "about 1' off"
    t = truth.target
    assert t is not None
    # the star is brightest in G for a neutral star, and R/G/B differ (colour)
    x, y = round(t.x), round(t.y)
    g = data[1, y - 6:y + 7, x - 6:x + 7].astype(float).sum()
    r = data[0, y - 6:y + 7, x - 6:x + 7].astype(float).sum()
    assert g != r
    assert truth.span_s > 10 * 10.0


def test_mono_frame_has_filter_and_wcs() -> None:
    hdul, truth = synthetic.make_mono(seed=6, filter_name="V")
    hdr = hdul[0].header
    assert hdul[0].data.ndim == 2 and "BAYERPAT" not in hdr
    assert hdr["FILTER"] == "V" and "CTYPE1" in hdr
    assert truth.kind == "mono" and truth.binning == 1


def test_real_vsp_sequences_can_be_used(shared: Path) -> None:
    seq = load_sequence_file(shared / "data" / "vsp" / "xz_cyg.json")
    if seq.star_ra_deg is None:  # SeeVar's wrapper keeps only the name: XZ Cyg from VSX
        seq = replace(seq, star="XZ Cyg", star_ra_deg=293.122125, star_dec_deg=56.388194)
    _, truth = synthetic.make_sub(seq, seed=1, target_mag=9.8)
    assert truth.target is not None and truth.target.v_mag == 9.8 and truth.target.in_frame
    assert sum(s.in_frame for s in truth.stars) > 10


def test_unknown_option_is_an_error() -> None:
    with pytest.raises(TypeError, match="unknown option"):
        synthetic.make_sub(seed=1, exposure=5)


def test_vignetting_dither_and_fixed_field() -> None:
    kw = {"shape": (400, 400), "pointing_offset_arcmin": (0, 0), "rotation_deg": 0.0,
          "noise": False, "scintillation": 0.0}
    flat, _ = synthetic.make_sub(seed=1, **kw)
    vig, _ = synthetic.make_sub(seed=1, vignetting=0.2, **kw)
    f, v = flat[0].data.astype(float), vig[0].data.astype(float)
    assert v[200, 200] == pytest.approx(f[200, 200], rel=0.01)  # the centre keeps its light
    assert v[1:20, 1:20].mean() / f[1:20, 1:20].mean() == pytest.approx(0.8, abs=0.03)
    _, ta = synthetic.make_sub(seed=1, dither_px=2.0, extra_stars=20, field_seed=3, **kw)
    _, tb = synthetic.make_sub(seed=2, dither_px=2.0, extra_stars=20, field_seed=3, **kw)
    sa = {s.label: s for s in ta.stars}
    sb = {s.label: s for s in tb.stars}
    assert sa["field5"].ra_deg == sb["field5"].ra_deg  # the same field in both subs
    shift = np.hypot(sa["field5"].x - sb["field5"].x, sa["field5"].y - sb["field5"].y)
    assert 0.0 < shift < 2.0 * np.sqrt(2) * 2  # moved by a random sub-pixel dither


def test_undersampled_sub_has_the_requested_fwhm(tmp_path: Path) -> None:
    from starnode.config import Config
    from starnode.frame.load import load_frame
    from starnode.photometry import measure_stars

    hdul, truth = synthetic.make_sub(seed=4, fwhm_arcsec=1.4 * 2 * synthetic.S50_SCALE_ARCSEC,
                                     scintillation=0.0)
    fr = load_frame(synthetic.write_frame(tmp_path / "u.fit", hdul), Config({}))
    stars = [s for s in truth.stars if s.in_frame and not s.saturated and s.v_mag < 12.5]
    m = measure_stars(fr, np.array([[s.plane_x, s.plane_y] for s in stars]), Config({}))
    assert 1.2 < m.fwhm < 1.8  # undersampled on the green plane
    assert m.radius == pytest.approx(2.5)  # the aperture floor
