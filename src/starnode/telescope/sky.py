"""The sky the safety manager computes for itself: the sun's altitude, a target's altitude and
azimuth, and the night's dusk and dawn as *events* (crossings of the sun limit).

Deliberately independent of the planner: the safety manager must not trust the plan it guards.
Everything is astropy inside :func:`starnode.observing.offline_iers` (a node offline for months
still computes; the UT1 precision lost does not matter for gating).

Speed: a night has thousands of gate checks, so :class:`NightSky` tabulates the sun once per
night at one-minute steps (a few tens of ms) and interpolates (error < 0.001 deg); a target's
track is tabulated the same way per item. A time outside the tables is computed directly.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
from astropy import units as u
from astropy.coordinates import AltAz, EarthLocation, SkyCoord, get_body
from astropy.time import Time

from ..frame.timesite import offline_iers
from .settings import Site

log = logging.getLogger(__name__)

__all__ = ["NightEvents", "NightSky", "Track", "altaz", "night_events", "sun_altaz"]

_STEP_S = 60.0


def _location(site: Site) -> EarthLocation:
    return EarthLocation.from_geodetic(site.lon_deg * u.deg, site.lat_deg * u.deg,
                                       site.height_m * u.m)


def _times(ts: list[datetime] | np.ndarray) -> Time:
    return Time([t.astimezone(UTC).replace(tzinfo=None) for t in ts], scale="utc")


def sun_altaz(site: Site, ts: list[datetime]) -> tuple[np.ndarray, np.ndarray, SkyCoord]:
    """(altitude, azimuth, the sun's direction from the Earth) at each time (no refraction)."""
    with offline_iers():
        tt = _times(ts)
        sun = get_body("sun", tt, _location(site))
        aa = sun.transform_to(AltAz(obstime=tt, location=_location(site)))
        # the direction seen from the Earth (GCRS); ICRS would be the barycentric sun
        icrs = SkyCoord(sun.ra, sun.dec, frame="icrs")
    return np.asarray(aa.alt.deg), np.asarray(aa.az.deg), icrs


def altaz(site: Site, ra_deg: float, dec_deg: float, ts: list[datetime]
          ) -> tuple[np.ndarray, np.ndarray]:
    """(altitude, azimuth) of an ICRS position at each time (no refraction)."""
    with offline_iers():
        tt = _times(ts)
        c = SkyCoord(ra_deg * u.deg, dec_deg * u.deg, frame="icrs")
        aa = c.transform_to(AltAz(obstime=tt, location=_location(site)))
    return np.asarray(aa.alt.deg), np.asarray(aa.az.deg)


def _grid(start: datetime, end: datetime, step_s: float) -> list[datetime]:
    n = max(2, math.ceil((end - start).total_seconds() / step_s) + 1)
    return [start + timedelta(seconds=i * step_s) for i in range(n)]


def _seconds(ts: list[datetime], t0: datetime) -> np.ndarray:
    return np.array([(t - t0).total_seconds() for t in ts])


@dataclass(frozen=True)
class NightEvents:
    """The night's sun-limit crossings: ``dusk`` (downwards, evening) and ``dawn`` (upwards,
    morning). None: no such crossing in the night (polar summer: the sun never goes below the
    limit, so nothing may move; polar winter: it never rises above, so the night ends at the
    end of the plan)."""

    night: str
    limit_deg: float
    dusk: datetime | None
    dawn: datetime | None
    dark_at_noon: bool  # the sun is below the limit at local noon (polar night)


def _local_noon(night: str, site: Site) -> datetime:
    d = date.fromisoformat(night)
    return datetime(d.year, d.month, d.day, 12, tzinfo=UTC) - timedelta(hours=site.lon_deg / 15)


def _refine(site: Site, a: datetime, b: datetime, limit: float) -> datetime:
    """The crossing between ``a`` and ``b`` (5 min apart) to about a second: one vectorised
    call on a 10-second grid, then linear interpolation."""
    grid = _grid(a, b, 10.0)
    alt = sun_altaz(site, grid)[0]
    for i in range(1, len(grid)):
        if (alt[i - 1] - limit) * (alt[i] - limit) <= 0 and alt[i] != alt[i - 1]:
            f = (limit - alt[i - 1]) / (alt[i] - alt[i - 1])
            return grid[i - 1] + timedelta(seconds=10.0 * float(f))
    return b


@functools.lru_cache(maxsize=16)
def night_events(site: Site, night: str, limit_deg: float) -> NightEvents:
    """Dusk and dawn of the night that starts on the evening of ``night`` (YYYY-MM-DD), as
    crossings of ``limit_deg`` between local noon and the next local noon. Dawn is the first
    *upward* crossing after dusk, so the evening is never mistaken for the morning. (Cached per
    process: the same site, night and limit give the same events.)"""
    noon = _local_noon(night, site)
    grid = _grid(noon, noon + timedelta(hours=24), 300.0)
    alt = sun_altaz(site, grid)[0]
    below = alt <= limit_deg
    dusk = dawn = None
    for i in range(1, len(grid)):
        if dusk is None and not below[0] and below[i] and not below[i - 1]:
            dusk = _refine(site, grid[i - 1], grid[i], limit_deg)
        elif below[i - 1] and not below[i] and (dusk is not None or below[0]):
            dawn = _refine(site, grid[i - 1], grid[i], limit_deg)
            break
    return NightEvents(night, limit_deg, dusk, dawn, bool(below[0]))


class Track:
    """A position's altitude and azimuth tabulated over a window (one astropy call)."""

    def __init__(self, site: Site, ra_deg: float, dec_deg: float, start: datetime,
                 end: datetime) -> None:
        self.site, self.ra, self.dec = site, ra_deg, dec_deg
        self.t0 = start
        ts = _grid(start, end, _STEP_S)
        self.s = _seconds(ts, start)
        self.alt, self.az = altaz(site, ra_deg, dec_deg, ts)
        # unwrap the azimuth so interpolation across north does not sweep through south
        self.az_unwrapped = np.degrees(np.unwrap(np.radians(self.az)))

    def at(self, t: datetime) -> tuple[float, float]:
        """(altitude, azimuth) at ``t`` (computed directly outside the table)."""
        x = (t - self.t0).total_seconds()
        if not self.s[0] <= x <= self.s[-1]:
            alt, az = altaz(self.site, self.ra, self.dec, [t])
            return float(alt[0]), float(az[0])
        return (float(np.interp(x, self.s, self.alt)),
                float(np.interp(x, self.s, self.az_unwrapped)) % 360.0)

    def between(self, a: datetime, b: datetime, step_s: float = _STEP_S
                ) -> list[tuple[datetime, float, float]]:
        """(time, alt, az) from ``a`` to ``b`` inclusive, every ``step_s`` seconds."""
        return [(t, *self.at(t)) for t in _grid(a, b, step_s) if t <= b] + [(b, *self.at(b))]


@functools.lru_cache(maxsize=8)
def _sun_table(site: Site, start: datetime, end: datetime
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ts = _grid(start, end, _STEP_S)
    alt, _az, sun = sun_altaz(site, ts)
    ra = np.degrees(np.unwrap(np.radians(np.asarray(sun.ra.deg))))
    return _seconds(ts, start), alt, ra, np.asarray(sun.dec.deg)


class NightSky:
    """The sun over one night, tabulated by the safety manager from the site and the clock.

    Parameters
    ----------
    site : Site
        Where.
    start, end : datetime
        The span tabulated (times outside it are computed directly).
    """

    def __init__(self, site: Site, start: datetime, end: datetime) -> None:
        self.site = site
        self.t0 = start
        self.s, self.alt, self.ra, self.dec = _sun_table(site, start, end)

    def _inside(self, t: datetime) -> float | None:
        x = (t - self.t0).total_seconds()
        return x if self.s[0] <= x <= self.s[-1] else None

    def sun_alt(self, t: datetime) -> float:
        x = self._inside(t)
        if x is None:
            return float(sun_altaz(self.site, [t])[0][0])
        return float(np.interp(x, self.s, self.alt))

    def sun_radec(self, t: datetime) -> tuple[float, float]:
        x = self._inside(t)
        if x is None:
            c = sun_altaz(self.site, [t])[2]
            return float(c.ra.deg[0]), float(c.dec.deg[0])
        return float(np.interp(x, self.s, self.ra)) % 360.0, float(np.interp(x, self.s,
                                                                             self.dec))

    def sun_separation(self, t: datetime, ra_deg: float, dec_deg: float) -> float:
        """Angular distance (degrees) from the sun to an ICRS position at ``t``."""
        sra, sdec = (math.radians(v) for v in self.sun_radec(t))
        ra, dec = math.radians(ra_deg), math.radians(dec_deg)
        c = (math.sin(sdec) * math.sin(dec)
             + math.cos(sdec) * math.cos(dec) * math.cos(ra - sra))
        return math.degrees(math.acos(max(-1.0, min(1.0, c))))
