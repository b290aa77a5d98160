"""The AAVSO Target Tool as a planning source: a real loopback HTTP server playing the API with
recorded-shape answers, then offline from the cache; the key never leaves the config."""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from loopback import LoopbackServer, Request, Response
from planning_helpers import PARIS, SS_CYG, config
from starnode.cli import main
from starnode.config import Config
from starnode.planning.planner import plan_night
from starnode.planning.render import plan_json, plan_text
from starnode.planning.targettool import ENV_KEY, parse_targets, target_tool_candidates

DATA = Path(__file__).parents[1] / "data"
KEY = "tt-SECRET-5f2a9c"
NOW = datetime(2025, 9, 14, 12, tzinfo=UTC)
PATH = "/TargetTool/api/v1/targets"


def _server() -> LoopbackServer:
    answers = {s: json.loads((DATA / f"targettool_{s}.json").read_text()) for s in ("ac", "all")}

    def handler(req: Request) -> Response:
        auth = req.headers.get("authorization", "")
        expected = "Basic " + base64.b64encode(f"{KEY}:api_token".encode()).decode()
        if auth != expected:
            return 401, {"Content-Type": "application/json"}, b'{"error": "bad key"}'
        section = req.query.get("obs_section", ["all"])[0]
        return 200, {"Content-Type": "application/json"}, json.dumps(answers[section]).encode()

    srv = LoopbackServer()
    srv.route("GET", PATH, handler=handler)
    return srv


def _cfg(tmp_path: Path, url: str, *, key: str | None = KEY, offline: bool = False,
         cache_hours: float = 12.0) -> Config:
    tt: dict[str, object] = {"url": url, "cache_hours": cache_hours}
    if key is not None:
        tt["key"] = key
    return config(tmp_path, PARIS, [SS_CYG], target_tool=tt,
                  photometry={"offline": offline, "http_retries": 1, "http_backoff": 0.01})


def test_parse_is_defensive() -> None:
    got = parse_targets(json.loads((DATA / "targettool_ac.json").read_text()), "ac")
    assert [c.name for c in got] == ["T CrB", "V1405 Cas"]  # no name / no position: skipped
    t = got[0]
    assert (t.alert, t.priority, t.cadence_days, t.brightest, t.faintest) == (
        True, True, 0.5, 9.6, 10.8)
    got = parse_targets(json.loads((DATA / "targettool_all.json").read_text()), "all")
    am = next(c for c in got if c.name == "AM Her")
    assert (am.alert, am.brightest, am.faintest, am.cadence_days) == (False, 12.3, 15.7, 2.0)
    assert [c.alert for c in got if c.name == "T CrB"] == [True]  # its section says so


def test_alerts_first_then_offline_from_the_cache(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with _server() as srv:
        cfg = _cfg(tmp_path, srv.url(PATH))
        plan = plan_night(cfg, "2025-09-14", now=NOW)
        assert sorted(r.query["obs_section"][0] for r in srv.requests) == ["ac", "all"]
    by = {it.target: it for it in plan.items}
    assert "T CrB" in by and by["T CrB"].reason.startswith("AAVSO alert or campaign")
    assert by["T CrB"].score > max(it.score for it in plan.items if it.target != "T CrB")
    excluded = {e.target: e.code for e in plan.excluded}
    assert excluded["V1405 Cas"] == "saturates"  # an alert, but 5.1 mag at its brightest
    assert excluded["AM Her"] == "too_faint"  # 15.7 at minimum
    assert "SS Cyg" in by  # in the config and the general list: one candidate
    assert [it.target for it in plan.items].count("SS Cyg") == 1
    # the server is gone: the same plan from the cached answers, no request made
    offline = plan_night(_cfg(tmp_path, "http://127.0.0.1:9/gone", offline=True), "2025-09-14",
                         now=NOW)
    assert offline.hash == plan.hash and offline.notes == plan.notes
    # too old to be fresh and the server is unreachable: the older answer, said in a note
    stale = plan_night(_cfg(tmp_path, "http://127.0.0.1:9/gone", cache_hours=0), "2025-09-14",
                       now=NOW)
    assert stale.hash == plan.hash
    assert any("from an older cache" in n for n in stale.notes)
    for rec in caplog.records:
        assert KEY not in rec.getMessage()


def test_the_key_reaches_no_log_file_or_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             caplog: pytest.LogCaptureFixture,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.DEBUG)
    with _server() as srv:
        cfgfile = tmp_path / "config.yaml"
        cfgfile.write_text(yaml.safe_dump({
            "data_dir": str(tmp_path / "data"), "site": {"latitude": 48.85, "longitude": 2.35},
            "target_tool": {"url": srv.url(PATH), "key": KEY},
            "photometry": {"offline": False}, "targets": [SS_CYG]}))
        assert main(["plan", "--config", str(cfgfile), "--night", "2025-09-14",
                     "--format", "json", "--out", str(tmp_path / "plan.json")]) == 0
        assert main(["plan", "--config", str(cfgfile), "--night", "2025-09-14",
                     "--format", "html", "--out", str(tmp_path / "plan.html")]) == 0
        assert main(["config", "--config", str(cfgfile)]) == 0
    out = capsys.readouterr()
    assert KEY not in out.out + out.err
    assert "key: '***'" in out.out
    for rec in caplog.records:
        assert KEY not in rec.getMessage()
    # no file but the config holds it: the database, the plan, the logs
    for f in (tmp_path / "data").rglob("*"):
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f
    assert KEY not in (tmp_path / "plan.json").read_text()
    assert KEY not in (tmp_path / "plan.html").read_text()
    items = json.loads((tmp_path / "plan.json").read_text())["items"]
    assert "T CrB" in [i["target"] for i in items]


def test_key_from_the_environment_and_a_refused_key(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    with _server() as srv:
        # no key at all: the Target Tool is not asked
        got = target_tool_candidates(_cfg(tmp_path, srv.url(PATH), key=None))
        assert got.candidates == [] and srv.requests == []
        monkeypatch.setenv(ENV_KEY, KEY)
        got = target_tool_candidates(_cfg(tmp_path, srv.url(PATH), key=None))
        assert {c.name for c in got.candidates} >= {"T CrB", "SS Cyg"}
        monkeypatch.setenv(ENV_KEY, "wrong-key-1234")
        fresh = tmp_path / "other"
        plan = plan_night(_cfg(fresh, srv.url(PATH), key=None), "2025-09-14", now=NOW)
    assert any("API key was refused" in n for n in plan.notes)
    assert "wrong-key-1234" not in plan_text(plan) + plan_json(plan)
    assert all("wrong-key-1234" not in r.getMessage() for r in caplog.records)


def test_config_names_resolved_through_vsx_then_offline(tmp_path: Path) -> None:
    """A target given by name only: VSX (a loopback server) fills position and range; the
    answer is cached, so the next plan works with catalogs.offline."""
    from starnode import catalogs

    catalogs.CLIENT.reset()
    vsx = {"VSXObject": {"Name": "SS Cyg", "AUID": "000-BCP-220", "RA2000": "325.67833",
                         "Declination2000": "43.58611", "VariabilityType": "UGSS",
                         "MaxMag": "8.6 V", "MinMag": "(3.8) V"}}
    with LoopbackServer() as srv:
        def answer(req: Request) -> Response:
            known = req.query.get("ident") == ["SS Cyg"]
            return 200, {"Content-Type": "application/json"}, json.dumps(
                vsx if known else {}).encode()

        srv.route("GET", "/vsx/index.php", handler=answer)
        cfg = config(tmp_path, PARIS, ["SS Cyg", {"name": "Nobody Knows"}],
                     photometry={"offline": False, "vsx_url": srv.url("/vsx/index.php"),
                                 "http_retries": 1})
        plan = plan_night(cfg, "2025-09-14", now=NOW)
        asked = [r.query["ident"][0] for r in srv.requests]
    assert sorted(asked) == ["Nobody Knows", "SS Cyg"]
    [item] = plan.items
    assert (item.target, item.ra_deg, item.dec_deg) == ("SS Cyg", 325.67833, 43.58611)
    assert item.exposure_s == 10.0  # 8.6 at its brightest: 20-second frames would saturate
    [ex] = plan.excluded
    assert ex.target == "Nobody Knows" and ex.code == "unresolved"
    offline = plan_night(config(tmp_path, PARIS, ["SS Cyg"]), "2025-09-14", now=NOW)
    assert [it.target for it in offline.items] == ["SS Cyg"]
    assert offline.items[0].to_dict() == item.to_dict()
