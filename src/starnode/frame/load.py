"""Reading a frame: raw Bayer sub, RGB stack or mono; its measured plane, time, site and header.

``load_frame(path, config) -> Frame`` decides the kind from the **array shape** (the Seestar
writes ``BAYERPAT`` into its RGB stacks too):

- 2-D with a Bayer pattern (``BAYERPAT`` or ``camera.bayer_pattern``; a 2-D Seestar frame without
  the card is given its model's pattern from :mod:`starnode.instruments`): a raw one-shot-colour
  **sub**. The measured plane is the sum of the two green CFA sites of each 2x2 cell (binning 2;
  plane pixel (i, j) is centred on native pixel (2i + 0.5, 2j + 0.5)); filter ``TG`` against V.
  The raw mosaic is kept for the saturation check of every CFA site.
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
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.coordinates import EarthLocation
from astropy.io import fits
from astropy.io.fits.verify import VerifyError
from astropy.time import Time
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS

from ..config import Config, resolve
from ..errors import FrameRejected, RejectCategory
from ..instruments import profile
from .admission import admit, max_frame_bytes
from .header import card_float as _num
from .header import card_text as _str
from .header import clean_cards
from .timesite import exposure_start, mid_exposure, site_location
from .wcs import GreenSites, binned_wcs, header_wcs, pixel_scale

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
GREEN_SITES: dict[str, GreenSites] = {
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
    sha256: str | None = None  # of the file content, when asked for (the hub's frame key)
    #: the star detector's extractions of ``plane`` (:mod:`.detect`): made once, shared by the
    #: solver and the starlist
    extractions: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)
    #: :attr:`header_wcs` once read
    _header_wcs: tuple[WCS | None] | None = field(default=None, init=False, repr=False,
                                                  compare=False)
    #: ``(raw, levels)``: the sky level of each CFA site class of ``raw``
    #: (:func:`starnode.photometry.cfa.site_levels`), computed once for every star list the
    #: frame's photometry measures
    site_levels: tuple[np.ndarray, np.ndarray] | None = field(default=None, init=False,
                                                              repr=False, compare=False)
    #: the plane :func:`load_frame` made: finite (made from integers, or its non-finite pixels
    #: replaced); see :attr:`plane_is_finite`
    loaded_plane: np.ndarray | None = field(default=None, init=False, repr=False,
                                            compare=False)

    @property
    def header_wcs(self) -> WCS | None:
        """The header's WCS, converted to measured-plane pixels (None: it has none).

        Read when first asked for: a frame whose solution is cached never needs it.
        """
        if self._header_wcs is None:
            green = GREEN_SITES[self.bayer] if self.kind == "sub" and self.bayer else None
            self._header_wcs = (header_wcs(self.header, self.binning, green),)
        return self._header_wcs[0]

    @property
    def plane_is_finite(self) -> bool:
        """Whether ``plane`` is the one :func:`load_frame` made (every pixel finite): the star
        detector then need not check it again."""
        return self.loaded_plane is not None and self.loaded_plane is self.plane

    @property
    def plane_scale_arcsec(self) -> float | None:
        return None if self.pixel_scale_arcsec is None else self.pixel_scale_arcsec * self.binning

    def _peak_grid(self, x: Any, y: Any, radius: float) -> tuple[np.ndarray, Any, Any, float]:
        """The array :meth:`peak_adu` searches (raw sites, stack planes or the mono plane, as
        (planes, rows, columns)) and the circle's centre and radius in its pixels, for plane
        positions ``x``, ``y`` (numbers or arrays)."""
        if self.raw is not None:
            b = self.binning
            return (self.raw[None], b * x + 0.5 * (b - 1), b * y + 0.5 * (b - 1),
                    b * radius + 1.0)
        if self.cube is not None:
            return self.cube, x, y, radius
        return self.plane[None], x, y, radius

    def peak_adu(self, x: float, y: float, radius: float) -> float:
        """Highest value of any raw CFA site / any stack plane / the mono pixel within ``radius``
        measured-plane pixels of the plane position (x, y)."""
        arr, cx, cy, r = self._peak_grid(x, y, radius)
        ny, nx = arr.shape[1:]
        x0, x1 = max(math.floor(cx - r), 0), min(math.ceil(cx + r) + 1, nx)
        y0, y1 = max(math.floor(cy - r), 0), min(math.ceil(cy + r) + 1, ny)
        if x1 <= x0 or y1 <= y0:
            return 0.0
        yy = np.arange(y0, y1)[:, None]
        xx = np.arange(x0, x1)[None, :]
        inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        return float(arr[:, y0:y1, x0:x1][:, inside].max()) if inside.any() else 0.0

    def peak_adus(self, xy: np.ndarray, radius: float) -> np.ndarray:
        """:meth:`peak_adu` of every plane position (x, y) of ``xy``, all at once: the same
        values (the highest value within the same circle of each, 0 where none), without a
        Python step per star.

        Parameters
        ----------
        xy : numpy.ndarray
            (n, 2) plane positions (finite).
        radius : float
            Plane pixels.

        Returns
        -------
        numpy.ndarray
            n values (float).
        """
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        if len(xy) == 0 or not np.isfinite(xy).all():  # as peak_adu does (a NaN raises)
            return np.array([self.peak_adu(x, y, radius) for x, y in xy], dtype=float)
        arr, cx, cy, r = self._peak_grid(xy[:, 0], xy[:, 1], radius)
        ny, nx = arr.shape[1:]
        # peak_adu's boxes (math.floor / ceil of the same doubles), all of one size, each
        # box's own pixels marked
        x0 = np.maximum(np.floor(cx - r), 0).astype(int)
        x1 = np.minimum(np.ceil(cx + r) + 1, nx).astype(int)
        y0 = np.maximum(np.floor(cy - r), 0).astype(int)
        y1 = np.minimum(np.ceil(cy + r) + 1, ny).astype(int)
        width = max(int((x1 - x0).max()), 1)
        height = max(int((y1 - y0).max()), 1)
        cols = x0[:, None] + np.arange(width)  # (n, width)
        rows = y0[:, None] + np.arange(height)
        # the circle as peak_adu tests it: (column - cx)^2 + (row - cy)^2 <= r^2
        inside = (((cols[:, None, :] - cx[:, None, None]) ** 2
                   + (rows[:, :, None] - cy[:, None, None]) ** 2 <= r * r)
                  & (cols < x1[:, None])[:, None, :] & (rows < y1[:, None])[:, :, None])
        vals = arr[:, np.minimum(rows, ny - 1)[:, :, None], np.minimum(cols, nx - 1)[:, None, :]]
        top = np.where(inside[None], vals, -np.inf).max(axis=(0, 2, 3))
        return np.where(inside.any(axis=(1, 2)), top, 0.0).astype(float)


def _read(path: Path) -> tuple[bytes, str]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FrameRejected(f"cannot read {path}: {exc.strerror or exc}", "unreadable") from exc
    return raw, hashlib.sha1(raw).hexdigest()


def _unsigned16(hdu: Any, raw: bytes, info: Mapping[str, Any] | None) -> np.ndarray | None:
    """The image of the usual camera frame (16-bit unsigned: BITPIX 16, BZERO 32768, BSCALE 1
    or none, no BLANK) straight from the file's bytes; None: any other image (astropy reads it).

    The same array astropy makes (its ``_convert_pseudo_integer``: a native ``uint16``, the
    header unchanged) in one pass over the data instead of a copy, a byte swap and a
    subtraction: flipping the sign bit of the big-endian value is adding 32768 modulo 2**16
    (issue 18: 12 -> 1.6 ms on a 1080 x 1920 RGB stack).
    """
    h = hdu.header
    # exactly these classes (a compressed image is an ImageHDU too; its bytes are a table)
    if (info is None or type(hdu) not in (fits.PrimaryHDU, fits.ImageHDU)
            or not _plain_unsigned16(h)):
        return None
    shape = hdu.shape
    if not shape or min(shape) < 1:
        return None
    count = math.prod(shape)
    if info["datLoc"] + 2 * count > len(raw):
        return None
    return _flipped16(raw, info["datLoc"], shape)


def _flipped16(raw: bytes, offset: int, shape: tuple[int, ...]) -> np.ndarray:
    """The native ``uint16`` image of big-endian 16-bit pixels with BZERO 32768 at ``offset``
    in ``raw``: flipping the sign bit of the big-endian value is adding 32768 modulo 2**16."""
    signed = np.frombuffer(raw, dtype=">u2", count=math.prod(shape), offset=offset)
    return (signed ^ np.uint16(0x8000)).reshape(shape)


def _plain_unsigned16(header: fits.Header) -> bool:
    """16-bit unsigned pixels as the camera writes them: BITPIX 16, BZERO 32768, BSCALE 1 (or
    none), no BLANK, no extra parameters or groups."""
    return (header.get("BITPIX") == 16 and "BLANK" not in header
            and header.get("BZERO") == 32768 and header.get("BSCALE", 1) == 1
            and header.get("PCOUNT", 0) == 0 and header.get("GCOUNT", 1) == 1)


def _plain_primary(header: fits.Header) -> tuple[int, ...] | None:
    """The image shape of a primary header that astropy reads as a plain 16-bit unsigned
    :class:`~astropy.io.fits.PrimaryHDU` with data (what :func:`_unsigned16` reads); None:
    anything else (astropy opens it)."""
    cards = header.cards
    if (not len(cards) or cards[0].keyword != "SIMPLE" or cards[0].value is not True
            or "GROUPS" in header or not _plain_unsigned16(header)):
        return None
    naxis = header.get("NAXIS")
    if type(naxis) is not int or not 1 <= naxis <= 3:
        return None
    dims = [header.get(f"NAXIS{k}") for k in range(naxis, 0, -1)]
    if not all(type(d) is int and d >= 1 for d in dims):
        return None
    return tuple(dims)  # type: ignore[arg-type]


def _admitted_image(path: Path, raw: bytes, admitted: tuple[bytes, Any] | None
                    ) -> tuple[fits.Header, np.ndarray] | None:
    """The header admission parsed (:func:`.admission.admit`) and the image, when the file
    still starts with those header blocks and is the usual camera frame: the header is not
    parsed twice (astropy's ``fits.open`` reads the same cards into the same header).
    None: astropy opens the file."""
    if admitted is None:
        return None
    blocks, header = admitted
    shape = _plain_primary(header)
    if shape is None or not raw.startswith(blocks):
        return None
    data_loc = len(blocks)
    size = 2 * math.prod(shape)
    span = size + -size % 2880
    if data_loc + span > len(raw):
        raise FrameRejected(f"{path.name}: truncated ({len(raw)} bytes, the header announces "
                            f"{data_loc + span})", "unreadable")
    return header, _flipped16(raw, data_loc, shape)


def _open(path: Path, raw: bytes, admitted: tuple[bytes, Any] | None = None
          ) -> tuple[fits.Header, np.ndarray]:
    if len(raw) < 2880 or not raw.startswith(b"SIMPLE  ="):
        raise FrameRejected(f"{path.name}: not a FITS file ({len(raw)} bytes)", "unreadable")
    known = _admitted_image(path, raw, admitted)
    if known is not None:
        return known
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            hdul = fits.open(io.BytesIO(raw), memmap=False, lazy_load_hdus=True)
            hdu = hdul[0]
            if not isinstance(hdu, fits.PrimaryHDU | fits.ImageHDU):  # SIMPLE = F
                raise FrameRejected(f"{path.name}: not a standard FITS file "
                                    f"(SIMPLE = {hdu.header.get('SIMPLE')})", "unreadable")
            header = hdu.header
            if hdu.header.get("NAXIS", 0) == 0 and len(hdul) > 1:
                hdu = hdul[1]
                header = hdu.header
            info = hdu.fileinfo()
            if info is not None and info["datLoc"] + info["datSpan"] > len(raw):
                raise FrameRejected(
                    f"{path.name}: truncated ({len(raw)} bytes, the header announces "
                    f"{info['datLoc'] + info['datSpan']})", "unreadable")
            data = _unsigned16(hdu, raw, info)
            if data is None:
                data = hdu.data
    except FrameRejected:
        raise
    except (OSError, ValueError, TypeError, IndexError, KeyError) as exc:
        raise FrameRejected(f"{path.name}: unreadable FITS ({exc})", "unreadable") from exc
    if data is None:
        raise FrameRejected(f"{path.name}: no image data", "unreadable")
    return header, data


#: Longest accepted exposure of one frame (seconds): EXPTIME=1e300 is a broken header.
MAX_EXPTIME_S = 86400.0
#: Site cards whose value must be a finite number (``SITELONG = 'NaN'`` means no site).
_SITE_CARDS = ("SITELAT", "SITELONG", "OBSLAT", "OBSLONG", "LAT-OBS", "LONG-OBS")


#: One 80-character card that astropy surely parses (its ``Card.value`` cannot raise): a
#: standard keyword, the value indicator, then a logical, an integer, a plain real or a string
#: without quotes inside, and an optional comment -- a strict subset of astropy's own grammar
#: (``Card._value_NFSC_RE``). Any other card is parsed by astropy to find out.
_SURELY_PARSES = re.compile(
    r"[A-Z0-9_-]{1,8} *= +(?:[TF]|[+-]?[0-9]+|[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+)"
    r"(?:[EeDd][+-]?[0-9]+)?|'[ -&(-~]*') *(?:/.*)?")


def _surely_parses(image: Any) -> bool:
    """Whether a card image is one :data:`_SURELY_PARSES` accepts (80 characters, the value
    indicator in columns 9-10)."""
    return (type(image) is str and len(image) == 80 and image[8:10] == "= "
            and _SURELY_PARSES.fullmatch(image) is not None)


def _drop_unusable_cards(header: fits.Header, name: str) -> None:
    """Remove cards astropy cannot parse (``SITELONG = NaN``) and site cards that are not a
    finite number, so that no later reader of the header trips on them."""
    cards = header.cards
    for i in reversed(range(len(header))):  # by index: a garbage keyword may hold '?' or '*'
        card = cards[i]
        # astropy parses a value when first asked for it: the usual card need not be parsed
        # here only to learn that it parses (astropy keeps the image it was read from)
        if card.keyword not in _SITE_CARDS and _surely_parses(getattr(card, "_image", None)):
            continue
        try:
            value = card.value
        except VerifyError:
            log.warning("%s: unparsable header card %r ignored", name, card.keyword)
            del header[i]
            continue
        if card.keyword in _SITE_CARDS and _num({"v": value}, "v") is None:
            log.warning("%s: %s = %r is not a number; ignored (no site from the header)",
                        name, card.keyword, value)
            del header[i]


def _plausible_header(header: fits.Header, lossy: frozenset[str], name: str) -> float:
    """The exposure time, once the header is known to hold nothing implausible.

    Raises
    ------
    FrameRejected
        ``implausible``: OBJECT has characters with no ASCII form, EXPTIME is beyond a day;
        ``unreadable``: no positive EXPTIME.
    """
    _drop_unusable_cards(header, name)
    if "OBJECT" in lossy:
        raise FrameRejected(f"{name}: OBJECT {_str(header, 'OBJECT')!r} has characters with no "
                            "ASCII form; set photometry.target to the star's AAVSO name",
                            RejectCategory.IMPLAUSIBLE)
    exptime = _num(header, "EXPTIME", "EXPOSURE")
    if exptime is None or exptime <= 0:
        raise FrameRejected(f"{name}: no positive EXPTIME/EXPOSURE", RejectCategory.UNREADABLE)
    if exptime > MAX_EXPTIME_S:
        raise FrameRejected(f"{name}: EXPTIME {exptime:g} s is implausible (more than a day)",
                            RejectCategory.IMPLAUSIBLE)
    return exptime


@dataclass
class _Layout:
    """How the measured plane comes out of the array (one per frame kind)."""

    kind: str
    binning: int
    plane: np.ndarray
    filter: str
    bayer: str | None = None
    raw: np.ndarray | None = None
    cube: np.ndarray | None = None
    green: GreenSites | None = None
    green_planes: tuple[np.ndarray, np.ndarray] | None = None
    gain_factor: float = 1.0
    read_noise_factor: float = 1.0
    source_var_factor: float = 1.0
    sky_var_factor: float = 1.0


def _stack_layout(arr: np.ndarray, stackcnt: int) -> _Layout:
    # per sub read noise; in the mean it is in the measured sky scatter
    return _Layout("stack", 1, arr[1].astype(np.float32), "TG", cube=arr,
                   gain_factor=float(max(stackcnt, 1)),
                   source_var_factor=STACK_SOURCE_VAR_FACTOR,
                   sky_var_factor=STACK_SKY_VAR_FACTOR)


def _sub_layout(arr: np.ndarray, bayer: str | None, name: str, header: fits.Header) -> _Layout:
    if bayer is None:  # the pattern of the model the header names (else the S50's)
        inst = profile(header=header)
        bayer = inst.bayer_pattern
        log.info("%s: 2-D %s frame without BAYERPAT, assuming %s", name, inst.name, bayer)
    if bayer not in GREEN_SITES:
        raise FrameRejected(f"{name}: unsupported Bayer pattern {bayer!r}", "unreadable")
    if arr.shape[0] < 4 or arr.shape[1] < 4:
        raise FrameRejected(f"{name}: image too small {arr.shape}", "unreadable")
    green = GREEN_SITES[bayer]
    ny, nx = (arr.shape[0] // 2) * 2, (arr.shape[1] // 2) * 2
    raw = arr[:ny, :nx]
    (r0, c0), (r1, c1) = green
    sites = (raw[r0::2, c0::2], raw[r1::2, c1::2])
    plane = sites[0].astype(np.float32)
    plane += sites[1]
    return _Layout("sub", 2, plane, "TG", bayer=bayer, raw=raw, green=green,
                   green_planes=sites, read_noise_factor=math.sqrt(2.0))


def _mono_layout(arr: np.ndarray, header: fits.Header, filter_map: Mapping[str, str],
                 name: str) -> _Layout:
    fcard = (_str(header, "FILTER") or "").upper()
    fmap = {str(k).upper(): v for k, v in filter_map.items()}
    if fcard not in fmap:
        raise FrameRejected(f"{name}: FILTER={fcard!r} has no AAVSO filter code (add it to "
                            "photometry.filter_map)", "config")
    return _Layout("mono", 1, arr.astype(np.float32), fmap[fcard].upper())


def _layout(arr: np.ndarray, header: fits.Header, cfg: Config, name: str,
            stackcnt: int) -> _Layout:
    """Decide the kind from the array shape (see the module docstring)."""
    if not np.issubdtype(arr.dtype, np.number):
        raise FrameRejected(f"{name}: non-numeric image data", "unreadable")
    bayer = (cfg.camera.bayer_pattern or _str(header, "BAYERPAT") or "").upper() or None
    seestar = "seestar" in (f"{_str(header, 'INSTRUME')} {_str(header, 'TELESCOP')} "
                            f"{header.get('CREATOR', '')}").lower()
    if arr.ndim == 3 and arr.shape[0] == 3:
        lay = _stack_layout(arr, stackcnt)
        lay.bayer = bayer  # the Seestar keeps BAYERPAT in its stacks
    elif arr.ndim == 2 and (bayer is not None or seestar):
        lay = _sub_layout(arr, bayer, name, header)
    elif arr.ndim == 2:
        lay = _mono_layout(arr, header, cfg.photometry.filter_map, name)
    else:
        raise FrameRejected(f"{name}: unsupported image shape {arr.shape}", "unreadable")
    # an integer array makes a finite plane: the pass over it is only for float data
    if not np.issubdtype(arr.dtype, np.integer) and not np.isfinite(lay.plane).all():
        lay.plane = np.nan_to_num(lay.plane, nan=0.0, posinf=0.0, neginf=0.0)
    return lay


def load_frame(path: str | os.PathLike[str], config: Config | None = None, *,
               sha256: bool = False) -> Frame:
    """Read a FITS frame and prepare its measured plane.

    Parameters
    ----------
    path : str or os.PathLike
        The FITS file.
    config : Config, optional
        The configuration (default: the built-in defaults).
    sha256 : bool
        Also hash the content with SHA-256 (``Frame.sha256``), from the bytes already read:
        the file is read once whoever needs its hash.

    Returns
    -------
    Frame

    Raises
    ------
    FrameRejected
        ``not_light``, ``unreadable`` or ``config`` (unknown filter), with the reason.
    """
    cfg = resolve(config)
    p = Path(path).resolve()
    admitted = admit(path, max_frame_bytes(cfg))  # a FIFO, a device or a gigabyte bomb: never read
    raw_bytes, sha1 = _read(p)
    digest = hashlib.sha256(raw_bytes).hexdigest() if sha256 else None
    clean_bytes, lossy = clean_cards(raw_bytes)
    header, data = _open(p, clean_bytes, admitted)
    del clean_bytes
    name = p.name
    imagetyp = _str(header, "IMAGETYP")
    if imagetyp is not None and imagetyp.upper() not in _LIGHT:
        raise FrameRejected(f"{name}: IMAGETYP={imagetyp!r} is not a light frame", "not_light")
    if cfg.photometry.target:  # OBJECT is not used
        lossy = lossy - {"OBJECT"}
    exptime = _plausible_header(header, lossy, name)
    start = exposure_start(header, name)
    site = site_location(header, cfg.site.latitude, cfg.site.longitude, cfg.site.elevation, name)
    stackcnt = int(_num(header, "STACKCNT") or 1)
    lay = _layout(np.asarray(data), header, cfg, name, stackcnt)
    band = BAND_OF_FILTER.get(lay.filter)
    if band is None:
        raise FrameRejected(f"{name}: filter {lay.filter!r} has no comparison band", "config")
    mid, tunc = mid_exposure(header, start, exptime, stack=lay.kind == "stack",
                             stackcnt=stackcnt, name=name)
    cam = cfg.camera
    frame = Frame(
        path=p, header=header, kind=lay.kind, plane=lay.plane, binning=lay.binning,
        bayer=lay.bayer, raw=lay.raw, cube=lay.cube, filter=lay.filter, band=band,
        exptime=float(exptime), start=start, mid=mid, time_uncertainty_s=float(tunc),
        stackcnt=stackcnt, site=site, gain_e_per_adu=float(cam.gain_e_per_adu) * lay.gain_factor,
        read_noise_e=float(cam.read_noise_e) * lay.read_noise_factor,
        source_var_factor=lay.source_var_factor, sky_var_factor=lay.sky_var_factor,
        saturation_adu=float(cam.saturation_adu),
        object=_str(header, "OBJECT"),
        telescope=_str(header, "TELESCOP"), instrument=_str(header, "INSTRUME"),
        imagetyp=imagetyp, ra_deg=_num(header, "RA", "OBJCTRA_DEG"),
        dec_deg=_num(header, "DEC", "OBJCTDEC_DEG"),
        pixel_scale_arcsec=pixel_scale(header, cam.pixel_scale_arcsec), sha1=sha1,
        synthetic=bool(header.get("SYNTHET", False)), green=lay.green_planes, sha256=digest,
    )
    frame.loaded_plane = lay.plane  # finite: _layout made it so
    return frame
