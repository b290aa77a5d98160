"""What a synthetic frame really contains: its WCSs, its stars, its times.

Why the truth is built here, apart from the pipeline: a test compares what the pipeline measures
with this truth, so nothing in it may come from the code under test. The measured plane's WCS
of a sub (:func:`plane_tan_wcs`) is derived here from the sensor geometry, not with the frame
reader's :func:`starnode.frame.wcs.binned_wcs`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.time import Time
from astropy.wcs import WCS

from ..catalogs import Sequence

__all__ = ["TrueStar", "Truth", "common_labels", "common_positions", "plane_tan_wcs", "tan_wcs"]


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

    def isolated(self, labels: list[str], radius_px: float = 5.0, dmag: float = 2.5
                 ) -> np.ndarray:
        """Which of these stars has no rendered neighbour within ``radius_px`` (measured-plane
        px: an aperture and its reach) brighter than ``dmag`` fainter than itself.

        The blend-free stars: what the real benches keep (sep's merge flag) and what the
        ensemble's clipping keeps among the comps. A neighbour inside the aperture adds light
        whose CFA sampling and centroid pull change between subs, which no per-star error
        model can know.

        Parameters
        ----------
        labels : list of str
            Star labels (every one rendered in the frame).
        radius_px : float
            Neighbourhood radius.
        dmag : float
            Neighbours fainter than the star by more than this are ignored.

        Returns
        -------
        numpy.ndarray
            Boolean, one per label.
        """
        from scipy.spatial import cKDTree

        stars = [s for s in self.stars if s.in_frame]
        xy = np.array([(s.plane_x, s.plane_y) for s in stars]).reshape(-1, 2)
        mag = np.array([s.v_mag for s in stars])
        index = {s.label: i for i, s in enumerate(stars)}
        tree = cKDTree(xy)
        out = np.ones(len(labels), dtype=bool)
        for k, label in enumerate(labels):
            i = index[label]
            out[k] = not any(j != i and mag[j] < mag[i] + dmag
                             for j in tree.query_ball_point(xy[i], radius_px))
        return out


def common_labels(truths: Iterable[Truth]) -> list[str]:
    """The labels of the stars rendered in every one of several frames, sorted.

    Parameters
    ----------
    truths : iterable of Truth
        The frames' truths.

    Returns
    -------
    list of str
    """
    sets = [{s.label for s in t.stars if s.in_frame} for t in truths]
    return sorted(set.intersection(*sets)) if sets else []


def common_positions(truths: Iterable[Truth]) -> list[np.ndarray]:
    """Where the stars rendered in every one of several frames are, frame by frame.

    Parameters
    ----------
    truths : iterable of Truth
        The frames' truths.

    Returns
    -------
    list of numpy.ndarray
        Per frame, the (n, 2) measured-plane positions (x, y) of the stars in all the frames,
        in the same order (by label) in each.
    """
    truths = list(truths)
    common = common_labels(truths)
    placed = [{s.label: (s.plane_x, s.plane_y) for s in t.stars if s.in_frame} for t in truths]
    return [np.array([p[label] for label in common]) for p in placed]


def tan_wcs(ra0: float, dec0: float, ny: int, nx: int, scale_arcsec: float, rot_deg: float,
            mirrored: bool) -> WCS:
    """A TAN WCS centred on (ra0, dec0) for an ny x nx image, rotated by ``rot_deg``, mirrored
    (CD determinant > 0) like the Seestar's images or not.

    Parameters
    ----------
    ra0, dec0 : float
        Centre (deg).
    ny, nx : int
        Image shape.
    scale_arcsec : float
        Pixel scale.
    rot_deg : float
        Rotation.
    mirrored : bool
        CD determinant > 0.

    Returns
    -------
    astropy.wcs.WCS
    """
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


def plane_tan_wcs(ra0: float, dec0: float, ny: int, nx: int, scale_arcsec: float,
                  rot_deg: float, mirrored: bool) -> WCS:
    """The TAN WCS of a raw sub's measured plane (green sites of each 2x2 cell summed).

    The native WCS is :func:`tan_wcs` (reference pixel at the array centre, native 0-based
    ``((nx - 1) / 2, (ny - 1) / 2)``). Plane pixel (i, j) is centred on native
    ``(2 i + 0.5, 2 j + 0.5)`` (the mean of the two green sites for every Bayer pattern), so
    the reference pixel is at plane 0-based ``((nx - 1) / 2 - 0.5) / 2`` and a plane pixel is
    twice the native scale.

    Parameters
    ----------
    ra0, dec0 : float
        Frame centre (deg).
    ny, nx : int
        Native sensor shape (rows, columns).
    scale_arcsec : float
        Native pixel scale.
    rot_deg : float
        Rotation, as for :func:`tan_wcs`.
    mirrored : bool
        Parity, as for :func:`tan_wcs`.

    Returns
    -------
    astropy.wcs.WCS
    """
    w = tan_wcs(ra0, dec0, ny // 2, nx // 2, 2.0 * scale_arcsec, rot_deg, mirrored)
    w.wcs.crpix = [((nx - 1) / 2.0 - 0.5) / 2.0 + 1.0, ((ny - 1) / 2.0 - 0.5) / 2.0 + 1.0]
    return w


def _true_stars(info: list, wcs_plane: WCS, binning: int, plane_flux_factor: float,
                gain: float, sky_peak_adu: float, full_scale: float, ny: int, nx: int,
                ) -> list[TrueStar]:
    out: list[TrueStar] = []
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
