"""When and where a frame was taken: exposure times, site, HJD, airmass, scintillation, night.

Why one module: 0.1.0 computed these in the frame reader, the photometry, the synthetic frame
generator and the AAVSO writer (the observing night, and the site longitude re-read from the
frame). Each fact now has one definition, used by all of them:

- :func:`exposure_start` and :func:`mid_exposure`: DATE-OBS, DATE-EXP, EXPTIME, TOTALEXP rules;
- :func:`site_location`: the configured site, else SITELAT/SITELONG (0/0 = no fix = no site);
- :func:`times`: JD and HJD of mid-exposure, the target's altitude and airmass (astropy, IERS
  offline);
- :func:`pickering_airmass` (Pickering 2002) and :func:`young_scintillation` (Young 1967);
- :func:`night_of`: the observing night of a JD at a longitude (the rule of the AAVSO reports).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import logging
import math
import re
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import erfa
import numpy as np
from astropy import units as u
from astropy.coordinates import AltAz, EarthLocation, SkyCoord
from astropy.time import Time, TimeDelta
from astropy.utils import iers

from ..errors import FrameRejected, RejectCategory
from ..util.jd import jd_from_unix, night_of, utc_from_jd
from .header import card_float as _num
from .header import card_text as _text

log = logging.getLogger(__name__)

__all__ = [
    "Times",
    "altitude_deg",
    "exposure_start",
    "geodetic",
    "jd_from_unix",
    "mid_exposure",
    "night_of",
    "offline_iers",
    "pickering_airmass",
    "site_location",
    "times",
    "utc_from_jd",
    "young_scintillation",
]

#: A DATE-OBS before this is a wrong clock, not an observation (no CMOS smart telescope then).
EARLIEST_DATE_OBS = _dt.datetime(1990, 1, 1, tzinfo=_dt.UTC)
#: A DATE-OBS must carry a time of day: ``2025-09-14`` alone would be taken as 00:00 UTC.
_TIME_OF_DAY = re.compile(r"\d[T ]\d{1,2}:\d{2}")
_GEOCENTRE = EarthLocation.from_geocentric(0.0, 0.0, 0.0, unit=u.m)
_IERS_LOCK = threading.Lock()
#: astropy.utils.iers' MJD zero point (JD of MJD 0)
_MJD_ZERO = 2400000.5


@contextlib.contextmanager
def offline_iers() -> Iterator[None]:
    """Astropy time/coordinate work without downloading IERS tables (bundled ones; degraded
    accuracy only warns). One thread at a time: astropy's ``set_temp`` is process-wide."""
    with _IERS_LOCK, iers.conf.set_temp("auto_download", False), \
            iers.conf.set_temp("auto_max_age", None), \
            iers.conf.set_temp("iers_degraded_accuracy", "warn"), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def exposure_start(header: Mapping[str, Any], name: str) -> Time:
    """DATE-OBS as an astropy UTC time.

    Parameters
    ----------
    header : Mapping
        FITS cards.
    name : str
        The file's name, for messages.

    Returns
    -------
    astropy.time.Time

    Raises
    ------
    FrameRejected
        ``unreadable``: no DATE-OBS or not an ISO time; ``implausible``: no time of day, or
        before 1990 or after tomorrow.
    """
    text = _text(header, "DATE-OBS")
    if text is None:
        raise FrameRejected(f"{name}: no DATE-OBS, the time of the exposure is unknown",
                            RejectCategory.UNREADABLE)
    try:
        with warnings.catch_warnings():  # ERFA's "dubious year" for year 1 or 9999
            warnings.simplefilter("ignore")
            t = Time(text.replace(" ", "T"), format="isot", scale="utc")
            jd = float(t.utc.jd)
    except ValueError as exc:
        raise FrameRejected(f"{name}: DATE-OBS {text!r} is not an ISO time",
                            RejectCategory.UNREADABLE) from exc
    if not _TIME_OF_DAY.search(text):
        raise FrameRejected(f"{name}: DATE-OBS {text!r} has no time of day, so the time of "
                            "the exposure is unknown", RejectCategory.IMPLAUSIBLE)
    earliest = jd_from_unix(EARLIEST_DATE_OBS.timestamp())
    latest = jd_from_unix(time.time()) + 1.0
    if not earliest <= jd <= latest:
        raise FrameRejected(f"{name}: DATE-OBS {text!r} is implausible (before "
                            f"{EARLIEST_DATE_OBS:%Y} or after tomorrow): check the "
                            "telescope's clock", RejectCategory.IMPLAUSIBLE)
    return t


def mid_exposure(header: Mapping[str, Any], start: Time, exptime: float, *, stack: bool,
                 stackcnt: int = 1, name: str = "") -> tuple[Time, float]:
    """Mid-exposure time and its uncertainty.

    A sub / mono frame: DATE-OBS + EXPTIME/2, or the midpoint of DATE-OBS...DATE-EXP when
    DATE-EXP is consistent (uncertainty 0). A stack: DATE-OBS + span/2 with span = TOTALEXP
    (or STACKCNT x EXPTIME), uncertain by half the span.

    Parameters
    ----------
    header : Mapping
        FITS cards (DATE-EXP, TOTALEXP).
    start : astropy.time.Time
        DATE-OBS (:func:`exposure_start`).
    exptime : float
        Seconds per sub.
    stack : bool
        Whether the frame is a stack of ``stackcnt`` subs.
    stackcnt : int
        STACKCNT.
    name : str
        The file's name, for log messages.

    Returns
    -------
    (astropy.time.Time, float)
        Mid-exposure (UTC) and its uncertainty in seconds.
    """
    if stack:
        total = _num(header, "TOTALEXP")
        span = total if (total and stackcnt > 1) else stackcnt * exptime
        return start + TimeDelta(span / 2.0, format="sec"), span / 2.0
    mid = start + TimeDelta(exptime / 2.0, format="sec")
    end_text = _text(header, "DATE-EXP")
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
    return mid, 0.0


def site_location(header: Mapping[str, Any], latitude: float | None, longitude: float | None,
                  height: float = 0.0, name: str = "") -> EarthLocation | None:
    """The observing site: the configured one, else the header's SITELAT/SITELONG.

    Parameters
    ----------
    header : Mapping
        FITS cards (SITELAT/OBSLAT/LAT-OBS, SITELONG/OBSLONG/LONG-OBS).
    latitude, longitude : float or None
        ``site.latitude`` / ``site.longitude`` (degrees, east positive).
    height : float
        ``site.elevation`` in metres.
    name : str
        The file's name, for the warning about unusable cards.

    Returns
    -------
    astropy.coordinates.EarthLocation or None
        None without a usable site (0/0 means the phone had no fix).
    """
    lat, lon = latitude, longitude
    if lat is None or lon is None:
        hlat, hlon = _header_site(header, name)
        lat = hlat if lat is None else lat
        lon = hlon if lon is None else lon
    if lat is None or lon is None:
        return None
    if all(type(v) in (int, float) for v in (lat, lon, height)):
        return _site_at(lon, lat, height).copy()  # a copy: the caller may change its own
    return EarthLocation.from_geodetic(lon=lon, lat=lat, height=height)


def _header_site(header: Mapping[str, Any], name: str) -> tuple[float | None, float | None]:
    """The header's SITELAT/SITELONG (or OBSLAT/OBSLONG, LAT-OBS/LONG-OBS) when usable; a
    warning and (None, None) for a pair out of range or 0/0 (the phone had no fix)."""
    hlat = _num(header, "SITELAT", "OBSLAT", "LAT-OBS")
    hlon = _num(header, "SITELONG", "OBSLONG", "LONG-OBS")
    if hlat is None or hlon is None:
        return None, None
    if not (hlat == 0.0 and hlon == 0.0) and -90 <= hlat <= 90 and -180 <= hlon <= 360:
        return hlat, hlon
    log.warning("%s: SITELAT/SITELONG %s/%s unusable; no site (set site.latitude and "
                "site.longitude)", name, hlat, hlon)
    return None, None


@functools.lru_cache(maxsize=64)
def _site_at(lon: float, lat: float, height: float) -> EarthLocation:
    """``EarthLocation.from_geodetic`` of a site, made once per process (a node measures every
    frame of a night at the same site)."""
    return EarthLocation.from_geodetic(lon=lon, lat=lat, height=height)


@functools.lru_cache(maxsize=64)
def _geodetic_of(x_m: float, y_m: float, z_m: float, ellipsoid: str
                 ) -> tuple[float, float, float, float, float]:
    return _geodetic_values(EarthLocation.from_geocentric(x_m, y_m, z_m, unit=u.m), ellipsoid)


def _geodetic_values(site: EarthLocation, ellipsoid: str
                     ) -> tuple[float, float, float, float, float]:
    lon, lat, height = site.to_geodetic(ellipsoid)
    return (float(lon.deg), float(lat.deg), float(height.to_value(u.m)),
            float(lon.to_value(u.rad)), float(lat.to_value(u.rad)))


def geodetic(site: EarthLocation, ellipsoid: str | None = None
             ) -> tuple[float, float, float, float, float]:
    """(longitude deg, latitude deg, height m, longitude rad, latitude rad) of a site, as
    ``site.to_geodetic(ellipsoid)`` gives them (default: the site's own ellipsoid); computed
    once per site and process (a node measures a whole night at one site).

    Parameters
    ----------
    site : EarthLocation
    ellipsoid : str, optional

    Returns
    -------
    tuple of float
    """
    ellipsoid = ellipsoid or site.ellipsoid
    if site.unit != u.m or site.shape != ():  # not a site made in metres: as astropy does
        return _geodetic_values(site, ellipsoid)
    xyz = (float(site.x.to_value(u.m)), float(site.y.to_value(u.m)),
           float(site.z.to_value(u.m)))
    return _geodetic_of(*xyz, ellipsoid)


def pickering_airmass(alt_deg: float) -> float | None:
    """Airmass at an apparent altitude (Pickering 2002; sec z high up, finite at the horizon).

    Parameters
    ----------
    alt_deg : float
        Altitude in degrees.

    Returns
    -------
    float or None
        None at or below the horizon.

    Examples
    --------
    At the zenith 1; at 30 deg nearly sec z = 2; below the horizon, none:

    >>> round(pickering_airmass(90.0), 4), round(pickering_airmass(30.0), 4)
    (1.0, 1.9932)
    >>> pickering_airmass(0.0) is None
    True
    """
    if not alt_deg > 0:
        return None
    return 1.0 / math.sin(math.radians(alt_deg + 244.0 / (165.0 + 47.0 * alt_deg**1.1)))


def young_scintillation(aperture_mm: float, airmass: float | None, total_exptime_s: float,
                        height_m: float = 0.0, factor: float = 1.0) -> float:
    """Relative scintillation noise of a star's flux, Young (1967) times ``factor``.

    ``factor x 0.09 D[cm]^-2/3 X^1.75 exp(-h / 8000 m) / sqrt(2 t)``.

    Parameters
    ----------
    aperture_mm : float
        Telescope aperture D.
    airmass : float or None
        X; unknown (None or not finite) counts as 1.
    total_exptime_s : float
        t, the total exposure (a stack: STACKCNT x EXPTIME).
    height_m : float
        Site height h.
    factor : float
        Multiplier (``photometry.scintillation_factor``; Osborn et al. 2015 find Young's
        formula ~1.5x low in median conditions). 0 or less gives 0.

    Returns
    -------
    float
        Fractional flux noise (1.0857 x it in magnitudes).

    Examples
    --------
    A 50 mm aperture, 10 s at the zenith at sea level: 0.09 x 5^(-2/3) / sqrt(20); twice the
    airmass multiplies it by 2^1.75:

    >>> round(young_scintillation(50.0, 1.0, 10.0), 6)
    0.006883
    >>> round(young_scintillation(50.0, 2.0, 10.0), 6)
    0.02315
    >>> young_scintillation(50.0, None, 10.0, factor=0.0)
    0.0
    """
    if factor <= 0:
        return 0.0
    d_cm = aperture_mm / 10.0
    x = airmass if airmass is not None and math.isfinite(airmass) else 1.0
    return (factor * 0.09 * d_cm ** (-2.0 / 3.0) * x**1.75 * math.exp(-height_m / 8000.0)
            / math.sqrt(2 * total_exptime_s))


def altitude_deg(t: Time, site: EarthLocation, ra_deg: float, dec_deg: float) -> float:
    """Altitude of an ICRS position seen from ``site`` at ``t`` (IERS offline).

    Parameters
    ----------
    t : astropy.time.Time
    site : astropy.coordinates.EarthLocation
    ra_deg, dec_deg : float
        ICRS position.

    Returns
    -------
    float
        Degrees.
    """
    coord = SkyCoord(ra_deg * u.deg, dec_deg * u.deg, frame="icrs")
    with offline_iers():
        return float(coord.transform_to(AltAz(obstime=t, location=site)).alt.deg)


@dataclass(frozen=True)
class _EopColumns:
    """An IERS table's columns as plain arrays (astropy's column access per look-up cost more
    than the interpolation): kept while the table is the same object of the same length."""

    table: Any
    length: int
    mjd: np.ndarray
    ut1_utc: np.ndarray  # s
    pm_x: np.ndarray  # arcsec
    pm_y: np.ndarray  # arcsec
    arcsec_rad: float  # ``Quantity.to_value``'s scale of arcsec to radian


_EOP: list[_EopColumns] = []


def _eop_columns(table: Any) -> _EopColumns | None:
    """The table's columns (None: a table not in astropy's usual units)."""
    if _EOP and _EOP[0].table is table and _EOP[0].length == len(table):
        return _EOP[0]
    try:
        if (table["UT1_UTC"].unit != u.s or table["PM_x"].unit != u.arcsec
                or table["PM_y"].unit != u.arcsec):
            return None
        cols = _EopColumns(table, len(table), np.asarray(table["MJD"].value),
                           np.asarray(table["UT1_UTC"].value), np.asarray(table["PM_x"].value),
                           np.asarray(table["PM_y"].value),
                           float(u.arcsec.to(u.radian)))  # the scale to_value multiplies by
    except (KeyError, AttributeError, TypeError):
        return None
    _EOP[:] = [cols]
    return cols


def _earth_orientation(t: Time) -> tuple[float, float, float]:
    """UT1-UTC (s) and the polar motion x, y (rad) at the UTC time ``t``: the values of
    ``t.delta_ut1_utc`` and astropy's ``get_polar_motion(t)``, to the bit (the same linear
    interpolation of the same IERS table, the same operations in the same order), without
    their per-call table access. Outside the table (where astropy warns, extrapolates or uses
    the 50-year mean), and for a time given its own UT1-UTC, astropy's own functions.

    Called under :func:`offline_iers` (no table refresh).
    """
    from astropy.coordinates.builtin_frames.utils import get_polar_motion

    table = iers.earth_orientation_table.get()
    eop = _eop_columns(table) if not hasattr(t, "_delta_ut1_utc") else None
    if eop is not None:
        jd1, jd2 = t.jd1, t.jd2  # IERS.mjd_utc's arithmetic, on one-element arrays
        mjd = np.array([np.floor(jd1 - _MJD_ZERO + jd2)])
        utc = np.array([jd1 - (_MJD_ZERO + mjd[0]) + jd2])
        i = np.searchsorted(eop.mjd, mjd, side="right")
        if 0 < int(i[0]) < eop.length:  # inside the table: no clipping, no warning
            i0, i1 = i - 1, i
            frac = (mjd - eop.mjd[i0] + utc) / (eop.mjd[i1] - eop.mjd[i0])
            d_ut1 = eop.ut1_utc[i1] - eop.ut1_utc[i0]
            d_ut1 -= d_ut1.round()  # a leap second between the two rows
            ut1 = eop.ut1_utc[i0] + frac * d_ut1
            xp = eop.pm_x[i0] + frac * (eop.pm_x[i1] - eop.pm_x[i0])
            yp = eop.pm_y[i0] + frac * (eop.pm_y[i1] - eop.pm_y[i0])
            return (float(ut1[0]), float(xp[0] * eop.arcsec_rad),
                    float(yp[0] * eop.arcsec_rad))
    xp_, yp_ = get_polar_motion(t)
    return float(t.delta_ut1_utc), float(xp_), float(yp_)


class Times(NamedTuple):
    """JD / HJD (UTC) of mid-exposure, the target's airmass and altitude (None without site)."""

    jd: float
    hjd: float
    airmass: float | None
    altitude_deg: float | None


def times(mid: Time, site: EarthLocation | None, ra_deg: float, dec_deg: float) -> Times:
    """JD and HJD of a mid-exposure time, airmass and altitude of the target.

    ERFA directly (the routines astropy's own transformations call), with astropy's IERS
    values (UT1-UTC, polar motion, the same offline policy): ~10x faster than going through
    ``Time.light_travel_time`` and ``SkyCoord.transform_to(AltAz)``, and the same numbers
    within 1e-9 (HJD within one float ulp, the altitude within ~1e-11 deg; tested against
    astropy in tests/photometry/test_photometry_speed_equivalence.py).

    Parameters
    ----------
    mid : astropy.time.Time
        Mid-exposure.
    site : EarthLocation or None
        Without a site the geocentre is used for the HJD (at most 21 ms off) and there is no
        airmass.
    ra_deg, dec_deg : float
        The target (ICRS).

    Returns
    -------
    Times
    """
    t = mid.utc
    u1, u2 = float(t.jd1), float(t.jd2)
    ra, dec = math.radians(ra_deg), math.radians(dec_deg)
    with offline_iers():
        tt1, tt2 = erfa.taitt(*erfa.utctai(u1, u2))
        # the Sun-centred position of the observer (m), towards the target: light travel time
        pos = erfa.epv00(tt1, tt2)[0][0] * erfa.DAU
        if site is not None:
            dut1, xp, yp = _earth_orientation(t)
            c2t = erfa.c2t06a(tt1, tt2, *erfa.utcut1(u1, u2, dut1), xp, yp)
            xyz = (site.x.to_value(u.m), site.y.to_value(u.m), site.z.to_value(u.m))
            pos = pos + c2t.T @ np.array(xyz)
        ltt_s = float(pos @ erfa.s2c(ra, dec)) / erfa.CMPS
        airmass = alt = None
        if site is not None:
            _, _, height, lon, lat = geodetic(site, "WGS84")
            # observed place, no refraction (pressure 0), as AltAz() without pressure
            zen = erfa.atco13(ra, dec, 0.0, 0.0, 0.0, 0.0, u1, u2, dut1, lon, lat, height,
                              xp, yp, 0.0, 0.0, 0.0, 0.0)[1]
            alt = 90.0 - math.degrees(float(zen))
            airmass = pickering_airmass(alt)
    jd = u1 + u2
    return Times(float(jd), float(jd + ltt_s / 86400.0), airmass, alt)

