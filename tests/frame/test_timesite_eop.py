"""``times()``'s Earth orientation (UT1-UTC, polar motion) is astropy's, to the bit, without
astropy's per-call IERS table access (issue 18, item 8)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.coordinates import EarthLocation
from astropy.coordinates.builtin_frames.utils import get_polar_motion
from astropy.time import Time, TimeDelta
from astropy.utils import iers

from starnode.frame import timesite
from starnode.frame.timesite import _earth_orientation, offline_iers, times


def _astropys(jd: float) -> tuple[float, float, float]:
    """What times() used before: ``delta_ut1_utc`` and ``get_polar_motion`` of a new Time."""
    t = Time(jd, format="jd", scale="utc")
    xp, yp = get_polar_motion(t)
    return float(t.delta_ut1_utc), float(xp), float(yp)


def _jds() -> list[float]:
    rng = np.random.default_rng(18)
    table_mjd = iers.earth_orientation_table.get()["MJD"].value
    first, last = float(table_mjd[0]) + 2400000.5, float(table_mjd[-1]) + 2400000.5
    leap = Time("2016-12-31T23:59:59.5", scale="utc").jd  # a leap second between two rows
    return (list(rng.uniform(2447892.5, 2462000.5, 150))  # 1990 .. 2033
            + [leap + k * 2e-6 for k in range(-10, 10)]
            + list(np.floor(rng.uniform(2447892.5, 2462000.5, 20)) + 0.5)  # on a row
            + [first - 1.0, first, last, last + 0.25, last + 400.0])  # the ends and beyond


def test_earth_orientation_is_astropys_to_the_bit() -> None:
    with offline_iers():
        jds = _jds()
        for jd in jds:
            assert _earth_orientation(Time(jd, format="jd", scale="utc")) == _astropys(jd), jd


def test_a_time_with_its_own_ut1_and_a_changed_table_are_astropys() -> None:
    with offline_iers():
        t = Time(2460800.3, format="jd", scale="utc")
        t.delta_ut1_utc = 0.125  # given by its owner: used as it is
        assert _earth_orientation(t)[0] == 0.125
        table = iers.earth_orientation_table.get()
        short = table[: len(table) // 2]  # another table: its own columns
        with iers.earth_orientation_table.set(short):
            for jd in (2451000.7, float(short["MJD"][-1].value) + 2400000.5 + 3.0):
                t = Time(jd, format="jd", scale="utc")
                assert _earth_orientation(t) == _astropys(jd)
        assert timesite._EOP[0].table is short
        assert _earth_orientation(Time(2460800.3, format="jd", scale="utc")) == \
            _astropys(2460800.3)
        assert timesite._EOP[0].table is table


@pytest.mark.parametrize("seconds", [0.0, 3600.0 * 24 * 200])
def test_times_are_the_same_as_with_astropys_look_ups(seconds: float, monkeypatch) -> None:
    """times() with the fast look-up and with astropy's: the same JD, HJD, altitude, airmass."""
    site = EarthLocation.from_geodetic(lon=8.5, lat=47.4, height=450.0)
    mid = Time("2025-03-26T21:20:46", scale="utc") + TimeDelta(seconds, format="sec")
    fast = times(mid, site, 188.9, 41.1)

    def slow(t: Time) -> tuple[float, float, float]:
        xp, yp = get_polar_motion(t)
        return float(t.delta_ut1_utc), float(xp), float(yp)

    monkeypatch.setattr(timesite, "_earth_orientation", slow)
    mid2 = Time("2025-03-26T21:20:46", scale="utc") + TimeDelta(seconds, format="sec")
    assert times(mid2, site, 188.9, 41.1) == fast
