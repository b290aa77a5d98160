"""Golden plans: real astropy ephemerides, offline, for fixed sites and nights.

Each test checks what the plan promises independently of the planner's own code (altitudes are
recomputed straight from astropy over the whole window, ends included).
"""

from __future__ import annotations

import itertools
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import EarthLocation, get_body
from astropy.time import Time

from planning_helpers import (
    NEW_YORK,
    PARIS,
    SS_CYG,
    SYDNEY,
    TROMSO,
    config,
    independent_altaz,
    measured,
    no_internet,  # noqa: F401 (fixture)
)
from starnode.instruments import profile
from starnode.planning import Plan
from starnode.planning.ephemeris import (
    Site,
    dark_window,
    night_window,
    offline_iers,
    sun_altitude,
    sun_events,
)
from starnode.planning.planner import plan_night

pytestmark = pytest.mark.usefixtures("no_internet")

NOW = datetime(2025, 9, 14, 12, tzinfo=UTC)
EVENING = {"name": "AM Her", "ra": 274.055, "dec": 49.868, "brightest": 11.5, "faintest": 13.0}
MORNING = {"name": "Morning Star", "ra": 45.0, "dec": 40.0, "brightest": 9.0, "faintest": 11.5}
GOLDEN = Path(__file__).parents[1] / "data" / "golden_plan_paris_2025-09-14.json"


def _check_window(site: tuple[float, float], plan: Plan, floor: float = 30.0,
                  ceiling: float = 80.0) -> None:
    """Every item inside the dark window, on whole minutes, and within the altitude limits
    over its whole window (recomputed independently)."""
    assert plan.dusk is not None and plan.dawn is not None
    starts = [it.start for it in plan.items]
    assert starts == sorted(starts), "items must be in UTC order"
    for a, b in zip(plan.items, plan.items[1:], strict=False):
        assert a.end <= b.start, f"{a.target} overlaps {b.target}"
    for it in plan.items:
        assert plan.dusk <= it.start < it.end <= plan.dawn
        assert it.start.second == 0 and it.end.second == 0
        alt, _ = independent_altaz(site, it)
        assert alt.min() >= floor - 1e-6 and alt.max() <= ceiling + 1e-6, it
        assert abs(alt.min() - it.min_altitude_deg) < 0.2
        assert sun_altitude(Site(*site), it.start) <= -12 and sun_altitude(Site(*site),
                                                                          it.end) <= -12


def test_across_midnight_items_follow_in_utc_order(tmp_path: Path) -> None:
    cfg = config(tmp_path, PARIS, [MORNING, EVENING, SS_CYG])
    plan = plan_night(cfg, "2025-09-14", now=NOW)
    _check_window(PARIS, plan)
    by = {it.target: it for it in plan.items}
    assert set(by) == {"AM Her", "SS Cyg", "Morning Star"}, plan.excluded
    midnight = datetime(2025, 9, 15, tzinfo=UTC)
    assert by["AM Her"].start < midnight <= by["Morning Star"].start
    assert [it.target for it in plan.items][-1] == "Morning Star"
    d = json.loads(json.dumps(plan.to_dict()))
    assert d["night"] == "2025-09-14"
    for it in d["items"]:
        assert it["start"].endswith("Z") and it["end"].endswith("Z")
    assert d["expires"].endswith("Z") and d["expires"] == d["dawn"]
    assert Plan.from_dict(d).hash == plan.hash
    # the same plan computed twice has the same hash
    assert plan_night(cfg, "2025-09-14", now=NOW + timedelta(hours=1)).hash == plan.hash


def _golden(plan: Plan) -> dict[str, object]:
    return {"night": plan.night, "hash": plan.hash,
            "items": [{k: v for k, v in it.to_dict().items()
                       if k in ("target", "start", "end", "exposure_s", "frames")}
                      for it in plan.items],
            "excluded": [[e.target, e.code] for e in plan.excluded]}


def test_golden_plan_paris(tmp_path: Path) -> None:
    """The full plan of one night, kept in tests/data (STARNODE_REGEN_GOLDEN=1 rewrites it
    after a deliberate change of the planner)."""
    bright = {"name": "RS Oph", "ra": 267.555, "dec": -6.708, "brightest": 4.8, "faintest": 12.5}
    south = {"name": "Low One", "ra": 300.0, "dec": -35.0, "brightest": 10.0, "faintest": 12.0}
    cfg = config(tmp_path, PARIS, [MORNING, EVENING, SS_CYG, bright, south])
    got = _golden(plan_night(cfg, "2025-09-14", now=NOW))
    if os.environ.get("STARNODE_REGEN_GOLDEN"):
        GOLDEN.write_text(json.dumps(got, indent=1) + "\n")
    assert got == json.loads(GOLDEN.read_text())


@pytest.mark.parametrize(("site", "nights"), [
    (PARIS, ("2025-10-24", "2025-10-25", "2025-10-26")),      # EU: clocks back 26 Oct 01:00 UTC
    (NEW_YORK, ("2025-10-31", "2025-11-01", "2025-11-02")),   # US: clocks back 2 Nov 06:00 UTC
])
def test_dst_change_night_moves_nothing(tmp_path: Path, site: tuple[float, float],
                                        nights: tuple[str, ...]) -> None:
    target = {"name": "DST Star", "ra": 100.0, "dec": 20.0, "brightest": 9.5, "faintest": 12.0}
    plans = [plan_night(config(tmp_path, site, [target]), n, now=NOW) for n in nights]
    for p in plans:
        _check_window(site, p)
        assert [it.target for it in p.items] == ["DST Star"]
    for a, b in itertools.pairwise(plans):
        assert a.dusk is not None and b.dusk is not None
        # one day later: dusk a few minutes earlier, the star ~4 minutes earlier - never an hour
        dusk_shift = (b.dusk - a.dusk).total_seconds() / 60 - 24 * 60
        star_shift = (b.items[0].start - a.items[0].start).total_seconds() / 60 - 24 * 60
        assert abs(dusk_shift) < 5, dusk_shift
        assert -15 < star_shift < 10, star_shift


def test_polar_summer_night_has_no_darkness(tmp_path: Path) -> None:
    cfg = config(tmp_path, TROMSO, [SS_CYG, EVENING])
    plan = plan_night(cfg, "2025-06-21", now=NOW)
    assert plan.items == ()
    assert [(e.target, e.reason, e.code) for e in plan.excluded] == [
        ("SS Cyg", "the sun never reaches −12°", "sun"),
        ("AM Her", "the sun never reaches −12°", "sun")]
    assert plan.dusk is None and plan.dawn is None
    assert plan.expires == night_window("2025-06-21", TROMSO[1])[1]
    assert plan.to_dict()["dusk"] is None


def test_southern_hemisphere(tmp_path: Path) -> None:
    south = {"name": "BL Tel", "ra": 283.0, "dec": -51.0, "brightest": 9.0, "faintest": 11.0}
    cfg = config(tmp_path, SYDNEY, [SS_CYG, south])
    plan = plan_night(cfg, "2025-06-15", now=NOW)
    _check_window(SYDNEY, plan)
    assert [it.target for it in plan.items] == ["BL Tel"]
    assert plan.dusk is not None and plan.dawn is not None
    # Sydney's evening of 15 June is that day's morning in UTC; the night stays one night
    assert plan.dusk.date().isoformat() == "2025-06-15" and plan.dawn < night_window(
        "2025-06-15", SYDNEY[1])[1]
    [ex] = plan.excluded
    assert ex.target == "SS Cyg" and ex.code == "altitude"
    assert ex.reason.startswith("below 30° all night")


def test_altitude_is_held_over_the_whole_window(tmp_path: Path) -> None:
    setting = {"name": "Setting", "ra": 240.0, "dec": 10.0, "brightest": 9.0, "faintest": 12.0}
    cfg = config(tmp_path, PARIS, [setting], planning={"slot_minutes": 180})
    plan = plan_night(cfg, "2025-09-14", now=NOW)
    [it] = plan.items
    _check_window(PARIS, plan)
    assert it.end - it.start < timedelta(minutes=180)  # cut where it sinks below 30°
    after = independent_altaz(PARIS, type(it)(**{**it.__dict__, "start": it.end,
                                                  "end": it.end + timedelta(minutes=10)}))[0]
    assert after.min() < 30.0  # it really sets just after the window


def test_a_short_window_is_excluded(tmp_path: Path) -> None:
    """Barely above 30° at transit: high enough for only a few minutes."""
    grazing = {"name": "Grazing", "ra": 0.0, "dec": -11.29, "brightest": 9.0, "faintest": 12.0}
    cfg = config(tmp_path, PARIS, [grazing])
    plan = plan_night(cfg, "2025-09-14", now=NOW)
    # the fixture really is above 30° for less than 10 minutes (independent check)
    from starnode.planning import PlanItem

    assert plan.dusk is not None and plan.dawn is not None
    whole = PlanItem("Grazing", 0.0, -11.29, plan.dusk, plan.dawn, 10, 1)
    alt, _ = independent_altaz(PARIS, whole, step_s=60)
    assert 0 < (alt >= 30).sum() < 10
    assert plan.items == ()
    [ex] = plan.excluded
    assert ex.code == "altitude" and "less than 10 minutes" in ex.reason


def test_horizon_mask(tmp_path: Path) -> None:
    target = {"name": "South Star", "ra": 330.0, "dec": 20.0, "brightest": 9.0,
              "faintest": 12.0}
    wall = [[0, 0], [60, 0], [70, 85], [290, 85], [300, 0], [360, 0]]
    plan = plan_night(config(tmp_path, PARIS, [target], telescope={"horizon": wall}),
                      "2025-09-14", now=NOW)
    assert plan.items == ()
    assert [(e.code, e.reason) for e in plan.excluded] == [
        ("horizon", "hidden by the horizon mask all night")]
    # a tree line in the south-east: the window is where the star is above it, all of it
    trees = [[0, 0], [120, 0], [150, 55], [170, 55], [190, 0], [360, 0]]
    plan = plan_night(config(tmp_path, PARIS, [target], telescope={"horizon": trees},
                             planning={"slot_minutes": 120}), "2025-09-14", now=NOW)
    [it] = plan.items
    alt, az = independent_altaz(PARIS, it)
    mask = np.interp(az, [p[0] for p in trees], [p[1] for p in trees])
    assert (alt >= np.maximum(mask, 30.0) - 1e-6).all()
    assert (mask > 30).any() or it.start > plan.dusk  # the mask shaped the window


def test_moon_separation(tmp_path: Path) -> None:
    night = "2025-12-04"  # full Moon, high in the sky from Paris
    t = Time("2025-12-04T23:00:00")
    with offline_iers():
        moon = get_body("moon", t, EarthLocation.from_geodetic(PARIS[1] * u.deg,
                                                               PARIS[0] * u.deg)).icrs
    near = {"name": "By The Moon", "ra": float(moon.ra.deg), "dec": float(moon.dec.deg),
            "brightest": 9.0, "faintest": 11.0}
    far = {"name": "Far Away", "ra": (float(moon.ra.deg) + 120.0) % 360.0, "dec": 60.0,
           "brightest": 9.0, "faintest": 11.0}
    plan = plan_night(config(tmp_path, PARIS, [near, far]), night, now=NOW)
    assert [it.target for it in plan.items] == ["Far Away"]
    [ex] = plan.excluded
    assert ex.target == "By The Moon" and ex.code == "moon" and "% illuminated" in ex.reason
    # a bright-Moon limit: with the full Moon up nothing is observed
    plan = plan_night(config(tmp_path, PARIS, [far], planning={"moon_max_illumination": 0.5}),
                      night, now=NOW)
    assert plan.items == () and plan.excluded[0].code == "moon"
    assert plan.excluded[0].reason.startswith("the Moon is up and")


def test_saturation_and_faintness(tmp_path: Path) -> None:
    s50 = profile("s50")
    pos = {"ra": SS_CYG["ra"], "dec": SS_CYG["dec"]}
    targets = [{"name": "Too Bright", **pos, "brightest": 5.0, "faintest": 9.0},
               {"name": "Too Faint", **pos, "brightest": 10.0, "faintest": 16.5},
               {"name": "Just Right", **pos, "brightest": 9.5, "faintest": 12.0},
               {"name": "Bright End", **pos, "brightest": 7.6, "faintest": 10.0}]
    plan = plan_night(config(tmp_path, PARIS, targets), "2025-09-14", now=NOW)
    codes = {e.target: e.code for e in plan.excluded}
    assert codes == {"Too Bright": "saturates", "Too Faint": "too_faint"}
    by = {it.target: it for it in plan.items}
    assert by["Just Right"].exposure_s == 20.0  # the longest alt-az frame that fits
    assert by["Bright End"].exposure_s in (2.0, 5.0)  # expert-mode frames
    for it, t in ((by["Just Right"], targets[2]), (by["Bright End"], targets[3])):
        assert s50.peak_adu(float(t["brightest"]), it.exposure_s) < s50.linearity_limit_adu
        assert s50.snr(float(t["faintest"]), it.exposure_s) >= 10.0
    plan = plan_night(config(tmp_path, PARIS, targets[3:],
                             planning={"expert_exposures": False}), "2025-09-14", now=NOW)
    assert plan.items == () and plan.excluded[0].code == "saturates"
    assert "10-second frames" in plan.excluded[0].reason


def test_cadence_and_debt_from_the_ledger(tmp_path: Path) -> None:
    targets = [dict(SS_CYG), {**EVENING, "name": "Seen Long Ago"},
               {**EVENING, "name": "Seen Lately", "ra": EVENING["ra"] + 0.1}]
    cfg = config(tmp_path, PARIS, targets, planning={"slot_minutes": 20})
    dusk = dark_window(Site(*PARIS), "2025-09-14", -12.0).start
    assert dusk is not None
    measured(cfg, tmp_path, "SS Cyg", dusk - timedelta(hours=8))
    measured(cfg, tmp_path, "Seen Long Ago", dusk - timedelta(days=5))
    measured(cfg, tmp_path, "Seen Lately", dusk - timedelta(days=2))
    plan = plan_night(cfg, "2025-09-14", now=NOW)
    [ex] = plan.excluded
    assert ex.target == "SS Cyg" and ex.code == "cadence"
    assert ex.reason == "observed 0.3 days ago; its cadence is 1 day"
    by = {it.target: it for it in plan.items}
    assert by["Seen Long Ago"].score > by["Seen Lately"].score
    assert "5.0 days ago" in by["Seen Long Ago"].reason
    # a shorter cadence of its own lets SS Cyg back in
    targets[0]["cadence_days"] = 0.25
    plan = plan_night(config(tmp_path, PARIS, targets), "2025-09-14", now=NOW)
    assert "SS Cyg" in [it.target for it in plan.items]


def test_measured_snr_calibrates_the_faint_limit(tmp_path: Path) -> None:
    target = {"name": "Faint End", "ra": SS_CYG["ra"], "dec": SS_CYG["dec"], "brightest": 10.0,
              "faintest": 13.5}
    cfg = config(tmp_path, PARIS, [target])
    assert [it.target for it in plan_night(cfg, "2025-09-14", now=NOW).items] == ["Faint End"]
    # this node's frames reach a third of the model's S/N (a bright sky, say)
    s50 = profile("s50")
    measured(cfg, tmp_path, "Other", datetime(2025, 9, 1, 22, tzinfo=UTC), mag=12.0,
             snr=s50.snr(12.0, 10.0) / 3, exptime=10.0, n=6)
    plan = plan_night(cfg, "2025-09-14", now=NOW)
    assert plan.items == ()
    assert plan.excluded[0].code == "too_faint"
    assert any("calibrated on 6 measured frames" in n for n in plan.notes)


def test_sun_events_are_dusk_then_dawn() -> None:
    site = Site(*PARIS)
    n0, n1 = night_window("2025-09-14", site.lon_deg)
    events = sun_events(site, n0, n1, -12.0)
    assert [e.kind for e in events] == ["dusk", "dawn"]
    for e in events:
        assert abs(sun_altitude(site, e.time) - -12.0) < 0.05
    dark = dark_window(site, "2025-09-14", -12.0)
    assert dark.dusk is not None and dark.dawn is not None
    assert dark.dusk.time == events[0].time and dark.dawn.time == events[1].time


def test_a_night_far_from_the_iers_tables_plans_offline(tmp_path: Path) -> None:
    """Years after the bundled IERS predictions, with no network: still a plan."""
    plan = plan_night(config(tmp_path, PARIS, [EVENING]), "2029-06-10", now=NOW)
    assert plan.dusk is not None and plan.dusk.year == 2029


def test_default_night_is_tonight_then_the_coming_one(tmp_path: Path) -> None:
    cfg = config(tmp_path, PARIS, [EVENING])
    assert plan_night(cfg, now=datetime(2025, 9, 14, 15, tzinfo=UTC)).night == "2025-09-14"
    assert plan_night(cfg, now=datetime(2025, 9, 15, 1, tzinfo=UTC)).night == "2025-09-14"
    assert plan_night(cfg, now=datetime(2025, 9, 15, 9, tzinfo=UTC)).night == "2025-09-15"


def test_no_site_no_plan(tmp_path: Path) -> None:
    from starnode.config import Config
    from starnode.errors import ConfigError

    with pytest.raises(ConfigError, match=r"site\.latitude and site\.longitude"):
        plan_night(Config({"data_dir": str(tmp_path)}), "2025-09-14", now=NOW)


def test_gates_for_the_runner_agree_with_the_plan(tmp_path: Path) -> None:
    from starnode.planning.gates import pointing_problem, sun_separation_deg, window_problem

    cfg = config(tmp_path, PARIS, [MORNING, EVENING, SS_CYG])
    plan = plan_night(cfg, "2025-09-14", now=NOW)
    site = Site(*PARIS)
    for it in plan.items:
        assert window_problem(cfg, site, it.start, it.end, it.ra_deg, it.dec_deg) is None
        assert pointing_problem(cfg, site, it.start, it.ra_deg, it.dec_deg) is None
    late = plan.items[-1]
    assert plan.dawn is not None
    noon = datetime(2025, 9, 15, 12, tzinfo=UTC)
    assert "the sun is at" in str(pointing_problem(cfg, site, noon, late.ra_deg, late.dec_deg))
    assert sun_separation_deg(noon, late.ra_deg, late.dec_deg) > 45
    # a window stretched past the target's setting or into the dawn is refused, with the time
    problem = window_problem(cfg, site, late.start, plan.dawn + timedelta(minutes=30),
                             late.ra_deg, late.dec_deg)
    assert problem is not None and problem.endswith("UTC")
    low = pointing_problem(cfg, site, late.start, 267.555, -40.0)
    assert low is not None and "below the floor (30°)" in low


def test_polar_winter_night_is_dark_from_noon_to_noon(tmp_path: Path) -> None:
    site = (80.0, 15.0)  # the sun stays below −12° all day
    circumpolar = {"name": "Polaris Way", "ra": 30.0, "dec": 75.0, "brightest": 9.0,
                   "faintest": 11.0}
    plan = plan_night(config(tmp_path, site, [circumpolar]), "2025-12-21", now=NOW)
    n0, n1 = night_window("2025-12-21", site[1])
    assert (plan.dusk, plan.dawn, plan.expires) == (n0, n1, n1)
    _check_window(site, plan)
    assert [it.target for it in plan.items] == ["Polaris Way"]


def test_instrument_follows_the_config_and_the_ledger(tmp_path: Path) -> None:
    from starnode.planning.planner import instrument_for

    cfg = config(tmp_path, PARIS, [])
    assert instrument_for(cfg).model == "s50"
    measured(cfg, tmp_path, "X", datetime(2025, 9, 1, tzinfo=UTC))  # TELESCOP S50_123
    assert instrument_for(cfg).model == "s50"
    assert instrument_for(config(tmp_path, PARIS, [], telescope={"model": "s30pro"})).model \
        == "s30pro"
    generic = instrument_for(config(tmp_path, PARIS, [], telescope={"model": "generic"},
                                    camera={"gain_e_per_adu": 0.5, "aperture_mm": 100.0}))
    assert (generic.gain_e_per_adu, generic.aperture_mm) == (0.5, 100.0)
    assert generic.snr(13.0, 10.0) > profile("s50").snr(13.0, 10.0)


def test_a_plan_made_during_the_night_starts_now(tmp_path: Path) -> None:
    cfg = config(tmp_path, PARIS, [MORNING, EVENING, SS_CYG])
    late = datetime(2025, 9, 14, 23, 7, 30, tzinfo=UTC)
    plan = plan_night(cfg, "2025-09-14", now=late)
    assert plan.items and all(it.start >= late for it in plan.items)
    assert plan.items[0].start >= datetime(2025, 9, 14, 23, 8, tzinfo=UTC)
    _check_window(PARIS, plan)
    # minutes before dawn: nothing fits, and the plan says why
    assert plan.dawn is not None
    plan = plan_night(cfg, "2025-09-14", now=plan.dawn - timedelta(minutes=4))
    assert plan.items == () and plan.excluded[0].code == "sun"
    assert plan.excluded[0].reason.startswith("only 3 dark minutes are left")


def test_across_local_midnight_in_new_york(tmp_path: Path) -> None:
    """Local midnight (04:00 UTC in September) is crossed too: still one night, UTC order."""
    plan = plan_night(config(tmp_path, NEW_YORK, [MORNING, EVENING]), "2025-09-14", now=NOW)
    _check_window(NEW_YORK, plan)
    assert [it.target for it in plan.items] == ["AM Her", "Morning Star"]
    local_midnight = datetime(2025, 9, 15, 4, tzinfo=UTC)  # 00:00 EDT
    assert plan.items[0].start < local_midnight <= plan.items[1].start


def test_offline_iers_is_process_wide_and_nests() -> None:
    from astropy.utils import iers

    from starnode.planning.ephemeris import configure_offline

    with iers.conf.set_temp("auto_download", True), offline_iers(), offline_iers():
        assert iers.conf.auto_download is False and iers.conf.auto_max_age is None
    configure_offline()
    assert iers.conf.auto_download is False
