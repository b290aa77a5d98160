"""The one star detector (frame.detect): the astrometry's and the starlists' settings of one
function, non-finite pixels, and sep's process-wide buffer sizes (issue 18, item 2)."""

from __future__ import annotations

import numpy as np
import pytest
import sep

from starnode.frame.detect import field_stars, find_stars

STARS = [(60.0, 50.0, 4000.0), (200.3, 80.7, 2500.0), (120.6, 210.2, 1500.0),
         (300.1, 250.4, 900.0), (40.5, 280.3, 600.0), (330.8, 40.2, 3000.0)]


def _plane(seed: int = 1, trail: bool = True) -> np.ndarray:
    """Sky 100 +/- 5 ADU, six Gaussian stars (FWHM 3 px) and, optionally, a satellite trail."""
    rng = np.random.default_rng(seed)
    ny, nx = 320, 360
    yy, xx = np.mgrid[0:ny, 0:nx]
    img = rng.normal(100.0, 5.0, (ny, nx))
    s = 3.0 / 2.3548
    for x, y, amp in STARS:
        img += amp * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * s * s))
    if trail:  # 80 px long, 2 px wide, along x
        img += 300.0 * np.exp(-((yy - 150.0) ** 2) / 2.0) * ((xx > 150) & (xx < 230))
    return img.astype(np.float32)


def _nearest(stars_xy: np.ndarray, x: float, y: float) -> float:
    return float(np.min(np.hypot(stars_xy[:, 0] - x, stars_xy[:, 1] - y)))


def test_astrometry_settings_keep_point_sources_brightest_first() -> None:
    stars = find_stars(_plane())
    assert len(stars) == len(STARS)  # the trail is dropped
    for x, y, _ in STARS:
        assert _nearest(stars.xy, x, y) < 0.15
    assert np.all(np.diff(stars.flux) <= 0)  # brightest first
    assert _nearest(stars.xy[:1], 60.0, 50.0) < 0.15
    assert 2.4 < stars.fwhm_px < 3.6
    assert len(find_stars(_plane(), max_stars=3)) == 3


def test_starlist_settings_keep_every_source_with_flags() -> None:
    det = field_stars(_plane())
    assert len(det) == len(STARS) + 1  # the trail is listed, as not star-like
    trail = int(np.argmin(np.abs(det.x - 190.0) + np.abs(det.y - 150.0)))
    assert not det.starlike[trail]
    others = np.delete(np.arange(len(det)), trail)
    assert det.starlike[others].all() and not det.blended.any()
    assert np.all((det.fwhm[others] > 2.4) & (det.fwhm[others] < 3.6))
    for x, y, _ in STARS:
        assert _nearest(det.xy, x, y) < 0.3
    # one function: field_stars is find_stars with the starlists' parameters
    same = find_stars(_plane(), min_area=4, mesh_px=32, max_stars=None, point_sources=False,
                      brightest_first=False, windowed=False)
    np.testing.assert_array_equal(same.xy, det.xy)
    np.testing.assert_array_equal(same.starlike, det.starlike)


def test_non_finite_pixels_do_not_hide_the_stars() -> None:
    plane = _plane(trail=False)
    plane[:, 100] = np.nan
    plane[10, 10] = np.inf
    for det in (find_stars(plane), field_stars(plane)):
        assert np.isfinite(det.xy).all()
        for x, y, _ in STARS:
            assert _nearest(det.xy, x, y) < 0.3


def test_a_flat_plane_has_no_stars() -> None:
    flat = np.full((100, 120), 7.0, dtype=np.float32)
    assert len(find_stars(flat)) == 0 and len(field_stars(flat)) == 0
    with pytest.raises(ValueError, match="2-D"):
        find_stars(np.zeros((2, 30, 30), dtype=np.float32))


def test_sep_buffers_start_from_its_defaults_and_grow_only_when_full() -> None:
    """A large buffer left by an earlier extraction is not inherited (it slows every later one);
    an extraction that overflows the defaults is retried, not lost."""
    sep.set_extract_pixstack(2_000_000)
    sep.set_sub_object_limit(8000)
    before = field_stars(_plane())
    assert sep.get_extract_pixstack() == 300_000 and sep.get_sub_object_limit() == 1024
    again = field_stars(_plane())
    np.testing.assert_array_equal(before.xy, again.xy)  # capacity only: the same objects
    # a threshold below the sky: the whole 560 x 560 plane is one object, more active pixels
    # than sep's default stack holds
    noise = np.random.default_rng(3).normal(100.0, 5.0, (560, 560)).astype(np.float32)
    sep.set_extract_pixstack(300_000)
    bkg = sep.Background(noise, bw=32, bh=32)
    with pytest.raises(Exception, match="pixel buffer full"):
        sep.extract(noise - bkg.back(), -20.0, err=bkg.globalrms, minarea=4)
    whole = field_stars(noise, threshold_sigma=-20.0)
    assert len(whole) == 1 and sep.get_extract_pixstack() > 300_000
    field_stars(_plane())
    assert sep.get_extract_pixstack() == 300_000 and sep.get_sub_object_limit() == 1024


def test_an_extraction_is_made_once_and_shared() -> None:
    """Selections with the same extraction settings share one extraction of the plane; the
    shared one gives the same stars as a fresh one."""
    plane = _plane()
    memo: dict = {}
    ast = find_stars(plane, memo=memo)
    every = find_stars(plane, memo=memo, max_stars=None, point_sources=False,
                       brightest_first=False, windowed=False)
    assert len(memo) == 1
    listed = field_stars(plane, memo=memo)
    listed_again = field_stars(plane, memo=memo)
    assert len(memo) == 2  # the starlists' settings: one more, then reused
    assert len(every) == len(STARS) + 1 and len(ast) == len(STARS)
    fresh_every = find_stars(plane, max_stars=None, point_sources=False, brightest_first=False,
                             windowed=False)
    for shared, fresh in ((ast, find_stars(plane)), (every, fresh_every),
                          (listed, field_stars(plane)), (listed_again, listed)):
        np.testing.assert_array_equal(shared.xy, fresh.xy)
        np.testing.assert_array_equal(shared.flux, fresh.flux)
        np.testing.assert_array_equal(shared.fwhm, fresh.fwhm)
        np.testing.assert_array_equal(shared.starlike, fresh.starlike)
        np.testing.assert_array_equal(shared.blended, fresh.blended)
    other = _plane(seed=2, trail=False)  # another plane never gets this one's stars
    assert len(field_stars(other, memo=memo)) == len(STARS) and len(memo) == 3


@pytest.mark.slow
def test_a_frames_extraction_is_kept_with_the_frame(tmp_path) -> None:
    """The solver's extraction stays with the frame: a later detection with the same settings
    reuses it and finds what a fresh one finds."""
    from starnode import synthetic
    from starnode.astrometry import solve_frame
    from starnode.catalogs import load_sequence_file
    from starnode.config import Config
    from starnode.frame.load import load_frame

    cfg = Config({"data_dir": str(tmp_path / "data"), "photometry": {"offline": True},
                  "astrometry": {"blind": False, "cache": False}})
    path = synthetic.write_frame(tmp_path / "sub.fit",
                                 synthetic.make_sub(seed=3, target_mag=11.5)[0])
    frame = load_frame(path, cfg)
    comps = load_sequence_file(synthetic.DEMO_SEQUENCE_FILE).comps
    solve_frame(frame, cfg, ref_ra=np.array([c.ra_deg for c in comps]),
                ref_dec=np.array([c.dec_deg for c in comps]), use_memo=False)
    assert len(frame.extractions) == 1
    shared = find_stars(frame.plane, memo=frame.extractions, max_stars=None, windowed=False)
    assert len(frame.extractions) == 1
    fresh = find_stars(load_frame(path, cfg).plane, max_stars=None, windowed=False)
    assert len(shared) > 20
    np.testing.assert_array_equal(shared.xy, fresh.xy)
    np.testing.assert_array_equal(shared.fwhm, fresh.fwhm)
    field_stars(frame.plane, memo=frame.extractions)  # other settings: its own extraction
    assert len(frame.extractions) == 2


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_smooth_background_flag_is_the_background_image_compared(seed: int) -> None:
    """The detector no longer keeps the background image (issue 18): whether the background
    under each object is below the limit is decided from ``data - sub``, and made exactly
    again when that is too close to call. Limits on, one unit either side of, and far from
    the background values themselves must all give what ``back[y, x] < limit`` gives."""
    from starnode.frame.detect import _extract, _smooth

    plane = _plane(seed)
    yy, xx = np.mgrid[0:plane.shape[0], 0:plane.shape[1]]
    plane += (400.0 * np.exp(-((xx - 200.0) ** 2 + (yy - 100.0) ** 2) / 800.0)).astype(np.float32)
    bkg = sep.Background(plane, bw=32, bh=32, fw=3, fh=3)
    back = bkg.back()
    sub = plane - back
    objs = _extract(sub, 3.0, float(bkg.globalrms), 4)
    assert len(objs) >= 5
    iy = np.clip(objs["y"].astype(int), 0, plane.shape[0] - 1)
    ix = np.clip(objs["x"].astype(int), 0, plane.shape[1] - 1)
    at = back[iy, ix]
    limits = [float(bkg.globalback + 3 * bkg.globalrms), float(at.min()) - 1.0, 1e30]
    for v in at[:4]:
        limits += [float(v), float(np.nextafter(v, np.float32(np.inf))),
                   float(np.nextafter(v, np.float32(-np.inf))), float(v) + 1e-9]
    for limit in limits:
        np.testing.assert_array_equal(_smooth(plane, sub, bkg, objs, limit), at < limit)


@pytest.mark.parametrize("kind", ["sub", "stack"])
def test_a_loaded_plane_is_not_checked_again(tmp_path, kind: str) -> None:
    """A loaded frame's plane is known finite (it is not checked again before the detection,
    which finds the same stars); a frame made with another plane (dataclasses.replace, as the
    colour photometry does) is not; a plane said finite that is not float32 is still
    checked."""
    import dataclasses

    from starnode import synthetic
    from starnode.frame.detect import _prepared
    from starnode.frame.load import load_frame

    make = synthetic.make_sub if kind == "sub" else synthetic.make_stack
    path = synthetic.write_frame(tmp_path / "f.fit", make(seed=3, target_mag=11.5)[0])
    frame = load_frame(path)
    assert frame.plane_is_finite and np.isfinite(frame.plane).all()
    known = field_stars(frame.plane, finite=frame.plane_is_finite)
    checked = field_stars(frame.plane.copy())
    assert len(known) > 20
    for a, b in ((known.xy, checked.xy), (known.flux, checked.flux), (known.fwhm, checked.fwhm),
                 (known.starlike, checked.starlike)):
        np.testing.assert_array_equal(a, b)
    assert known.background_rms == checked.background_rms
    other = dataclasses.replace(frame, plane=frame.plane.copy())
    assert not other.plane_is_finite
    bad = np.array([[1.0, np.nan], [np.inf, 2.0]])  # float64: converted, so checked
    assert np.isfinite(_prepared(bad, finite=True)).all()
