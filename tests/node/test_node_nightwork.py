"""The node's side of the network's nights over a real hub on loopback: the heartbeat carries
the weather veto read from an Alpaca SafetyMonitor (the fake server's) and the instrument's
limits from its profile, so the allocation gives a vetoed node nothing; a node whose telescope
runner applies the assignment acknowledges it only once the runner marked it applied."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("httpx", reason="the hub extra is not installed")

sa = pytest.importorskip("sqlalchemy", reason="the hub extra is not installed")

from hub_helpers import add_ring, db_url, free_port, hub_store, pg_cluster, serve  # noqa: E402, F401
from starnode.hub import db  # noqa: E402
from starnode.hub.nightplans import plan_night  # noqa: E402
from starnode.hub.store import HubStore  # noqa: E402
from starnode.hub.wire import Heartbeat  # noqa: E402
from starnode.instruments import profile  # noqa: E402
from starnode.node import assignment as nodeplan  # noqa: E402
from starnode.node.forwarder import Forwarder, attach  # noqa: E402
from starnode.telescope.clock import SystemClock  # noqa: E402
from starnode.telescope.fake import FakeAlpaca  # noqa: E402
from waiting import wait_for  # noqa: E402


def _cfg(tmp_path: Path, port: int, **telescope: Any) -> dict[str, Any]:
    return {"data_dir": str(tmp_path / "node"), "site": {"latitude": 48.85, "longitude": 2.35},
            "telescope": telescope,
            "hub": {"url": f"http://127.0.0.1:{port}", "heartbeat_interval": 1,
                    "retry_backoff": 0.05, "max_backoff": 0.5, "http_timeout": 5}}


@pytest.fixture
def hub(tmp_path: Path, db_url: str,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> Iterator[HubStore]:
    """A hub with the ring of targets and the node paris (its token in the environment)."""
    with hub_store(tmp_path, db_url, plan_interval=0, plan_min_window_minutes=30) as store:
        monkeypatch.setenv("STARNODE_HUB_TOKEN", store.add_node("paris", "HKA"))
        add_ring(store)
        yield store


def test_heartbeat_carries_the_weather_veto_and_the_instrument_limits(
        tmp_path: Path, hub: HubStore) -> None:
    port = free_port()
    with FakeAlpaca(SystemClock()) as fake:
        cfg = _cfg(tmp_path, port, model="s30", weather="alpaca",
                   weather_address=fake.address, weather_kind="safetymonitor")
        fake.faults.unsafe = True
        fwd = attach(SimpleNamespace(config=_resolve(cfg), _watcher=None))
        assert fwd is not None
        try:
            fwd.node = "paris"
            hb = fwd.heartbeat()
            Heartbeat.model_validate(hb)  # what the hub accepts
            assert hb["weather"] == {"veto": True,
                                     "reason": "the safety monitor says unsafe (IsSafe false)"}
            s30 = profile("s30")
            inst = hb["instrument"]
            assert inst["model"] == "s30"
            assert inst["bright_limit"] == pytest.approx(s30.saturation_mag(
                min(s30.allowed_exposures(altaz=True, expert=True))), abs=0.01)
            assert inst["bright_limit"] < inst["faint_limit"]
            with serve(hub, port):
                wait_for(lambda: ((hub.nodes()[0]["heartbeat"] or {}).get("weather") or {})
                      .get("veto") is True, 20, "the veto at the hub")
                night = dt.datetime.now(dt.UTC).date().isoformat()
                res = plan_night(hub, night, force=True)
                node = next(n for n in res["nodes"] if n["node"] == "paris")
                assert node["items"] == 0 and "weather veto" in str(node["note"]), node
                fake.faults.unsafe = False  # the sky clears: the next heartbeat says so
                wait_for(lambda: ((hub.nodes()[0]["heartbeat"] or {}).get("weather") or {})
                      .get("veto") is False, 20, "the veto lifted")
                res = plan_night(hub, night)
                node = next(n for n in res["nodes"] if n["node"] == "paris")
                assert node["items"] > 0, node
        finally:
            fwd.close(flush_timeout=0)


def _resolve(cfg: dict[str, Any]) -> Any:
    from starnode.config import resolve

    return resolve(cfg)


def test_a_telescope_node_acknowledges_only_what_its_runner_applied(
        tmp_path: Path, hub: HubStore) -> None:
    port = free_port()
    cfg = _cfg(tmp_path, port, driver="alpaca", motion=True)
    data = Path(cfg["data_dir"])
    fwd = Forwarder(_resolve(cfg)).start()
    try:
        with serve(hub, port):
            wait_for(lambda: (hub.nodes()[0]["heartbeat"] or {}).get("site"), 20, "the site")
            night = dt.datetime.now(dt.UTC).date().isoformat()
            plan_night(hub, night, force=True)
            wait_for(lambda: nodeplan.current_assignment(data) is not None, 20, "the assignment")
            held = nodeplan.current_assignment(data)
            assert held is not None
            time.sleep(2.5)  # heartbeats go by: kept, not yet in a journal, not acknowledged
            mine = next(n for n in plan_night(hub, night)["nodes"] if n["node"] == "paris")
            assert mine["ack"] != "applied", mine
            assert nodeplan.mark_assignment_applied(data, held["night"], held["hash"])
            wait_for(lambda: next(n for n in plan_night(hub, night)["nodes"]
                               if n["node"] == "paris")["ack"] == "applied", 20, "the ack")
            wait_for(lambda: nodeplan.unacked_assignment(data) is None, 10, "acked locally")
            # a replayed acknowledgement (the node forgot it was sent, e.g. restored from a
            # backup): the hub refuses it (409), the node takes that as final, nothing moves
            path = data / nodeplan.ASSIGNMENT_FILE
            kept = json.loads(path.read_text())
            (data / "replay.json").write_text(json.dumps({**kept, "acked": False}))
            (data / "replay.json").replace(path)  # atomically, as the node writes it
            wait_for(lambda: nodeplan.unacked_assignment(data) is None, 10, "the replay answered")
            time.sleep(1.5)
            with hub.engine.connect() as conn:
                acks = conn.execute(sa.select(db.acks.c.subject, db.acks.c.status)).all()
            assert len(acks) == 1 and acks[0].status == "applied"
            assert acks[0].subject.startswith(f"assignment:{held['night']}:{held['hash']}")
            assert nodeplan.current_assignment(data)["hash"] == held["hash"]
    finally:
        fwd.close(flush_timeout=0)
