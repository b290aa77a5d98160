"""Reading frames (issue 3): the kind from the array shape, the measured plane, time, site."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time

from starnode import synthetic
from starnode.config import Config
from starnode.frame.load import FrameRejected, load_frame


def _cfg(tmp_path: Path, **sections: object) -> Config:
    raw: dict[str, object] = {"data_dir": str(tmp_path / "data")}
    raw.update(sections)
    return Config(raw)


def test_raw_sub_measures_the_green_sites(tmp_path: Path) -> None:
    hdul, truth = synthetic.make_sub(seed=1, shape=(64, 48), pointing_offset_arcmin=(0, 0))
    path = synthetic.write_frame(tmp_path / "sub.fit", hdul)
    fr = load_frame(path, _cfg(tmp_path))
    raw = hdul[0].data.astype(np.float32)
    assert fr.kind == "sub" and fr.binning == 2 and fr.bayer == "GRBG"
    assert fr.filter == "TG" and fr.band == "V"
    assert fr.plane.shape == (32, 24)
    np.testing.assert_array_equal(fr.plane, raw[0::2, 0::2] + raw[1::2, 1::2])
    assert fr.time_uncertainty_s == 0.0
    assert abs((fr.mid - truth.mid_time).to_value("s")) < 1e-3
    assert abs((fr.mid - Time(truth.date_obs)).to_value("s") - 5.0) < 1e-3
    assert fr.site is not None
    assert fr.site.lat.deg == pytest.approx(44.7417)


def test_rggb_pattern_uses_its_green_sites(tmp_path: Path) -> None:
    hdul, _ = synthetic.make_sub(seed=1, shape=(64, 48), pointing_offset_arcmin=(0, 0),
                                 bayer="RGGB")
    path = synthetic.write_frame(tmp_path / "sub.fit", hdul)
    fr = load_frame(path, _cfg(tmp_path))
    raw = hdul[0].data.astype(np.float32)
    np.testing.assert_array_equal(fr.plane, raw[0::2, 1::2] + raw[1::2, 0::2])


def test_stack_uses_the_g_plane_never_red(tmp_path: Path) -> None:
    hdul, _truth = synthetic.make_stack(seed=2, stackcnt=4, shape=(64, 48),
                                       pointing_offset_arcmin=(0, 0))
    path = synthetic.write_frame(tmp_path / "stack.fit", hdul)
    fr = load_frame(path, _cfg(tmp_path))
    assert fr.kind == "stack" and fr.binning == 1 and fr.filter == "TG"
    np.testing.assert_array_equal(fr.plane, hdul[0].data[1].astype(np.float32))
    assert fr.stackcnt == 4
    assert fr.gain_e_per_adu == pytest.approx(4 * Config({}).camera.gain_e_per_adu)
    # time: DATE-OBS + half of STACKCNT x EXPTIME, flagged uncertain by half the span
    assert fr.time_uncertainty_s == pytest.approx(20.0)
    assert (fr.mid - fr.start).to_value("s") == pytest.approx(20.0)
    assert fr.header_wcs is not None  # the on-board WCS, as a hint only


def test_mono_filter_map_and_unfiltered(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    for card, code, band in (("V", "V", "V"), ("B", "B", "B"), ("", "CV", "V"),
                             ("Clear", "CV", "V")):
        hdul, _ = synthetic.make_mono(seed=3, filter_name=card, shape=(40, 40),
                                      pointing_offset_arcmin=(0, 0))
        path = synthetic.write_frame(tmp_path / f"mono_{code}.fit", hdul)
        fr = load_frame(path, cfg)
        assert fr.kind == "mono" and (fr.filter, fr.band) == (code, band), card
    hdul, _ = synthetic.make_mono(seed=3, filter_name="Ha", shape=(40, 40),
                                  pointing_offset_arcmin=(0, 0))
    path = synthetic.write_frame(tmp_path / "mono_ha.fit", hdul)
    with pytest.raises(FrameRejected) as exc:
        load_frame(path, cfg)
    assert exc.value.category == "config" and "filter_map" in exc.value.reason
    cfg2 = _cfg(tmp_path, photometry={"filter_map": {"HA": "V"}})
    assert load_frame(path, cfg2).filter == "V"


def test_date_exp_midpoint(tmp_path: Path) -> None:
    hdul, _ = synthetic.make_sub(seed=1, shape=(32, 32), pointing_offset_arcmin=(0, 0),
                                 header_extra={"DATE-EXP": "2026-08-20T21:30:10.400000"})
    path = synthetic.write_frame(tmp_path / "sub.fit", hdul)
    fr = load_frame(path, _cfg(tmp_path))
    assert (fr.mid - fr.start).to_value("s") == pytest.approx(5.2, abs=1e-4)


def test_site_from_config_header_or_none(tmp_path: Path) -> None:
    hdul, _ = synthetic.make_sub(seed=1, shape=(32, 32), pointing_offset_arcmin=(0, 0))
    path = synthetic.write_frame(tmp_path / "a.fit", hdul)
    fr = load_frame(path, _cfg(tmp_path, site={"latitude": 10.0, "longitude": 20.0}))
    assert fr.site is not None and fr.site.lat.deg == pytest.approx(10.0)
    hdul, _ = synthetic.make_sub(seed=1, shape=(32, 32), pointing_offset_arcmin=(0, 0),
                                 site=None)
    path = synthetic.write_frame(tmp_path / "b.fit", hdul)
    assert load_frame(path, _cfg(tmp_path)).site is None
    hdul, _ = synthetic.make_sub(seed=1, shape=(32, 32), pointing_offset_arcmin=(0, 0),
                                 site=(0.0, 0.0))  # a phone without a location fix
    path = synthetic.write_frame(tmp_path / "c.fit", hdul)
    assert load_frame(path, _cfg(tmp_path)).site is None


@pytest.mark.parametrize("imagetyp", ["Dark", "Flat", "Bias", "DARK FRAME"])
def test_non_light_frames_are_rejected(tmp_path: Path, imagetyp: str) -> None:
    hdul, _ = synthetic.make_sub(seed=1, shape=(32, 32), pointing_offset_arcmin=(0, 0),
                                 imagetyp=imagetyp)
    path = synthetic.write_frame(tmp_path / "d.fit", hdul)
    with pytest.raises(FrameRejected) as exc:
        load_frame(path, _cfg(tmp_path))
    assert exc.value.category == "not_light"


def test_corrupt_truncated_and_odd_files(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    bad = tmp_path / "bad.fit"
    bad.write_bytes(b"this is not a FITS file" * 200)
    with pytest.raises(FrameRejected) as exc:
        load_frame(bad, cfg)
    assert exc.value.category == "unreadable"
    hdul, _ = synthetic.make_sub(seed=1)
    full = synthetic.write_frame(tmp_path / "full.fit", hdul)
    cut = tmp_path / "cut.fit"
    cut.write_bytes(full.read_bytes()[:1_000_000])  # still being copied
    with pytest.raises(FrameRejected) as exc:
        load_frame(cut, cfg)
    assert exc.value.category == "unreadable" and "truncated" in exc.value.reason
    with pytest.raises(FrameRejected) as exc:
        load_frame(tmp_path / "missing.fit", cfg)
    assert exc.value.category == "unreadable"
    odd = tmp_path / "odd.fit"
    fits.PrimaryHDU(np.zeros((10, 10, 4), dtype=np.uint16),
                    header=fits.Header({"EXPTIME": 1.0, "DATE-OBS": "2026-01-01T00:00:00"})
                    ).writeto(odd)
    with pytest.raises(FrameRejected, match="shape"):
        load_frame(odd, cfg)
    nodate = tmp_path / "nodate.fit"
    fits.PrimaryHDU(np.zeros((10, 10), dtype=np.uint16),
                    header=fits.Header({"EXPTIME": 1.0})).writeto(nodate)
    with pytest.raises(FrameRejected, match="DATE-OBS"):
        load_frame(nodate, cfg)


def test_real_m94_sub_is_read_as_grbg_sub(m94_subs: list[Path], tmp_path: Path) -> None:
    fr = load_frame(m94_subs[0], _cfg(tmp_path))
    assert fr.kind == "sub" and fr.bayer == "GRBG" and fr.plane.shape == (960, 540)
    assert fr.exptime == 10.0 and fr.filter == "TG"
    assert fr.mid.isot.startswith("2025-03-27T01:20:37.95")
    assert fr.site is not None and fr.site.lon.deg == pytest.approx(-79.7625)
    assert fr.pixel_scale_arcsec == pytest.approx(2.39, abs=0.01)
    assert fr.header_wcs is None


# ---------------------------------------------------------------- issue 10, item 13
def _patched(tmp_path: Path, name: str, key: str, raw: bytes) -> Path:
    """A synthetic sub whose ``key`` card is rewritten byte for byte (value ``raw``)."""
    hdul, _ = synthetic.make_sub(seed=1, shape=(32, 32), pointing_offset_arcmin=(0, 0))
    path = synthetic.write_frame(tmp_path / name, hdul)
    data = bytearray(path.read_bytes())
    k = key.ljust(8).encode()
    for i in range(0, 2880 * 4, 80):
        if data[i:i + 8] == k:
            data[i:i + 80] = (k + b"= " + raw).ljust(80, b" ")[:80]
            path.write_bytes(bytes(data))
            return path
    raise AssertionError(f"no {key} card")


@pytest.mark.parametrize(("key", "raw", "words"), [
    ("DATE-OBS", b"'2025-09-14'", "time of day"),
    ("DATE-OBS", b"'0001-09-14T20:00:00'", "implausible"),
    ("DATE-OBS", b"'9999-09-14T20:00:00'", "implausible"),
    ("EXPTIME", b"1e300", "EXPTIME"),
    ("EXPTIME", b"100000.0", "EXPTIME"),
])
def test_implausible_header_values_are_a_clean_skip(tmp_path: Path, key: str, raw: bytes,
                                                    words: str) -> None:
    path = _patched(tmp_path, "odd.fit", key, raw)
    with pytest.raises(FrameRejected) as exc:
        load_frame(path, _cfg(tmp_path))
    assert exc.value.category == "implausible", exc.value.reason
    assert words in exc.value.reason and "odd.fit" in exc.value.reason


@pytest.mark.parametrize("raw", ["'SS C\xffg'".encode("latin-1"), "'SS Cÿg'".encode(),
                                 b"'SS\x07Cyg'", b"'SS\tCyg'"])
def test_object_is_read_faithfully_never_with_a_question_mark(tmp_path: Path,
                                                              raw: bytes) -> None:
    fr = load_frame(_patched(tmp_path, "obj.fit", "OBJECT", raw), _cfg(tmp_path))
    assert fr.object == "SS Cyg"


def test_object_that_cannot_be_written_in_ascii_is_refused(tmp_path: Path) -> None:
    path = _patched(tmp_path, "obj.fit", "OBJECT", "'天鹅座SS'".encode())
    with pytest.raises(FrameRejected) as exc:
        load_frame(path, _cfg(tmp_path))
    assert exc.value.category == "implausible" and "OBJECT" in exc.value.reason


@pytest.mark.parametrize("raw", [b"'NaN'", b"NaN", b"'inf'"])
def test_non_finite_site_is_no_site(tmp_path: Path, raw: bytes) -> None:
    fr = load_frame(_patched(tmp_path, "site.fit", "SITELONG", raw), _cfg(tmp_path))
    assert fr.site is None
    assert fr.header.get("SITELONG") is None  # later readers of the header see no card


def test_garbage_keyword_is_dropped_not_a_crash(tmp_path: Path) -> None:
    path = _patched(tmp_path, "g.fit", "SITELONG", b"1.0")
    data = bytearray(path.read_bytes())
    i = data.index(b"SITELONG")
    data[i:i + 8] = b"\xff*[?    "
    path.write_bytes(bytes(data))
    fr = load_frame(path, _cfg(tmp_path))
    assert fr.object == "SS Cyg"


@pytest.mark.parametrize("shape", [(40, 30), (3, 20, 16)])
@pytest.mark.parametrize("encoding", ["uint16", "uint16-extension", "bscale", "blank", "int16",
                                      "float32"])
def test_image_is_the_array_astropy_reads(tmp_path: Path, shape: tuple[int, ...],
                                          encoding: str) -> None:
    """The 16-bit unsigned camera image read from the bytes (issue 18) is astropy's array,
    to the last bit, with the same header; every other encoding is astropy's own."""
    rng = np.random.default_rng(5)
    data = rng.integers(0, 65536, size=shape).astype(np.uint16)
    data.flat[:4] = [0, 1, 32767, 65535]
    hdu: fits.PrimaryHDU | fits.ImageHDU
    hdu = fits.PrimaryHDU(data.astype(np.float32) if encoding == "float32"
                          else (data.astype(np.int16) if encoding == "int16" else data))
    if encoding == "bscale":
        hdu = fits.PrimaryHDU(data.astype(np.int16))
        hdu.header["BSCALE"], hdu.header["BZERO"] = 2, 32768
    elif encoding == "blank":
        hdu = fits.PrimaryHDU(data.astype(np.int16))
        hdu.header["BLANK"] = -32768
    hdu.header["EXPTIME"], hdu.header["DATE-OBS"] = 10.0, "2025-03-26T21:20:46"
    hdu.header["BAYERPAT"], hdu.header["FILTER"] = "GRBG", "CV"
    hdul = (fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, header=hdu.header)])
            if encoding == "uint16-extension" else fits.HDUList([hdu]))
    path = tmp_path / "f.fit"
    hdul.writeto(path)
    with fits.open(path) as ref:
        want = ref[-1].data.copy()
        want_header = ref[-1].header.tostring()
    fr = load_frame(path, _cfg(tmp_path))
    got = fr.raw if fr.kind == "sub" else (fr.cube if fr.kind == "stack" else None)
    assert fr.header.tostring() == want_header
    if got is not None:  # a sub keeps its even-sized mosaic, a stack its cube
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want[..., :got.shape[-2], :got.shape[-1]])


def _peak_by_mask(fr, x: float, y: float, radius: float) -> float:
    """Frame.peak_adu's definition: the highest value of any site / plane within the circle."""
    b = fr.binning
    arr = fr.raw[None] if fr.raw is not None else fr.cube
    cx, cy = b * x + 0.5 * (b - 1), b * y + 0.5 * (b - 1)
    r = b * radius + 1.0 if fr.raw is not None else radius
    yy, xx = np.mgrid[0:arr.shape[1], 0:arr.shape[2]]
    inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    return float(arr[:, inside].max()) if inside.any() else 0.0


@pytest.mark.parametrize("kind", ["sub", "stack"])
def test_peak_adu_is_the_highest_value_in_the_circle(tmp_path: Path, kind: str) -> None:
    """peak_adu is the circle's highest value, at stars, off them, at the edges, for tiny
    radii."""
    make = synthetic.make_sub if kind == "sub" else synthetic.make_stack
    hdul, _ = make(seed=4, shape=(120, 160), pointing_offset_arcmin=(0, 0))
    fr = load_frame(synthetic.write_frame(tmp_path / "f.fit", hdul), _cfg(tmp_path))
    ny, nx = fr.plane.shape
    rng = np.random.default_rng(4)
    xy = np.column_stack([rng.uniform(-3, nx + 3, 150), rng.uniform(-3, ny + 3, 150)])
    xy[:20] = np.round(xy[:20])
    radii = rng.choice([0.0, 0.2, 0.5, 1.0, 2.5, 6.3], len(xy))
    for (x, y), r in zip(xy, radii, strict=True):
        assert fr.peak_adu(x, y, r) == _peak_by_mask(fr, x, y, r)
    flat = np.argsort(fr.plane, axis=None)[-20:]  # at the brightest pixels (stars' peaks)
    for y, x in zip(*np.unravel_index(flat, fr.plane.shape), strict=True):
        assert fr.peak_adu(x + 0.3, y - 0.2, 3.0) == _peak_by_mask(fr, x + 0.3, y - 0.2, 3.0)


@pytest.mark.parametrize("kind", ["sub", "stack", "mono"])
def test_peak_adus_are_peak_adu_star_by_star(tmp_path: Path, kind: str) -> None:
    """peak_adus (all stars at once) gives peak_adu's value for every position, to the bit:
    on and off stars, on and beyond every edge, integer positions, tiny and large radii, a
    plane with NaN pixels; a non-finite position raises as peak_adu does."""
    if kind == "mono":
        hdul = fits.HDUList([fits.PrimaryHDU(np.random.default_rng(5).normal(
            100, 5, (90, 130)).astype(np.float32))])
        hdul[0].header.update({"EXPTIME": 10.0, "DATE-OBS": "2024-07-30T22:44:36",
                               "FILTER": "V"})
        fr = load_frame(synthetic.write_frame(tmp_path / "m.fit", hdul), _cfg(tmp_path))
        fr.plane[40, 50] = np.nan
        fr.plane[10, 10] = np.inf
    else:
        make = synthetic.make_sub if kind == "sub" else synthetic.make_stack
        hdul, _ = make(seed=4, shape=(120, 160), pointing_offset_arcmin=(0, 0))
        fr = load_frame(synthetic.write_frame(tmp_path / "f.fit", hdul), _cfg(tmp_path))
    assert fr.kind == kind
    ny, nx = fr.plane.shape
    rng = np.random.default_rng(6)
    xy = np.vstack([np.column_stack([rng.uniform(-6, nx + 6, 300), rng.uniform(-6, ny + 6, 300)]),
                    [[50.2, 40.1], [10.0, 10.0], [0.0, 0.0], [nx - 1.0, ny - 1.0]]])
    xy[:30] = np.round(xy[:30])
    brightest = np.argsort(np.nan_to_num(fr.plane, posinf=0.0), axis=None)[-30:]
    ys, xs = np.unravel_index(brightest, fr.plane.shape)
    xy = np.vstack([xy, np.column_stack([xs + 0.3, ys - 0.2])])
    for radius in (0.0, 0.2, 1.0, 2.144, 3.216, 6.3):
        ours = fr.peak_adus(xy, radius)
        theirs = [fr.peak_adu(x, y, radius) for x, y in xy]
        assert ours.dtype == np.float64
        np.testing.assert_array_equal(ours, theirs)
    assert fr.peak_adus(np.zeros((0, 2)), 2.0).shape == (0,)
    with pytest.raises(ValueError):
        fr.peak_adus(np.array([[np.nan, 3.0]]), 2.0)


def test_a_non_standard_fits_file_is_an_unreadable_frame(tmp_path: Path) -> None:
    """``SIMPLE = F`` (a file that says it does not follow the standard): a recorded
    "unreadable" skip, not an AttributeError from astropy's non-standard HDU."""
    hdul, _ = synthetic.make_sub(seed=1)
    good = synthetic.write_frame(tmp_path / "good.fit", hdul)
    raw = bytearray(good.read_bytes())
    card = raw[:80].decode()
    assert card.startswith("SIMPLE  =")
    raw[:80] = card.replace("                   T", "                   F").encode()
    odd = tmp_path / "simple_f.fit"
    odd.write_bytes(bytes(raw))
    with pytest.raises(FrameRejected) as exc:
        load_frame(odd, _cfg(tmp_path))
    assert exc.value.category == "unreadable"
