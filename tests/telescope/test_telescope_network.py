"""The network's night at the telescope: the hub's assignment becomes the plan at a safe
boundary (journaled, then acknowledged, once), alerts are inserted between frames when the gates
allow or refused with the reason, and the weather vetoes (parks, no new item). The runner runs
against the fake Alpaca server on a simulated clock; the node's side is the real
:class:`starnode.node.nightwork.NodeNetwork` over the files the forwarder writes."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from starnode.config import resolve
from starnode.node import assignment as nodeplan
from starnode.node.nightwork import NodeNetwork, network_plan
from starnode.telescope.weather import AlpacaWeather
from telescope_helpers import (
    CHI_CYG,
    R_AND,
    R_CRB,
    SS_CYG,
    U_GEM,
    Z_CAM,
    assert_safe_sequence,
    item,
    night,
    plan,
    settings,
    utc,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

NODE = "kaz-s50"


def _config(tmp_path: Path, **tel: Any) -> Any:
    return resolve(_raw(tmp_path, **tel))


def _raw(tmp_path: Path, **tel: Any) -> dict[str, Any]:
    return ({
        "data_dir": str(tmp_path / "data"),
        "site": {"latitude": 52.0, "longitude": 5.0, "elevation": 10.0},
        "telescope": {"driver": "alpaca", "motion": True, **tel},
        "photometry": {"offline": True}, "planning": {"slot_minutes": 10},
        "targets": [{"name": n, "ra": p[0], "dec": p[1], "brightest": 8.0, "faintest": 11.0}
                    for n, p in (("R CrB", R_CRB), ("Chi Cyg", CHI_CYG), ("SS Cyg", SS_CYG),
                                 ("Z Cam", Z_CAM))]})


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _assignment(items: list[tuple[str, tuple[float, float], datetime, datetime]], *,
                node: str = NODE, h: str = "a1", night: str = "2025-09-14",
                expires: datetime | None = None, kind: str = "list") -> dict[str, Any]:
    return {"node": node, "night": night, "hash": h, "created": _iso(utc(12)),
            "expires": _iso(expires or utc(28)), "note": None,
            "items": [{"target": n, "ra_deg": p[0], "dec_deg": p[1], "start": _iso(a),
                       "end": _iso(b), "kind": kind, "priority": 1.0, "reason": "test"}
                      for n, p, a, b in items]}


def _alert(aid: int, target: str, pos: tuple[float, float], end: datetime,
           start: datetime | None = None) -> dict[str, Any]:
    return {"id": aid, "target": target, "ra_deg": pos[0], "dec_deg": pos[1],
            "start": _iso(start or utc(12)), "end": _iso(end), "expires": _iso(end),
            "note": "test"}


def _camera(hook: Callable[[datetime], None]) -> Callable[..., np.ndarray]:
    """The fake camera's picture, calling ``hook`` with the exposure's start (the moment a
    test makes something arrive mid-night: while a frame is being read out)."""
    def image(ra: float, dec: float, exposure_s: float, start: datetime) -> np.ndarray:
        hook(start)
        return np.random.default_rng(int(start.timestamp())).integers(
            900, 1100, size=(16, 24)).astype(np.uint16)
    return image


def _slews_to(n: Any, pos: tuple[float, float]) -> list[Any]:
    """Slews sent near ``pos`` (the mount gets topocentric coordinates: within 1 degree)."""
    return [r for r in n.sent("slewtocoordinatesasync")
            if abs(float(r.params["RightAscension"]) * 15 - pos[0]) < 1.0
            and abs(float(r.params["Declination"]) - pos[1]) < 1.0]


def _outcomes(cfg: Any) -> dict[str, Any]:
    return json.loads((Path(cfg.data_dir) / nodeplan.ALERTS_FILE).read_text())


def test_alert_is_inserted_between_frames_observed_and_answered(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    sent: list[datetime] = []

    def arrive(start: datetime) -> None:  # the forwarder receives an alert mid-night
        if start >= utc(20, 30) and not sent:
            sent.append(start)
            nodeplan.store_alerts(cfg.data_dir, [_alert(7, "SS Cyg", SS_CYG, utc(23))])

    st = settings()
    with night(tmp_path, start=utc(19, 50), image=_camera(arrive)) as n:
        p = plan(item("Chi Cyg", CHI_CYG, utc(20, 0), utc(21, 30), 300.0))
        res = n.runner(p, st, network=NodeNetwork(cfg)).run()
        assert sent and res.parked is True and res.alarm is None
        assert_safe_sequence(n, st)
        # inserted at the next boundary: after the exposure that was reading out, never
        # an aborted exposure
        assert not n.sent("abortexposure") and not n.sent("stopexposure")
        ss = _slews_to(n, SS_CYG)
        assert len(ss) == 1
        exposures = n.sent("startexposure")
        before = [e for e in exposures if e.t < ss[0].t]
        assert before and before[-1].t + timedelta(seconds=300) <= ss[0].t
        # observed for its slot, then Chi Cyg resumed until its end
        steps = n.journal.steps()
        alert_frames = [s for s in steps if s["step"] == "frame" and s["target"] == "SS Cyg"]
        assert len(alert_frames) >= 20
        assert len(_slews_to(n, CHI_CYG)) == 2
        assert res.items_done.count("SS Cyg") == 1 and "Chi Cyg" in res.items_done
        # the journal has it before the answer; the answer says when
        alert_step = next(s for s in steps if s["step"] == "alert")
        assert "scheduled at" in alert_step["detail"]
        outcome = _outcomes(cfg)["7"]["outcome"]
        assert outcome["status"] == "scheduled" and outcome["reason"] is None
        at = datetime.fromisoformat(outcome["at"].replace("Z", "+00:00"))
        assert sent[0] < at <= ss[0].t
        assert nodeplan.pending_alerts(cfg.data_dir) == []
        # the hub sends it again (a replay): kept once, not answered or observed twice
        assert nodeplan.store_alerts(cfg.data_dir, [_alert(7, "SS Cyg", SS_CYG, utc(23))]) == 0


def test_alert_hidden_now_but_observable_later_tonight_waits_for_it(tmp_path: Path) -> None:
    """R And is behind a house (the horizon mask) until about 21:50: the alert is neither
    refused nor observed early; it is inserted once it clears the mask for the minimum
    window."""
    cfg = _config(tmp_path)
    st = settings(horizon=((60.0, 10.0), (80.0, 60.0), (100.0, 60.0), (120.0, 10.0)))
    nodeplan.store_alerts(cfg.data_dir, [_alert(5, "R And", R_AND, utc(25))])
    with night(tmp_path, start=utc(19, 50)) as n:
        p = plan(item("Chi Cyg", CHI_CYG, utc(20, 0), utc(23, 0), 300.0))
        res = n.runner(p, st, network=NodeNetwork(cfg)).run()
        assert_safe_sequence(n, st)
        ra = _slews_to(n, R_AND)
        assert len(ra) == 1 and utc(21, 30) <= ra[0].t < utc(22, 30), ra
        later = [s["detail"] for s in n.journal.steps() if s["step"] == "alert"]
        assert "not now" in later[0] and "observable from" in later[0]
    outcome = _outcomes(cfg)["5"]["outcome"]
    assert outcome["status"] == "scheduled" and outcome["at"] >= "2025-09-14T21:30:00Z"
    assert res.items_done.count("R And") == 1


def test_alert_below_the_horizon_is_refused_and_nothing_moves_for_it(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    nodeplan.store_alerts(cfg.data_dir, [_alert(3, "U Gem", U_GEM, utc(23))])
    with night(tmp_path, start=utc(19, 50)) as n:
        p = plan(item("Chi Cyg", CHI_CYG, utc(20, 0), utc(20, 20), 60.0))
        res = n.runner(p, settings(), network=NodeNetwork(cfg)).run()
        assert res.items_done == ["Chi Cyg"] and res.parked is True
        assert not _slews_to(n, U_GEM)
    outcome = _outcomes(cfg)["3"]["outcome"]
    assert outcome["status"] == "refused" and "below the floor" in outcome["reason"], outcome
    assert res.alerts == [(3, f"refused: {outcome['reason']}")]


def test_alert_whose_window_ends_too_soon_or_after_dawn_is_refused(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    nodeplan.store_alerts(cfg.data_dir, [_alert(4, "SS Cyg", SS_CYG, utc(20, 5))])
    with night(tmp_path, start=utc(19, 50)) as n:
        p = plan(item("Chi Cyg", CHI_CYG, utc(20, 0), utc(20, 20), 60.0))
        n.runner(p, settings(), network=NodeNetwork(cfg)).run()
        assert not _slews_to(n, SS_CYG)
    assert "less than 20 minutes from now" in _outcomes(cfg)["4"]["outcome"]["reason"]


def test_new_assignment_is_applied_between_items_journaled_then_acknowledged_once(
        tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    first = _assignment([("Chi Cyg", CHI_CYG, utc(20, 0), utc(20, 40))], h="first")
    assert nodeplan.store_assignment(cfg.data_dir, NODE, first, now=utc(19))
    # not acknowledged before the runner has it in its journal
    assert nodeplan.unacked_assignment(cfg.data_dir, applied_only=True) is None
    p0, h0 = network_plan(cfg, "2025-09-14", now=utc(19, 50))
    assert h0 == "first" and [it.target for it in p0.items] == ["Chi Cyg"]
    assert utc(20, 0) <= p0.items[0].start and p0.items[0].end <= utc(20, 40)
    second = _assignment([("Z Cam", Z_CAM, utc(21, 0), utc(23, 0))], h="second")
    states: list[tuple[bool, bool]] = []
    exposures: list[datetime] = []

    def arrive(start: datetime) -> None:  # during the third frame of Chi Cyg
        exposures.append(start)
        if len(exposures) == 3:
            assert nodeplan.store_assignment(cfg.data_dir, NODE, second, now=start)
            states.append((nodeplan.assignment_applied(cfg.data_dir, "second"),
                           nodeplan.unacked_assignment(cfg.data_dir, applied_only=True)
                           is None))
            # the same assignment again (the next heartbeat): nothing changes
            assert not nodeplan.store_assignment(cfg.data_dir, NODE, second, now=start)

    with night(tmp_path, start=utc(19, 50), image=_camera(arrive)) as n:
        res = n.runner(p0, settings(), network=NodeNetwork(cfg), assignment=h0).run()
        assert states == [(False, True)]
        assert res.assignments == ["first", "second"]
        assert len(_slews_to(n, Z_CAM)) == 1 and len(_slews_to(n, CHI_CYG)) == 1
        assert not n.sent("abortexposure")
        steps = n.journal.steps()
        applied = [s for s in steps if s["step"] == "assignment"]
        assert len(applied) == 2 and "second" in applied[1]["detail"]
        # it arrived while Chi Cyg was being observed: applied between two of its frames
        chi = [s for s in steps if s["target"] == "Chi Cyg" and s["step"] in ("frame", "done")]
        assert chi[-1]["step"] == "done" and "a new assignment" in chi[-1]["detail"]
        assert chi[-1]["t_utc"] < applied[1]["t_utc"] or chi[-1]["id"] < applied[1]["id"]
        t = datetime.fromisoformat(applied[1]["t_utc"].replace("Z", "+00:00"))
        assert exposures[2] < t < exposures[3], (exposures[:4], t)
        # the Z Cam frames belong to the new plan, inside the hub's window
        z = [s for s in steps if s["step"] == "frame" and s["target"] == "Z Cam"]
        assert z and all(utc(21) <= datetime.fromisoformat(s["t_utc"].replace("Z", "+00:00"))
                         <= utc(23) for s in z)
    assert nodeplan.assignment_applied(cfg.data_dir, "second")
    assert nodeplan.unacked_assignment(cfg.data_dir, applied_only=True)["hash"] == "second"
    assert not nodeplan.mark_assignment_applied(cfg.data_dir, "2025-09-14", "second")


def test_no_assignment_or_another_nights_means_the_nodes_own_list(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    own, h = network_plan(cfg, "2025-09-14", now=utc(19))
    assert h is None and len(own.items) >= 2
    other = _assignment([("Z Cam", Z_CAM, utc(21, 0), utc(23, 0))], night="2025-09-13",
                        expires=utc(30))
    nodeplan.store_assignment(cfg.data_dir, NODE, other, now=utc(19))
    again, h = network_plan(cfg, "2025-09-14", now=utc(19))
    assert h is None and again.hash == own.hash


def test_bad_assignments_are_refused_and_nothing_moves(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    good = _assignment([("Chi Cyg", CHI_CYG, utc(20, 0), utc(20, 40))], h="good")
    nodeplan.store_assignment(cfg.data_dir, NODE, good, now=utc(19))
    before = (Path(cfg.data_dir) / nodeplan.ASSIGNMENT_FILE).read_bytes()
    for bad, why in ((dict(good, node="someone-else", hash="x"), "is for node"),
                     (dict(good, hash="y", expires=_iso(utc(19, 30))), "expired"),
                     (dict(good, hash="z", items=[{"target": "Q"}]), "malformed")):
        with pytest.raises(nodeplan.Refused, match=why):
            nodeplan.store_assignment(cfg.data_dir, NODE, bad, now=utc(20))
    assert (Path(cfg.data_dir) / nodeplan.ASSIGNMENT_FILE).read_bytes() == before
    # an expired one is not used for planning (the node's own list is)
    _plan, h = network_plan(cfg, "2025-09-14", now=utc(28, 30))
    assert h is None


def test_weather_veto_parks_no_new_frames_until_it_clears(tmp_path: Path) -> None:
    st = settings()
    with night(tmp_path, start=utc(19, 50)) as n:
        source = AlpacaWeather(n.fake.address, 0, "safetymonitor", http_timeout_s=2.0)

        class Rain:  # the fake's SafetyMonitor turns unsafe at 20:20 and safe at 21:00
            def veto(self) -> tuple[bool, str | None]:
                n.fake.faults.unsafe = utc(20, 20) <= n.clock.now() < utc(21)
                return source.veto()

        p = plan(item("Chi Cyg", CHI_CYG, utc(20, 0), utc(21, 30), 60.0))
        res = n.runner(p, st, weather=Rain()).run()
        assert res.parked is True and res.weather and "unsafe" in res.weather[0]
        assert_safe_sequence(n, st)
        tel = [r for r in n.fake.received if r.device == "telescope"]
        parks = [r for r in tel if r.method == "park"]
        assert parks and utc(20, 20) <= parks[0].t < utc(20, 23)
        # nothing started while it was unsafe; observing resumed after it cleared
        exposures = n.sent("startexposure")
        assert not [e for e in exposures if utc(20, 21) <= e.t < utc(21)]
        assert [e for e in exposures if e.t >= utc(21)]
        unparks = [r for r in tel if r.method == "unpark"]
        assert len(unparks) == 2 and unparks[1].t >= utc(21)
        steps = [s["detail"] for s in n.journal.steps() if s["step"] == "weather"]
        assert steps[0].startswith("veto:") and steps[-1] == "clear again: resuming"


def test_weather_sources_fail_closed(tmp_path: Path) -> None:
    with night(tmp_path) as n:
        mon = AlpacaWeather(n.fake.address, 0, "safetymonitor", http_timeout_s=2.0)
        assert mon.veto() == (False, None)
        n.fake.faults.http500.add("issafe")
        veto, why = mon.veto()
        assert veto and "does not answer" in str(why)
        cond = AlpacaWeather(n.fake.address, 0, "observingconditions", max_cloud=40,
                             http_timeout_s=2.0)
        assert cond.veto() == (False, None)
        n.fake.faults.cloud_cover = 70.0
        assert cond.veto() == (True, "cloud cover 70% (the limit is 40%)")
        n.fake.faults.rain_rate = 1.5
        assert cond.veto()[0] and "rain" in str(cond.veto()[1])
    gone = AlpacaWeather(n.fake.address, 0, "safetymonitor", http_timeout_s=1.0)
    assert gone.veto()[0]  # the server is gone: a veto


def test_starnode_plan_shows_the_plan_from_the_held_assignment(tmp_path: Path) -> None:
    import subprocess
    import sys
    from datetime import UTC

    cfg = _config(tmp_path)
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**_raw(tmp_path), "telescope": {"driver": "none"},
                                "hub": {"url": "http://127.0.0.1:9"}}))
    night_ = "2027-01-10"
    a0, a1 = datetime(2027, 1, 10, 20, tzinfo=UTC), datetime(2027, 1, 10, 23, tzinfo=UTC)
    nodeplan.store_assignment(cfg.data_dir, NODE, _assignment(
        [("Z Cam", Z_CAM, a0, a1)], h="held", night=night_,
        expires=datetime(2027, 1, 11, 6, tzinfo=UTC)))

    def plan_json() -> dict[str, Any]:
        run = subprocess.run([sys.executable, "-m", "starnode", "--config", str(path), "plan",
                              "--night", night_, "--format", "json"], capture_output=True,
                             text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        return json.loads(run.stdout)

    got = plan_json()
    assert [it["target"] for it in got["items"]] == ["Z Cam"]
    assert a0 <= datetime.fromisoformat(got["items"][0]["start"].replace("Z", "+00:00"))
    assert "planned from the hub's assignment held" in got["notes"]
    dry = subprocess.run([sys.executable, "-m", "starnode", "--config", str(path), "observe",
                          "--dry-run", "--night", night_, "--start", "2027-01-10T17:00:00Z"],
                         capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert "planned from the hub's assignment held" in dry.stdout
    assert "(plan " in dry.stdout and "1 items" in dry.stdout, dry.stdout
    (Path(cfg.data_dir) / nodeplan.ASSIGNMENT_FILE).unlink()  # none: the node's own list
    own = plan_json()
    assert len(own["items"]) > 1 and not any("hub" in n for n in own["notes"])
