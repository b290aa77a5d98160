"""Members ask for stars (command line, API, the hub's page) and hear back in words; the
operator's views of the network's nights (``hub plan``, ``hub nodes``, ``hub coverage`` with
its PNG and text alternative); the automatic allocation before dusk."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx", reason="the hub extra is not installed")
sa = pytest.importorskip("sqlalchemy", reason="the hub extra is not installed")

from hub_helpers import db_url, hub_config, hub_store, pg_cluster, result, serve, wire  # noqa: E402, F401
from starnode.cli import main  # noqa: E402
from starnode.hub import db  # noqa: E402
from starnode.hub.nightplans import add_wanted, auto_plan, load_plan  # noqa: E402
from starnode.hub.requests import news  # noqa: E402
from starnode.hub.simnet import heartbeat  # noqa: E402
from starnode.hub.store import HubStore  # noqa: E402
from starnode.hub.wire import Batch, Heartbeat  # noqa: E402

NIGHT = "2025-09-14"
JD = 2460933.40  # 2025-09-14 21:36 UTC
MORNING_AFTER = dt.datetime(2025, 9, 15, 9, 0, tzinfo=dt.UTC).timestamp()


@pytest.fixture
def hub(tmp_path: Path, db_url: str) -> Any:  # noqa: F811
    with hub_store(tmp_path, db_url, plan_interval=0) as store:
        yield store


def _push(store: HubStore, token: str, node: str, n: int, seed0: int) -> None:
    who = store.authenticate(token)
    items = [wire(result(11.8, JD + 0.001 * i, seed=seed0 + i, night=NIGHT), seed=seed0 + i)
             for i in range(n)]
    store.push(who, Batch.model_validate({"schema_version": 2, "node": node,
                                          "measurements": items}))


def test_a_member_hears_back_in_words(hub: HubStore) -> None:
    tokens = {name: hub.add_node(name, code) for name, code in
              (("hka-1", "HKA"), ("hka-2", "HKA"), ("other", "XYZ"))}
    admin = hub.add_admin("ops")
    with serve(hub) as url, httpx.Client(base_url=url) as http:
        body = {"star": "SS Cyg", "member": "hka", "until": "2099-01-01"}
        r = http.post("/api/v1/requests", json=body,
                      headers={"Authorization": f"Bearer {tokens['other']}"})
        assert r.status_code == 403 and "in their own name" in r.json()["detail"]
        r = http.post("/api/v1/requests", json={**body, "star": "SS Cyg, V"},
                      headers={"Authorization": f"Bearer {tokens['hka-1']}"})
        assert r.status_code == 422
        r = http.post("/api/v1/requests", json={**body, "until": "2001-01-01"},
                      headers={"Authorization": f"Bearer {tokens['hka-1']}"})
        assert r.status_code == 422 and "in the past" in r.json()["detail"]
        r = http.post("/api/v1/requests", json=body,
                      headers={"Authorization": f"Bearer {tokens['hka-1']}"})
        assert r.status_code == 200, r.text
        assert "cannot be planned until an operator adds it" in r.json()["message"]
        # no coordinates yet: the allocation says why, in words
        got = http.get("/api/v1/requests/HKA",
                       headers={"Authorization": f"Bearer {admin}"}).json()
        assert got["requests"][0]["message"].startswith("SS Cyg has not been observed yet")
        assert http.get("/api/v1/requests/HKA", headers={
            "Authorization": f"Bearer {tokens['other']}"}).status_code == 403
    # three telescopes observe it; the member's two report 41 points between them
    _push(hub, tokens["hka-1"], "hka-1", 25, 0)
    _push(hub, tokens["hka-2"], "hka-2", 16, 100)
    _push(hub, tokens["other"], "other", 9, 200)
    out = news(hub, "hka", now=MORNING_AFTER)
    assert [r["message"] for r in out["requests"]] == [
        "SS Cyg was observed by 3 telescopes last night; 41 measurements reported under "
        "your code HKA."]
    later = news(hub, "HKA", now=MORNING_AFTER + 5 * 86400)
    assert "on the night of 2025-09-14" in later["requests"][0]["message"]


def test_the_cli_request_plan_coverage_and_nodes(hub: HubStore, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "hub.yaml"
    cfg.write_text(json.dumps(hub_config(tmp_path, hub.url, plan_interval=0)))
    tokens = {}
    for i, (name, lat, lon) in enumerate((("paris", 48.85, 2.35), ("rome", 41.9, 12.5))):
        tokens[name] = hub.add_node(name, "HKA")
        hub.heartbeat(hub.authenticate(tokens[name]),
                      Heartbeat.model_validate(heartbeat(name, lat, lon, 50.0, i + 1)))
    assert main(["--config", str(cfg), "hub", "want", "CH Cyg", "--ra", "291.1379", "--dec",
                 "50.2414", "--cadence-days", "2"]) == 0
    tt = tmp_path / "targettool.json"
    tt.write_text(json.dumps({"targets": [{"star_name": "V Sge", "ra": 302.0, "dec": 21.1,
                                           "kind": "campaign"}]}))
    assert main(["--config", str(cfg), "hub", "want", "--file", str(tt)]) == 0
    assert "1 target(s) on the network's list" in capsys.readouterr().out
    tt.write_text(json.dumps({"targets": [{"ra": 1.0}]}))
    assert main(["--config", str(cfg), "hub", "want", "--file", str(tt)]) == 1
    assert "a target without a name" in capsys.readouterr().err
    tt.write_text(json.dumps([{"name": "X, Y", "ra": 1.0, "dec": 2.0}]))
    assert main(["--config", str(cfg), "hub", "want", "--file", str(tt)]) == 1
    assert "no comma" in capsys.readouterr().err
    assert main(["--config", str(cfg), "hub", "request", "SS Cyg", "--member", "HKA",
                 "--ra", "325.6785", "--dec", "43.5862"]) == 0
    assert "on the network's list for you, HKA" in capsys.readouterr().out
    assert main(["--config", str(cfg), "hub", "request", "SS Cyg", "--member", "H K"]) == 1
    assert "member" in capsys.readouterr().err
    assert main(["--config", str(cfg), "hub", "plan", "--night", NIGHT, "--format",
                 "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert set(plan) >= {"night", "assignments", "unassigned"} and plan["night"] == NIGHT
    assert {a["target"] for a in plan["assignments"]} == {"SS Cyg", "CH Cyg", "V Sge"}
    for a in plan["assignments"]:
        assert set(a) >= {"node", "target", "start", "end"}
        assert a["start"].endswith("Z") and a["start"] < a["end"]
    ss = [a for a in plan["assignments"] if a["target"] == "SS Cyg"]
    assert "asked for by HKA" in ss[0]["reason"]
    assert main(["--config", str(cfg), "hub", "plan", "--night", NIGHT]) == 0
    text = capsys.readouterr().out
    assert "(unchanged: same inputs as the last allocation)" in text and "SS Cyg" in text
    assert main(["--config", str(cfg), "hub", "plan", "--night", "14/09/2025"]) == 1
    assert "must be a date" in capsys.readouterr().err
    _push(hub, tokens["paris"], "paris", 5, 0)
    assert main(["--config", str(cfg), "hub", "coverage", "--night", NIGHT, "--png",
                 str(tmp_path / "cov.png")]) == 0
    out = capsys.readouterr().out
    assert "SS Cyg: asked of" in out and "observed by paris from 21:36 to 21:41 UTC, 5 " \
        "measurement(s)" in out
    assert (tmp_path / "cov.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "cov.txt").read_text().strip() == out.strip()
    assert main(["--config", str(cfg), "hub", "nodes"]) == 0
    out = capsys.readouterr().out
    assert f"night {NIGHT}:" in out and "observed 5 measurement(s) of 1 target(s)" in out
    assert main(["--config", str(cfg), "hub", "alert", "BQ Oct", "--ra", "230", "--dec",
                 "-85", "--node", "paris"]) == 1
    assert "cannot observe it tonight" in capsys.readouterr().err


def test_automatic_allocation_before_dusk_is_idempotent(hub: HubStore) -> None:
    token = hub.add_node("paris", "HKA")
    hub.heartbeat(hub.authenticate(token),
                  Heartbeat.model_validate(heartbeat("paris", 48.85, 2.35, 35.0, 1)))
    add_wanted(hub, "SS Cyg", ra=325.6785, dec=43.5862)
    # hub's clock in the morning: Paris's dusk is far: nothing yet (heartbeat age ignored:
    # the test's clock is in 2025, the heartbeat's in the present)
    morning = dt.datetime(2025, 9, 14, 8, 0, tzinfo=dt.UTC).timestamp()
    assert auto_plan(hub, now=morning) == []
    assert load_plan(hub, NIGHT)["nodes"] == []
    evening = dt.datetime(2025, 9, 14, 18, 0, tzinfo=dt.UTC).timestamp()  # dusk about 19:40
    first = auto_plan(hub, now=evening)
    assert [(r["night"], r["changed"]) for r in first] == [(NIGHT, True)]
    plan = load_plan(hub, NIGHT)
    assert [a["target"] for a in plan["assignments"]] == ["SS Cyg"]
    again = auto_plan(hub, now=evening + 300)
    assert [(r["night"], r["changed"]) for r in again] == [(NIGHT, False)]
    with hub.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(db.allocations)).scalar() == 1


def test_the_page_form_records_a_request(hub: HubStore) -> None:
    token = hub.add_node("hka-1", "HKA")
    with serve(hub) as url, httpx.Client(base_url=url) as http:
        page = http.get("/")
        assert page.status_code == 200 and 'lang="en"' in page.text
        for field in ("star", "member", "until", "token"):
            assert f'<label for="{field}">' in page.text and f'id="{field}"' in page.text
        form = {"star": "SS Cyg", "member": "HKA", "until": "", "token": "wrong"}
        r = http.post("/request", data=form)
        assert r.status_code == 401 and 'role="alert"' in r.text
        assert "unknown or revoked token" in r.text and 'value="SS Cyg"' in r.text
        assert "wrong" not in r.text  # the token is never echoed
        r = http.post("/request", data={**form, "token": token, "member": "<b>HKA"})
        assert r.status_code == 422 and "&lt;b&gt;HKA" in r.text and "<b>HKA" not in r.text
        assert "not an AAVSO observer code" in r.text
        r = http.post("/request", data={**form, "token": token, "star": "SS Cyg, V"})
        assert r.status_code == 422 and "star" in r.text
        r = http.post("/request", data={**form, "token": token})
        assert r.status_code == 200 and 'role="status"' in r.text
        assert "SS Cyg is on the network&#x27;s list for you, HKA" in r.text
        assert "<h2>Your requests</h2>" in r.text
    with hub.engine.connect() as conn:
        rows = conn.execute(sa.select(db.wanted.c.name, db.wanted.c.member)).all()
    assert [tuple(r) for r in rows] == [("SS Cyg", "HKA")]


def test_the_network_page_needs_an_admin_token(hub: HubStore) -> None:
    token = hub.add_node("paris", "HKA")
    admin = hub.add_admin("ops")
    hub.heartbeat(hub.authenticate(token),
                  Heartbeat.model_validate(heartbeat("paris", 48.85, 2.35, 35.0, 1)))
    add_wanted(hub, "SS Cyg", ra=325.6785, dec=43.5862)
    from starnode.hub.nightplans import plan_night

    plan_night(hub, NIGHT)
    with serve(hub) as url, httpx.Client(base_url=url) as http:
        assert '<label for="token">Admin token' in http.get("/network").text
        r = http.post("/network", data={"token": token})
        assert r.status_code == 403 and "needs an admin token" in r.text
        assert "paris" not in r.text
        r = http.post("/network", data={"token": admin})
        assert r.status_code == 200
        assert '<th scope="row">paris</th>' in r.text and f"<td>{NIGHT}</td>" in r.text
        assert "<td>not acknowledged</td>" in r.text and admin not in r.text
