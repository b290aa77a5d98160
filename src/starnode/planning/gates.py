"""The planner's gates at one moment or over a window, for the runner to re-check before every
frame with exactly the rules the plan was made with (one sun limit, one floor, one mask, one
ceiling, one Moon rule)."""

from __future__ import annotations

from datetime import datetime

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord, get_sun
from astropy.time import Time

from ..config import Config
from .ephemeris import (
    Site,
    altaz,
    moon_track,
    offline_iers,
    separation_deg,
    sun_altitudes,
    time_grid,
)
from .planner import deg, horizon_floor

__all__ = ["pointing_problem", "sun_separation_deg", "window_problem"]


def sun_separation_deg(when: datetime, ra_deg: float, dec_deg: float) -> float:
    """Angular distance (degrees) from the sun to an ICRS position at ``when``."""
    with offline_iers():
        sun = get_sun(Time(when))
        return float(sun.separation(SkyCoord(ra_deg * u.deg, dec_deg * u.deg,
                                             frame=sun.frame)).deg)


def _problems(config: Config, site: Site, times: Time, ra_deg: float, dec_deg: float
              ) -> list[str | None]:
    tel, pl = config.telescope, config.planning
    alt, az = altaz(site, times, [ra_deg], [dec_deg])
    alt, az = alt[0], az[0]
    sun = sun_altitudes(site, times)
    moon = moon_track(site, times)
    floor = horizon_floor(config, az)
    required = np.maximum(float(pl.moon_min_separation),
                          float(pl.moon_full_separation) * moon.illumination)
    sep = separation_deg(alt, az, moon.alt_deg, moon.az_deg)
    out: list[str | None] = []
    for i in range(len(alt)):
        if sun[i] > float(tel.sun_limit):
            out.append(f"the sun is at {deg(round(float(sun[i]), 1))}, above "
                       f"{deg(float(tel.sun_limit))}")
        elif alt[i] < floor[i]:
            what = "the horizon mask" if floor[i] > float(tel.min_altitude) else "the floor"
            out.append(f"at {deg(round(float(alt[i]), 1))} it is below {what} "
                       f"({deg(round(float(floor[i]), 1))})")
        elif alt[i] > float(tel.max_altitude):
            out.append(f"at {deg(round(float(alt[i]), 1))} it is above the "
                       f"{deg(float(tel.max_altitude))} ceiling")
        elif moon.alt_deg[i] > 0 and sep[i] < required[i]:
            out.append(f"{sep[i]:.0f}° from the Moon ({required[i]:.0f}° needed)")
        elif (moon.alt_deg[i] > 0 and float(pl.moon_max_illumination) < 1.0
              and moon.illumination[i] > float(pl.moon_max_illumination)):
            out.append(f"the Moon is up and {moon.illumination[i] * 100:.0f}% illuminated")
        else:
            out.append(None)
    return out


def pointing_problem(config: Config, site: Site, when: datetime, ra_deg: float,
                     dec_deg: float) -> str | None:
    """Why pointing at ``(ra_deg, dec_deg)`` at ``when`` breaks a planning gate (sun,
    altitude floor, horizon mask, ceiling, Moon), in words; None when it does not."""
    with offline_iers():
        return _problems(config, site, Time([when]), ra_deg, dec_deg)[0]


def window_problem(config: Config, site: Site, start: datetime, end: datetime, ra_deg: float,
                   dec_deg: float, step_s: float = 60.0) -> str | None:
    """The first gate broken anywhere in ``[start, end]`` (sampled every ``step_s``, both ends
    included), with its time; None when every gate holds over the whole window."""
    with offline_iers():
        times = time_grid(start, end, step_s)
        for t, problem in zip(times, _problems(config, site, times, ra_deg, dec_deg),
                              strict=True):
            if problem:
                return f"{problem} at {t.datetime:%H:%M} UTC"
    return None
