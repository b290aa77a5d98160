"""The frame makers: a raw S50 sub, a native RGB stack, a mono frame, and writing them.

Each takes the shared scene (:mod:`.scene`), reads it out like its sensor and returns the
FITS frame with its :class:`~starnode.synthetic.truth.Truth`.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.time import Time, TimeDelta

from ..catalogs import Sequence
from .scene import (
    DEMO_SEQUENCE_FILE,
    S50_SCALE_ARCSEC,
    _header,
    _noisy,
    _offset,
    _pedestal,
    _scene,
    apply_header_extra,
)
from .truth import Truth, _true_stars, _truth, plane_tan_wcs, tan_wcs

__all__ = ["SHARP_CORE_SUB", "make_mono", "make_stack", "make_sub", "write_frame"]

#: :func:`make_sub` options of an older-firmware-like sub (issue 20): Moffat stars of 1.5
#: green-plane px with a sharp 1.1 native-px core (give ``core_fraction``), 1 % pixel-response
#: non-uniformity, a 450 ADU pedestal, random sub-pixel phases, at airmass 1.2.
SHARP_CORE_SUB: dict[str, Any] = {
    "fwhm_arcsec": 1.5 * 2 * S50_SCALE_ARCSEC, "pointing_offset_arcmin": (6.0, 2.0),
    "rotation_deg": 30.0, "dither_px": 3.0, "prnu": 0.01, "field_seed": 7, "psf": "moffat",
    "moffat_beta": 2.5, "core_fwhm_px": 1.1, "zero_clip": False, "pedestal_adu": 450,
    "sky_adu": 350, "airmass": 1.2}


def make_sub(sequence: str | os.PathLike[str] | Sequence = DEMO_SEQUENCE_FILE, *,
             target_mag: float = 11.5, seed: int = 0, **options: Any
             ) -> tuple[fits.HDUList, Truth]:
    """A raw Bayer S50 sub with no WCS. See the module docstring for the options.

    Parameters
    ----------
    sequence : path or Sequence
        The chart whose stars are rendered.
    target_mag : float
        V of the variable.
    seed : int
        Everything random derives from it.
    **options
        See :mod:`starnode.synthetic`.

    Returns
    -------
    (astropy.io.fits.HDUList, Truth)
    """
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
    plane_wcs = plane_tan_wcs(o["ra0"], o["dec0"], ny, nx, o["scale_arcsec"], o["rot"],
                              o["mirrored"])
    # measured plane = sum of the two green sites of each 2x2 cell: its flux is half the green
    # flux falling on the cells' area.
    tstars = _true_stars(info, plane_wcs, 2, 0.5, o["gain"], o["sky_adu"] + _pedestal(o),
                         o["full_scale"],
                         ny, nx)
    start = Time(o["date_obs"], format="isot", scale="utc")
    mid = start + TimeDelta(o["exptime"] / 2.0, format="sec")
    return hdul, _truth("sub", seq, wcs, plane_wcs, 2, target_mag, tstars, o, mid,
                        o["exptime"], o["gain"])


def make_stack(sequence: str | os.PathLike[str] | Sequence = DEMO_SEQUENCE_FILE, *,
               target_mag: float = 11.5, seed: int = 0, stackcnt: int = 20,
               wcs_error_arcmin: float = 1.0, cadence_s: float | None = None, **options: Any
               ) -> tuple[fits.HDUList, Truth]:
    """A native (3, ny, nx) R,G,B stack of ``stackcnt`` subs with an on-board WCS ~1' off.

    Parameters
    ----------
    sequence, target_mag, seed, **options
        As for :func:`make_sub`.
    stackcnt : int
        Subs in the stack.
    wcs_error_arcmin : float
        How far off the on-board WCS is.
    cadence_s : float, optional
        Sub start to sub start (default EXPTIME + 1.3 s).

    Returns
    -------
    (astropy.io.fits.HDUList, Truth)
    """
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
    apply_header_extra(header, o["header_extra"])
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
    (with ``colour_term``) whatever the filter, so a V frame's truth is V.

    Parameters
    ----------
    sequence, target_mag, seed, **options
        As for :func:`make_sub`.
    filter_name : str
        FILTER card.
    with_wcs : bool
        Write the true TAN WCS into the header.

    Returns
    -------
    (astropy.io.fits.HDUList, Truth)
    """
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
    apply_header_extra(header, o["header_extra"])
    hdul = fits.HDUList([fits.PrimaryHDU(data=data, header=header)])
    tstars = _true_stars(info, wcs, 1, 1.0, o["gain"], o["sky_adu"] + _pedestal(o),
                         o["full_scale"], ny, nx)
    start = Time(o["date_obs"], format="isot", scale="utc")
    mid = start + TimeDelta(o["exptime"] / 2.0, format="sec")
    return hdul, _truth("mono", seq, wcs, wcs, 1, target_mag, tstars, o, mid, o["exptime"],
                        o["gain"])


def write_frame(path: str | os.PathLike[str], hdul: fits.HDUList) -> Path:
    """Write ``hdul`` to ``path`` (a temporary file in the same folder, then an atomic rename).

    Parameters
    ----------
    path : str or os.PathLike
    hdul : astropy.io.fits.HDUList

    Returns
    -------
    pathlib.Path
    """
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
