"""Sun, Moon and targets over a night, offline: the one source of dusk and dawn for starnode.

Everything here runs inside :func:`offline_iers` (astropy never downloads IERS tables; predictive
values of any age are accepted: UT1 precision is irrelevant for scheduling, and without this an
offline node's AltAz transforms start failing about 30 days after its astropy-iers-data release,
``../shared/telescope`` section 3.4). The settings are process-wide (:func:`configure_offline`,
also applied on every entry of :func:`offline_iers`).

A *night* is named by its evening's date (``YYYY-MM-DD``) and spans local mean noon to the next
local mean noon at the site's longitude: no time zone, no daylight saving time, and the evening
and the morning of one night always belong together. Every time returned is an aware UTC
:class:`~datetime.datetime`.

The sun limit is one value everywhere (``telescope.sun_limit``): the planner's dark window, the
runner's gate and the park at dawn all come from :func:`sun_events` / :func:`dark_window`, which
return *events* (the sun crossing the limit downwards = dusk, upwards = dawn), so dusk is never
mistaken for dawn.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import astropy.units as u
import erfa
import numpy as np
from astropy.coordinates import AltAz, EarthLocation, SkyCoord, get_body, get_sun
from astropy.time import Time
from astropy.utils import iers

from starnode.errors import ConfigError

from ..config import Config

log = logging.getLogger(__name__)

__all__ = [
    "DarkWindow",
    "MoonTrack",
    "Site",
    "SunEvent",
    "altaz",
    "altaz_pairs",
    "configure_offline",
    "dark_window",
    "datetime_grid",
    "grid_offsets",
    "moon_track",
    "night_of",
    "night_window",
    "offline_iers",
    "separation_deg",
    "site_from_config",
    "sun_altitude",
    "sun_altitudes",
    "sun_events",
    "time_grid",
]


# ---------------------------------------------------------------------------- offline IERS
_OFFLINE = {"auto_download": False, "auto_max_age": None, "iers_degraded_accuracy": "ignore"}


def configure_offline() -> None:
    """Make astropy's time and coordinate code work without the network, process-wide: never
    download IERS tables, accept predictions of any age (starnode plans offline by design)."""
    for key, value in _OFFLINE.items():
        if getattr(iers.conf, key) != value:
            setattr(iers.conf, key, value)


@contextlib.contextmanager
def offline_iers() -> Iterator[None]:
    """Within the block astropy never downloads and accepts IERS values of any age, and its
    warnings about that are silenced.

    The settings are (re)applied process-wide rather than set and restored: ``set_temp`` is not
    thread-safe, and a runner re-checking its gates from several threads must never see them
    flip back. The block can be nested.
    """
    configure_offline()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", iers.IERSWarning)
        warnings.simplefilter("ignore", iers.IERSDegradedAccuracyWarning)
        warnings.simplefilter("ignore", erfa.ErfaWarning)  # leap seconds of future years
        warnings.filterwarnings("ignore", message="Tried to get polar motions")
        yield


# ---------------------------------------------------------------------------- site and time
@dataclass(frozen=True)
class Site:
    """Where the telescope stands (east-positive longitude)."""

    lat_deg: float
    lon_deg: float
    height_m: float = 0.0

    @property
    def location(self) -> EarthLocation:
        return EarthLocation.from_geodetic(lon=self.lon_deg * u.deg, lat=self.lat_deg * u.deg,
                                           height=self.height_m * u.m)

    def to_dict(self) -> dict[str, float]:
        return {"lat_deg": self.lat_deg, "lon_deg": self.lon_deg, "height_m": self.height_m}


def site_from_config(config: Config) -> Site:
    """The configured site; :class:`ConfigError` when latitude or longitude is missing (nothing
    is planned or moved for an unknown place)."""
    s = config.site
    if s.latitude is None or s.longitude is None:
        raise ConfigError("site.latitude and site.longitude are not set: a plan (and any "
                          "motion) needs to know where the telescope is. Put them in the "
                          "config file (site: latitude: 48.85, longitude: 2.35)")
    lon = float(s.longitude)
    if lon > 180.0:
        lon -= 360.0
    return Site(float(s.latitude), lon, float(s.elevation or 0.0))


def _utc(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError(f"naive datetime {t!r}: times must be aware (UTC)")
    return t.astimezone(UTC)


def night_window(night: str, lon_deg: float) -> tuple[datetime, datetime]:
    """Local mean noon of the evening ``night`` to the next local mean noon (UTC).

    Examples
    --------
    Paris (2.35 deg E): local mean noon is 9 min 24 s before 12:00 UTC.

    >>> start, end = night_window("2025-09-14", 2.35)
    >>> start.isoformat(), end.isoformat()
    ('2025-09-14T11:50:36+00:00', '2025-09-15T11:50:36+00:00')
    """
    d = date.fromisoformat(night)
    noon = datetime(d.year, d.month, d.day, 12, tzinfo=UTC) - timedelta(hours=lon_deg / 15.0)
    return noon, noon + timedelta(days=1)


def night_of(when: datetime, lon_deg: float) -> str:
    """The night (evening date) that ``when`` belongs to: local mean time before noon belongs to
    the previous evening.

    Examples
    --------
    >>> night_of(datetime(2025, 9, 15, 3, 0, tzinfo=UTC), 2.35)
    '2025-09-14'
    >>> night_of(datetime(2025, 9, 15, 13, 0, tzinfo=UTC), 2.35)
    '2025-09-15'
    """
    local = _utc(when) + timedelta(hours=lon_deg / 15.0)
    if local.hour < 12:
        local -= timedelta(days=1)
    return local.date().isoformat()


def time_grid(start: datetime, end: datetime, step_s: float) -> Time:
    """``start``, ``start + step``, ... up to and including ``end`` (the last step may be
    shorter so that ``end`` itself is always a sample)."""
    start = _utc(start)
    with offline_iers():
        return Time(start) + grid_offsets(start, end, step_s) * u.s


def grid_offsets(start: datetime, end: datetime, step_s: float) -> np.ndarray:
    """Seconds from ``start`` of the samples of :func:`time_grid`."""
    span = (_utc(end) - _utc(start)).total_seconds()
    n = max(1, math.ceil(span / step_s - 1e-9))
    return np.minimum(np.arange(n + 1) * float(step_s), span)


def datetime_grid(start: datetime, end: datetime, step_s: float) -> list[datetime]:
    """The samples of :func:`time_grid` as aware UTC datetimes (no astropy round trip)."""
    start = _utc(start)
    return [start + timedelta(seconds=float(o)) for o in grid_offsets(start, end, step_s)]


def to_datetimes(times: Time) -> list[datetime]:
    """Aware UTC datetimes of astropy times."""
    with offline_iers():
        out = np.atleast_1d(times.to_datetime(timezone=UTC))
    return [t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC) for t in out]


# ---------------------------------------------------------------------------- sun
def sun_altitudes(site: Site, times: Time) -> np.ndarray:
    """The sun's altitude (degrees, no refraction) at each time."""
    with offline_iers():
        frame = AltAz(obstime=times, location=site.location)
        return np.asarray(get_sun(times).transform_to(frame).alt.deg, dtype=float)


def sun_altitude(site: Site, when: datetime) -> float:
    """The sun's altitude (degrees) at ``when``: the gate the runner checks before moving."""
    return float(sun_altitudes(site, Time(_utc(when)))[()])


@dataclass(frozen=True)
class SunEvent:
    """The sun crossing the limit: ``dusk`` (going down) or ``dawn`` (coming up)."""

    time: datetime
    kind: str  # "dusk" | "dawn"
    limit_deg: float


def _refine(site: Site, t0: Time, t1: Time, limit: float) -> datetime:
    """The crossing between two samples, to about a second (one transform of a fine grid)."""
    fine = time_grid(to_datetimes(t0)[0], to_datetimes(t1)[0], 5.0)
    alt = sun_altitudes(site, fine) - limit
    cross = np.nonzero(np.signbit(alt[:-1]) != np.signbit(alt[1:]))[0]
    idx = int(cross[0]) if cross.size else 0
    a0, a1 = alt[idx], alt[idx + 1]
    frac = 0.0 if a1 == a0 else float(a0 / (a0 - a1))
    tt = fine[idx] + frac * (fine[idx + 1] - fine[idx])
    out = to_datetimes(tt)[0]
    return out.replace(microsecond=0)


def sun_events(site: Site, start: datetime, end: datetime, limit_deg: float,
               step_s: float = 300.0) -> list[SunEvent]:
    """Every crossing of ``limit_deg`` by the sun between ``start`` and ``end``, in order.

    Parameters
    ----------
    site : Site
    start, end : datetime
        Aware UTC times.
    limit_deg : float
        ``telescope.sun_limit``.
    step_s : float
        Coarse sampling (a crossing is then refined to about a second).

    Returns
    -------
    list of SunEvent
        ``dusk`` events (the sun going below the limit) and ``dawn`` events (coming above).
    """
    grid = time_grid(start, end, step_s)
    alt = sun_altitudes(site, grid)
    below = alt <= limit_deg
    out = []
    for i in np.nonzero(below[:-1] != below[1:])[0]:
        kind = "dusk" if below[i + 1] else "dawn"
        out.append(SunEvent(_refine(site, grid[i], grid[i + 1], limit_deg), kind, limit_deg))
    return out


@dataclass(frozen=True)
class DarkWindow:
    """The dark part of a night: from ``start`` (dusk, or the night's start when the sun is
    already below the limit) to ``end`` (dawn, or the night's end)."""

    night: str
    start: datetime | None
    end: datetime | None
    dusk: SunEvent | None
    dawn: SunEvent | None
    limit_deg: float
    night_start: datetime
    night_end: datetime

    @property
    def dark(self) -> bool:
        return self.start is not None and self.end is not None and self.end > self.start


def dark_window(site: Site, night: str, limit_deg: float) -> DarkWindow:
    """The night's dark window: the longest stretch with the sun at or below ``limit_deg``
    between local noon and the next local noon (None when there is none: a polar summer)."""
    n0, n1 = night_window(night, site.lon_deg)
    grid = time_grid(n0, n1, 300.0)
    alt = sun_altitudes(site, grid)
    below = alt <= limit_deg
    if not below.any():
        return DarkWindow(night, None, None, None, None, limit_deg, n0, n1)
    # runs of consecutive dark samples; keep the longest
    edges = np.diff(np.concatenate(([0], below.astype(int), [0])))
    starts, stops = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0] - 1
    k = int(np.argmax(stops - starts))
    i, j = int(starts[k]), int(stops[k])
    dusk = dawn = None
    start, end = n0, n1
    if i > 0:
        dusk = SunEvent(_refine(site, grid[i - 1], grid[i], limit_deg), "dusk", limit_deg)
        start = dusk.time
    if j < len(grid) - 1:
        dawn = SunEvent(_refine(site, grid[j], grid[j + 1], limit_deg), "dawn", limit_deg)
        end = dawn.time
    return DarkWindow(night, start, end, dusk, dawn, limit_deg, n0, n1)


# ---------------------------------------------------------------------------- moon
@dataclass(frozen=True)
class MoonTrack:
    """The Moon at each time: altitude, azimuth (degrees) and illuminated fraction (0-1)."""

    alt_deg: np.ndarray
    az_deg: np.ndarray
    illumination: np.ndarray


def moon_track(site: Site, times: Time) -> MoonTrack:
    """The Moon's topocentric altitude/azimuth and illuminated fraction at each time."""
    with offline_iers():
        frame = AltAz(obstime=times, location=site.location)
        # illumination from geocentric vectors (the same frame: no transformation needed)
        sun = get_sun(times).cartesian.xyz.to_value(u.km)
        geo = get_body("moon", times).cartesian.xyz.to_value(u.km)
        to_sun = sun - geo
        cos_phase = -np.sum(geo * to_sun, axis=0) / (np.linalg.norm(geo, axis=0)
                                                      * np.linalg.norm(to_sun, axis=0))
        illum = (1.0 + np.clip(cos_phase, -1.0, 1.0)) / 2.0
        aa = get_body("moon", times, site.location).transform_to(frame)
        return MoonTrack(np.atleast_1d(np.asarray(aa.alt.deg, dtype=float)),
                         np.atleast_1d(np.asarray(aa.az.deg, dtype=float)),
                         np.atleast_1d(np.asarray(illum, dtype=float)))


# ---------------------------------------------------------------------------- targets
def altaz(site: Site, times: Time, ra_deg: Any, dec_deg: Any) -> tuple[np.ndarray, np.ndarray]:
    """Altitude and azimuth (degrees, no refraction) of ICRS positions over a time grid.

    One vectorised transform for every target and time.

    Returns
    -------
    alt, az : ndarray
        Shape ``(n_targets, n_times)``.
    """
    ra = np.atleast_1d(np.asarray(ra_deg, dtype=float))
    dec = np.atleast_1d(np.asarray(dec_deg, dtype=float))
    if ra.size == 0:
        return np.zeros((0, len(times))), np.zeros((0, len(times)))
    with offline_iers():
        t = np.atleast_1d(times)
        frame = AltAz(obstime=t[np.newaxis, :], location=site.location)
        coords = SkyCoord(ra=ra[:, np.newaxis] * u.deg, dec=dec[:, np.newaxis] * u.deg,
                          frame="icrs")
        aa = coords.transform_to(frame)
        return (np.asarray(aa.alt.deg, dtype=float).reshape(ra.size, len(t)),
                np.asarray(aa.az.deg, dtype=float).reshape(ra.size, len(t)))


def altaz_pairs(site: Site, times: Time, ra_deg: Any, dec_deg: Any
                ) -> tuple[np.ndarray, np.ndarray]:
    """Altitude and azimuth of position *i* at time *i* (1-D arrays of one length): many
    short windows of different targets in one transform."""
    ra = np.atleast_1d(np.asarray(ra_deg, dtype=float))
    dec = np.atleast_1d(np.asarray(dec_deg, dtype=float))
    with offline_iers():
        t = np.atleast_1d(times)
        aa = SkyCoord(ra=ra * u.deg, dec=dec * u.deg, frame="icrs").transform_to(
            AltAz(obstime=t, location=site.location))
        return np.asarray(aa.alt.deg, dtype=float), np.asarray(aa.az.deg, dtype=float)


def separation_deg(alt1: Any, az1: Any, alt2: Any, az2: Any) -> np.ndarray:
    """Angular distance (degrees) between alt/az positions (broadcasting).

    Examples
    --------
    >>> print(separation_deg(30.0, 0.0, 30.0, 180.0).round(6))
    120.0
    >>> separation_deg([0.0, 90.0], [0.0, 0.0], 0.0, 90.0)
    array([90., 90.])
    """
    a1, z1, a2, z2 = (np.radians(np.asarray(x, dtype=float)) for x in (alt1, az1, alt2, az2))
    c = np.sin(a1) * np.sin(a2) + np.cos(a1) * np.cos(a2) * np.cos(z1 - z2)
    return np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))
