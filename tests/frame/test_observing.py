"""starnode.frame.timesite: mid-exposure, site, HJD/airmass, scintillation, the observing night."""

from __future__ import annotations

import logging
import math

import pytest
from astropy import units as u
from astropy.coordinates import EarthLocation
from astropy.time import Time

from starnode.errors import FrameRejected
from starnode.frame.timesite import (
    exposure_start,
    geodetic,
    jd_from_unix,
    mid_exposure,
    night_of,
    pickering_airmass,
    site_location,
    times,
    utc_from_jd,
    young_scintillation,
)


def test_exposure_start_and_mid_exposure_rules(caplog: pytest.LogCaptureFixture) -> None:
    h = {"DATE-OBS": "2025-09-14 21:30:00"}
    start = exposure_start(h, "f.fit")
    assert start.isot == "2025-09-14T21:30:00.000"
    mid, unc = mid_exposure(h, start, 10.0, stack=False)
    assert (mid - start).to_value("s") == pytest.approx(5.0) and unc == 0.0
    # a consistent DATE-EXP wins; an inconsistent one is logged and ignored
    mid, _ = mid_exposure({"DATE-EXP": "2025-09-14T21:30:12"}, start, 10.0, stack=False)
    assert (mid - start).to_value("s") == pytest.approx(6.0)
    with caplog.at_level(logging.WARNING):
        mid, _ = mid_exposure({"DATE-EXP": "2025-09-15T21:30:12"}, start, 10.0, stack=False,
                              name="f.fit")
    assert (mid - start).to_value("s") == pytest.approx(5.0) and "inconsistent" in caplog.text
    # a stack: half of TOTALEXP, uncertain by as much
    mid, unc = mid_exposure({"TOTALEXP": 200.0}, start, 10.0, stack=True, stackcnt=20)
    assert (mid - start).to_value("s") == pytest.approx(100.0) and unc == 100.0
    for bad in ({}, {"DATE-OBS": "yesterday"}):
        with pytest.raises(FrameRejected) as exc:
            exposure_start(bad, "f.fit")
        assert exc.value.category == "unreadable"


def test_site_from_configuration_or_header() -> None:
    hdr = {"SITELAT": 44.74, "SITELONG": -0.62}
    loc = site_location(hdr, None, None, 50.0)
    assert loc is not None
    assert loc.geodetic.lon.deg == pytest.approx(-0.62) and loc.geodetic.lat.deg == pytest.approx(
        44.74)
    assert loc.geodetic.height.to_value("m") == pytest.approx(50.0)
    conf = site_location(hdr, 10.0, 20.0)
    assert conf is not None and conf.geodetic.lon.deg == pytest.approx(20.0)
    assert site_location({"SITELAT": 0.0, "SITELONG": 0.0}, None, None) is None  # no GPS fix
    assert site_location({"SITELAT": 95.0, "SITELONG": 0.0}, None, None) is None
    assert site_location({}, None, None) is None


def test_airmass_and_hjd_against_astropy_directly() -> None:
    site = EarthLocation.from_geodetic(lon=-0.62 * u.deg, lat=44.74 * u.deg, height=0 * u.m)
    mid = Time("2025-09-14T21:30:05", scale="utc")
    t = times(mid, site, 325.678, 43.586)
    assert t.jd == pytest.approx(mid.jd, abs=1e-9)
    assert 0 < (t.hjd - t.jd) * 86400 < 500  # light travel time across the orbit
    assert t.altitude_deg is not None and t.airmass is not None
    # Pickering: sec z high up, finite at the horizon, None below
    assert t.airmass == pytest.approx(1 / math.sin(math.radians(t.altitude_deg)), rel=2e-3)
    assert pickering_airmass(90.0) == pytest.approx(1.0, abs=1e-3)
    assert 30 < pickering_airmass(0.01) < 45  # type: ignore[operator]
    assert pickering_airmass(-1.0) is None
    geo = times(mid, None, 325.678, 43.586)
    assert geo.airmass is None and abs(geo.hjd - t.hjd) * 86400 < 0.03


def test_young_scintillation() -> None:
    # 50 mm, X = 1, 10 s, sea level, factor 1: 0.09 * 5^(-2/3) / sqrt(20)
    assert young_scintillation(50, 1.0, 10.0) == pytest.approx(0.09 * 5 ** (-2 / 3) / 20**0.5)
    assert young_scintillation(50, None, 10.0) == young_scintillation(50, 1.0, 10.0)
    assert young_scintillation(50, 2.0, 10.0) / young_scintillation(50, 1.0, 10.0) == \
        pytest.approx(2**1.75)
    assert young_scintillation(50, 1.0, 10.0, 8000.0) == pytest.approx(
        young_scintillation(50, 1.0, 10.0) / math.e)
    assert young_scintillation(50, 1.0, 10.0, factor=0.0) == 0.0


@pytest.mark.parametrize(("iso", "lon", "night"), [
    ("2025-09-14T23:30:00", 0.0, "2025-09-14"),
    ("2025-09-15T03:30:00", 0.0, "2025-09-14"),   # after midnight: still the evening's date
    ("2025-09-15T12:30:00", 0.0, "2025-09-15"),   # after local noon: the next night
    ("2025-09-15T03:30:00", -75.0, "2025-09-14"),  # 22:30 local in America
    ("2025-09-14T13:30:00", 150.0, "2025-09-14"),  # 23:30 local in Australia
    ("2025-09-14T13:30:00", 510.0, "2025-09-14"),  # longitudes wrap
    ("2025-09-15T11:59:00", None, "2025-09-14"),   # no longitude: UTC
])
def test_night_of_is_the_local_evening_date(iso: str, lon: float | None, night: str) -> None:
    assert night_of(Time(iso, scale="utc").jd, lon) == night


# ---------------------------------------------------------------- issue 10, item 13
@pytest.mark.parametrize(("text", "category"), [
    ("2025-09-14", "implausible"),  # no time of day: not midnight
    ("0001-09-14T20:00:00", "implausible"),
    ("9999-09-14T20:00:00", "implausible"),
    ("1989-12-31T23:59:59", "implausible"),
    ("2025-13-14T20:00:00", "unreadable"),
])
def test_exposure_start_refuses_implausible_dates(text: str, category: str) -> None:
    with pytest.raises(FrameRejected) as exc:
        exposure_start({"DATE-OBS": text}, "f.fit")
    assert exc.value.category == category and text in exc.value.reason


def test_exposure_start_accepts_a_space_or_t_and_today() -> None:
    now = Time.now()
    assert exposure_start({"DATE-OBS": "2025-09-14 20:30:00"}, "f").isot.startswith(
        "2025-09-14T20:30:00")
    assert abs((exposure_start({"DATE-OBS": now.isot}, "f") - now).to_value("s")) < 1


def test_night_of_a_non_finite_longitude_is_greenwich() -> None:
    jd = Time("2025-09-14T23:00:00", scale="utc").jd
    assert night_of(jd, float("nan")) == night_of(jd, None) == "2025-09-14"
    assert night_of(jd, float("inf")) == "2025-09-14"


@pytest.mark.parametrize("iso", ["1970-01-01T00:00:00", "2025-09-14T21:30:00.250",
                                 "2000-02-29T12:00:00"])
def test_the_one_jd_unix_conversion_agrees_with_astropy(iso: str) -> None:
    t = Time(iso, scale="utc")
    assert jd_from_unix(float(t.unix)) == pytest.approx(float(t.jd), abs=1e-9)
    back = utc_from_jd(float(t.jd))
    assert back.tzinfo is not None and abs(back.timestamp() - float(t.unix)) < 1e-3
    assert night_of(jd_from_unix(float(t.unix)), 0.0) == night_of(float(t.jd), 0.0)


def test_the_jd_unix_examples() -> None:
    import doctest

    from starnode.util import jd

    result = doctest.testmod(jd)
    assert result.attempted >= 3 and result.failed == 0


def test_a_site_made_once_per_process_is_the_same_and_each_caller_gets_its_own() -> None:
    hdr = {"SITELAT": 44.74, "SITELONG": -0.62}
    first = site_location(hdr, None, None, 50.0)
    second = site_location(hdr, None, None, 50.0)
    fresh = EarthLocation.from_geodetic(lon=-0.62, lat=44.74, height=50.0)
    assert first is not None and second is not None and first is not second
    for loc in (first, second):
        assert (loc.x, loc.y, loc.z) == (fresh.x, fresh.y, fresh.z)
        assert loc.ellipsoid == fresh.ellipsoid
    first.x[...] = 0.0 * u.m  # one caller's change reaches no other
    third = site_location(hdr, None, None, 50.0)
    assert third is not None and third.x == fresh.x


def test_times_are_the_same_for_a_site_seen_again() -> None:
    site = EarthLocation.from_geodetic(lon=-0.62 * u.deg, lat=44.74 * u.deg, height=12 * u.m)
    mid = Time("2025-09-14T21:30:05", scale="utc")
    first = times(mid, site, 325.678, 43.586)
    again = times(Time("2025-09-14T21:30:05", scale="utc"), site.copy(), 325.678, 43.586)
    assert first == again
    other = EarthLocation.from_geodetic(lon=10.0 * u.deg, lat=44.74 * u.deg, height=12 * u.m)
    assert times(mid, other, 325.678, 43.586).altitude_deg != first.altitude_deg


@pytest.mark.parametrize("unit", ["m", "km"])
def test_geodetic_is_astropys_to_geodetic(unit: str) -> None:
    site = EarthLocation.from_geodetic(lon=200.0, lat=-33.5, height=812.25).to(unit)
    for ellipsoid in (None, "WGS84", "GRS80"):
        lon, lat, height = site.to_geodetic(ellipsoid)
        want = (lon.deg, lat.deg, height.to_value("m"), lon.to_value("rad"),
                lat.to_value("rad"))
        assert geodetic(site, ellipsoid) == tuple(float(v) for v in want)
        assert geodetic(site, ellipsoid) == geodetic(site.copy(), ellipsoid)  # cached: same
    assert geodetic(site)[0] == pytest.approx(-160.0)  # wrapped at 180 as astropy wraps it
