"""WCS facts of a frame: the header's WCS, its conversion to a binned plane, the pixel scale.

Why one module: the frame reader (hint for the solver), the astrometry solver (its own header
fallback and cache) and the photometry all need "which sky position is this plane pixel" and
"how many arcseconds is a pixel"; in 0.1.0 each had its own copy, with subtly different rules.
Here they live once, on top of :mod:`astropy.wcs`.

Conventions: pixel coordinates are 0-based (numpy); a plane *binned* by ``b`` has its pixel
(i, j) made of the native ``b x b`` cell at (b*i, b*j), and its centre at the mean native
position of the cell's green sites (the cell centre unless told otherwise).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from .header import card_float

log = logging.getLogger(__name__)

__all__ = [
    "ARCSEC_PER_RAD",
    "GreenSites",
    "binned_wcs",
    "header_wcs",
    "pixel_scale",
    "wcs_scale_arcsec",
]

ARCSEC_PER_RAD = math.degrees(1.0) * 3600.0
#: (row, col) offsets of the two green sites in a 2x2 Bayer cell.
GreenSites = tuple[tuple[int, int], tuple[int, int]]


def binned_wcs(wcs: WCS, binning: int, green: GreenSites | None = None) -> WCS:
    """The WCS of a plane binned ``binning`` x ``binning`` from the plane ``wcs`` describes.

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        WCS of the native plane (no SIP distortion when ``binning`` > 1).
    binning : int
        Native pixels per binned pixel along each axis.
    green : ((int, int), (int, int)), optional
        (row, col) of the two green sites in a cell: the binned pixel's centre is their mean
        position. Default: the cell centre.

    Returns
    -------
    astropy.wcs.WCS
        A new WCS (the input is not changed).

    Raises
    ------
    ValueError
        ``wcs`` has SIP distortion (it cannot be rebinned exactly here).
    """
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


def _as_fits_header(header: Mapping[str, Any]) -> fits.Header:
    if isinstance(header, fits.Header):
        return header
    hdr = fits.Header()
    for k, v in header.items():
        key = str(k).upper()
        if key in ("COMMENT", "HISTORY", "") or isinstance(v, (dict, list, tuple)):
            continue
        try:
            hdr[key] = v
        except (ValueError, KeyError):
            continue
    return hdr


def header_wcs(header: Mapping[str, Any], binning: int = 1,
               green: GreenSites | None = None) -> WCS | None:
    """The celestial WCS a frame's header carries, in the pixels of its measured plane.

    Parameters
    ----------
    header : Mapping
        An :class:`astropy.io.fits.Header` or a plain dict of cards (e.g. from
        :func:`starnode.frame.header.read_header`).
    binning : int
        Native pixels per measured-plane pixel; > 1 drops SIP terms (the result is a hint for
        the solver, which verifies it) and rebins with :func:`binned_wcs`.
    green : ((int, int), (int, int)), optional
        The green sites of a Bayer cell, see :func:`binned_wcs`.

    Returns
    -------
    astropy.wcs.WCS or None
        None when the header has no RA/Dec WCS or it cannot be read (logged at DEBUG).
    """
    if "RA" not in str(header.get("CTYPE1", "") or ""):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w = WCS(_as_fits_header(header), naxis=2, relax=True)
        if not w.has_celestial:
            return None
        if binning > 1:
            if w.sip is not None:
                w.sip = None
            w = binned_wcs(w, binning, green)
        return w
    except Exception as exc:  # astropy raises many kinds on odd headers: a hint only
        log.debug("header WCS unusable: %s", exc)
        return None


def pixel_scale(header: Mapping[str, Any], configured: float | None = None) -> float | None:
    """Arcseconds per native sensor pixel.

    Parameters
    ----------
    header : Mapping
        FITS cards; FOCALLEN (mm) and XPIXSZ (micron) are used.
    configured : float, optional
        ``camera.pixel_scale_arcsec``: wins when set (and positive).

    Returns
    -------
    float or None
        None when neither the configuration nor the header tells.
    """
    if configured:
        return float(configured)
    fl, px = card_float(header, "FOCALLEN"), card_float(header, "XPIXSZ")
    if not (fl and px and fl > 0 and px > 0):
        return None
    return ARCSEC_PER_RAD * px * 1e-3 / fl


def wcs_scale_arcsec(w: WCS) -> float:
    """Mean pixel scale of a WCS (square root of the CD determinant) in arcseconds.

    Parameters
    ----------
    w : astropy.wcs.WCS

    Returns
    -------
    float
    """
    cd = w.wcs.cd if w.wcs.has_cd() else w.pixel_scale_matrix
    return float(math.sqrt(abs(np.linalg.det(cd))) * 3600.0)
