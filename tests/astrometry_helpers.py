"""Helpers shared by the astrometry tests: a rendered star field, a Seestar S50 header, the real M
94 subs and the check of a solution against the truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.wcs import WCS

from starnode import synthetic
from starnode.astrometry import (
    Solution,
    gaia_bright_stars,
)
from starnode.config import Config

S50_SCALE = 2.374


def _max_error_px(sol: Solution, truth_wcs: WCS, shape: tuple[int, int]) -> float:
    """Largest disagreement (plane px) between the solution and the truth over the frame."""
    ny, nx = shape
    gx, gy = np.meshgrid(np.linspace(0, nx - 1, 7), np.linspace(0, ny - 1, 7))
    ra, dec = truth_wcs.all_pix2world(gx.ravel(), gy.ravel(), 0)
    px, py = sol.wcs.all_world2pix(ra, dec, 0)
    return float(np.max(np.hypot(px - gx.ravel(), py - gy.ravel())))


def _check(sol: Solution, truth_wcs: WCS, shape, cfg: Config, *, mirrored: bool = True):
    assert sol.n_matched >= cfg.astrometry.min_matches
    assert sol.rms_px < cfg.astrometry.max_rms_px
    assert sol.mirrored is mirrored
    assert sol.scale_arcsec == pytest.approx(S50_SCALE, rel=0.005)
    assert _max_error_px(sol, truth_wcs, shape) < 0.5


def _render_field(ra_c: float, dec_c: float, *, rot_deg: float, mirrored: bool,
                  shape=(960, 540), binning=2, seed=0, extra=None):
    """A green-superpixel plane with the bundled Gaia stars (plus ``extra`` (ra, dec, mag))
    rendered as Gaussians through a known WCS, and 150 faint uncatalogued field stars."""
    rng = np.random.default_rng(seed)
    # (this test's rotation angle runs the other way from tan_wcs's: same fields as before)
    w = synthetic.tan_wcs(ra_c, dec_c, shape[0], shape[1], S50_SCALE * binning, -rot_deg,
                          mirrored)
    ra, dec, mag = gaia_bright_stars(ra_c, dec_c, 1.0, epoch=2025.0)
    if extra is not None:
        ra, dec, mag = (np.concatenate([a, b]) for a, b in zip((ra, dec, mag), extra,
                                                                strict=True))
    x, y = w.all_world2pix(ra, dec, 0)
    fx = rng.uniform(0, shape[1], 150)
    fy = rng.uniform(0, shape[0], 150)
    x, y = np.concatenate([x, fx]), np.concatenate([y, fy])
    mag = np.concatenate([mag, rng.uniform(12.5, 14.5, 150)])
    img = rng.normal(2000.0, 30.0, shape)
    sig = 1.7 / 2.355
    yy, xx = np.mgrid[-6:7, -6:7]
    for xi, yi, m in zip(x, y, mag, strict=True):
        ix, iy = round(xi), round(yi)
        if not (6 <= ix < shape[1] - 6 and 6 <= iy < shape[0] - 6):
            continue
        flux = 10 ** (-0.4 * (m - 20.0))
        g = np.exp(-((xx + ix - xi) ** 2 + (yy + iy - yi) ** 2) / (2 * sig**2))
        img[iy - 6:iy + 7, ix - 6:ix + 7] += flux * g / g.sum()
    return np.minimum(img, 65535.0), w


def _s50_header(ra: float, dec: float) -> dict:
    return {"RA": ra, "DEC": dec, "FOCALLEN": 250, "XPIXSZ": 2.9, "TELESCOP": "S50_test",
            "OBJECT": "field", "DATE-OBS": "2025-08-01T22:00:00"}


def _real_subs(shared: Path) -> list[Path]:
    files = sorted((shared / "data" / "seestar-s50").glob("*M94*/*.fit"))
    if len(files) < 6:
        pytest.skip(f"expected the 6 real M 94 subs, found {len(files)}")
    return files
