"""The photometry code on real Seestar S50 subs (M 94, shared/data/seestar-s50).

There is no AAVSO sequence for M 94, so the test detects field stars, measures their instrumental
magnitudes with the pipeline's own aperture code (``measure_stars``: re-centring, FWHM, annulus
sky, CCD-equation errors with the configured gain) in five consecutive subs, matches them across
the subs, and checks that their magnitude differences agree from sub to sub within the reported
errors (chi-square per degree of freedom of a stars + frame-zero-point model). The errors include
scintillation, which dominates for the brighter stars of a 50 mm telescope.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sep
from scipy.spatial import cKDTree

from starnode.config import Config
from starnode.frames import Frame, load_frame
from starnode.photometry import measure_stars, times


def _detect(fr: Frame) -> tuple[np.ndarray, np.ndarray]:
    data = np.ascontiguousarray(fr.plane)
    bkg = sep.Background(data, bw=32, bh=32)
    back = bkg.back()
    objs = sep.extract(data - back, 3.0, err=bkg.globalrms, minarea=4)
    bx = back[objs["y"].astype(int), objs["x"].astype(int)]
    ok = ((objs["flag"] == 0) & (objs["b"] / objs["a"] > 0.6) & (objs["a"] < 4.0)
          & (bx < bkg.globalback + 3 * bkg.globalrms))  # stars, not the galaxy
    return np.column_stack([objs["x"][ok], objs["y"][ok]]), objs["flux"][ok]


def _register(ref: np.ndarray, ref_flux: np.ndarray, pos: np.ndarray, flux: np.ndarray
              ) -> np.ndarray:
    """Reference positions mapped into another sub (translation vote, then an affine fit)."""
    b1 = ref[np.argsort(-ref_flux)[:60]]
    b2 = pos[np.argsort(-flux)[:60]]
    d = (b2[None, :, :] - b1[:, None, :]).reshape(-1, 2)
    h, xe, ye = np.histogram2d(d[:, 0], d[:, 1], bins=100, range=[[-50, 50], [-50, 50]])
    i, j = np.unravel_index(np.argmax(h), h.shape)
    off = np.array([(xe[i] + xe[i + 1]) / 2, (ye[j] + ye[j + 1]) / 2])
    dist, idx = cKDTree(pos).query(ref + off)
    m = dist < 3.0
    assert m.sum() >= 10
    a = np.column_stack([ref[m], np.ones(m.sum())])
    coef, *_ = np.linalg.lstsq(a, pos[idx[m]], rcond=None)
    return np.column_stack([ref, np.ones(len(ref))]) @ coef


def test_m94_field_stars_are_consistent_across_five_subs(m94_subs: list[Path],
                                                         tmp_path: Path) -> None:
    cfg = Config({"data_dir": str(tmp_path / "data")})
    frames = [load_frame(p, cfg) for p in m94_subs]
    ref, ref_flux = _detect(frames[0])
    positions = [ref]
    for fr in frames[1:]:
        positions.append(_register(ref, ref_flux, *_detect(fr)))
    # the frame's airmass for the scintillation term (M 94 from the header RA/DEC)
    airmass = [times(fr, fr.ra_deg, fr.dec_deg)[2] for fr in frames]  # type: ignore[arg-type]
    assert all(a is not None and 1.5 < a < 1.9 for a in airmass)
    ms = [measure_stars(fr, pos, cfg, airmass=x)
          for fr, pos, x in zip(frames, positions, airmass, strict=True)]
    for m in ms:  # the S50's PSF: ~9-10" FWHM, i.e. ~2 green superpixels
        assert 1.4 < m.fwhm < 2.6
    mag = np.array([m.mag for m in ms])
    err = np.array([m.mag_err for m in ms])
    good = np.all(np.isfinite(mag), axis=0)
    for m in ms:
        good &= ~m.saturated & ~m.edge & (m.snr > 10)
    mag, err = mag[:, good], err[:, good]
    n_frames, n_stars = mag.shape
    assert n_stars >= 8
    # model: m[f, i] = M[i] + Z[f]
    w = 1.0 / err**2
    star = np.mean(mag, axis=0)
    zp = np.zeros(n_frames)
    for _ in range(50):
        zp = np.sum(w * (mag - star), axis=1) / np.sum(w, axis=1)
        zp -= zp[0]
        star = np.sum(w * (mag - zp[:, None]), axis=0) / np.sum(w, axis=0)
    z = (mag - star - zp[:, None]) / err
    dof = mag.size - n_stars - n_frames + 1
    chi2_dof = float(np.sum(z**2) / dof)
    per_star = np.sum(z**2, axis=0) / (n_frames - 1)
    # errors honest: with the scintillation of a 50 mm aperture at airmass 1.7 (~0.03 mag per
    # 10 s sub) chi2/dof ~ 1.0; without it ~1.6
    assert 0.6 < chi2_dof < 1.5, chi2_dof
    assert per_star.max() < 6.0
    assert np.all(np.abs(zp) < 0.05)  # a steady sky over 45 s


def test_saturated_real_star_is_flagged(shared: Path, tmp_path: Path) -> None:
    path = next((shared / "data" / "seestar-s50" / "S50_12d98769_M94_2025-04-09").glob("*.fit"))
    fr = load_frame(path, Config({"data_dir": str(tmp_path / "data")}))
    assert fr.raw is not None
    iy, ix = np.unravel_index(np.argmax(fr.raw), fr.raw.shape)
    assert fr.raw[iy, ix] >= 65000
    m = measure_stars(fr, np.array([[ix / 2.0, iy / 2.0]]), Config({}), recentre=False,
                      fwhm=2.0)
    assert bool(m.saturated[0])


@pytest.mark.parametrize("index", [0, 4])
def test_real_sub_sky_is_measured_on_raw_green_sites(m94_subs: list[Path], tmp_path: Path,
                                                     index: int) -> None:
    fr = load_frame(m94_subs[index], Config({"data_dir": str(tmp_path / "data")}))
    m = measure_stars(fr, np.array([[100.0, 100.0]]), Config({}), recentre=False, fwhm=2.0)
    g = fr.raw[0::2, 0::2][80:120, 80:120].astype(float)  # type: ignore[index]
    assert m.sky[0] == pytest.approx(2 * np.median(g), rel=0.05)
