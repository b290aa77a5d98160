"""The faster worker gives the results of the unmodified algorithm (issue 18, item 8).

``observing.times`` now calls ERFA directly instead of astropy's ``light_travel_time`` and
``transform_to(AltAz)``. The reference below is the 0.2.0 implementation, verbatim; the new one
must agree with it within 1e-9 (days, degrees, airmass) on random sites, targets and dates
(IERS-covered, past and beyond the tables), and ``measure()`` must give the same record and
starlist with either. Timings are in bench/photometry_compare.py, not here.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import AltAz, EarthLocation, SkyCoord
from astropy.table import Table
from astropy.time import Time

from starnode import synthetic
from starnode.config import Config
from starnode.frame.timesite import (
    _GEOCENTRE,
    Times,
    offline_iers,
    pickering_airmass,
    times,
)
from starnode.photometry import measure

TOL = 1e-9


def _times_reference(mid: Time, site: EarthLocation | None, ra_deg: float,
                     dec_deg: float) -> Times:
    """``observing.times`` as 0.2.0 computed it (astropy frames), the reference."""
    coord = SkyCoord(ra_deg * u.deg, dec_deg * u.deg, frame="icrs")
    with offline_iers():
        t = Time(mid.utc, location=site if site is not None else _GEOCENTRE)
        ltt = t.light_travel_time(coord, kind="heliocentric")
        hjd = float((t.utc + ltt).jd)
        airmass = alt = None
        if site is not None:
            alt = float(coord.transform_to(AltAz(obstime=t, location=site)).alt.deg)
            airmass = pickering_airmass(alt)
    return Times(float(t.utc.jd), hjd, airmass, alt)


def _assert_close(new: Times, ref: Times) -> None:
    assert new.jd == ref.jd
    assert abs(new.hjd - ref.hjd) <= TOL
    if ref.altitude_deg is None:
        assert new.altitude_deg is None and new.airmass is None
        return
    assert new.altitude_deg is not None
    assert abs(new.altitude_deg - ref.altitude_deg) <= TOL
    if ref.airmass is None:
        assert new.airmass is None
    else:
        assert new.airmass is not None
        assert abs(new.airmass - ref.airmass) <= TOL * max(1.0, ref.airmass)


@pytest.mark.parametrize("jd_range", [(2459000.0, 2461000.0), (2451000.0, 2452000.0),
                                      (2462500.0, 2463000.0)],
                         ids=["iers-covered", "2000", "beyond-the-tables"])
def test_times_agree_with_astropy(jd_range: tuple[float, float]) -> None:
    rng = np.random.default_rng(int(jd_range[0]))
    for i in range(12):
        site = None if i % 4 == 0 else EarthLocation.from_geodetic(
            lon=rng.uniform(-180, 180), lat=rng.uniform(-65, 75), height=rng.uniform(0, 3500))
        mid = Time(rng.uniform(*jd_range), format="jd", scale="utc")
        ra, dec = rng.uniform(0, 360), rng.uniform(-85, 88)
        _assert_close(times(mid, site, ra, dec), _times_reference(mid, site, ra, dec))


def test_times_of_a_target_below_the_horizon() -> None:
    site = EarthLocation.from_geodetic(lon=0.0, lat=-60.0, height=10.0)  # SS Cyg never rises
    mid = Time("2025-06-21T12:00:00", scale="utc")
    new, ref = times(mid, site, 325.68, 43.59), _times_reference(mid, site, 325.68, 43.59)
    assert ref.altitude_deg is not None and ref.altitude_deg < 0
    _assert_close(new, ref)
    assert new.airmass is None


def _numbers(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_numbers(v, f"{key}."))
        elif isinstance(v, (list, tuple)):
            for i, item in enumerate(v):
                out.update(_numbers(item if isinstance(item, dict) else {"": item},
                                    f"{key}[{i}]."))
        else:
            out[key] = v
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= TOL * max(1.0, abs(a))
    return bool(a == b)


@pytest.mark.parametrize("kind", ["sub", "stack"])
def test_measure_gives_the_reference_results(kind: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    hdul = (synthetic.make_sub(seed=1, target_mag=11.5)[0] if kind == "sub"
            else synthetic.make_stack(seed=2, target_mag=11.5, stackcnt=20)[0])
    path = synthetic.write_frame(tmp_path / f"{kind}.fit", hdul)
    cfg = Config({"data_dir": str(tmp_path / "data"),
                  "photometry": {"sequence_file": str(synthetic.DEMO_SEQUENCE_FILE),
                                 "offline": True}})
    measure(path, cfg)  # cold: both then find the same cached solution and check star
    results = {}
    for label in ("new", "reference"):
        if label == "reference":
            monkeypatch.setattr("starnode.photometry.pipeline.times", _times_reference)
        m = measure(path, cfg)
        assert m.starlist is not None
        results[label] = (m.to_dict(), Table.read(m.starlist, format="ascii.ecsv"))
    (new, new_list), (ref, ref_list) = results["new"], results["reference"]
    flat_new, flat_ref = _numbers(new), _numbers(ref)
    assert flat_new.keys() == flat_ref.keys()
    different = {k: (flat_new[k], flat_ref[k]) for k in flat_ref
                 if k != "starlist" and not _same(flat_new[k], flat_ref[k])}
    assert different == {}
    assert new["quality_flag"] == ref["quality_flag"]
    assert new_list.colnames == ref_list.colnames and len(new_list) == len(ref_list)
    for col in ref_list.colnames:
        a, b = np.asarray(new_list[col]), np.asarray(ref_list[col])
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=TOL, atol=TOL, equal_nan=True, err_msg=col)
        else:
            assert a.tolist() == b.tolist(), col


def test_centroid_is_photutils_centroid_com() -> None:
    """``apertures._centroid_com`` is photutils' ``centroid_com`` without its input checks."""
    from photutils.centroids import centroid_com

    from starnode.photometry.apertures import _centroid_com

    rng = np.random.default_rng(4)
    for shape in ((7, 7), (9, 6), (1, 5)):
        for _ in range(20):
            d = np.clip(rng.normal(5.0, 10.0, shape), 0.0, None).astype(np.float32)
            assert _centroid_com(d) == tuple(float(v) for v in centroid_com(d))
    zero = np.zeros((5, 5), dtype=np.float32)
    assert all(math.isnan(v) for v in _centroid_com(zero))


def test_aperture_sums_are_photutils_aperture_photometry() -> None:
    """The sums made from the masks built once equal ``aperture_photometry``'s, to the bit
    (stars inside, on the edge, off the plane; a NaN pixel)."""
    from photutils.aperture import CircularAperture, aperture_photometry

    from starnode.photometry.masks import masked_sum, masked_sums

    rng = np.random.default_rng(5)
    plane = rng.normal(100.0, 5.0, (60, 80)).astype(np.float32)
    plane[30, 40] = np.nan
    pos = np.array([[10.3, 12.7], [0.2, 30.0], [79.6, 59.9], [40.0, 30.0], [-20.0, 5.0],
                    [55.55, 21.25]])
    for r in (1.7, 3.2, 6.0):
        ap = CircularAperture(pos, r)
        theirs = np.asarray(aperture_photometry(plane, ap, method="exact")["aperture_sum"])
        ours = np.array([masked_sum(plane, m) for m in ap.to_mask(method="exact")])
        np.testing.assert_array_equal(ours, theirs)
        np.testing.assert_array_equal(masked_sums(plane, ap.to_mask(method="exact")), theirs)


def _native_centroids_reference(raw: np.ndarray, pos: np.ndarray, half: int = 3,
                                iters: int = 3, levels: np.ndarray | None = None) -> np.ndarray:
    """``cfa.native_centroids`` as 0.2.0 computed it (a loop over the stars), the reference."""
    from starnode.photometry.cfa import site_levels

    pos = np.asarray(pos, float).reshape(-1, 2)
    data = np.asarray(raw)
    ny, nx = data.shape
    sky = site_levels(data) if levels is None else levels
    out = pos.copy()
    for k, (x, y) in enumerate(pos):
        bx, by = 2.0 * x + 0.5, 2.0 * y + 0.5
        for _ in range(iters):
            ix, iy = round(bx), round(by)
            if not (half <= ix < nx - half and half <= iy < ny - half):
                break
            rows = np.arange(iy - half, iy + half + 1)[:, None]
            cols = np.arange(ix - half, ix + half + 1)[None, :]
            d = (data[iy - half:iy + half + 1, ix - half:ix + half + 1].astype(float)
                 - sky[rows % 2, cols % 2])
            w = np.zeros_like(d)
            for r in (0, 1):
                for c in (0, 1):
                    m = ((rows % 2) == r) & ((cols % 2) == c)
                    tot = float(d[m].sum())
                    if tot > 0:
                        w[m] = d[m] / tot
            w = np.clip(w, 0.0, None) * (((rows - by) ** 2 + (cols - bx) ** 2) <= half * half)
            tw = float(w.sum())
            if not tw > 0:
                break
            bx, by = float((w * cols).sum() / tw), float((w * rows).sum() / tw)
        else:
            out[k] = ((bx - 0.5) / 2.0, (by - 0.5) / 2.0)
    return out


def _mosaic(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A clipped uint16 Bayer mosaic with sharp stars, and their plane positions."""
    rng = np.random.default_rng(seed)
    ny, nx = 240, 320
    yy, xx = np.mgrid[0:ny, 0:nx]
    img = rng.normal(30.0, 12.0, (ny, nx))
    img[0::2, 1::2] *= 0.6  # the site classes' different sky levels
    img[1::2, 0::2] *= 0.8
    stars = np.column_stack([rng.uniform(2, nx / 2 - 2, 40), rng.uniform(2, ny / 2 - 2, 40)])
    for x, y in stars:
        bx, by = 2 * x + 0.5, 2 * y + 0.5
        img += rng.uniform(200, 5000) * np.exp(-((xx - bx) ** 2 + (yy - by) ** 2) / 2.2)
    return np.clip(np.round(img), 0, 65535).astype(np.uint16), stars


@pytest.mark.parametrize(("half", "iters"), [(3, 3), (2, 1), (4, 5)])
def test_native_centroids_are_the_reference_loop(half: int, iters: int) -> None:
    """The vectorised mosaic centroids equal the per-star loop's to the bit: stars, start
    points on pure sky (no light: kept), stamps leaving the mosaic (kept)."""
    from starnode.photometry.cfa import native_centroids

    raw, stars = _mosaic(6)
    rng = np.random.default_rng(7)
    pos = np.vstack([stars, stars + rng.uniform(-0.8, 0.8, stars.shape),
                     np.column_stack([rng.uniform(-3, 163, 400), rng.uniform(-3, 123, 400)]),
                     [[0.2, 0.2], [159.4, 60.0], [-4.0, 3.0]]])
    ours = native_centroids(raw, pos, half=half, iters=iters)
    assert (ours != pos).any(axis=1).sum() > 40  # most stars moved
    np.testing.assert_array_equal(ours, _native_centroids_reference(raw, pos, half, iters))
    assert native_centroids(raw, np.zeros((0, 2))).shape == (0, 2)


def test_site_levels_are_numpy_medians() -> None:
    """The site classes' sky levels equal ``numpy.median``'s to the bit (integer mosaics of
    odd and even sizes, a float one)."""
    from starnode.photometry.cfa import site_levels

    rng = np.random.default_rng(8)
    for shape in ((64, 64), (72, 88), (71, 93), (9, 9), (8, 3)):
        for dtype, high in ((np.uint16, 65535), (np.uint16, 40), (np.int32, 3000)):
            raw = rng.integers(0, high, shape).astype(dtype)
            ref = [[float(np.median(raw[r::8, c::8])) for c in (0, 1)] for r in (0, 1)]
            assert site_levels(raw).tolist() == ref
    flt = rng.normal(50.0, 3.0, (40, 40)).astype(np.float32)
    assert site_levels(flt).tolist() == [[float(np.median(flt[r::8, c::8])) for c in (0, 1)]
                                         for r in (0, 1)]


def test_overlaps_and_cutouts_are_photutils() -> None:
    """The masks' overlap slices and NaN-filled cut-outs equal photutils' own (inside, on
    every edge, off the plane)."""
    from photutils.aperture import CircularAperture

    from starnode.photometry.masks import masked_cutout, overlap_slices

    rng = np.random.default_rng(9)
    plane = rng.integers(0, 50, (40, 70)).astype(np.uint16)
    pos = np.column_stack([rng.uniform(-8, 78, 300), rng.uniform(-8, 48, 300)])
    for r in (1.5, 4.2):
        for m in CircularAperture(pos, r).to_mask(method="exact"):
            assert overlap_slices(m, plane.shape) == m.get_overlap_slices(plane.shape)
            ours, theirs = masked_cutout(m, plane), m.cutout(plane, fill_value=np.nan)
            if theirs is None:
                assert ours is None
            else:
                assert ours is not None and ours.dtype == theirs.dtype
                np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize(("fwhm", "dtype"), [(1.2, np.float32), (2.0, np.float32),
                                             (3.3, np.float32), (2.0, np.float64),
                                             (2.0, np.int32)])
def test_recentring_together_is_star_by_star(fwhm: float, dtype: Any) -> None:
    """The stars re-centred together get ``_recentre``'s positions and verdicts, to the bit:
    bright and faint stars, pure sky, cut-outs leaving the plane, a NaN and an infinite pixel,
    centroids running away."""
    from dataclasses import dataclass

    from starnode.photometry.apertures import _recentre, _recentre_many

    rng = np.random.default_rng(11)
    ny, nx = 90, 120
    yy, xx = np.mgrid[0:ny, 0:nx]
    plane = rng.normal(100.0, 6.0, (ny, nx))
    stars = np.column_stack([rng.uniform(-1, nx, 60), rng.uniform(-1, ny, 60)])
    for x, y in stars:
        plane += rng.uniform(20, 3000) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (fwhm * 0.8))
    plane = plane.astype(dtype)
    if plane.dtype.kind == "f":
        plane[40, 50], plane[70, 20] = np.nan, np.inf

    @dataclass
    class Plane:  # what the re-centring reads of a Frame
        plane: np.ndarray

    frame: Any = Plane(plane)
    xy = np.vstack([stars + rng.uniform(-1.0, 1.0, stars.shape),
                    np.column_stack([rng.uniform(0, nx, 40), rng.uniform(0, ny, 40)]),
                    [[50.2, 40.1], [20.0, 69.6], [0.3, 0.4], [119.4, 89.6]]])
    n = len(xy)
    sky = 100.0 + rng.normal(0, 2.0, n)
    sigma = np.full(n, 6.0)
    idx = np.flatnonzero(rng.uniform(size=n) < 0.9)
    pos, rec = xy.copy(), np.zeros(n, dtype=bool)
    _recentre_many(frame, xy, idx, fwhm, sky, sigma, 1.5, pos, rec)
    expected_pos, expected_rec = xy.copy(), np.zeros(n, dtype=bool)
    for i in idx:
        expected_pos[i, 0], expected_pos[i, 1], expected_rec[i] = _recentre(
            frame, xy[i, 0], xy[i, 1], fwhm, float(sky[i]), float(sigma[i]), 1.5)
    assert 10 < expected_rec.sum() < len(idx)  # some centred, some kept
    np.testing.assert_array_equal(pos, expected_pos)
    np.testing.assert_array_equal(rec, expected_rec)


@pytest.mark.parametrize("green", [False, True], ids=["plane", "green-sites"])
def test_local_skies_are_local_sky(green: bool) -> None:
    """The skies of all stars at once equal ``local_sky``'s star by star, to the bit: a
    crowded field (neighbours masked; so many that the fallback without them is taken), stars
    at and beyond the edges, a clipped sky, NaN pixels."""
    from dataclasses import dataclass

    from starnode.photometry.sky import local_skies, local_sky

    rng = np.random.default_rng(12)
    ny, nx = 80, 110
    sites = [np.clip(np.rint(rng.normal(6.0, 5.0, (ny, nx))), 0, None).astype(np.uint16)
             for _ in range(2)]
    plane = (sites[0] + sites[1].astype(np.float32)).astype(np.float32)
    plane[10, 10] = np.nan

    @dataclass
    class Planes:  # what the sky reads of a Frame
        plane: np.ndarray
        green: tuple[np.ndarray, np.ndarray] | None

    frame: Any = Planes(plane, (sites[0], sites[1]) if green else None)
    crowd = np.column_stack([rng.uniform(30, 34, 30), rng.uniform(30, 34, 30)])
    # more stars than one batch (sky._CHUNK)
    pos = np.vstack([np.column_stack([rng.uniform(-3, nx + 3, 150), rng.uniform(-3, ny + 3, 150)]),
                     crowd, [[10.2, 10.4], [0.0, 0.0], [109.9, 79.9], [np.nan, 5.0]]])
    others = np.vstack([pos[:-1], [[50.0, 40.0]]])
    for r_in, r_out, mask_r in ((3.0, 6.0, 2.5), (5.5, 9.2, 4.0)):
        ours = local_skies(frame, pos, r_in, r_out, others, mask_r)
        for (x, y), s in zip(pos, ours, strict=True):
            try:
                ref = local_sky(frame, x, y, r_in, r_out, others, mask_r)
            except ValueError:
                ref = None
            assert s == ref
    assert local_skies(frame, np.zeros((0, 2)), 3.0, 6.0, None, 2.0) == []


def _aperture_sums_reference(frame: Any, pos: np.ndarray, inside: np.ndarray, r: float,
                             clip_val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``apertures._aperture_sums`` as 0.2.0 computed it (a loop over the stars)."""
    from photutils.aperture import CircularAperture, aperture_photometry

    n = len(pos)
    raw_sum = np.full(n, np.nan)
    area_w2 = np.full(n, math.pi * r * r)
    ap = CircularAperture(pos[inside], r)
    raw_sum[inside] = np.asarray(aperture_photometry(frame.plane, ap)["aperture_sum"])
    masks = ap.to_mask(method="exact")
    area_w2[inside] = [float(np.sum(m.data * m.data)) for m in masks]
    sites = frame.green if frame.green is not None else (frame.plane,)
    for i, m in zip(np.flatnonzero(inside), masks, strict=True):
        if clip_val[i] == 0.0:
            continue
        n0 = 0.0
        for site in sites:
            cut = m.cutout(site, fill_value=np.nan)
            if cut is not None:
                n0 += float(np.sum(m.data * (cut == 0)))
        raw_sum[i] += n0 * clip_val[i]
    return raw_sum, area_w2


@pytest.mark.parametrize("green", [False, True], ids=["plane", "green-sites"])
def test_aperture_sums_are_the_reference_loop(green: bool) -> None:
    """Aperture sums, squared weights and the clipped pixels' share equal the star-by-star
    loop's, to the bit (stars inside, on the edges and off the plane; clipped and unclipped
    skies)."""
    from dataclasses import dataclass

    from starnode.photometry.apertures import _aperture_sums

    rng = np.random.default_rng(13)
    ny, nx = 70, 90
    sites = [np.clip(np.rint(rng.normal(3.0, 4.0, (ny, nx))), 0, None).astype(np.uint16)
             for _ in range(2)]
    plane = (sites[0] + sites[1].astype(np.float32)).astype(np.float32)

    @dataclass
    class Planes:  # what the sums read of a Frame
        plane: np.ndarray
        green: tuple[np.ndarray, np.ndarray] | None

    frame: Any = Planes(plane, (sites[0], sites[1]) if green else None)
    pos = np.vstack([np.column_stack([rng.uniform(-4, nx + 4, 120),
                                      rng.uniform(-4, ny + 4, 120)]), [[0.0, 0.0]]])
    inside = (pos[:, 0] >= 0) & (pos[:, 0] < nx) & (pos[:, 1] >= 0) & (pos[:, 1] < ny)
    clip_val = np.where(rng.uniform(size=len(pos)) < 0.7, rng.uniform(-3, 0, len(pos)), 0.0)
    for r in (1.6, 2.9, 4.5):
        raw, w2, _ = _aperture_sums(frame, pos, inside, r, clip_val)
        ref_raw, ref_w2 = _aperture_sums_reference(frame, pos, inside, r, clip_val)
        np.testing.assert_array_equal(raw, ref_raw)
        np.testing.assert_array_equal(w2, ref_w2)


def _same_measurement(a: Any, b: Any) -> None:
    """Two StarMeasurements equal to the bit (arrays, numbers, the CFA model)."""
    for k, v in vars(a).items():
        w = getattr(b, k)
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(v, w, err_msg=k)
        else:
            assert v == w or (v != v and w != w), k


def test_a_frames_site_levels_are_computed_once(tmp_path: Path) -> None:
    """The CFA site levels a frame's photometry needs are computed once per frame and reused
    by its later star lists; every number is the one a fresh frame gives."""
    from starnode.frame.load import load_frame
    from starnode.photometry.apertures import measure_stars
    from starnode.photometry.cfa import site_levels

    path = synthetic.write_frame(tmp_path / "sub.fit",
                                 synthetic.make_sub(seed=4, extra_stars=40)[0])
    frame = load_frame(path)
    xy = np.array([[x, y] for x in (150.0, 300.0, 450.0, 600.0, 750.0)
                   for y in (100.0, 200.0, 300.0, 400.0)])
    first = measure_stars(frame, xy, airmass=1.2)
    kept = frame.site_levels
    assert kept is not None and kept[0] is frame.raw
    assert kept[1].tolist() == site_levels(frame.raw).tolist()
    again = measure_stars(frame, xy[::-1], airmass=1.2)
    assert frame.site_levels is kept  # reused, not computed again
    _same_measurement(again, measure_stars(load_frame(path), xy[::-1], airmass=1.2))
    _same_measurement(first, measure_stars(load_frame(path), xy, airmass=1.2))


def test_circular_masks_are_photutils_to_mask() -> None:
    """The masks made without the aperture object are ``CircularAperture.to_mask``'s, to the
    bit: the same boxes and weights (random positions on and off the plane, positions whose
    box edges fall exactly on a pixel edge, small and large radii); photutils' own errors for
    what it refuses."""
    from photutils.aperture import CircularAperture

    from starnode.photometry.masks import circular_masks

    rng = np.random.default_rng(19)
    pos = np.vstack([np.column_stack([rng.uniform(-10, 1000, 200), rng.uniform(-10, 600, 200)]),
                     [[10.0, 20.0], [10.5, 20.5], [0.0, 0.0], [-3.25, 4.75], [7.3, 7.3]]])
    for r in (0.7, 1.5, 2.25, 3.2160000000000002, 5.5, 11.0):
        edge = pos[-1] + [r - 0.5, 0.5 - r]  # a box edge exactly on a pixel edge
        p = np.vstack([pos, edge])
        ours = circular_masks(p, r)
        theirs = CircularAperture(p, r).to_mask(method="exact")
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            assert a.bbox == b.bbox and a.data.dtype == b.data.dtype
            np.testing.assert_array_equal(a.data, b.data)
            np.testing.assert_array_equal(a._mask, b._mask)
    one = circular_masks(np.array([5.2, 6.1]), np.float64(2.5))
    assert len(one) == 1 and one[0].bbox == CircularAperture([5.2, 6.1], 2.5).to_mask().bbox
    with pytest.raises(ValueError, match="non-finite"):
        circular_masks(np.array([[np.nan, 1.0]]), 2.0)
    with pytest.raises(ValueError):
        circular_masks(np.array([[1.0, 1.0]]), 0.0)


def _robust_sky_reference(values: np.ndarray, clip_level: float | None = 0.0, k: float = 4.0,
                          max_iter: int = 10) -> Any:
    """``sky.robust_sky`` as 0.3.0 computed it, verbatim (the reference)."""
    import math

    from scipy.special import ndtr

    from starnode.photometry.sky import _SQRT_2PI, SkyEstimate, _censored_fit

    v = np.array(values, dtype=np.float64).ravel()  # a copy of its own: sorted in place
    finite = np.isfinite(v)
    if not finite.all():
        v = v[finite]
    v.sort()
    n = v.size
    if n < 8:
        raise ValueError(f"too few sky pixels ({n})")
    n0 = int(np.searchsorted(v, clip_level, side="right")) if clip_level is not None else 0
    m = n
    med = sig = 0.0
    for _ in range(max_iter):
        keep = v[:m]
        q16, med, q84 = _sorted_quantiles_reference(keep, (0.15865525, 0.5, 0.84134475))
        p0 = n0 / m
        sig = (q84 - q16) / 2.0 if p0 < 0.15 else (q84 - med)
        if sig <= 0:
            sig = float(np.std(keep)) or 1.0
        new_m = int(np.searchsorted(keep, med + k * sig, side="right"))
        if new_m == m or new_m < 8:
            break
        m = new_m
    keep = v[:m]
    n0 = min(n0, m)
    p0 = n0 / m
    q16, q25, med, q84 = _sorted_quantiles_reference(keep, (0.15865525, 0.25, 0.5, 0.84134475))
    sig_up = q84 - med
    # the lower side of a Poisson-skewed sky is narrower than the upper one: model the clipped
    # tail with the width of the lower half (quantiles above the clip level)
    if p0 < 0.15:
        sig_lo = med - q16
    elif p0 < 0.25:
        sig_lo = (med - q25) / 0.6744898
    else:
        sig_lo = sig_up
    if p0 >= 0.5:
        med, sig_lo = _censored_fit(keep, float(clip_level))  # type: ignore[arg-type]
        sig_up = sig_lo
    sig_lo = sig_lo if sig_lo > 0 else sig
    sig_up = sig_up if sig_up > 0 else sig
    total = float(keep[n0:].sum())
    tail_low = float(clip_level) if clip_level is not None else 0.0
    if n0:
        a = (tail_low - med) / sig_lo  # tail_low is the clip level here
        cdf = max(float(ndtr(a)), 1e-12)
        tail_low = med - sig_lo * math.exp(-0.5 * a * a) / _SQRT_2PI / cdf
        total += n0 * tail_low
    # the clipped upper tail of the noise itself (normal model), beyond the clip
    kk = (float(keep[-1]) - med) / sig_up if keep.size else k
    kk = max(kk, 1.0)
    p_hi = float(ndtr(-kk))
    n_hi = m * p_hi / (1.0 - p_hi)
    mean_hi = med + sig_up * math.exp(-0.5 * kk * kk) / _SQRT_2PI / max(p_hi, 1e-300)
    mean = (total + n_hi * mean_hi) / (m + n_hi)
    sig = (q84 - q16) / 2.0 if p0 < 0.15 else sig_up
    return SkyEstimate(float(mean), float(sig), int(m), float(p0), float(tail_low))


def _sorted_quantiles_reference(s: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """Quantiles (linear interpolation, numpy's default) of an already sorted array."""
    out = []
    last = s.size - 1
    for q in qs:
        pos = q * last
        i = int(pos)
        f = pos - i
        out.append(float(s[i] if i >= last else s[i] + f * (s[i + 1] - s[i])))
    return out


def _sky_cases() -> list[tuple[np.ndarray, float | None]]:
    rng = np.random.default_rng(21)
    cases: list[tuple[np.ndarray, float | None]] = []
    for i in range(900):
        n = int(rng.integers(8, 900))
        kind = i % 6
        v: np.ndarray
        if kind == 0:  # a clipped raw sky (many zeros when faint)
            v = np.clip(np.rint(rng.normal(rng.uniform(-2, 30), rng.uniform(0.5, 8), n)), 0,
                        None).astype(np.uint16)
        elif kind == 1:
            v = rng.normal(100, 5, n)
        elif kind == 2:  # float32 with NaN pixels
            v = rng.normal(100, 5, n).astype(np.float32)
            v[rng.random(n) < 0.05] = np.nan
        elif kind == 3:  # mostly clipped: the censored fit
            v = np.clip(rng.normal(0.5, 2, n), 0, None)
        elif kind == 4:  # flat, signed integers
            v = rng.integers(0, 3, n).astype(np.int32)
        else:  # stars in the annulus
            v = np.concatenate([rng.poisson(20, n), rng.integers(200, 5000, n // 5)]).astype(
                np.uint16)
        cases += [(v, 0.0), (v, None)]
    return [*cases, (np.zeros(7, np.uint16), 0.0), (np.full(30, np.nan), None),
            (np.arange(12.0).reshape(3, 4), 2.0)]


def test_robust_sky_is_the_reference() -> None:
    """robust_sky (numpy's methods called directly, integers sorted as integers) gives 0.3.0's
    estimates to the bit, and its errors, on clipped, float, NaN, signed, censored and starry
    annuli."""
    from starnode.photometry.sky import robust_sky

    for v, clip in _sky_cases():
        try:
            ref: Any = _robust_sky_reference(v, clip_level=clip)
        except ValueError as exc:
            ref = str(exc)
        try:
            ours: Any = robust_sky(v, clip_level=clip)
        except ValueError as exc:
            ours = str(exc)
        assert repr(ours) == repr(ref), (v.dtype, clip)
