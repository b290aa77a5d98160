"""Realistic synthetic Seestar frames with a known truth (tests, benchmarks, the demo).

The stars are the real comparison stars of an AAVSO VSP chart (default: the bundled SS Cyg chart
X41941HP, :data:`DEMO_SEQUENCE_FILE`) at their catalogue positions and V magnitudes, plus the
variable itself at a magnitude you choose, plus optional faint random field stars.

API
---
``make_sub(sequence=DEMO_SEQUENCE_FILE, *, target_mag=11.5, seed=0, **options) -> (HDUList, Truth)``
    A raw Seestar S50 sub: one 2-D uint16 HDU (BITPIX 16, BZERO 32768), 1920 rows x 1080 columns,
    Bayer GRBG (numpy: green at [0,0] and [1,1]), the header cards of a real S50 sub (DATE-OBS,
    EXPTIME, RA/DEC of the *requested target*, SITELAT/SITELONG, BAYERPAT, GAIN=80 ...) and **no
    WCS**. The frame centre is 5-9' from the target (pointing offset), the field is rotated and
    mirrored (CD determinant > 0), stars have a Gaussian or Moffat PSF, Poisson and read noise
    at ``gain`` e-/ADU, a sky, dark-subtraction clipping at 0 (about 6 % of dark-sky pixels are
    0 with the defaults) and saturation at ``full_scale``.
``make_stack(sequence=DEMO_SEQUENCE_FILE, *, stackcnt=20, ...) -> (HDUList, Truth)``
    A native RGB stack: (3, ny, nx) uint16 in R, G, B order (mean of ``stackcnt`` subs,
    bilinear-debayered, so neighbouring pixels are correlated as in real stacks), STACKCNT,
    TOTALEXP, BAYERPAT still present, and an on-board TAN WCS about 1' off the truth
    (``wcs_error_arcmin``), as the scope writes it. DATE-OBS is the start of the first sub.
``make_mono(sequence=DEMO_SEQUENCE_FILE, *, filter_name="V", ...) -> (HDUList, Truth)``
    A 2-D mono frame (no BAYERPAT) with a FILTER card and, by default, a correct TAN WCS.
``write_frame(path, hdul) -> Path``
    Write the frame (atomically: a temporary file in the same folder, then rename).

Options shared by all three (keyword only): ``exptime`` (s, per sub), ``date_obs`` (UTC ISO
string, exposure start), ``site`` ((lat, lon) degrees east-positive, or None for no SITELAT/
SITELONG), ``fwhm_arcsec``, ``psf`` ("gaussian" | "moffat"), ``moffat_beta``,
``pointing_offset_arcmin`` ((east, north) offset of the frame centre from the target; default a
seeded random 5-9'), ``rotation_deg`` (default seeded random), ``mirrored`` (True: det CD > 0),
``sky_adu`` (mean sky per raw pixel), ``gain`` (e-/ADU), ``read_noise_e``, ``zeropoint``
(green magnitude giving 1 e-/s in total), ``colour_term`` (m_G = V + colour_term * ((B-V) - 0.6)),
``extra_stars`` (number of random field stars, V 13-16.5), ``zero_clip`` (True: dark-subtracted
data clipped at 0 like the newer firmware; False: a bias pedestal is kept, as older firmware
does), ``pedestal_adu`` (default 0 with ``zero_clip``, else 1000), ``full_scale`` (ADU),
``shape`` ((rows, cols) of the sensor),
``bayer`` (pattern), ``imagetyp``, ``object_name`` (OBJECT card; default the chart's star),
``header_extra`` (dict of cards added/overriding; a value None removes the card), ``noise``
(False: the noise-free expectation, rounded), ``mag_overrides`` ({label or AUID: V}),
``target_bv`` (B-V of the variable), ``scale_arcsec`` (per native pixel, default 2.374),
``scintillation`` (multiple of Young's 1967 scintillation noise applied to each star's flux,
default 1.5 like the photometry's default; 0 = none), ``aperture_mm`` (50), ``airmass``
(for the scintillation; default from the site, time and target).

:class:`Truth` carries the true native WCS (``wcs``, 0-based pixels of the full array), the WCS of
the measured plane (``plane_wcs``: green 2x2 superpixels for a sub, the G plane of a stack, the
frame for mono), the binning, the target's true magnitude and position, and one
:class:`TrueStar` per rendered star (native and plane pixel positions, V, B-V, the green
instrumental flux in measured-plane ADU, the noise-free peak ADU over all CFA sites and whether
it saturates).

Everything is deterministic for a given ``seed``; a sub takes about 0.15-0.25 s (the first call
of a process ~1 s more: astropy initialisation for the airmass).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.time import Time, TimeDelta
from astropy.wcs import WCS
from scipy.special import erf

from .catalogs import Sequence, load_sequence_file
from .frames import GREEN_SITES, binned_wcs

__all__ = [
    "DEMO_SEQUENCE_FILE",
    "S50_SCALE_ARCSEC",
    "TrueStar",
    "Truth",
    "make_mono",
    "make_stack",
    "make_sub",
    "write_frame",
]

#: The bundled AAVSO VSP chart of SS Cyg (X41941HP), see ``starnode/data/README.md``.
DEMO_SEQUENCE_FILE: Path = Path(__file__).resolve().parent / "data" / "ss_cyg_vsp.json"

#: Seestar S50 pixel scale, arcsec per native sensor pixel (2.9 um at 250 mm).
S50_SCALE_ARCSEC = 2.374

#: Default electrons per ADU of the 16-bit scaled S50 raw data (photon-transfer measurement on the
#: real M 94 subs, see docs/photometry.md).
S50_GAIN_E_PER_ADU = 0.065

_SEQ_CACHE: dict[str, Sequence] = {}


@dataclass(frozen=True)
class TrueStar:
    """One rendered star."""

    label: str
    auid: str | None
    ra_deg: float
    dec_deg: float
    v_mag: float
    bv: float
    x: float  # native 0-based pixel column
    y: float  # native 0-based pixel row
    plane_x: float  # measured-plane 0-based pixel column
    plane_y: float
    flux_adu: float  # true green flux in measured-plane ADU (sum over the plane)
    peak_adu: float  # noise-free peak over all CFA sites / planes, sky included
    saturated: bool
    is_target: bool = False
    in_frame: bool = True


@dataclass
class Truth:
    """What a synthetic frame really contains."""

    kind: str  # sub | stack | mono
    wcs: WCS  # native pixels of the full array
    plane_wcs: WCS  # measured-plane pixels
    binning: int
    target_name: str
    target_auid: str | None
    target_ra_deg: float
    target_dec_deg: float
    target_mag: float
    target: TrueStar | None
    stars: list[TrueStar]
    exptime: float
    date_obs: str
    mid_time: Time  # true mid-exposure (UTC)
    span_s: float  # first exposure start to last exposure end
    gain_e_per_adu: float  # of the measured plane
    read_noise_e: float
    sky_adu: float  # per raw pixel
    zeropoint: float
    colour_term: float
    full_scale: float
    site: tuple[float, float] | None
    header_wcs_error_arcsec: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def star(self, key: str) -> TrueStar:
        """The rendered star with this label or AUID."""
        for s in self.stars:
            if key in (s.label, s.auid):
                return s
        raise KeyError(key)


def _sequence(sequence: str | os.PathLike[str] | Sequence) -> Sequence:
    if isinstance(sequence, Sequence):
        return sequence
    key = str(Path(sequence).resolve())
    seq = _SEQ_CACHE.get(key)
    if seq is None:
        seq = load_sequence_file(key)
        _SEQ_CACHE[key] = seq
    return seq


def tan_wcs(ra0: float, dec0: float, ny: int, nx: int, scale_arcsec: float, rot_deg: float,
            mirrored: bool) -> WCS:
    """A TAN WCS centred on (ra0, dec0) for an ny x nx image, rotated by ``rot_deg``, mirrored
    (CD determinant > 0) like the Seestar's images or not."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra0, dec0]
    w.wcs.crpix = [(nx + 1) / 2.0, (ny + 1) / 2.0]
    s = scale_arcsec / 3600.0
    c, sn = math.cos(math.radians(rot_deg)), math.sin(math.radians(rot_deg))
    rot = np.array([[c, -sn], [sn, c]])
    # Unmirrored sky (east left, north up) has CD = s * [[-1, 0], [0, 1]] (det < 0); the Seestar's
    # images are mirrored: det > 0.
    par = np.array([[1.0, 0.0], [0.0, 1.0]]) if mirrored else np.array([[-1.0, 0.0], [0.0, 1.0]])
    w.wcs.cd = s * rot @ par
    w.wcs.cunit = ["deg", "deg"]
    w.wcs.radesys = "ICRS"
    w.wcs.equinox = 2000.0
    w.pixel_shape = (nx, ny)
    return w


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


def _render(stars: list[_Star], wcs: WCS, ny: int, nx: int, fwhm_px: float, psf: str,
            beta: float, exptime: float, zeropoint: float, colour_term: float,
            cfa: np.ndarray | None, scint: float = 0.0, rng: np.random.Generator | None = None,
            ) -> tuple[np.ndarray, list[tuple[_Star, float, float, float, np.ndarray]]]:
    """Noise-free electrons per native pixel for each channel.

    With ``cfa`` (a (2, 2) array of channel indices 0=R, 1=G, 2=B) returns one mosaic image;
    without, a (3, ny, nx) cube. Also per star: (star, x, y, green_e_total, peak_e_per_channel).
    """
    ra = np.array([s.ra for s in stars])
    dec = np.array([s.dec for s in stars])
    xs, ys = wcs.all_world2pix(ra, dec, 0)
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
        prof = _profile(gx - x, gy - y, fwhm_px, psf, beta)
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
    for k, v in (extra or {}).items():
        if v is None:
            h.remove(k, ignore_missing=True)
        else:
            h[k] = v
    return h


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


def _true_stars(info: list, wcs_plane: WCS, binning: int, plane_flux_factor: float,
                gain: float, sky_peak_adu: float, full_scale: float, ny: int, nx: int,
                ) -> list[TrueStar]:
    out = []
    if not info:
        return out
    ra = np.array([i[0].ra for i in info])
    dec = np.array([i[0].dec for i in info])
    pxs, pys = wcs_plane.all_world2pix(ra, dec, 0)
    for (s, x, y, g_e, peaks), px, py in zip(info, pxs, pys, strict=True):
        peak = float(peaks.max() / gain + sky_peak_adu)
        inside = bool(0 <= x < nx and 0 <= y < ny)
        out.append(TrueStar(s.label, s.auid, s.ra, s.dec, s.v, s.bv, x, y, float(px), float(py),
                            g_e * plane_flux_factor / gain, peak, peak >= full_scale,
                            s.is_target, inside))
    return out


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
    }
    unknown = set(kw) - set(o)
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
    o.update(kw)
    o["rng"] = rng
    ra0, dec0, rot = _geometry(seq, rng, o["pointing_offset_arcmin"], o["rotation_deg"])
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
    import warnings

    from astropy import units as u
    from astropy.coordinates import AltAz, EarthLocation, SkyCoord
    from astropy.utils import iers

    loc = EarthLocation.from_geodetic(lon=site[1] * u.deg, lat=site[0] * u.deg)
    with iers.conf.set_temp("auto_download", False), iers.conf.set_temp("auto_max_age", None), \
            iers.conf.set_temp("iers_degraded_accuracy", "warn"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = Time(date_obs, format="isot", scale="utc")
        alt = SkyCoord(seq.star_ra_deg * u.deg, seq.star_dec_deg * u.deg).transform_to(
            AltAz(obstime=t, location=loc)).alt.deg
    if alt <= 0:
        return 1.0
    return 1.0 / math.sin(math.radians(alt + 244.0 / (165.0 + 47.0 * alt**1.1)))


def _scintillation(o: dict[str, Any], total_s: float) -> float:
    """Relative scintillation noise (Young 1967 x ``scintillation``; 0 = none)."""
    if not o["noise"] or not o["scintillation"]:
        return 0.0
    d_cm = o["aperture_mm"] / 10.0
    return (o["scintillation"] * 0.09 * d_cm ** (-2.0 / 3.0) * o["airmass"] ** 1.75
            / math.sqrt(2.0 * total_s))


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
    stars = _stars(seq, target_mag, o["target_bv"], o["extra_stars"], o["rng"],
                   (o["ra0"], o["dec0"]), radius, o["mag_overrides"], o["include_target"])
    if cfa is None:
        cfa = _cfa(o["bayer"])
    fwhm_px = o["fwhm_arcsec"] / scale
    img, info = _render(stars, wcs, ny, nx, fwhm_px, o["psf"], o["moffat_beta"], o["exptime"],
                        o["zeropoint"], o["colour_term"], cfa,
                        _scintillation(o, o["exptime"] * n_subs), o["rng"])
    img += o["sky_adu"] * o["gain"]
    return seq, o, wcs, cfa, img, info


def make_sub(sequence: str | os.PathLike[str] | Sequence = DEMO_SEQUENCE_FILE, *,
             target_mag: float = 11.5, seed: int = 0, **options: Any
             ) -> tuple[fits.HDUList, Truth]:
    """A raw Bayer S50 sub with no WCS. See the module docstring for the options."""
    seq, o, wcs, _cfa_map, img, info = _scene(sequence, target_mag, seed, options)
    ny, nx = o["shape"]
    adu = _noisy(img, o) + np.float32(_pedestal(o))
    data = np.clip(np.rint(adu), 0.0, o["full_scale"]).astype(np.uint16)
    site = o["site"]
    header = _header("sub", imagetyp=o["imagetyp"], exptime=o["exptime"],
                     ra=seq.star_ra_deg or o["ra0"], dec=seq.star_dec_deg or o["dec0"],
                     site=site, date_obs=o["date_obs"], bayer=o["bayer"],
                     object_name=o["object_name"], extra=o["header_extra"], seed=seed)
    hdul = fits.HDUList([fits.PrimaryHDU(data=data, header=header)])
    green = GREEN_SITES[o["bayer"].upper()]
    plane_wcs = binned_wcs(wcs, 2, green)
    # measured plane = sum of the two green sites of each 2x2 cell: its flux is half the green
    # flux falling on the cells' area.
    tstars = _true_stars(info, plane_wcs, 2, 0.5, o["gain"], o["sky_adu"] + _pedestal(o),
                         o["full_scale"],
                         ny, nx)
    start = Time(o["date_obs"], format="isot", scale="utc")
    mid = start + TimeDelta(o["exptime"] / 2.0, format="sec")
    return hdul, _truth("sub", seq, wcs, plane_wcs, 2, target_mag, tstars, o, mid,
                        o["exptime"], o["gain"])


def _truth(kind: str, seq: Sequence, wcs: WCS, plane_wcs: WCS, binning: int, target_mag: float,
           tstars: list[TrueStar], o: dict[str, Any], mid: Time, span: float, gain_plane: float,
           wcs_err: float = 0.0) -> Truth:
    target = next((s for s in tstars if s.is_target), None)
    return Truth(kind=kind, wcs=wcs, plane_wcs=plane_wcs, binning=binning,
                 target_name=seq.star or "target", target_auid=seq.star_auid,
                 target_ra_deg=float(seq.star_ra_deg or 0.0),
                 target_dec_deg=float(seq.star_dec_deg or 0.0), target_mag=float(target_mag),
                 target=target, stars=tstars, exptime=float(o["exptime"]),
                 date_obs=o["date_obs"], mid_time=mid, span_s=float(span),
                 gain_e_per_adu=gain_plane, read_noise_e=float(o["read_noise_e"]),
                 sky_adu=float(o["sky_adu"]), zeropoint=float(o["zeropoint"]),
                 colour_term=float(o["colour_term"]), full_scale=float(o["full_scale"]),
                 site=o["site"], header_wcs_error_arcsec=wcs_err,
                 meta={"frame_centre": (o["ra0"], o["dec0"]), "rotation_deg": o["rot"]})


def make_stack(sequence: str | os.PathLike[str] | Sequence = DEMO_SEQUENCE_FILE, *,
               target_mag: float = 11.5, seed: int = 0, stackcnt: int = 20,
               wcs_error_arcmin: float = 1.0, cadence_s: float | None = None, **options: Any
               ) -> tuple[fits.HDUList, Truth]:
    """A native (3, ny, nx) R,G,B stack of ``stackcnt`` subs with an on-board WCS ~1' off."""
    from scipy.ndimage import convolve

    seq, o, wcs, cfa, img, info = _scene(sequence, target_mag, seed, options, stackcnt)
    ny, nx = o["shape"]
    scale = o["scale_arcsec"]
    # sum of stackcnt subs (Poisson of the total, read noise of each read), then the mean.
    total = _noisy(img * stackcnt, o, n_sum=stackcnt) / np.float32(stackcnt)
    total += np.float32(_pedestal(o))
    np.maximum(total, 0.0, out=total)
    # bilinear debayer
    planes = np.zeros((3, ny, nx), dtype=np.float32)
    k_g = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], dtype=np.float32) / 4.0
    k_rb = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float32) / 4.0
    yy, xx = np.indices((2, 2))
    for c in range(3):
        mask = np.zeros((ny, nx), dtype=np.float32)
        for dy, dx in zip(yy.ravel(), xx.ravel(), strict=True):
            if cfa[dy, dx] == c:
                mask[dy::2, dx::2] = 1.0
        planes[c] = convolve(total * mask, k_g if c == 1 else k_rb, mode="mirror")
    data = np.clip(np.rint(planes), 0, o["full_scale"]).astype(np.uint16)
    cadence = cadence_s if cadence_s is not None else o["exptime"] + 1.3
    span = (stackcnt - 1) * cadence + o["exptime"]
    # on-board WCS: about wcs_error_arcmin off, same orientation
    th = float(o["rng"].uniform(0, 2 * math.pi))
    bra, bdec = _offset(o["ra0"], o["dec0"], wcs_error_arcmin * math.cos(th),
                        wcs_error_arcmin * math.sin(th))
    board = tan_wcs(bra, bdec, ny, nx, scale, o["rot"], o["mirrored"])
    header = _header("stack", imagetyp=o["imagetyp"], exptime=o["exptime"],
                     ra=seq.star_ra_deg or o["ra0"], dec=seq.star_dec_deg or o["dec0"],
                     site=o["site"], date_obs=o["date_obs"], bayer=o["bayer"],
                     object_name=o["object_name"], extra=None, seed=seed)
    header["STACKCNT"] = (int(stackcnt), "Stack frames")
    header["TOTALEXP"] = (float(o["exptime"] * stackcnt), "Total Exposure Time in seconds")
    for k, v in board.to_header().items():
        if k in ("DATE-OBS", "MJD-OBS", "MJDREF", "WCSAXES"):
            continue
        header[k] = v
    # the scope writes CDi_j (astropy's to_header writes PC + CDELT): rewrite as CD
    for k in ("PC1_1", "PC1_2", "PC2_1", "PC2_2", "CDELT1", "CDELT2"):
        header.remove(k, ignore_missing=True)
    for i in range(2):
        for j in range(2):
            header[f"CD{i + 1}_{j + 1}"] = float(board.wcs.cd[i, j])
    for k, v in (o["header_extra"] or {}).items():
        if v is None:
            header.remove(k, ignore_missing=True)
        else:
            header[k] = v
    hdul = fits.HDUList([fits.PrimaryHDU(data=data, header=header)])
    tstars = _true_stars(info, wcs, 1, 1.0, o["gain"] * stackcnt,
                         o["sky_adu"] + _pedestal(o), o["full_scale"], ny, nx)
    start = Time(o["date_obs"], format="isot", scale="utc")
    mid = start + TimeDelta(span / 2.0, format="sec")
    err = math.hypot(*(np.array(wcs.all_world2pix([[bra, bdec]], 0)[0])
                       - np.array(wcs.all_world2pix([[o["ra0"], o["dec0"]]], 0)[0]))) * scale
    truth = _truth("stack", seq, wcs, wcs, 1, target_mag, tstars, o, mid, span,
                   o["gain"] * stackcnt, err)
    truth.meta["board_wcs"] = board
    truth.meta["stackcnt"] = stackcnt
    return hdul, truth


def make_mono(sequence: str | os.PathLike[str] | Sequence = DEMO_SEQUENCE_FILE, *,
              target_mag: float = 11.5, seed: int = 0, filter_name: str = "V",
              with_wcs: bool = True, **options: Any) -> tuple[fits.HDUList, Truth]:
    """A 2-D mono frame (no BAYERPAT), FILTER ``filter_name``; the V magnitudes are rendered
    (with ``colour_term``) whatever the filter, so a V frame's truth is V."""
    options.setdefault("bayer", "GGGG")
    # every pixel sees the band
    seq, o, wcs, _cfa_map, img, info = _scene(sequence, target_mag, seed, options,
                                              cfa=np.ones((2, 2), dtype=int))
    ny, nx = o["shape"]
    adu = _noisy(img, o) + np.float32(_pedestal(o))
    data = np.clip(np.rint(adu), 0, o["full_scale"]).astype(np.uint16)
    header = _header("mono", imagetyp=o["imagetyp"], exptime=o["exptime"],
                     ra=seq.star_ra_deg or o["ra0"], dec=seq.star_dec_deg or o["dec0"],
                     site=o["site"], date_obs=o["date_obs"], bayer=None,
                     object_name=o["object_name"], extra=None, filter_name=filter_name,
                     seed=seed)
    header["TELESCOP"] = "synthetic mono"
    header["CREATOR"] = "starnode synthetic"
    header["PRODUCER"] = "starnode"
    if with_wcs:
        for k, v in wcs.to_header().items():
            if k in ("DATE-OBS", "MJD-OBS", "MJDREF", "WCSAXES"):
                continue
            header[k] = v
    for k, v in (o["header_extra"] or {}).items():
        if v is None:
            header.remove(k, ignore_missing=True)
        else:
            header[k] = v
    hdul = fits.HDUList([fits.PrimaryHDU(data=data, header=header)])
    tstars = _true_stars(info, wcs, 1, 1.0, o["gain"], o["sky_adu"] + _pedestal(o),
                         o["full_scale"], ny, nx)
    start = Time(o["date_obs"], format="isot", scale="utc")
    mid = start + TimeDelta(o["exptime"] / 2.0, format="sec")
    return hdul, _truth("mono", seq, wcs, wcs, 1, target_mag, tstars, o, mid, o["exptime"],
                        o["gain"])


def write_frame(path: str | os.PathLike[str], hdul: fits.HDUList) -> Path:
    """Write ``hdul`` to ``path`` (a temporary file in the same folder, then an atomic rename)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".synthetic-", suffix=".fit", dir=p.parent)
    os.close(fd)
    try:
        hdul.writeto(tmp, overwrite=True, output_verify="silentfix")
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p
