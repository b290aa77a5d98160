"""Tangent-plane geometry and the linear TAN fit.

The general 6-parameter fit (CD matrix and reference point) is astropy's
:func:`astropy.wcs.utils.fit_wcs_from_points`. The *similarity* fit is ours, on purpose: with a
handful of matched stars, often in one corner of the frame, a general fit is ill-conditioned,
while the Seestar's optics are conformal and its pixels square, so one scale, one rotation and a
known parity (4 parameters) describe the field; astropy's fitter cannot be told that. Which of
the two is used is decided in :mod:`.match`.
"""

from __future__ import annotations

import math
import warnings

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord, angular_separation
from astropy.wcs import WCS
from astropy.wcs.utils import fit_wcs_from_points

__all__ = [
    "Shape",
    "center_world",
    "fit_similarity",
    "fit_tan",
    "gnomonic",
    "in_frame",
    "is_mirrored",
    "make_wcs",
    "rotation_deg",
    "same_wcs",
    "sep_deg",
    "ungnomonic",
    "world_to_pix",
]

#: (rows, columns) of a plane.
Shape = tuple[int, int]


def gnomonic(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float
             ) -> tuple[np.ndarray, np.ndarray]:
    """Standard coordinates (xi east, eta north; degrees) about (ra0, dec0); NaN behind."""
    a = np.radians(np.asarray(ra, dtype=float) - ra0)
    d = np.radians(np.asarray(dec, dtype=float))
    d0 = math.radians(dec0)
    cosc = math.sin(d0) * np.sin(d) + math.cos(d0) * np.cos(d) * np.cos(a)
    cosc = np.where(cosc > 1e-6, cosc, np.nan)  # behind the tangent plane
    xi = np.cos(d) * np.sin(a) / cosc
    eta = (math.cos(d0) * np.sin(d) - math.sin(d0) * np.cos(d) * np.cos(a)) / cosc
    return np.degrees(xi), np.degrees(eta)


def ungnomonic(xi: np.ndarray | float, eta: np.ndarray | float, ra0: float, dec0: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """(ra, dec) in degrees of standard coordinates (degrees) about (ra0, dec0)."""
    x = np.radians(np.asarray(xi, dtype=float))
    y = np.radians(np.asarray(eta, dtype=float))
    d0 = math.radians(dec0)
    den = math.cos(d0) - y * math.sin(d0)
    ra = np.degrees(np.arctan2(x, den)) + ra0
    dec = np.degrees(np.arctan2(math.sin(d0) + y * math.cos(d0), np.hypot(x, den)))
    return np.mod(ra, 360.0), dec


def sep_deg(ra1: float, dec1: float, ra2: np.ndarray | float, dec2: np.ndarray | float
            ) -> np.ndarray:
    """Angular separation in degrees (:func:`astropy.coordinates.angular_separation`)."""
    return np.degrees(angular_separation(math.radians(ra1), math.radians(dec1),
                                         np.radians(ra2), np.radians(dec2)))


def make_wcs(crval: tuple[float, float], crpix0: tuple[float, float], cd: np.ndarray,
             shape: Shape) -> WCS:
    """A TAN WCS; ``crpix0`` is 0-based (numpy) like every pixel position here."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [float(crval[0]) % 360.0, float(crval[1])]
    w.wcs.crpix = [float(crpix0[0]) + 1.0, float(crpix0[1]) + 1.0]  # FITS is 1-based
    w.wcs.cd = np.asarray(cd, dtype=float)
    w.wcs.cunit = ["deg", "deg"]
    w.wcs.radesys = "ICRS"
    w.pixel_shape = (int(shape[1]), int(shape[0]))
    w.wcs.set()
    return w


def fit_similarity(x: np.ndarray, y: np.ndarray, ra: np.ndarray, dec: np.ndarray, shape: Shape,
                   crval: tuple[float, float], parity: float) -> WCS:
    """Least-squares TAN WCS whose CD matrix is a similarity of the given parity.

    Parameters
    ----------
    x, y : numpy.ndarray
        0-based pixel positions of the matched stars.
    ra, dec : numpy.ndarray
        Their catalogue positions (degrees).
    shape : (int, int)
        The plane's shape; CRPIX is put at its centre.
    crval : (float, float)
        First guess of the sky position of the centre.
    parity : float
        > 0 for a mirrored image (CD determinant > 0), < 0 otherwise.

    Returns
    -------
    astropy.wcs.WCS
        One scale, one rotation, the given parity: 4 parameters.
    """
    cx, cy = (shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0
    dx, dy = x - cx, y - cy
    one, zero = np.ones_like(x), np.zeros_like(x)
    ra0, dec0 = float(crval[0]), float(crval[1])
    p = 1.0 if parity > 0 else -1.0
    cd = np.eye(2)
    for _ in range(3):  # re-centre the tangent point on the fitted centre
        xi, eta = gnomonic(ra, dec, ra0, dec0)
        u_ = p * dx  # xi = a*u - b*dy + x0 ; eta = b*u + a*dy + y0
        m = np.vstack([np.column_stack([u_, -dy, one, zero]),
                       np.column_stack([dy, u_, zero, one])])
        (a, b, x0, y0), *_ = np.linalg.lstsq(m, np.concatenate([xi, eta]), rcond=None)
        cd = np.array([[a * p, -b], [b * p, a]])
        nra, ndec = ungnomonic(x0, y0, ra0, dec0)
        ra0, dec0 = float(nra), float(ndec)
        if abs(x0) < 1e-9 and abs(y0) < 1e-9:
            break
    return make_wcs((ra0, dec0), (cx, cy), cd, shape)


def fit_tan(x: np.ndarray, y: np.ndarray, ra: np.ndarray, dec: np.ndarray, shape: Shape,
            crval: tuple[float, float], *, parity: float | None = None,
            guess: WCS | None = None) -> WCS:
    """Least-squares linear TAN WCS through matched pairs.

    Parameters
    ----------
    x, y : numpy.ndarray
        0-based pixel positions (at least 3).
    ra, dec : numpy.ndarray
        Catalogue positions, degrees.
    shape : (int, int)
        The plane's shape.
    crval : (float, float)
        The tangent point (a guess of the field centre).
    parity : float, optional
        Given: a similarity fit of that parity (:func:`fit_similarity`); None: the general
        6-parameter fit of :func:`astropy.wcs.utils.fit_wcs_from_points`.
    guess : astropy.wcs.WCS, optional
        A WCS near the answer: its CD matrix starts astropy's least-squares fit (which
        otherwise starts from 1 deg/px and needs many more iterations).

    Returns
    -------
    astropy.wcs.WCS
    """
    if parity is not None:
        return fit_similarity(x, y, ra, dec, shape, crval, parity)
    # the tangent point is the matched stars' mid-point: astropy bounds CRPIX to their pixel
    # box, so a frame-centre tangent point would be clamped when they fill only part of it
    template: str | WCS = "TAN"
    if guess is not None:
        template = make_wcs(crval, ((shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0),
                            guess.pixel_scale_matrix, shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = fit_wcs_from_points((np.asarray(x, float), np.asarray(y, float)),
                                SkyCoord(ra, dec, unit=u.deg), proj_point="center",
                                projection=template)
    w.pixel_shape = (int(shape[1]), int(shape[0]))
    return w


def is_mirrored(w: WCS) -> bool:
    """True when the CD matrix determinant is positive (east to the right, north up)."""
    return float(np.linalg.det(w.pixel_scale_matrix)) > 0


def rotation_deg(w: WCS) -> float:
    """Position angle of the plane's +y axis, east of north, in [0, 360)."""
    cd = w.pixel_scale_matrix
    return float(math.degrees(math.atan2(cd[0, 1], cd[1, 1])) % 360.0)


def world_to_pix(w: WCS, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """(N, 2) 0-based pixel positions; plain TAN where the full transform does not converge."""
    if len(ra) == 0:
        return np.empty((0, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            px, py = w.all_world2pix(ra, dec, 0, quiet=True)
        except Exception:  # far off the SIP domain: plain TAN is good enough to reject
            px, py = w.wcs_world2pix(ra, dec, 0)
    return np.column_stack([px, py])


def center_world(w: WCS, shape: Shape) -> tuple[float, float]:
    """(ra, dec) in degrees of the plane's centre."""
    ra, dec = w.all_pix2world([(shape[1] - 1) / 2.0], [(shape[0] - 1) / 2.0], 0)
    return float(ra[0]), float(dec[0])


def in_frame(pix: np.ndarray, shape: Shape, margin: float = 2.0) -> np.ndarray:
    """True for pixel positions inside the plane, give or take ``margin`` pixels."""
    with np.errstate(invalid="ignore"):
        return ((pix[:, 0] >= -margin) & (pix[:, 0] <= shape[1] - 1 + margin)
                & (pix[:, 1] >= -margin) & (pix[:, 1] <= shape[0] - 1 + margin))


def same_wcs(a: WCS, b: WCS, shape: Shape) -> bool:
    """True when two WCSs put the frame centre and corner on the same sky (< 0.1 px)."""
    try:
        px = np.array([[(shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0], [0.0, 0.0]])
        ra, dec = a.all_pix2world(px[:, 0], px[:, 1], 0)
        back = np.column_stack(b.all_world2pix(ra, dec, 0))
        return bool(np.all(np.hypot(*(back - px).T) < 0.1))
    except Exception:
        return False
