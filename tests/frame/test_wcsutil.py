"""starnode.frame.wcs: header WCS, binning, pixel scale - checked against independent geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.io import fits

from starnode import synthetic
from starnode.frame.load import GREEN_SITES
from starnode.frame.wcs import binned_wcs, header_wcs, pixel_scale, wcs_scale_arcsec


@pytest.mark.parametrize("pattern", sorted(GREEN_SITES))
def test_binned_wcs_equals_the_independently_built_plane_wcs(pattern: str) -> None:
    ny, nx = 1920, 1080
    native = synthetic.tan_wcs(325.7, 43.6, ny, nx, 2.374, 33.0, True)
    ours = binned_wcs(native, 2, GREEN_SITES[pattern])
    truth = synthetic.plane_tan_wcs(325.7, 43.6, ny, nx, 2.374, 33.0, True)
    # a plane pixel sits on the mean native position of its cell's green sites
    plane = np.array([[0.0, 0.0], [100.0, 700.0], [539.0, 959.0]])
    (r0, c0), (r1, c1) = GREEN_SITES[pattern]
    nat = np.column_stack([2 * plane[:, 0] + (c0 + c1) / 2, 2 * plane[:, 1] + (r0 + r1) / 2])
    want = native.all_pix2world(nat, 0)
    assert np.allclose(ours.all_pix2world(plane, 0), want, atol=1e-10, rtol=0)
    assert np.allclose(truth.all_pix2world(plane, 0), want, atol=1e-10, rtol=0)
    assert ours.pixel_shape == (nx // 2, ny // 2)
    assert wcs_scale_arcsec(ours) == pytest.approx(2 * 2.374, rel=1e-12)


def test_binned_wcs_refuses_sip_and_copies_at_binning_1() -> None:
    w = synthetic.tan_wcs(10.0, 20.0, 100, 100, 2.0, 0.0, False)
    same = binned_wcs(w, 1)
    assert same is not w and np.allclose(same.wcs.cd, w.wcs.cd)
    hdr = w.to_header()
    hdr["CTYPE1"], hdr["CTYPE2"] = "RA---TAN-SIP", "DEC--TAN-SIP"
    hdr.update({"A_ORDER": 2, "B_ORDER": 2, "A_2_0": 1e-6, "B_0_2": 1e-6})
    from astropy.wcs import WCS

    with pytest.raises(ValueError, match="SIP"):
        binned_wcs(WCS(hdr), 2)


def test_header_wcs_from_a_fits_header_or_a_plain_dict() -> None:
    w = synthetic.tan_wcs(10.0, 20.0, 200, 300, 2.0, 15.0, True)
    hdr = fits.Header(w.to_header())
    from_header = header_wcs(hdr)
    from_dict = header_wcs(dict(hdr), binning=2)
    assert from_header is not None and from_dict is not None
    assert np.allclose(from_header.wcs.crval, [10.0, 20.0])
    px = np.array([[10.0, 20.0]])
    assert np.allclose(from_dict.all_pix2world(px, 0),
                       w.all_pix2world(2 * px + 0.5, 0), atol=1e-10)
    assert header_wcs({"CTYPE1": "GLON-TAN"}) is None
    assert header_wcs({}) is None


def test_pixel_scale_from_the_configuration_or_focal_length_and_pixel_size() -> None:
    s50 = {"FOCALLEN": 250, "XPIXSZ": 2.9}
    # 2.9 um at 250 mm: 2.9e-3 / 250 rad
    assert pixel_scale(s50) == pytest.approx(2.9e-3 / 250 * 180 / math.pi * 3600, rel=1e-12)
    assert pixel_scale(s50, 1.5) == 1.5
    assert pixel_scale({"FOCALLEN": 0, "XPIXSZ": 2.9}) is None
    assert pixel_scale({"FOCALLEN": "x", "XPIXSZ": 2.9}) is None
    assert pixel_scale({}) is None
