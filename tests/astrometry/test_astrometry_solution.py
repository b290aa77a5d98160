"""astrometry.solution: the previous-solution memo across binnings, the solution cache."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from starnode.astrometry.geometry import make_wcs
from starnode.astrometry.reference import Refs
from starnode.astrometry.solution import Solution, SolutionMemo, SolvedFrames
from starnode.frame.wcs import binned_wcs

HDR = {"TELESCOP": "S50_test", "OBJECT": "SS Cyg"}


def _wcs(shape=(960, 540), scale_deg=2 * 2.374 / 3600.0):
    cd = np.array([[scale_deg * 0.8, scale_deg * 0.6], [scale_deg * 0.6, -scale_deg * 0.8]])
    return make_wcs((325.68, 43.59), (269.5, 479.5), cd, shape)


def _corner_sky(w, nx, ny):
    return np.column_stack(w.all_pix2world([0.0, nx - 1.0, 10.0], [0.0, ny - 1.0, 700.0], 0))


def test_memo_converts_a_sub_solution_for_a_stack_and_back():
    memo = SolutionMemo()
    w2 = _wcs()
    memo.remember(HDR, w2, (960, 540), 2)
    got = memo.recall(HDR, (1920, 1080), 1)
    assert got is not None
    w1, extra = got
    assert extra is None
    # native pixel (2i + 0.5, 2j + 0.5) is the centre of plane pixel (i, j) of the binned plane
    i, j = np.array([0.0, 100.0, 539.0]), np.array([0.0, 333.0, 959.0])
    a = np.column_stack(w2.all_pix2world(i, j, 0))
    b = np.column_stack(w1.all_pix2world(2 * i + 0.5, 2 * j + 0.5, 0))
    assert np.allclose(a, b, atol=1e-9)
    again = memo.recall(HDR, (960, 540), 2)
    assert again is not None
    assert np.allclose(_corner_sky(again[0], 540, 960), _corner_sky(w2, 540, 960), atol=1e-9)
    # another sensor size: no guess; another target: no guess
    assert memo.recall(HDR, (1000, 500), 1) is None
    assert memo.recall({"TELESCOP": "S50_test", "OBJECT": "RR Lyr"}, (960, 540), 2) is None
    assert memo.recall({}, (960, 540), 2) is None


def test_memo_keeps_a_blind_solvers_stars_until_replaced():
    memo = SolutionMemo()
    stars = Refs(np.array([1.0]), np.array([2.0]), np.array([9.0]), 1, 0)
    memo.remember(HDR, _wcs(), (960, 540), 2, stars)
    memo.remember(HDR, _wcs(), (960, 540), 2)  # a later guided solve keeps them
    got = memo.recall(HDR, (960, 540), 2)
    assert got is not None and got[1] is stars
    memo.clear()
    assert memo.recall(HDR, (960, 540), 2) is None


def test_native_is_the_inverse_of_wcsutil_binned_wcs():
    from starnode.astrometry.solution import _native

    w2 = _wcs()
    back = binned_wcs(_native(w2, 2), 2)
    assert np.allclose(back.wcs.crpix, w2.wcs.crpix) and np.allclose(back.wcs.cd, w2.wcs.cd)


def test_solution_cache_round_trip_in_sqlite(tmp_path):
    db = tmp_path / "data" / "starnode.sqlite3"
    frames = SolvedFrames(db)
    key = SolvedFrames.key("abc", (960, 540), 2)
    assert key == "abc|960x540|bin2" and frames.get(key) is None
    w = _wcs()
    sol = Solution(wcs=w, n_matched=17, rms_px=0.21, scale_arcsec=2.374, mirrored=True,
                   method="catalog-match", n_detected=120, n_reference=30)
    frames.put(key, sol, (960, 540))
    hit = SolvedFrames(db).get(key)
    assert hit is not None
    assert (hit.method, hit.solved_by, hit.n_matched, hit.n_detected) == (
        "cache", "catalog-match", 17, 120)
    assert hit.rms_px == pytest.approx(0.21)
    assert np.allclose(_corner_sky(hit.wcs, 540, 960), _corner_sky(w, 540, 960), atol=1e-9)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM astrometry_solutions").fetchone()[0] == 1
