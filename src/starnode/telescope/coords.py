"""ICRS to the equatorial system a mount reports (ASCOM ``EquatorialSystem``).

``topocentric`` (ASCOM equTopocentric, "JNow"): apparent place of date (astropy ``TETE`` at the
site: precession, nutation, aberration); the Seestar's bridges report this. ``J2000``: FK5
J2000 (the same as ICRS to 0.02"). ``J2050``: FK5 J2050. ``other``: unknown, refused - a
mount whose frame we do not know is not pointed anywhere (about 20' error at 2026 if guessed
wrong).
"""

from __future__ import annotations

from datetime import UTC, datetime

from astropy import units as u
from astropy.coordinates import FK4, FK5, TETE, EarthLocation, SkyCoord
from astropy.time import Time

from ..frame.timesite import offline_iers
from .settings import Site

__all__ = ["SYSTEMS", "UnknownSystem", "to_mount"]

#: ASCOM EquatorialCoordinateType value -> our name.
SYSTEMS = {0: "other", 1: "topocentric", 2: "J2000", 3: "J2050", 4: "B1950"}


class UnknownSystem(ValueError):
    """The mount's equatorial system is not one we can convert to."""


def to_mount(ra_deg: float, dec_deg: float, system: str, t: datetime, site: Site
             ) -> tuple[float, float]:
    """(RA, Dec) in degrees in ``system`` for the ICRS position at time ``t``."""
    c = SkyCoord(ra_deg * u.deg, dec_deg * u.deg, frame="icrs")
    with offline_iers():
        obstime = Time(t.astimezone(UTC).replace(tzinfo=None), scale="utc")
        if system == "topocentric":
            loc = EarthLocation.from_geodetic(site.lon_deg * u.deg, site.lat_deg * u.deg,
                                              site.height_m * u.m)
            o = c.transform_to(TETE(obstime=obstime, location=loc))
        elif system == "J2000":
            o = c.transform_to(FK5(equinox="J2000"))
        elif system == "J2050":
            o = c.transform_to(FK5(equinox="J2050"))
        elif system == "B1950":
            o = c.transform_to(FK4(equinox="B1950"))
        else:
            raise UnknownSystem(f"the mount reports EquatorialSystem {system!r}: starnode does "
                                "not know which coordinates it expects, so it does not slew")
    return float(o.ra.deg) % 360.0, float(o.dec.deg)
