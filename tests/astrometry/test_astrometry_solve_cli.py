"""``starnode solve`` is as strong as the pipeline and its cards agree with its numbers
(issue 20): the same references as ``process`` on a fresh data dir, and a cached answer whose
WCS cards put the file's centre where its ``ra_deg``/``dec_deg`` say."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from starnode import synthetic


def _centre_from_cards(res: dict, shape: tuple[int, int]) -> tuple[float, float]:
    h = fits.Header()
    for k, v in res["wcs"].items():
        h[k] = v
    ny, nx = shape
    ra, dec = WCS(h).all_pix2world([[(nx - 1) / 2.0, (ny - 1) / 2.0]], 0)[0]
    return float(ra), float(dec)


def test_solve_twice_cards_agree_with_the_stated_centre(tmp_path: Path) -> None:
    """Fresh data dir, offline: solved from the bundled chart as ``process`` would; the second
    answer (from the cache) gives the same cards, which put the file's centre on ra/dec."""
    hdul, truth = synthetic.make_sub(seed=11, extra_stars=200)
    path = synthetic.write_frame(tmp_path / "Light_SS Cyg_10.0s_IRCUT_x.fit", hdul)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"data_dir": str(tmp_path / "fresh"),
                               "photometry": {"offline": True}}))
    cmd = [sys.executable, "-m", "starnode", "--config", str(cfg), "solve", str(path), "--json"]
    answers = []
    for _ in range(2):
        r = subprocess.run(cmd, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        answers.append(json.loads(r.stdout)[0])
    first, second = answers
    assert first["method"] != "cache" and second["method"] == "cache"
    assert first["references"] == "sequence"
    shape = hdul[0].data.shape
    true_centre = SkyCoord(*truth.wcs.all_pix2world([[(shape[1] - 1) / 2, (shape[0] - 1) / 2]],
                                                    0)[0], unit="deg")
    for res in answers:
        stated = SkyCoord(res["ra_deg"], res["dec_deg"], unit="deg")
        cards = SkyCoord(*_centre_from_cards(res, shape), unit="deg")
        assert stated.separation(cards).arcsec < 1.0, res
        assert stated.separation(true_centre).arcsec < 5.0
    for k in ("PC1_1", "PC1_2", "PC2_1", "PC2_2", "CRPIX1", "CRPIX2"):
        assert np.isclose(first["wcs"].get(k, 0.0), second["wcs"].get(k, 0.0), rtol=1e-6), k


def test_sparse_check_counts_the_stars_inside_the_footprint() -> None:
    """5 stars on the frame, 13 more in the circumscribed circle but off the frame: a WCS
    guess counts 5; without one the inscribed circle's estimate is far below the 18 the
    circle holds (so the sparse-field step asks for deeper stars)."""
    from starnode.astrometry.solve import refs_in_footprint

    shape, scale = (960, 540), 4.748  # plane px, arcsec per plane px
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [180.0, 30.0]
    w.wcs.crpix = [270.5, 480.5]
    w.wcs.cd = [[-scale / 3600, 0], [0, scale / 3600]]
    w.wcs.set()
    on = [(270, 480), (100, 100), (500, 900), (30, 700), (400, 300)]
    # off the frame (x < 0 or x > 540) but within the half-diagonal of the centre
    off = [(-150, 480 + k * 40) for k in range(-3, 4)] + [(700, 480 + k * 40) for k in range(-3, 3)]
    xy = np.array(on + off, float)
    ra, dec = w.all_pix2world(xy[:, 0], xy[:, 1], 0)
    assert refs_in_footprint(ra, dec, (180.0, 30.0), shape, scale, w) == 5
    estimate = refs_in_footprint(ra, dec, (180.0, 30.0), shape, scale)
    assert estimate < 3 * 6  # below 3 x astrometry.min_matches: treated as sparse
    half_diag = 0.5 * float(np.hypot(*shape)) * scale / 3600.0
    xi = np.radians(ra - 180.0) * np.cos(np.radians(30.0))
    assert int(np.sum(np.hypot(np.degrees(xi), dec - 30.0) <= half_diag)) == 18


def test_refusal_names_the_command_that_would_fix_it(tmp_path: Path) -> None:
    """No sequence (OBJECT unknown, offline), no blind solver: the refusal says which command
    or package would solve it."""
    from starnode.astrometry.report import solve_file

    hdul, _ = synthetic.make_sub(seed=11, extra_stars=200, object_name="Unknown",
                                 pointing_offset_arcmin=(30.0, 20.0))
    path = synthetic.write_frame(tmp_path / "u.fit", hdul)
    res = solve_file(path, {"data_dir": str(tmp_path / "d"), "photometry": {"offline": True},
                            "astrometry": {"tetra3rs": False,
                                           "astap_path": str(tmp_path / "no-astap"),
                                           "solve_field_path": str(tmp_path / "no-sf")}})
    assert not res["ok"]
    assert "to solve it:" in res["error"] and "starnode solver-db" in res["error"]
    assert "apt-get install astrometry.net" in res["error"]
