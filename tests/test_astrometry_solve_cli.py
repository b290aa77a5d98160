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
