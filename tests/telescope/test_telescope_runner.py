"""The runner against the fake Alpaca server on loopback, on a simulated clock: whole nights,
faults, restarts. Every test checks what the *mount received* (the fake's record)."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from astropy.io import fits

from starnode.telescope.safety import SafetyManager
from starnode.telescope.sky import night_events
from telescope_helpers import (
    CH_CYG,
    CHI_CYG,
    FAST,
    R_AND,
    R_CRB,
    RU_PEG,
    SITE,
    U_GEM,
    Z_CAM,
    assert_safe_sequence,
    full_night,
    item,
    night,
    plan,
    settings,
    utc,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def dawn():
    ev = night_events(SITE, "2025-09-14", -12.0)
    assert ev.dusk is not None and ev.dawn is not None
    assert utc(19) < ev.dusk < utc(19, 30) and utc(27, 45) < ev.dawn < utc(28, 15)
    return ev.dawn


def test_whole_night_dusk_to_dawn(tmp_path: Path, dawn) -> None:
    """Started by day: waits, observes five targets, parks (verified) before the dawn crossing
    although the last item runs past it."""
    st = settings()
    with night(tmp_path, start=utc(14)) as n:
        res = n.runner(full_night()).run()
        assert res.parked is True and res.alarm is None
        assert res.items_done == ["R CrB", "Chi Cyg", "RU Peg", "Z Cam", "R And"]
        assert res.ended == "dawn"
        assert_safe_sequence(n, st, dawn)
        assert len(n.sent("slewtocoordinatesasync")) == 5
        # nothing happened by day
        assert all(r.t >= utc(19, 15) for r in n.fake.received if r.method != "connected")
        exposures = n.sent("startexposure")
        assert len(exposures) == res.frames == len(list(n.folder.rglob("Light_*.fit")))
        # every item stopped at its end, never ran late
        for it in full_night().items:
            mine = [r for r in exposures if it.start <= r.t < it.end]
            assert mine and all(r.t + timedelta(seconds=300) <= it.end for r in mine)
        steps = [s["step"] for s in n.journal.steps()]
        assert steps[-1] == "parked" and "park_failed" not in steps
        assert n.journal.state()["parked"]["value"] == "yes"


def test_frames_have_the_pipeline_headers(tmp_path: Path) -> None:
    with night(tmp_path) as n:
        res = n.runner(plan(item("R CrB", R_CRB, utc(19, 15), utc(19, 30), 60, 3))).run()
    assert res.frames == 3
    path = res.paths[0]
    assert path.name.startswith("Light_R CrB_60.0s_IRCUT_20250914-1915")  # as real subs
    assert path.parent.name == "R CrB_sub"
    h = fits.getheader(path)
    assert h["OBJECT"] == "R CrB" and h["IMAGETYP"] == "Light" and h["EXPTIME"] == 60
    assert h["DATE-OBS"].startswith("2025-09-14T19:15")
    assert h["RA"] == pytest.approx(R_CRB[0]) and h["DEC"] == pytest.approx(R_CRB[1])
    assert h["SITELAT"] == 52.0 and h["SITELONG"] == 5.0 and h["BAYERPAT"] == "GRBG"
    assert h["GAIN"] == 80 and h["INSTRUME"] == "Seestar S50"
    assert fits.getdata(path).shape == (16, 24)
    assert not list(path.parent.glob(".*"))  # no temporary file left


def test_plan_starting_in_nautical_dusk_waits_not_parks(tmp_path: Path) -> None:
    """The sun is above the limit at the start (18:50, about -9 deg): the runner waits for the
    item and the sun; it does not take the evening for the dawn (node_v1's defect 4)."""
    with night(tmp_path, start=utc(18, 50)) as n:
        res = n.runner(plan(item("R CrB", R_CRB, utc(19, 0), utc(19, 40), 60, 100))).run()
        assert res.items_done == ["R CrB"]
        first = n.sent("unpark")[0]
        assert first.t >= utc(19, 11)  # after the dusk crossing, not before
        assert res.frames > 20
        assert_safe_sequence(n, settings())


def test_sun_above_limit_no_unpark_no_slew(tmp_path: Path) -> None:
    with night(tmp_path, start=utc(16)) as n:
        res = n.runner(plan(item("R CrB", R_CRB, utc(16, 10), utc(16, 40), 60, 10))).run()
        assert not n.sent("unpark") and not n.sent("slewtocoordinatesasync")
        assert res.items_skipped and "the sun is at" in res.items_skipped[0][1]


def test_never_below_the_floor_or_above_the_ceiling(tmp_path: Path) -> None:
    with night(tmp_path, start=utc(19)) as n:
        res = n.runner(plan(item("U Gem", U_GEM, utc(19, 15), utc(19, 45)),
                            item("CH Cyg", CH_CYG, utc(20, 30), utc(21, 0)),
                            item("Chi Cyg", CHI_CYG, utc(21, 0), utc(21, 30)))).run()
        reasons = dict(res.items_skipped)
        assert "below the floor" in reasons["U Gem"]
        assert "above the ceiling" in reasons["CH Cyg"]
        assert res.items_done == ["Chi Cyg"]
        assert len(n.sent("slewtocoordinatesasync")) == 1
        assert_safe_sequence(n, settings())


def test_envelope_is_held_for_the_whole_window(tmp_path: Path) -> None:
    """R CrB is at 39 deg at 20:00 but sinks below 30 deg by 21:00: refused at slew time."""
    with night(tmp_path, start=utc(19, 55)) as n:
        res = n.runner(plan(item("R CrB", R_CRB, utc(20, 0), utc(21, 30)))).run()
        assert not n.sent("slewtocoordinatesasync")
        assert "below the floor" in res.items_skipped[0][1]


def test_horizon_mask_raises_the_floor(tmp_path: Path) -> None:
    """RU Peg at about 50 deg in the south; a wall to 60 deg from azimuth 120 to 240."""
    st = settings(horizon=((0.0, 0.0), (119.0, 0.0), (120.0, 60.0), (240.0, 60.0),
                           (241.0, 0.0)))
    with night(tmp_path, start=utc(22, 50)) as n:
        res = n.runner(plan(item("RU Peg", RU_PEG, utc(23, 0), utc(23, 30))), st).run()
        assert not n.sent("slewtocoordinatesasync")
        assert "below the floor 60" in res.items_skipped[0][1]


def test_passed_window_is_skipped_never_run_late(tmp_path: Path) -> None:
    with night(tmp_path, start=utc(21, 40)) as n:
        res = n.runner(plan(item("Chi Cyg", CHI_CYG, utc(20, 0), utc(21, 30)),
                            item("RU Peg", RU_PEG, utc(21, 45), utc(22, 0), 60, 5))).run()
        assert res.items_skipped == [("Chi Cyg", "its window has passed (never run late)")]
        assert res.items_done == ["RU Peg"]
        assert all(r.t >= utc(21, 45) for r in n.sent("startexposure"))


def test_sigterm_parks(tmp_path: Path) -> None:
    stop = threading.Event()
    taken: list[int] = []

    def image(ra, dec, exp, start):
        import numpy as np

        taken.append(1)
        if len(taken) == 4:
            stop.set()  # SIGTERM arrives during the 4th frame
        return np.zeros((4, 4), dtype=np.uint16)

    with night(tmp_path, start=utc(19, 10), image=image) as n:
        res = n.runner(plan(item("R CrB", R_CRB, utc(19, 15), utc(19, 55), 60, 100)),
                       stop=stop).run()
        assert res.ended == "stop requested" and res.parked is True
        assert n.sent("park") and n.fake.st.parked
        assert 3 <= res.frames <= 4


def test_park_stuck_false_is_retried_alarmed_and_never_recorded_parked(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with night(tmp_path, start=utc(19, 10)) as n:
        n.fake.faults.atpark_stuck_false = True
        with caplog.at_level(logging.ERROR):
            res = n.runner(plan(item("R CrB", R_CRB, utc(19, 15), utc(19, 20), 60, 2))).run()
        assert res.parked is False and res.alarm and "PARK FAILED" in res.alarm
        assert len(n.sent("park")) == FAST.park_attempts
        gaps = [(b.t - a.t).total_seconds() for a, b in zip(n.sent("park"),
                                                             n.sent("park")[1:], strict=False)]
        assert gaps[1] > gaps[0]  # backoff grows
        assert any("PARK FAILED" in r.message for r in caplog.records if r.levelno ==
                   logging.ERROR)
        steps = [s["step"] for s in n.journal.steps()]
        assert "parked" not in steps and steps[-1] == "park_failed"
        state = n.journal.state()
        assert state["parked"]["value"] == "no" and "PARK FAILED" in state["alarm"]["value"]


def test_park_retry_succeeds_after_a_server_error(tmp_path: Path) -> None:
    with night(tmp_path, start=utc(19, 10)) as n:
        n.fake.faults.fail_next["park"] = 1
        res = n.runner(plan(item("R CrB", R_CRB, utc(19, 15), utc(19, 20), 60, 2))).run()
        assert res.parked is True and len(n.sent("park")) == 1  # the 500 was not received
        steps = [s["step"] for s in n.journal.steps()]
        assert "park_retry" in steps and steps[-1] == "parked"


def test_slew_that_never_ends_is_aborted_and_the_night_goes_on(tmp_path: Path) -> None:
    with night(tmp_path, start=utc(19, 10)) as n:
        n.fake.faults.slew_never_ends = True
        runner = n.runner(plan(item("R CrB", R_CRB, utc(19, 15), utc(19, 50), 60, 5),
                               item("Chi Cyg", CHI_CYG, utc(20, 0), utc(20, 30), 60, 5)))
        res = runner.run()
        assert n.sent("abortslew")
        assert [t for t, _ in res.items_skipped] == ["R CrB", "Chi Cyg"]
        assert "did not end" in res.items_skipped[0][1]
        assert res.parked is True


def test_http_500_on_exposure_skips_the_item(tmp_path: Path) -> None:
    with night(tmp_path, start=utc(19, 10)) as n:
        n.fake.faults.http500 = {"startexposure"}
        res = n.runner(plan(item("R CrB", R_CRB, utc(19, 15), utc(19, 50), 60, 5))).run()
        assert "the telescope failed" in res.items_skipped[0][1]
        assert res.frames == 0 and res.parked is True


def test_image_never_ready(tmp_path: Path) -> None:
    with night(tmp_path, start=utc(19, 10)) as n:
        n.fake.faults.imageready_never = True
        res = n.runner(plan(item("R CrB", R_CRB, utc(19, 15), utc(19, 50), 60, 5))).run()
        assert "not ready" in res.items_skipped[0][1]
        assert n.sent("abortexposure") and res.parked is True


def test_connection_dropped_mid_exposure_comes_back(tmp_path: Path) -> None:
    with night(tmp_path, start=utc(19, 10)) as n:
        n.fake.faults.drop_on_exposure = True
        n.fake.faults.drop_for_s = 90.0  # noticed at the exposure's end (60 s), back at 90 s
        res = n.runner(plan(item("R CrB", R_CRB, utc(19, 15), utc(19, 50), 60, 5))).run()
        steps = [s["step"] for s in n.journal.steps()]
        assert "connection_lost" in steps and "reconnected" in steps
        assert res.frames == 5 and res.parked is True


def test_connection_lost_for_good_parks_or_alarms(tmp_path: Path) -> None:
    """The server never comes back: after reconnect_s the runner tries to park; the park cannot
    be verified, so it is an alarm, never 'parked'."""
    with night(tmp_path, start=utc(19, 10)) as n:
        n.fake.faults.drop_on_exposure = True
        res = n.runner(plan(item("R CrB", R_CRB, utc(19, 15), utc(19, 50), 60, 5))).run()
        assert res.ended.startswith("connection lost")
        assert res.parked is False and res.alarm
        assert n.journal.state()["parked"]["value"] == "no"


def test_timeouts_are_lost_connections(tmp_path: Path) -> None:
    with night(tmp_path, start=utc(19, 10)) as n:
        n.fake.faults.hang = {"imageready"}
        n.fake.faults.hang_s = 0.6
        res = n.runner(plan(item("R CrB", R_CRB, utc(19, 15), utc(19, 50), 60, 5)),
                       http_timeout_s=0.3).run()
        steps = [s["step"] for s in n.journal.steps()]
        assert "connection_lost" in steps
        assert res.frames == 0
        assert res.parked is True  # the mount itself still answers: the park is verified


def test_clock_jump_forward_skips_items_never_late(tmp_path: Path, dawn) -> None:
    with night(tmp_path, start=utc(19, 10)) as n:
        n.fake.faults.jump_on_exposure_s = 3 * 3600.0  # an NTP step during the first frame
        res = n.runner(plan(item("R CrB", R_CRB, utc(19, 15), utc(19, 50), 60, 5),
                            item("Chi Cyg", CHI_CYG, utc(20, 0), utc(21, 0), 60, 5),
                            item("Z Cam", Z_CAM, utc(23, 30), utc(23, 40), 60, 3))).run()
        assert [t for t, _ in res.items_skipped] == ["Chi Cyg"]
        assert res.items_done == ["R CrB", "Z Cam"]
        for r in n.sent("startexposure"):
            assert not utc(19, 50) < r.t < utc(23, 30)
        assert_safe_sequence(n, settings(), dawn)


def test_clock_jump_backwards_stops_motion(tmp_path: Path) -> None:
    with night(tmp_path, start=utc(19, 10)) as n:
        n.fake.faults.jump_on_exposure_s = -1800.0
        res = n.runner(plan(item("R CrB", R_CRB, utc(19, 15), utc(19, 50), 60, 5))).run()
        assert "clock went back" in res.ended and res.parked is True


def test_unhandled_error_parks(tmp_path: Path) -> None:
    with night(tmp_path, start=utc(19, 10)) as n:
        n.folder = tmp_path / "a-file"
        n.folder.write_text("not a folder")
        res = n.runner(plan(item("R CrB", R_CRB, utc(19, 15), utc(19, 50), 60, 5))).run()
        assert res.ended.startswith("error:") and res.parked is True
        assert n.sent("park")[-1].t >= n.sent("slewtocoordinatesasync")[0].t


def test_restart_resumes_the_item_and_never_repeats(tmp_path: Path) -> None:
    p = plan(item("R CrB", R_CRB, utc(19, 15), utc(19, 50), 60, 8),
             item("Chi Cyg", CHI_CYG, utc(20, 0), utc(20, 30), 60, 3))
    stop = threading.Event()
    count: list[int] = []

    def image(ra, dec, exp, start):
        import numpy as np

        count.append(1)
        if len(count) == 5:
            stop.set()
        return np.zeros((4, 4), dtype=np.uint16)

    with night(tmp_path, start=utc(19, 10), image=image) as n:
        first = n.runner(p, stop=stop).run()
        assert first.ended == "stop requested" and first.parked
        second = n.runner(p).run()  # the restart (same journal, same plan)
        assert first.frames + second.frames == 8 + 3
        assert second.items_done == ["R CrB", "Chi Cyg"]
        third = n.runner(p).run()  # nothing left: no motion at all
        assert third.frames == 0 and third.items_done == []


def test_motion_off_sends_nothing(tmp_path: Path) -> None:
    with night(tmp_path, start=utc(19, 10)) as n:
        res = n.runner(full_night(), settings(motion=False)).run()
        assert n.fake.received == []
        assert res.refused and "motion is off" in res.refused


def test_expired_plan_is_refused(tmp_path: Path) -> None:
    with night(tmp_path, start=utc(40)) as n:
        res = n.runner(full_night()).run()
        assert n.fake.received == [] and "expired" in (res.refused or "")


def test_unknown_equatorial_system_is_not_slewed_to(tmp_path: Path) -> None:
    with night(tmp_path, start=utc(19, 10)) as n:
        n.fake.faults.equatorial_system = 0
        res = n.runner(plan(item("R CrB", R_CRB, utc(19, 15), utc(19, 50), 60, 5))).run()
        assert not n.sent("slewtocoordinatesasync")
        assert "EquatorialSystem" in res.items_skipped[0][1]


def test_pointing_is_verified_and_corrected_once(tmp_path: Path) -> None:
    calls: list[Path] = []

    def verify(path: Path):
        calls.append(path)
        return (R_CRB[0] + 0.4, R_CRB[1] - 0.2)  # 0.4 deg off

    with night(tmp_path, start=utc(19, 10)) as n:
        res = n.runner(plan(item("R CrB", R_CRB, utc(19, 15), utc(19, 50), 60, 4)),
                       verify=verify).run()
        slews = n.sent("slewtocoordinatesasync")
        assert len(calls) == 1 and len(slews) == 2  # one correction, once
        assert float(slews[1].params["RightAscension"]) < float(slews[0].params["RightAscension"])
        assert res.frames == 4
        assert any("correcting once" in (s["detail"] or "") for s in n.journal.steps())


def test_no_site_no_motion(tmp_path: Path) -> None:
    with night(tmp_path, start=utc(19, 10)) as n:
        st = settings(site=None)
        res = n.runner(full_night(), st, safety=SafetyManager(st, n.clock)).run()
        assert "no site" in (res.refused or "")
        assert not n.sent("unpark") and not n.sent("slewtocoordinatesasync")


def test_night_is_fast_on_the_simulated_clock(tmp_path: Path) -> None:
    """Sanity only (the figure is bench/observe.py's): a 9-hour night finishes."""
    with night(tmp_path, start=utc(19)) as n:
        res = n.runner(plan(item("R And", R_AND, utc(25, 30), utc(28, 30), 600))).run()
        assert res.frames > 10 and res.parked
