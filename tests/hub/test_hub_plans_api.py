"""Plans and alerts reach nodes through the heartbeat, on a real uvicorn over SQLite and a real
PostgreSQL server; the node keeps them in its data folder and acknowledges only what it wrote;
every bad answer (another node's assignment, an expired plan, an alert below a node's horizon,
a replayed acknowledgement) is refused with a clear 4xx and nothing moves."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pytest

from starnode.config import Config

httpx = pytest.importorskip("httpx", reason="the hub extra is not installed")
sa = pytest.importorskip("sqlalchemy", reason="the hub extra is not installed")

from hub_helpers import add_ring, auth, db_url, free_port, hub_store, pg_cluster, serve  # noqa: E402, F401
from starnode.hub import db  # noqa: E402
from starnode.hub.nightplans import plan_night  # noqa: E402
from starnode.hub.store import HubStore  # noqa: E402
from starnode.node import assignment as nodeplan  # noqa: E402
from starnode.node.forwarder import Forwarder, current_assignment  # noqa: E402
from waiting import wait_for  # noqa: E402

SITE_A = {"latitude": 50.0, "longitude": 0.0, "height": 100.0}
SITE_B = {"latitude": 45.0, "longitude": 10.0, "height": 300.0}


def _hb(node: str, site: dict[str, float] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"schema_version": 2, "node": node, "version": "t",
                            "queue_length": 0}
    if site is not None:
        body["site"] = site
        body["limits"] = {"sun_limit": -12, "min_altitude": 30, "max_altitude": 80,
                          "horizon": [[0, 30], [180, 35]]}
    body.update(extra)
    return body


def _tonight() -> str:
    """The evening of today (UTC date): its dawn at longitude 0-10 E is always ahead."""
    return dt.datetime.now(dt.UTC).date().isoformat()


@pytest.fixture
def hub(tmp_path: Path, db_url: str) -> Any:  # noqa: F811
    with hub_store(tmp_path, db_url, plan_interval=0, plan_min_window_minutes=30) as store:
        yield store


def test_heartbeat_carries_the_assignment_and_acks_are_checked(hub: HubStore) -> None:
    ta, tb = hub.add_node("scope-a", "AAA"), hub.add_node("scope-b", "BBB")
    admin = hub.add_admin("ops")
    add_ring(hub)
    night = _tonight()
    with serve(hub) as url, httpx.Client(base_url=url) as http:
        assert http.post("/api/v1/heartbeat", json=_hb("scope-a", SITE_A),
                         headers=auth(ta)).json()["assignment"] is None
        http.post("/api/v1/heartbeat", json=_hb("scope-b", SITE_B), headers=auth(tb))
        r = http.post(f"/api/v1/plan?night={night}", headers=auth(admin))
        assert r.status_code == 200, r.text
        assert http.post(f"/api/v1/plan?night={night}", headers=auth(ta)).status_code == 403
        answer = http.post("/api/v1/heartbeat", json=_hb("scope-a", SITE_A),
                           headers=auth(ta)).json()
        a = answer["assignment"]
        assert a["node"] == "scope-a" and a["night"] == night and len(a["hash"]) == 16
        assert a["items"] and all(i["start"].endswith("Z") and i["end"].endswith("Z")
                                  for i in a["items"])
        assert a["expires"].endswith("Z") and answer["now"].endswith("Z")
        b_hash = http.post("/api/v1/heartbeat", json=_hb("scope-b", SITE_B),
                           headers=auth(tb)).json()["assignment"]["hash"]
        ack = {"node": "scope-a", "night": night, "hash": a["hash"], "status": "applied",
               "at": answer["now"]}
        # another node answering for scope-a: 403
        r = http.post("/api/v1/assignments/ack", json=ack, headers=auth(tb))
        assert r.status_code == 403 and "answers only for itself" in r.json()["detail"]
        # scope-b acknowledging scope-a's assignment as its own: 409, not its hash
        r = http.post("/api/v1/assignments/ack", json={**ack, "node": "scope-b"},
                      headers=auth(tb))
        assert r.status_code == 409 and "not this node's current assignment" in r.text
        # a local time without its offset: 422
        r = http.post("/api/v1/assignments/ack", json={**ack, "at": "2025-09-14T21:00:00"},
                      headers=auth(ta))
        assert r.status_code == 422 and "UTC offset" in r.text
        r = http.post("/api/v1/assignments/ack", json=ack, headers=auth(ta))
        assert r.status_code == 200, r.text
        r = http.post("/api/v1/assignments/ack", json=ack, headers=auth(ta))
        assert r.status_code == 409 and "replayed" in r.json()["detail"]
        # an expired plan: the night of 2025-09-14 is long over
        hub_plan = plan_night(hub, "2025-09-14", force=True)
        old = next(n for n in hub_plan["nodes"] if n["node"] == "scope-a")
        r = http.post("/api/v1/assignments/ack", json={**ack, "night": "2025-09-14",
                                                       "hash": old["hash"]}, headers=auth(ta))
        assert r.status_code == 410 and "expired" in r.json()["detail"]
        r = http.post("/api/v1/assignments/ack", json={**ack, "night": "2024-01-01"},
                      headers=auth(ta))
        assert r.status_code == 404
    with hub.engine.connect() as conn:
        rows = {r.node_id: r for r in conn.execute(sa.select(db.assignments).where(
            db.assignments.c.night == night))}
        acks = conn.execute(sa.select(sa.func.count()).select_from(db.acks)).scalar()
    ids = {n["name"]: i for i, n in enumerate(hub.nodes(), start=1)}
    assert acks == 1
    assert rows[ids["scope-a"]].ack_status == "applied"
    assert rows[ids["scope-b"]].ack_status is None and rows[ids["scope-b"]].hash == b_hash


def test_alerts_are_delivered_answered_once_and_refused_below_the_horizon(hub: HubStore
                                                                         ) -> None:
    ta, tb = hub.add_node("scope-a", "AAA"), hub.add_node("scope-b", "BBB")
    admin = hub.add_admin("ops")
    with serve(hub) as url, httpx.Client(base_url=url) as http:
        for name, tok, site in (("scope-a", ta, SITE_A), ("scope-b", tb, SITE_B)):
            http.post("/api/v1/heartbeat", json=_hb(name, site), headers=auth(tok))
        # a star at dec -85 never rises at 50 N: refused, nothing stored
        r = http.post("/api/v1/alerts", json={"target": "BQ Oct", "ra": 230.0, "dec": -85.0,
                                              "nodes": ["scope-a"]}, headers=auth(admin))
        assert r.status_code == 422 and "cannot observe it tonight" in r.json()["detail"]
        assert "below the floor or horizon" in r.json()["detail"]
        assert http.post("/api/v1/alerts", json={"target": "X", "ra": 1, "dec": 2},
                         headers=auth(ta)).status_code == 403
        for bad, needle in (({"target": "SS Cyg, V", "ra": 1, "dec": 2}, "no comma"),
                            ({"target": "SS Cyg", "ra": 400, "dec": 2}, "ra must be"),
                            ({"target": "SS Cyg"}, "needs target, ra and dec"),
                            ({"target": "SS Cyg", "ra": 1, "dec": 2, "nodes": ["nope"]},
                             "unknown")):
            r = http.post("/api/v1/alerts", json=bad, headers=auth(admin))
            assert 400 <= r.status_code < 500 and needle in r.json()["detail"], r.text
        r = http.post("/api/v1/alerts", content=b"{not json", headers=auth(admin))
        assert r.status_code == 400
        with hub.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(db.alerts)).scalar() == 0
        # a circumpolar star at dec +85 is up all night at 50 N (below the 80 deg ceiling)
        r = http.post("/api/v1/alerts", json={"target": "V Cep", "ra": 60.0, "dec": 85.0,
                                              "note": "AAVSO Alert Notice 999",
                                              "nodes": ["scope-a"]}, headers=auth(admin))
        assert r.status_code == 200, r.text
        aid = r.json()["id"]
        answer = http.post("/api/v1/heartbeat", json=_hb("scope-a", SITE_A),
                           headers=auth(ta)).json()
        assert [x["id"] for x in answer["alerts"]] == [aid]
        assert answer["alerts"][0]["target"] == "V Cep"
        got_b = http.post("/api/v1/heartbeat", json=_hb("scope-b", SITE_B),
                          headers=auth(tb)).json()
        assert got_b["alerts"] == []
        ok = {"node": "scope-a", "status": "scheduled", "at": answer["now"]}
        r = http.post(f"/api/v1/alerts/{aid}/ack", json={**ok, "node": "scope-b"},
                      headers=auth(tb))
        assert r.status_code == 404 and "was not sent to node scope-b" in r.text
        r = http.post(f"/api/v1/alerts/{aid}/ack", json={**ok, "status": "refused"},
                      headers=auth(ta))
        assert r.status_code == 422 and "reason" in r.text
        r = http.post(f"/api/v1/alerts/{aid}/ack", json=ok, headers=auth(ta))
        assert r.status_code == 200, r.text
        r = http.post(f"/api/v1/alerts/{aid}/ack", json=ok, headers=auth(ta))
        assert r.status_code == 409 and "replayed" in r.text
        # answered: no longer in the heartbeat answer
        assert http.post("/api/v1/heartbeat", json=_hb("scope-a", SITE_A),
                         headers=auth(ta)).json()["alerts"] == []


@pytest.mark.parametrize("bad, needle", [
    ({"site": {"latitude": 95.0, "longitude": 0.0}}, "site.latitude"),
    ({"site": {"latitude": 10.0}}, "site.longitude"),
    ({"limits": {"horizon": [[10, 120]]}}, "horizon point"),
    ({"limits": {"min_altitude": 60, "max_altitude": 50}}, "must be below max_altitude"),
    ({"limits": {"horizon": [[0, 10]] * 400}}, "limits.horizon"),
    ({"instrument": {"bright_limit": 14, "faint_limit": 8}}, "brighter"),
    ({"weather": {"veto": "maybe"}}, "weather.veto"),
    ({"weather": {"veto": True, "reason": "x" * 300}}, "weather.reason"),
])
def test_bad_planning_fields_in_a_heartbeat_are_refused(hub: HubStore, bad: dict[str, Any],
                                                        needle: str) -> None:
    token = hub.add_node("scope-a", "AAA")
    with serve(hub) as url, httpx.Client(base_url=url, headers=auth(token)) as http:
        r = http.post("/api/v1/heartbeat", json=_hb("scope-a", **bad))
        assert r.status_code == 422 and needle in r.text, r.text
        # an old node without any of them still works
        assert http.post("/api/v1/heartbeat", json=_hb("scope-a")).status_code == 200
    with hub.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(db.node_profiles)
                            ).scalar() == 0


def test_the_node_keeps_its_assignment_acknowledges_it_and_survives_the_hub(
        tmp_path: Path, hub: HubStore, monkeypatch: pytest.MonkeyPatch) -> None:
    token = hub.add_node("scope-a", "AAA")
    add_ring(hub)
    port = free_port()
    monkeypatch.setenv("STARNODE_HUB_TOKEN", token)
    data = tmp_path / "node"
    node_cfg = {"data_dir": str(data), "site": {"latitude": 50.0, "longitude": 0.0,
                                                "elevation": 100.0},
                "hub": {"url": f"http://127.0.0.1:{port}", "heartbeat_interval": 1,
                        "retry_backoff": 0.05, "max_backoff": 0.3, "http_timeout": 5}}
    veto = {"on": False}
    fwd = Forwarder(Config(node_cfg), weather=lambda: (veto["on"], "rain" if veto["on"] else None))
    fwd.start()
    night = _tonight()
    try:
        with serve(hub, port):
            wait_for(lambda: (hub.nodes()[0]["heartbeat"] or {}).get("site") is not None, 20,
                  "the site in a heartbeat")
            hb = hub.nodes()[0]["heartbeat"]
            assert hb["site"] == {"latitude": 50.0, "longitude": 0.0, "height": 100.0}
            assert hb["weather"] == {"veto": False, "reason": None}
            plan = plan_night(hub, night, force=True)
            want = next(n for n in plan["nodes"] if n["node"] == "scope-a")
            wait_for(lambda: (current_assignment(data) or {}).get("hash") == want["hash"], 20,
                  "the assignment on the node")
            wait_for(lambda: plan_night(hub, night)["nodes"][0]["ack"] == "applied", 20,
                  "the acknowledgement")
            kept = current_assignment(data)
            assert kept is not None and len(kept["items"]) == want["items"]
            # the node's weather veto reaches the allocation: nothing tonight, and why
            veto["on"] = True
            wait_for(lambda: plan_night(hub, night)["nodes"][0]["note"] is not None, 20,
                  "the veto")
            wait_for(lambda: (current_assignment(data) or {}).get("note", "") is not None
                  and "weather veto (rain)" in ((current_assignment(data) or {}).get("note")
                                                or ""), 20, "the empty assignment")
            assert current_assignment(data)["items"] == []  # type: ignore[index]
        # the hub is gone: the node still has its last assignment
        time.sleep(0.3)
        assert current_assignment(data) is not None
    finally:
        fwd.close(flush_timeout=0)
    before = (data / nodeplan.ASSIGNMENT_FILE).read_bytes()
    # another node's assignment, or an expired one, is refused and changes nothing
    good = json.loads(before)["assignment"]
    for bad, why in (({**good, "node": "scope-b", "hash": "f" * 16}, "for node 'scope-b'"),
                     ({**good, "hash": "e" * 16, "expires": "2025-09-15T06:00:00Z"},
                      "expired"),
                     ({**good, "hash": "d" * 16, "expires": "2099-01-01T06:00:00"},
                      "malformed")):
        with pytest.raises(nodeplan.Refused, match=why):
            nodeplan.store_assignment(data, "scope-a", bad)
    assert (data / nodeplan.ASSIGNMENT_FILE).read_bytes() == before


def test_alert_outcome_is_sent_once_after_the_runner_records_it(tmp_path: Path) -> None:
    data = tmp_path / "node"
    alert = {"id": 7, "target": "V Cep", "ra_deg": 60.0, "dec_deg": 85.0,
             "start": "2025-09-14T20:00:00Z", "end": "2025-09-15T03:00:00Z",
             "expires": "2025-09-16T12:00:00Z", "note": None}
    assert nodeplan.store_alerts(data, [alert]) == 1
    assert nodeplan.store_alerts(data, [alert]) == 0
    assert [a["id"] for a in nodeplan.pending_alerts(data)] == [7]
    assert nodeplan.unsent_alert_outcomes(data) == []
    with pytest.raises(ValueError, match="one of them"):
        nodeplan.record_alert_outcome(data, 7)
    with pytest.raises(ValueError, match="not received"):
        nodeplan.record_alert_outcome(data, 8, refused="x")
    nodeplan.record_alert_outcome(data, 7, scheduled_at=dt.datetime(2025, 9, 14, 21, 5,
                                                                     tzinfo=dt.UTC))
    assert nodeplan.pending_alerts(data) == []
    assert nodeplan.unsent_alert_outcomes(data) == [
        (7, {"status": "scheduled", "at": "2025-09-14T21:05:00Z", "reason": None})]
    nodeplan.mark_alert_sent(data, 7, "accepted")
    assert nodeplan.unsent_alert_outcomes(data) == []


def test_tomorrows_assignment_waits_until_tonights_expires(hub: HubStore) -> None:
    from starnode.hub.nightplans import current_assignment as hub_assignment
    from starnode.hub.wire import Heartbeat

    token = hub.add_node("honolulu", "AAA")
    who = hub.authenticate(token)
    hub.heartbeat(who, Heartbeat.model_validate(_hb("honolulu", {
        "latitude": 21.31, "longitude": -157.86, "height": 5.0})))
    add_ring(hub)
    before = dt.datetime(2025, 9, 14, 0, 0, tzinfo=dt.UTC).timestamp()
    plan_night(hub, "2025-09-14", now=before)
    # night 2025-09-15 allocated early (for the nodes of the western Pacific's dusk), while
    # Honolulu is still observing the night of the 14th
    plan_night(hub, "2025-09-15", now=before)
    mid_night = dt.datetime(2025, 9, 15, 10, 0, tzinfo=dt.UTC).timestamp()  # 00:00 local
    assert hub_assignment(hub, who, now=mid_night)["night"] == "2025-09-14"  # type: ignore[index]
    next_day = dt.datetime(2025, 9, 15, 22, 0, tzinfo=dt.UTC).timestamp()  # noon local
    assert hub_assignment(hub, who, now=next_day)["night"] == "2025-09-15"  # type: ignore[index]
