"""The synthetic sky: options, stars, PSF rendering in electrons, noise, S50 header cards.

Why separate from the frame makers: subs, stacks and mono frames share one scene (the same
stars, PSF, sky, scintillation and noise model); only the sensor read-out differs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.coordinates import EarthLocation
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS
from scipy.special import erf

from ..catalogs import SEQUENCE_FILES, Sequence
from ..frame.timesite import altitude_deg, pickering_airmass, young_scintillation
from .truth import tan_wcs

#: The bundled AAVSO VSP chart of SS Cyg (X41941HP), see ``starnode/data/README.md``.
DEMO_SEQUENCE_FILE: Path = Path(__file__).resolve().parent.parent / "data" / "ss_cyg_vsp.json"

# The camera of the synthetic sky (scale, gain, read noise, full scale, shape, Bayer pattern and
# the header cards below) is written here on purpose, not read from starnode.instruments: the
# frames are the truth the pipeline is tested against, and the pipeline takes its camera numbers
# from the profile (through the config defaults). Read from the same place, a wrong profile would
# make the synthetic frames agree with it and the tests could not see it; kept apart, a change to
# either breaks the tests (and tests/instruments/test_instruments.py checks that the two agree).

#: Seestar S50 pixel scale, arcsec per native sensor pixel (2.9 um at 250 mm).
S50_SCALE_ARCSEC = 2.374

#: Default electrons per ADU of the 16-bit scaled S50 raw data (photon-transfer measurement on the
#: real M 94 subs, see docs/photometry.md).
S50_GAIN_E_PER_ADU = 0.065


def _sequence(sequence: str | os.PathLike[str] | Sequence) -> Sequence:
    if isinstance(sequence, Sequence):
        return sequence
    return SEQUENCE_FILES.load(Path(sequence).resolve())


def _offset(ra: float, dec: float, east_arcmin: float, north_arcmin: float) -> tuple[float, float]:
    dec2 = dec + north_arcmin / 60.0
    ra2 = ra + east_arcmin / 60.0 / max(math.cos(math.radians(dec)), 1e-6)
    return ra2 % 360.0, dec2


def _profile(dx: np.ndarray, dy: np.ndarray, fwhm: float, psf: str, beta: float) -> np.ndarray:
    """Normalised PSF integrated over pixels (dx, dy: pixel-centre offsets, 2-D grids)."""
    if psf == "gaussian":
        sig = fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
        k = 1.0 / (math.sqrt(2.0) * sig)
        x = dx[0, :]
        y = dy[:, 0]
        px = 0.5 * (erf((x + 0.5) * k) - erf((x - 0.5) * k))
        py = 0.5 * (erf((y + 0.5) * k) - erf((y - 0.5) * k))
        return np.outer(py, px)
    if psf == "moffat":
        alpha = fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))
        sub = (np.arange(3) - 1) / 3.0
        acc = np.zeros_like(dx, dtype=float)
        for oy in sub:
            for ox in sub:
                r2 = (dx + ox) ** 2 + (dy + oy) ** 2
                acc += (1.0 + r2 / alpha**2) ** (-beta)
        acc /= 9.0
        return acc * (beta - 1.0) / (math.pi * alpha**2)
    raise ValueError(f"psf must be 'gaussian' or 'moffat', got {psf!r}")


def _channel_mags(v: float, bv: float, colour_term: float) -> tuple[float, float, float]:
    """(R, G, B) instrumental-system magnitudes of a star of V and B-V."""
    g = v + colour_term * (bv - 0.6)
    r = v - 0.55 * bv + 0.35
    b = v + 0.75 * bv + 0.30
    return r, g, b


@dataclass
class _Star:
    label: str
    auid: str | None
    ra: float
    dec: float
    v: float
    bv: float
    is_target: bool = False


def _stars(seq: Sequence, target_mag: float, target_bv: float, extra: int,
           rng: np.random.Generator, centre: tuple[float, float], radius_deg: float,
           mag_overrides: Mapping[str, float] | None, include_target: bool) -> list[_Star]:
    out: list[_Star] = []
    overrides = dict(mag_overrides or {})
    if include_target and seq.star_ra_deg is not None and seq.star_dec_deg is not None:
        out.append(_Star(seq.star or "target", seq.star_auid, seq.star_ra_deg, seq.star_dec_deg,
                         target_mag, target_bv, True))
    for c in seq.comps:
        vm = c.mag("V")
        if vm is None:
            continue
        v = overrides.get(c.label, overrides.get(c.auid or "", vm[0]))
        b = c.mag("B")
        bv = (b[0] - vm[0]) if b is not None else 0.6
        out.append(_Star(c.label, c.auid, c.ra_deg, c.dec_deg, float(v), float(bv)))
    for i in range(extra):
        # uniform in a disc around the frame centre, V 13-16.5 (more faint than bright)
        r = radius_deg * math.sqrt(rng.uniform())
        th = rng.uniform(0, 2 * math.pi)
        dec = centre[1] + r * math.sin(th)
        ra = centre[0] + r * math.cos(th) / math.cos(math.radians(centre[1]))
        v = 16.5 - 3.5 * rng.uniform() ** 2
        out.append(_Star(f"field{i}", None, ra % 360.0, dec, v, float(rng.uniform(0.2, 1.4))))
    return out


@dataclass(frozen=True)
class _Core:
    """A sharp seeing core on top of the PSF (the older-firmware alt-az subs: ~30 % of a
    star's light in one native pixel although the green-plane FWHM is 1.4 px), and the
    per-star image motion between subs (anisoplanatic jitter)."""

    fraction: float = 0.0
    fwhm_px: float = 1.2  # native px
    jitter_px: float = 0.0  # native px rms, per star and sub


def _star_profile(dx: np.ndarray, dy: np.ndarray, fwhm: float, psf: str, beta: float,
                  core: _Core) -> np.ndarray:
    prof = _profile(dx, dy, fwhm, psf, beta)
    if core.fraction <= 0:
        return prof
    return ((1.0 - core.fraction) * prof
            + core.fraction * _profile(dx, dy, core.fwhm_px, "gaussian", beta))


def _render(stars: list[_Star], wcs: WCS, ny: int, nx: int, fwhm_px: float, psf: str,
            beta: float, exptime: float, zeropoint: float, colour_term: float,
            cfa: np.ndarray | None, scint: float = 0.0, rng: np.random.Generator | None = None,
            core: _Core | None = None,
            ) -> tuple[np.ndarray, list[tuple[_Star, float, float, float, np.ndarray]]]:
    """Noise-free electrons per native pixel for each channel.

    With ``cfa`` (a (2, 2) array of channel indices 0=R, 1=G, 2=B) returns one mosaic image;
    without, a (3, ny, nx) cube. Also per star: (star, x, y, green_e_total, peak_e_per_channel).
    """
    ra = np.array([s.ra for s in stars])
    dec = np.array([s.dec for s in stars])
    xs, ys = wcs.all_world2pix(ra, dec, 0)
    core = core or _Core()
    if core.jitter_px > 0 and rng is not None:  # where the light lands, not the catalogue
        xs = xs + core.jitter_px * rng.standard_normal(len(xs))
        ys = ys + core.jitter_px * rng.standard_normal(len(ys))
    image = np.zeros((ny, nx) if cfa is not None else (3, ny, nx), dtype=np.float64)
    half = math.ceil(max(4.0 * fwhm_px, 8.0) if psf == "gaussian" else 8.0 * fwhm_px)
    info = []
    for s, x, y in zip(stars, xs, ys, strict=True):
        mags = _channel_mags(s.v, s.bv, colour_term)
        e_tot = [exptime * 10.0 ** (-0.4 * (m - zeropoint)) for m in mags]
        if scint > 0 and rng is not None:  # the atmosphere: one factor per star and frame
            f = max(1.0 + scint * float(rng.standard_normal()), 0.0)
            e_tot = [e * f for e in e_tot]
        peaks = np.zeros(3)
        if not (-half < x < nx + half and -half < y < ny + half):
            info.append((s, float(x), float(y), e_tot[1], peaks))
            continue
        ix, iy = round(x), round(y)
        x0, x1 = max(ix - half, 0), min(ix + half + 1, nx)
        y0, y1 = max(iy - half, 0), min(iy + half + 1, ny)
        if x1 <= x0 or y1 <= y0:
            info.append((s, float(x), float(y), e_tot[1], peaks))
            continue
        gy, gx = np.mgrid[y0:y1, x0:x1]
        prof = _star_profile(gx - x, gy - y, fwhm_px, psf, beta, core)
        if cfa is not None:
            chan = cfa[gy % 2, gx % 2]
            flux = np.choose(chan, e_tot)
            stamp = prof * flux
            image[y0:y1, x0:x1] += stamp
            for c in range(3):
                sel = chan == c
                peaks[c] = stamp[sel].max() if sel.any() else 0.0
        else:
            for c in range(3):
                stamp = prof * e_tot[c]
                image[c, y0:y1, x0:x1] += stamp
                peaks[c] = stamp.max()
        info.append((s, float(x), float(y), e_tot[1], peaks))
    return image, info


_S50_CARDS: list[tuple[str, Any, str]] = [
    ("CREATOR", "ZWO Seestar S50", "Capture software"),
    ("PRODUCER", "ZWO", "Powered by ZWO"),
    ("XORGSUBF", 0, "Subframe X position in binned pixels"),
    ("YORGSUBF", 0, "Subframe Y position in binned pixels"),
    ("FOCALLEN", 250, "Focal length of telescope in mm"),
    ("APERTURE", 5.0, "Name of field of view aperture"),
    ("PROGRAM", "4.43", "The name of the software task that created the"),
    ("XBINNING", 1, "Camera X Bin"),
    ("YBINNING", 1, "Camera Y Bin"),
    ("CCDXBIN", 1, "Camera X Bin"),
    ("CCDYBIN", 1, "Camera Y Bin"),
    ("XPIXSZ", 2.90000009536743, "pixel size in microns (with binning)"),
    ("YPIXSZ", 2.90000009536743, "pixel size in microns (with binning)"),
]


def _header(kind: str, *, imagetyp: str, exptime: float, ra: float, dec: float,
            site: tuple[float, float] | None, date_obs: str, bayer: str | None,
            object_name: str | None, extra: Mapping[str, Any] | None,
            filter_name: str = "IRCUT", seed: int = 0) -> fits.Header:
    h = fits.Header()
    for k, v, c in _S50_CARDS:
        h[k] = (v, c)
    h["IMAGETYP"] = (imagetyp, "Type of image")
    h["EXPOSURE"] = (float(exptime), "Exposure time in seconds")
    h["EXPTIME"] = (float(exptime), "Exposure time in seconds")
    h["CCD-TEMP"] = (24.5 + (seed % 7) * 0.125, "sensor temperature in C")
    h["RA"] = (round(ra, 6), "Object Right Ascension in degrees")
    h["DEC"] = (round(dec, 6), "Object Declination in degrees")
    if site is not None:
        h["SITELONG"] = (site[1], "longitude of the imaging site in degrees")
        h["SITELAT"] = (site[0], "latitude of the imaging site in degrees")
    h["DATE-OBS"] = (date_obs, "Image created time")
    h["FILTER"] = (filter_name, "Filter used when taking image")
    h["INSTRUME"] = ("Seestar S50" if kind != "mono" else "ZWO ASI533MM", "Camera model")
    if bayer:
        h["BAYERPAT"] = (bayer, "Bayer pattern")
    h["GAIN"] = (80, "Gain Value")
    h["FOCUSPOS"] = (1600, "Focuser position in steps")
    h["TELESCOP"] = ("S50_5y47h3c1", "Telescope name")
    if object_name is not None:
        h["OBJECT"] = (object_name, "name or catalog number of object being imaged")
    h["TOTALEXP"] = (float(exptime), "Total Exposure Time in seconds")
    h["SYNTHET"] = (True, "starnode synthetic frame, never report it")
    apply_header_extra(h, extra)
    return h


def apply_header_extra(header: fits.Header, extra: Mapping[str, Any] | None) -> None:
    """Add or override the ``header_extra`` cards; a value of None removes that card."""
    for k, v in (extra or {}).items():
        if v is None:
            header.remove(k, ignore_missing=True)
        else:
            header[k] = v


def _geometry(seq: Sequence, rng: np.random.Generator, pointing_offset_arcmin: Any,
              rotation_deg: float | None) -> tuple[float, float, float]:
    if seq.star_ra_deg is None or seq.star_dec_deg is None:
        raise ValueError("the sequence has no target position (star RA/Dec)")
    if pointing_offset_arcmin is None:
        r = rng.uniform(5.0, 9.0)
        th = rng.uniform(0, 2 * math.pi)
        pointing_offset_arcmin = (r * math.cos(th), r * math.sin(th))
    east, north = pointing_offset_arcmin
    ra0, dec0 = _offset(seq.star_ra_deg, seq.star_dec_deg, east, north)
    rot = float(rng.uniform(0, 360.0)) if rotation_deg is None else float(rotation_deg)
    return ra0, dec0, rot


def _common(seq: Sequence, seed: int, kw: dict[str, Any]) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    o: dict[str, Any] = {
        "exptime": 10.0, "date_obs": "2026-08-20T21:30:00.000000", "site": (44.7417, -0.620833),
        "fwhm_arcsec": 9.0, "psf": "gaussian", "moffat_beta": 3.0,
        "pointing_offset_arcmin": None, "rotation_deg": None, "mirrored": True,
        "sky_adu": 60.0, "gain": S50_GAIN_E_PER_ADU, "read_noise_e": 1.5, "zeropoint": 18.0,
        "colour_term": 0.03, "extra_stars": 0, "zero_clip": True, "full_scale": 65520.0,
        "shape": (1920, 1080), "bayer": "GRBG", "imagetyp": "Light", "object_name": None,
        "header_extra": None, "noise": True, "mag_overrides": None, "target_bv": 0.6,
        "scale_arcsec": S50_SCALE_ARCSEC, "include_target": True, "pedestal_adu": None,
        "scintillation": 1.5, "aperture_mm": 50.0, "airmass": None,
        "dither_px": 0.0, "vignetting": 0.0, "prnu": 0.0, "sensor_seed": 0,
        "field_seed": None, "core_fraction": 0.0, "core_fwhm_px": 1.2, "jitter_px": 0.0,
    }
    unknown = set(kw) - set(o)
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
    o.update(kw)
    o["rng"] = rng
    ra0, dec0, rot = _geometry(seq, rng, o["pointing_offset_arcmin"], o["rotation_deg"])
    if o["dither_px"]:  # sub-pixel phases: the frame centre moves by up to dither_px px
        dx, dy = rng.uniform(-o["dither_px"], o["dither_px"], 2) * o["scale_arcsec"] / 60.0
        ra0, dec0 = _offset(ra0, dec0, float(dx), float(dy))
    o["ra0"], o["dec0"], o["rot"] = ra0, dec0, rot
    if o["object_name"] is None:
        o["object_name"] = seq.star or "Unknown"
    if o["airmass"] is None:
        o["airmass"] = _airmass(seq, o["site"], o["date_obs"])
    return o


def _airmass(seq: Sequence, site: tuple[float, float] | None, date_obs: str) -> float:
    """Airmass of the target (Pickering 2002); 1 without a site or below the horizon."""
    if site is None or seq.star_ra_deg is None or seq.star_dec_deg is None:
        return 1.0
    loc = EarthLocation.from_geodetic(lon=site[1], lat=site[0])
    alt = altitude_deg(Time(date_obs, format="isot", scale="utc"), loc, seq.star_ra_deg,
                       seq.star_dec_deg)
    airmass = pickering_airmass(alt)
    return 1.0 if airmass is None else airmass


def _scintillation(o: dict[str, Any], total_s: float) -> float:
    """Relative scintillation noise (Young 1967 x ``scintillation``; 0 = none)."""
    if not o["noise"] or not o["scintillation"]:
        return 0.0
    return young_scintillation(o["aperture_mm"], o["airmass"], total_s,
                               factor=o["scintillation"])


_CHANNEL = {"R": 0, "G": 1, "B": 2}


def _cfa(pattern: str) -> np.ndarray:
    p = pattern.upper()
    if len(p) != 4 or set(p) - set("RGB"):
        raise ValueError(f"bad Bayer pattern {pattern!r}")
    return np.array([[_CHANNEL[p[0]], _CHANNEL[p[1]]], [_CHANNEL[p[2]], _CHANNEL[p[3]]]])


def _noisy(expect_e: np.ndarray, o: dict[str, Any], n_sum: int = 1) -> np.ndarray:
    """Electrons -> ADU with Poisson + read noise (``n_sum`` reads), clip, no rounding."""
    rng = o["rng"]
    if o["noise"]:
        e = rng.poisson(expect_e).astype(np.float32)
        e += rng.standard_normal(expect_e.shape, dtype=np.float32) * np.float32(
            o["read_noise_e"] * math.sqrt(n_sum))
    else:
        e = expect_e.astype(np.float32)
    return e / np.float32(o["gain"])


def _pedestal(o: dict[str, Any]) -> float:
    """ADU added after the noise: none for dark-subtracted, zero-clipped data; otherwise a bias
    pedestal (older firmware keeps one) so that the noise is not clipped."""
    if o["pedestal_adu"] is not None:
        return float(o["pedestal_adu"])
    return 0.0 if o["zero_clip"] else 1000.0


def _scene(sequence: str | os.PathLike[str] | Sequence, target_mag: float, seed: int,
           options: dict[str, Any], n_subs: int = 1, cfa: np.ndarray | None = None
           ) -> tuple[Sequence, dict[str, Any], WCS, np.ndarray, np.ndarray, Any]:
    """What subs, stacks and mono frames share: the field, its stars rendered in electrons on
    the CFA (``cfa``, default the Bayer pattern's), plus sky. Returns (sequence, options, true
    WCS, CFA colour map, image [e-], render info)."""
    seq = _sequence(sequence)
    o = _common(seq, seed, options)
    ny, nx = o["shape"]
    scale = o["scale_arcsec"]
    wcs = tan_wcs(o["ra0"], o["dec0"], ny, nx, scale, o["rot"], o["mirrored"])
    radius = math.hypot(ny, nx) * scale / 3600.0 / 2.0
    if o["field_seed"] is None:
        field_rng, field_centre = o["rng"], (o["ra0"], o["dec0"])
    else:  # the same field stars in every sub (around the target, whatever the pointing)
        field_rng = np.random.default_rng(int(o["field_seed"]))
        field_centre = (seq.star_ra_deg or o["ra0"], seq.star_dec_deg or o["dec0"])
    stars = _stars(seq, target_mag, o["target_bv"], o["extra_stars"], field_rng,
                   field_centre, radius, o["mag_overrides"], o["include_target"])
    if cfa is None:
        cfa = _cfa(o["bayer"])
    fwhm_px = o["fwhm_arcsec"] / scale
    img, info = _render(stars, wcs, ny, nx, fwhm_px, o["psf"], o["moffat_beta"], o["exptime"],
                        o["zeropoint"], o["colour_term"], cfa,
                        _scintillation(o, o["exptime"] * n_subs), o["rng"],
                        _Core(float(o["core_fraction"]), float(o["core_fwhm_px"]),
                              float(o["jitter_px"])))
    img += o["sky_adu"] * o["gain"]
    img *= _response(o, ny, nx)
    return seq, o, wcs, cfa, img, info


def _response(o: dict[str, Any], ny: int, nx: int) -> np.ndarray | float:
    """The sensor's relative response to light: vignetting (a radial fall-off reaching
    ``vignetting`` at the corners, as raw, un-flat-fielded subs show) times a fixed pixel
    response non-uniformity (``prnu``: relative rms, one pattern per ``sensor_seed``)."""
    if not o["vignetting"] and not o["prnu"]:
        return 1.0
    yy, xx = np.mgrid[0:ny, 0:nx]
    cy, cx = (ny - 1) / 2.0, (nx - 1) / 2.0
    r2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / (cy * cy + cx * cx)
    resp = 1.0 - float(o["vignetting"]) * r2
    if o["prnu"]:
        pattern = np.random.default_rng(int(o["sensor_seed"]) + 7919).standard_normal((ny, nx))
        resp = resp * (1.0 + float(o["prnu"]) * pattern)
    return resp
