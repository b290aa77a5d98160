"""Shared pieces of the telescope tests: a site and night, plans, a runner on the fake Alpaca
server with a simulated clock, and an *independent* check of what the mount received (astropy
directly, not starnode's safety code)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from astropy import units as u
from astropy.coordinates import TETE, AltAz, EarthLocation, SkyCoord, get_body
from astropy.time import Time

from starnode.planning.ephemeris import offline_iers
from starnode.planning.model import Plan, PlanItem
from starnode.store.telescope import TelescopeJournal
from starnode.telescope.alpaca import AlpacaDriver
from starnode.telescope.clock import SimClock
from starnode.telescope.fake import FakeAlpaca
from starnode.telescope.runner import Runner, RunnerOptions
from starnode.telescope.safety import SafetyManager
from starnode.telescope.settings import Site, TelescopeSettings

SITE = Site(52.0, 5.0, 10.0)
NIGHT = "2025-09-14"  # dusk (-12 deg) 19:11:28 UTC, dawn 03:59:57 UTC (computed, see tests)

# ICRS positions
R_CRB = (237.56, 28.157)
CHI_CYG = (297.64, 32.91)
RU_PEG = (333.0, 12.7)
Z_CAM = (126.3, 73.1)
R_AND = (6.0, 38.58)
CH_CYG = (291.138, 50.241)  # near the zenith at 20:30 (85-88 deg)
U_GEM = (118.77, 22.0)  # below the horizon in the evening
SS_CYG = (325.678, 43.586)


def utc(h: int, m: int = 0, day: int = 14) -> datetime:
    if h >= 24:
        h, day = h - 24, day + 1
    return datetime(2025, 9, day, h, m, tzinfo=UTC)


def settings(**kw: Any) -> TelescopeSettings:
    base = TelescopeSettings(driver="alpaca", motion=True, site=SITE)
    return replace(base, **kw)


def item(name: str, pos: tuple[float, float], start: datetime, end: datetime,
         exposure_s: float = 300.0, frames: int = 1000) -> PlanItem:
    return PlanItem(name, pos[0], pos[1], start, end, exposure_s, frames)


def plan(*items: PlanItem, night: str = NIGHT) -> Plan:
    return Plan(night, utc(12), utc(36), tuple(items))


def full_night() -> Plan:
    """Dusk to past dawn, five targets, each inside 30-80 deg over its window."""
    return plan(item("R CrB", R_CRB, utc(19, 15), utc(20, 0)),
                item("Chi Cyg", CHI_CYG, utc(20, 0), utc(21, 30)),
                item("RU Peg", RU_PEG, utc(21, 30), utc(23, 30)),
                item("Z Cam", Z_CAM, utc(23, 30), utc(25, 30)),
                item("R And", R_AND, utc(25, 30), utc(28, 30)))


FAST = RunnerOptions(reconnect_s=60.0, reconnect_every_s=15.0, park_timeout_s=60.0,
                     park_attempts=3, park_backoff_s=5.0)


@dataclass
class Night:
    fake: FakeAlpaca
    clock: SimClock
    journal: TelescopeJournal
    folder: Path

    def runner(self, p: Plan, st: TelescopeSettings | None = None, **kw: Any) -> Runner:
        st = st or settings()
        kw.setdefault("options", FAST)
        safety = kw.pop("safety", None) or SafetyManager(st, self.clock)
        driver = AlpacaDriver(self.fake.address, 0, 0, st.site, self.clock,
                              http_timeout_s=kw.pop("http_timeout_s", 2.0))
        return Runner(p, driver, safety, self.journal, self.clock, st, self.folder, **kw)

    def sent(self, method: str) -> list[Any]:
        return [r for r in self.fake.received if r.method == method]


@contextlib.contextmanager
def night(tmp_path: Path, start: datetime | None = None, **fake_kw: Any) -> Iterator[Night]:
    clock = SimClock(start or utc(17))
    with FakeAlpaca(clock, **fake_kw) as fake, \
            TelescopeJournal(tmp_path / "starnode.sqlite3") as journal:
        yield Night(fake, clock, journal, tmp_path / "frames")


def _location(site: Site) -> EarthLocation:
    return EarthLocation.from_geodetic(site.lon_deg * u.deg, site.lat_deg * u.deg,
                                       site.height_m * u.m)


def sun_alt(site: Site, t: datetime) -> float:
    with offline_iers():
        tt = Time(t)
        return float(get_body("sun", tt, _location(site)).transform_to(
            AltAz(obstime=tt, location=_location(site))).alt.deg)


def slew_altaz(site: Site, t: datetime, ra_h: float, dec: float) -> tuple[float, float]:
    """Alt/az of topocentric (TETE) coordinates as the mount received them."""
    with offline_iers():
        tt = Time(t)
        c = SkyCoord(ra_h * 15 * u.deg, dec * u.deg,
                     frame=TETE(obstime=tt, location=_location(site)))
        aa = c.transform_to(AltAz(obstime=tt, location=_location(site)))
    return float(aa.alt.deg), float(aa.az.deg)


def assert_safe_sequence(n: Night, st: TelescopeSettings, dawn: datetime | None = None) -> None:
    """What the mount received: no slew below the floor / above the ceiling / with the sun up
    or after dawn, no exposure with the sun up, and the last command a park that was verified
    (the fake reports AtPark)."""
    assert st.site is not None
    for r in n.sent("slewtocoordinatesasync"):
        alt, _az = slew_altaz(st.site, r.t, float(r.params["RightAscension"]),
                              float(r.params["Declination"]))
        assert st.min_altitude - 0.5 <= alt <= st.max_altitude + 0.5, (r, alt)
        assert sun_alt(st.site, r.t) <= st.sun_limit, r
        if dawn is not None:
            assert r.t < dawn
    for r in n.sent("startexposure") + n.sent("unpark"):
        assert sun_alt(st.site, r.t) <= st.sun_limit, r
        if r.method == "startexposure":
            end = r.t + timedelta(seconds=float(r.params["Duration"]))
            assert sun_alt(st.site, end) <= st.sun_limit + 0.05, r
            if dawn is not None:
                assert end <= dawn + timedelta(seconds=1)
    tel = [r for r in n.fake.received if r.device == "telescope"]
    if any(r.method in ("unpark", "slewtocoordinatesasync") for r in tel):
        assert tel[-1].method == "park", tel[-3:]
        if dawn is not None:
            assert tel[-1].t <= dawn
        assert n.fake.st.parked
