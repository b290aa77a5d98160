"""The safety manager's rules one by one (each test fails without its rule), the night's
events (dusk is never dawn; polar and southern nights), coordinates, the lock, the settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from starnode.config import Config
from starnode.errors import ConfigError
from starnode.telescope.clock import SimClock
from starnode.telescope.coords import UnknownSystem, to_mount
from starnode.telescope.lock import MountBusy, MountLock
from starnode.telescope.safety import SUN_AVOID_DEG, Refusal, SafetyManager
from starnode.telescope.settings import Site, TelescopeSettings
from starnode.telescope.sky import night_events, sun_altaz
from telescope_helpers import CHI_CYG, SITE, settings, utc


def _safety(t: datetime, **kw) -> SafetyManager:
    return SafetyManager(settings(**kw), SimClock(t))


def test_no_site_refused() -> None:
    with pytest.raises(Refusal) as e:
        _safety(utc(21), site=None).preflight("2025-09-14")
    assert e.value.code == "site"


def test_site_zero_zero_refused() -> None:
    with pytest.raises(Refusal) as e:
        _safety(utc(21), site=Site(0.0, 0.0)).preflight("2025-09-14")
    assert e.value.code == "site"


def test_implausible_clock_refused() -> None:
    """A Raspberry Pi without a real-time clock boots in 1970: refused whatever the night."""
    s = SafetyManager(settings(), SimClock(datetime(1970, 1, 1, tzinfo=UTC)))
    with pytest.raises(Refusal) as e:
        s.check_clock()
    assert e.value.code == "clock" and "cannot be right" in e.value.reason


def test_clock_outside_the_night_refused() -> None:
    with pytest.raises(Refusal) as e:
        _safety(utc(21) + timedelta(days=3)).preflight("2025-09-14")
    assert e.value.code == "clock" and "not during the night" in e.value.reason


def test_clock_stepping_back_refused() -> None:
    s = _safety(utc(21))
    s.preflight("2025-09-14")
    s.clock.jump(-600)  # type: ignore[attr-defined]
    with pytest.raises(Refusal) as e:
        s.check_clock()
    assert "went back" in e.value.reason


def test_broken_ephemeris_refused() -> None:
    def broken(*a, **k):
        raise ValueError("interpolating from IERS_Auto using predictive values")

    s = SafetyManager(settings(), SimClock(utc(21)), events=broken)
    with pytest.raises(Refusal) as e:
        s.preflight("2025-09-14")
    assert e.value.code == "ephemeris"


def test_gates_refuse_before_preflight() -> None:
    s = _safety(utc(21))
    with pytest.raises(Refusal) as e:
        s.gate_unpark()
    assert e.value.code == "preflight"


def test_motion_off_refused() -> None:
    s = _safety(utc(21), motion=False)
    s.preflight("2025-09-14")
    with pytest.raises(Refusal) as e:
        s.gate_unpark()
    assert e.value.code == "motion"


def test_sun_gate_on_unpark() -> None:
    s = _safety(utc(18, 30))  # the sun at about -5 deg
    s.preflight("2025-09-14")
    with pytest.raises(Refusal) as e:
        s.gate_unpark()
    assert e.value.code == "sun" and "unpark" in e.value.reason
    s.clock.jump(3600)  # type: ignore[attr-defined]
    s.gate_unpark()  # 19:30: below -12


def test_no_slew_near_the_sun() -> None:
    """A target 35 deg from the sun, above the horizon after dusk (floor lowered to 0 so that
    only the sun rule can refuse it)."""
    t = utc(19, 20)
    s = _safety(t, min_altitude=0.0)
    s.preflight("2025-09-14")
    _, _, sun = sun_altaz(SITE, [t])
    ra, dec = float(sun.ra.deg[0]) + 15.0, float(sun.dec.deg[0]) + 32.0
    track = s.track(ra, dec, t, t + timedelta(minutes=10))
    assert track.at(t)[0] > 1.0  # above the horizon: the floor does not refuse
    assert s.sky is not None and s.sky.sun_separation(t, ra, dec) < SUN_AVOID_DEG
    with pytest.raises(Refusal) as e:
        s.gate_slew(track, t + timedelta(minutes=10))
    assert e.value.code == "sun" and "from the sun" in e.value.reason


def test_floor_ceiling_and_mask() -> None:
    s = _safety(utc(21), horizon=((90.0, 10.0), (180.0, 45.0), (270.0, 10.0)))
    assert s.floor(180.0) == 45.0
    assert s.floor(135.0) == pytest.approx(30.0)  # interpolated 27.5 -> the 30 floor
    assert s.floor(0.0) == 30.0
    assert s.floor(359.0) == 30.0


def test_frame_gate_refuses_past_dawn() -> None:
    ev = night_events(SITE, "2025-09-14", -12.0)
    assert ev.dawn is not None
    s = _safety(ev.dawn - timedelta(seconds=100))
    s.preflight("2025-09-14")
    track = s.track(*CHI_CYG, s.clock.now(), s.clock.now() + timedelta(minutes=5))
    with pytest.raises(Refusal) as e:
        s.gate_frame(track, 300.0)
    assert e.value.code == "dawn"


def test_dusk_is_not_dawn() -> None:
    ev = night_events(SITE, "2025-09-14", -12.0)
    assert ev.dusk is not None and ev.dawn is not None and ev.dusk < ev.dawn
    # at dusk the sun goes down, at dawn up
    a = sun_altaz(SITE, [ev.dusk - timedelta(minutes=5), ev.dusk + timedelta(minutes=5),
                         ev.dawn - timedelta(minutes=5), ev.dawn + timedelta(minutes=5)])[0]
    assert a[0] > -12 > a[1] and a[2] < -12 < a[3]


def test_polar_summer_has_no_night_and_no_motion() -> None:
    tromso = Site(69.65, 18.96)
    ev = night_events(tromso, "2025-06-21", -12.0)
    assert ev.dusk is None and ev.dawn is None and not ev.dark_at_noon
    s = SafetyManager(settings(site=tromso), SimClock(datetime(2025, 6, 21, 23, tzinfo=UTC)))
    s.preflight("2025-06-21")
    with pytest.raises(Refusal):
        s.gate_unpark()


def test_southern_hemisphere_night() -> None:
    sutherland = Site(-32.38, 20.81, 1800)
    ev = night_events(sutherland, "2025-06-21", -12.0)
    assert ev.dusk is not None and ev.dawn is not None
    assert 15 <= ev.dusk.hour <= 17 and 3 <= ev.dawn.hour <= 5
    assert (ev.dawn - ev.dusk) > timedelta(hours=11)


def test_coordinates_to_the_mount_system() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    j2000 = to_mount(*CHI_CYG, "J2000", t, SITE)
    assert j2000[0] == pytest.approx(CHI_CYG[0], abs=1e-4)
    jnow = to_mount(*CHI_CYG, "topocentric", t, SITE)
    moved = ((jnow[0] - CHI_CYG[0]) ** 2 + (jnow[1] - CHI_CYG[1]) ** 2) ** 0.5
    assert 0.2 < moved < 0.6  # 26 years of precession (about 20' in Dec and RA)
    with pytest.raises(UnknownSystem):
        to_mount(*CHI_CYG, "other", t, SITE)


def test_one_owner_of_the_mount(tmp_path: Path) -> None:
    a, b = MountLock(tmp_path), MountLock(tmp_path)
    a.acquire()
    try:
        with pytest.raises(MountBusy) as e:
            b.acquire()
        assert e.value.pid is not None
    finally:
        a.release()
    b.acquire()
    b.release()


def test_settings_from_config() -> None:
    cfg = Config({"site": {"latitude": 52.0, "longitude": 365.0 - 360.0},
                  "telescope": {"driver": "alpaca", "horizon": [[0, 10], [180, 40]]}})
    st = TelescopeSettings.from_config(cfg)
    assert st.driver == "alpaca" and st.motion is False and st.sun_limit == -12.0
    assert st.min_altitude == 30.0 and st.max_altitude == 80.0 and st.model == "s50"
    assert st.address == "127.0.0.1:32323" and st.horizon == ((0.0, 10.0), (180.0, 40.0))
    assert st.site == Site(52.0, 5.0, 0.0)
    assert TelescopeSettings.from_config(Config({})).driver == "none"


@pytest.mark.parametrize("bad", [{"driver": "seestar"}, {"horizon": [[400, 10]]},
                                 {"horizon": [[10]]}, {"address": "nohost"},
                                 {"sun_limit": 5}, {"min_altitude": 60, "max_altitude": 50}])
def test_bad_telescope_config_is_refused(bad: dict) -> None:
    with pytest.raises(ConfigError):
        Config({"telescope": bad})
