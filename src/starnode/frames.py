"""Reading a frame: raw Bayer sub, RGB stack or mono; its measured plane, time, site and header.

``load_frame(path, config) -> Frame`` decides the kind from the **array shape** (the Seestar
writes ``BAYERPAT`` into its RGB stacks too):

- 2-D with a Bayer pattern (``BAYERPAT`` or ``camera.bayer_pattern``; a 2-D Seestar frame without
  the card is taken as GRBG): a raw one-shot-colour **sub**. The measured plane is the sum of the
  two green CFA sites of each 2x2 cell (binning 2; plane pixel (i, j) is centred on native pixel
  (2i + 0.5, 2j + 0.5)); filter ``TG`` against V. The raw mosaic is kept for the saturation check
  of every CFA site.
- 3-D ``(3, ny, nx)``: a native **stack** in R, G, B order; the measured plane is the G plane
  (binning 1); filter ``TG``; time uncertain by half the stack's span.
- 2-D without a Bayer pattern: a **mono** frame; its filter is ``photometry.filter_map[FILTER]``
  (unfiltered: ``CV`` against V).

Never the red plane, never a stretch: the plane is the linear ADU of the green pixels.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.coordinates import EarthLocation
from astropy.io import fits
from astropy.time import Time, TimeDelta
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS

from .config import Config, resolve

log = logging.getLogger(__name__)

__all__ = [
    "BAND_OF_FILTER",
    "GREEN_SITES",
    "Frame",
    "FrameRejected",
    "binned_wcs",
    "load_frame",
]

#: Bayer pattern -> (row, col) offsets of the two green sites in a 2x2 cell (numpy indexing).
GREEN_SITES: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    "GRBG": ((0, 0), (1, 1)),
    "GBRG": ((0, 0), (1, 1)),
    "RGGB": ((0, 1), (1, 0)),
    "BGGR": ((0, 1), (1, 0)),
}

#: AAVSO filter code -> band of the comparison magnitudes it is measured against.
BAND_OF_FILTER = {"TG": "V", "TB": "B", "TR": "R", "CV": "V", "CR": "R", "V": "V", "B": "B",
                  "R": "R", "I": "I", "U": "U", "SG": "SG", "SR": "SR", "SI": "SI"}

#: IMAGETYP values that are science light frames.
_LIGHT = {"LIGHT", "LIGHT FRAME", "OBJECT", "SCIENCE", ""}

#: Noise of a bilinear-debayered G plane, relative to the naive per-pixel estimate: an aperture
#: sum counts each real green pixel twice (itself + 4 x 1/4 in its interpolated neighbours), so
#: the source variance doubles and the sky variance of the sum is 3.2 x area x (per-pixel
#: variance) -- see docs/photometry.md. Used for native stacks.
STACK_SOURCE_VAR_FACTOR = 2.0
STACK_SKY_VAR_FACTOR = 3.2


class FrameRejected(Exception):
    """A frame that cannot or must not be measured; ``category`` says which kind of reason."""

    def __init__(self, reason: str, category: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.category = category

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrameRejected, (self.reason, self.category))


@dataclass
class Frame:
    """One frame ready to be measured. ``plane`` is float32, linear ADU."""

    path: Path
    header: fits.Header
    kind: str  # sub | stack | mono
    plane: np.ndarray
    binning: int  # native pixels per plane pixel along each axis
    bayer: str | None
    raw: np.ndarray | None  # the CFA mosaic of a sub (uint16), for saturation checks
    cube: np.ndarray | None  # the (3, ny, nx) stack
    filter: str  # AAVSO filter code
    band: str  # comparison band
    exptime: float  # seconds, per sub
    start: Time  # DATE-OBS (UTC)
    mid: Time  # mid-exposure (UTC)
    time_uncertainty_s: float
    stackcnt: int
    site: EarthLocation | None
    gain_e_per_adu: float  # of the measured plane (a stack's mean: STACKCNT x gain)
    read_noise_e: float  # per measured-plane pixel
    source_var_factor: float
    sky_var_factor: float
    saturation_adu: float
    header_wcs: WCS | None  # the header's WCS, converted to measured-plane pixels
    object: str | None
    telescope: str | None
    instrument: str | None
    imagetyp: str | None
    ra_deg: float | None
    dec_deg: float | None
    pixel_scale_arcsec: float | None  # native pixel
    sha1: str
    synthetic: bool = False
    green: tuple[np.ndarray, np.ndarray] | None = None  # a sub's two green-site planes (raw)

    @property
    def plane_scale_arcsec(self) -> float | None:
        return None if self.pixel_scale_arcsec is None else self.pixel_scale_arcsec * self.binning

    def peak_adu(self, x: float, y: float, radius: float) -> float:
        """Highest value of any raw CFA site / any stack plane / the mono pixel within ``radius``
        measured-plane pixels of the plane position (x, y)."""
        if self.raw is not None:
            arr = self.raw[None]
            b = self.binning
            cx, cy, r = b * x + 0.5 * (b - 1), b * y + 0.5 * (b - 1), b * radius + 1.0
        elif self.cube is not None:
            arr, cx, cy, r = self.cube, x, y, radius
        else:
            arr, cx, cy, r = self.plane[None], x, y, radius
        ny, nx = arr.shape[1:]
        x0, x1 = max(math.floor(cx - r), 0), min(math.ceil(cx + r) + 1, nx)
        y0, y1 = max(math.floor(cy - r), 0), min(math.ceil(cy + r) + 1, ny)
        if x1 <= x0 or y1 <= y0:
            return 0.0
        yy = np.arange(y0, y1)[:, None]
        xx = np.arange(x0, x1)[None, :]
        inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        sub = arr[:, y0:y1, x0:x1]
        return float(sub[:, inside].max()) if inside.any() else 0.0


def binned_wcs(wcs: WCS, binning: int,
               green: tuple[tuple[int, int], tuple[int, int]] | None = None) -> WCS:
    """The WCS of a plane whose pixel (i, j) is the ``binning`` x ``binning`` cell at native
    (b*i, b*j); the plane pixel's centre is the mean position of the cell's ``green`` sites
    (default: the cell centre)."""
    if binning == 1:
        return wcs.deepcopy()
    if green is None:
        off_x = off_y = (binning - 1) / 2.0
    else:
        off_y = (green[0][0] + green[1][0]) / 2.0
        off_x = (green[0][1] + green[1][1]) / 2.0
    if wcs.sip is not None:
        raise ValueError("binned_wcs: a SIP WCS cannot be rebinned here")
    w = wcs.deepcopy()
    # native 0-based x = b * xp + off  ->  native 1-based X = b * (Xp - 1) + off + 1
    w.wcs.crpix = [(wcs.wcs.crpix[0] - 1.0 - off_x) / binning + 1.0,
                   (wcs.wcs.crpix[1] - 1.0 - off_y) / binning + 1.0]
    if wcs.wcs.has_cd():
        w.wcs.cd = wcs.wcs.cd * binning
    else:
        w.wcs.cdelt = wcs.wcs.cdelt * binning
    if wcs.pixel_shape is not None:
        w.pixel_shape = (wcs.pixel_shape[0] // binning, wcs.pixel_shape[1] // binning)
    return w


def _num(header: Mapping[str, Any], *keys: str) -> float | None:
    for k in keys:
        v = header.get(k)
        if v is None or isinstance(v, bool):
            continue
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            return f
    return None


def _str(header: Mapping[str, Any], key: str) -> str | None:
    v = header.get(key)
    if v is None:
        return None
    s = str(v).strip()
    return s or None


def _read(path: Path) -> tuple[bytes, str]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FrameRejected(f"cannot read {path}: {exc.strerror or exc}", "unreadable") from exc
    return raw, hashlib.sha1(raw).hexdigest()


def _open(path: Path, raw: bytes) -> tuple[fits.Header, np.ndarray]:
    if len(raw) < 2880 or not raw.startswith(b"SIMPLE  ="):
        raise FrameRejected(f"{path.name}: not a FITS file ({len(raw)} bytes)", "unreadable")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            hdul = fits.open(io.BytesIO(raw), memmap=False, lazy_load_hdus=True)
            hdu = hdul[0]
            header = hdu.header
            if hdu.header.get("NAXIS", 0) == 0 and len(hdul) > 1:
                hdu = hdul[1]
                header = hdu.header
            info = hdu.fileinfo()
            if info is not None and info["datLoc"] + info["datSpan"] > len(raw):
                raise FrameRejected(
                    f"{path.name}: truncated ({len(raw)} bytes, the header announces "
                    f"{info['datLoc'] + info['datSpan']})", "unreadable")
            data = hdu.data
    except FrameRejected:
        raise
    except (OSError, ValueError, TypeError, IndexError, KeyError) as exc:
        raise FrameRejected(f"{path.name}: unreadable FITS ({exc})", "unreadable") from exc
    if data is None:
        raise FrameRejected(f"{path.name}: no image data", "unreadable")
    return header, data


def _time(header: fits.Header, name: str) -> Time:
    text = _str(header, "DATE-OBS")
    if text is None:
        raise FrameRejected(f"{name}: no DATE-OBS, the time of the exposure is unknown",
                            "unreadable")
    try:
        return Time(text.replace(" ", "T"), format="isot", scale="utc")
    except ValueError as exc:
        raise FrameRejected(f"{name}: DATE-OBS {text!r} is not an ISO time", "unreadable") \
            from exc


def _site(header: fits.Header, cfg: Config, name: str) -> EarthLocation | None:
    lat = cfg.site.latitude
    lon = cfg.site.longitude
    if lat is None or lon is None:
        hlat, hlon = _num(header, "SITELAT", "OBSLAT", "LAT-OBS"), _num(
            header, "SITELONG", "OBSLONG", "LONG-OBS")
        if hlat is not None and hlon is not None and not (hlat == 0.0 and hlon == 0.0) \
                and -90 <= hlat <= 90 and -180 <= hlon <= 360:
            lat = hlat if lat is None else lat
            lon = hlon if lon is None else lon
        elif hlat is not None and hlon is not None:
            log.warning("%s: SITELAT/SITELONG %s/%s unusable; no site (set site.latitude and "
                        "site.longitude)", name, hlat, hlon)
    if lat is None or lon is None:
        return None
    return EarthLocation.from_geodetic(lon=lon, lat=lat, height=cfg.site.elevation)


def _header_wcs(header: fits.Header, binning: int,
                green: tuple[tuple[int, int], tuple[int, int]] | None) -> WCS | None:
    if "CTYPE1" not in header or "RA" not in str(header.get("CTYPE1", "")):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w = WCS(header, naxis=2, relax=True)
        if not w.has_celestial:
            return None
        if binning > 1:
            if w.sip is not None:
                w.sip = None  # a hint only; the solver verifies it
            w = binned_wcs(w, binning, green)
        return w
    except Exception as exc:
        log.debug("header WCS unusable: %s", exc)
        return None


def load_frame(path: str | os.PathLike[str], config: Any = None) -> Frame:
    """Read ``path`` and return a :class:`Frame`; raises :class:`FrameRejected`."""
    cfg = resolve(config)
    p = Path(path).resolve()
    raw_bytes, sha1 = _read(p)
    header, data = _open(p, raw_bytes)
    name = p.name
    imagetyp = _str(header, "IMAGETYP")
    if imagetyp is not None and imagetyp.upper() not in _LIGHT:
        raise FrameRejected(f"{name}: IMAGETYP={imagetyp!r} is not a light frame", "not_light")
    exptime = _num(header, "EXPTIME", "EXPOSURE")
    if exptime is None or exptime <= 0:
        raise FrameRejected(f"{name}: no positive EXPTIME/EXPOSURE", "unreadable")
    start = _time(header, name)
    site = _site(header, cfg, name)
    cam = cfg.camera
    bayer = (cam.bayer_pattern or _str(header, "BAYERPAT") or "").upper() or None
    instrument = _str(header, "INSTRUME")
    telescope = _str(header, "TELESCOP")
    seestar = "seestar" in f"{instrument} {telescope} {header.get('CREATOR', '')}".lower()
    arr = np.asarray(data)
    if not np.issubdtype(arr.dtype, np.number):
        raise FrameRejected(f"{name}: non-numeric image data", "unreadable")
    gain = float(cam.gain_e_per_adu)
    rn = float(cam.read_noise_e)
    raw = cube = None
    green_sites = None
    stackcnt = int(_num(header, "STACKCNT") or 1)
    src_f = sky_f = 1.0
    green = None
    if arr.ndim == 3 and arr.shape[0] == 3:
        kind, binning = "stack", 1
        cube = arr
        plane = arr[1].astype(np.float32)
        gain *= max(stackcnt, 1)
        rn = rn  # per sub; in the mean the read noise is in the measured sky scatter
        src_f, sky_f = STACK_SOURCE_VAR_FACTOR, STACK_SKY_VAR_FACTOR
        filt = "TG"
    elif arr.ndim == 2 and (bayer is not None or seestar):
        if bayer is None:
            bayer = "GRBG"
            log.info("%s: 2-D Seestar frame without BAYERPAT, assuming GRBG", name)
        if bayer not in GREEN_SITES:
            raise FrameRejected(f"{name}: unsupported Bayer pattern {bayer!r}", "unreadable")
        if arr.shape[0] < 4 or arr.shape[1] < 4:
            raise FrameRejected(f"{name}: image too small {arr.shape}", "unreadable")
        kind, binning = "sub", 2
        green = GREEN_SITES[bayer]
        ny, nx = (arr.shape[0] // 2) * 2, (arr.shape[1] // 2) * 2
        raw = arr[:ny, :nx]
        (r0, c0), (r1, c1) = green
        green_sites = (raw[r0::2, c0::2], raw[r1::2, c1::2])
        plane = green_sites[0].astype(np.float32)
        plane += green_sites[1]
        rn = rn * math.sqrt(2.0)
        filt = "TG"
    elif arr.ndim == 2:
        kind, binning = "mono", 1
        plane = arr.astype(np.float32)
        fcard = (_str(header, "FILTER") or "").upper()
        fmap = {str(k).upper(): v for k, v in cfg.photometry.filter_map.items()}
        if fcard not in fmap:
            raise FrameRejected(f"{name}: FILTER={fcard!r} has no AAVSO filter code (add it to "
                                "photometry.filter_map)", "config")
        filt = fmap[fcard].upper()
    else:
        raise FrameRejected(f"{name}: unsupported image shape {arr.shape}", "unreadable")
    band = BAND_OF_FILTER.get(filt)
    if band is None:
        raise FrameRejected(f"{name}: filter {filt!r} has no comparison band", "config")
    if not np.isfinite(plane).all():
        plane = np.nan_to_num(plane, nan=0.0, posinf=0.0, neginf=0.0)
    if kind == "stack":
        total = _num(header, "TOTALEXP")
        span = total if (total and stackcnt > 1) else stackcnt * exptime
        mid = start + TimeDelta(span / 2.0, format="sec")
        tunc = span / 2.0
    else:
        mid = start + TimeDelta(exptime / 2.0, format="sec")
        tunc = 0.0
        end_text = _str(header, "DATE-EXP")
        if end_text:
            try:
                end = Time(end_text.replace(" ", "T"), format="isot", scale="utc")
                dur = (end - start).to_value("s")
                if 0 < dur < 10 * exptime + 60:
                    mid = start + TimeDelta(dur / 2.0, format="sec")
                else:
                    log.warning("%s: DATE-EXP %s inconsistent with DATE-OBS; using EXPTIME",
                                name, end_text)
            except ValueError:
                log.warning("%s: DATE-EXP %r unreadable; using EXPTIME", name, end_text)
    scale = cam.pixel_scale_arcsec
    if scale is None:
        fl, px = _num(header, "FOCALLEN"), _num(header, "XPIXSZ")
        if fl and px and fl > 0 and px > 0:
            scale = 206.264806 * px / fl
    ra, dec = _num(header, "RA", "OBJCTRA_DEG"), _num(header, "DEC", "OBJCTDEC_DEG")
    return Frame(
        path=p, header=header, kind=kind, plane=plane, binning=binning, bayer=bayer,
        raw=raw, cube=cube, filter=filt, band=band, exptime=float(exptime), start=start,
        mid=mid, time_uncertainty_s=float(tunc), stackcnt=stackcnt, site=site,
        gain_e_per_adu=gain, read_noise_e=rn, source_var_factor=src_f, sky_var_factor=sky_f,
        saturation_adu=float(cam.saturation_adu),
        header_wcs=_header_wcs(header, binning, green), object=_str(header, "OBJECT"),
        telescope=telescope, instrument=instrument, imagetyp=imagetyp,
        ra_deg=ra, dec_deg=dec, pixel_scale_arcsec=scale, sha1=sha1,
        synthetic=bool(header.get("SYNTHET", False)), green=green_sites,
    )
