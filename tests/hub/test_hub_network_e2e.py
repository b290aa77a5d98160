"""Two nodes and a hub, end to end over loopback HTTP: the hub allocates tonight, both nodes
keep and acknowledge their assignments, an alert posted mid-night reaches both, the hub dies,
the nodes keep their assignments and record what they did with the alert, and when the hub
returns each answer arrives exactly once.

(The telescope side, a fake Alpaca telescope observing the alert, is the telescope issue's;
here the runner's part is played by :func:`starnode.node.assignment.record_alert_outcome`.)"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest

from starnode.config import Config

httpx = pytest.importorskip("httpx", reason="the hub extra is not installed")
sa = pytest.importorskip("sqlalchemy", reason="the hub extra is not installed")

from hub_helpers import add_ring, db_url, free_port, hub_config, pg_cluster, serve  # noqa: E402, F401
from starnode.hub import db  # noqa: E402
from starnode.hub.nightplans import plan_night  # noqa: E402
from starnode.hub.store import HubStore  # noqa: E402
from starnode.node import assignment as nodeplan  # noqa: E402
from starnode.node.forwarder import Forwarder  # noqa: E402
from waiting import wait_for  # noqa: E402

pytestmark = pytest.mark.slow

SITES = {"paris": (48.85, 2.35), "rome": (41.90, 12.50)}


def test_an_alert_reaches_both_nodes_and_their_answers_survive_a_dead_hub(
        tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    hub = HubStore(hub_config(tmp_path, db_url, plan_interval=0, plan_min_window_minutes=30))
    admin = hub.add_admin("ops")
    add_ring(hub)
    port = free_port()
    nodes: dict[str, Forwarder] = {}
    data: dict[str, Path] = {}
    try:
        for name, (lat, lon) in SITES.items():
            token = hub.add_node(name, "HKA")
            monkeypatch.setenv("STARNODE_HUB_TOKEN", token)
            data[name] = tmp_path / name
            nodes[name] = Forwarder(Config({
                "data_dir": str(data[name]), "site": {"latitude": lat, "longitude": lon},
                "hub": {"url": f"http://127.0.0.1:{port}", "heartbeat_interval": 1,
                        "retry_backoff": 0.05, "max_backoff": 0.5, "http_timeout": 5}})).start()
        night = dt.datetime.now(dt.UTC).date().isoformat()
        with serve(hub, port) as url:
            wait_for(lambda: all((n["heartbeat"] or {}).get("site") for n in hub.nodes()), 30,
                  "both sites")
            plan_night(hub, night, force=True)
            wait_for(lambda: all(n["ack"] == "applied" for n in plan_night(hub, night)["nodes"]),
                  30, "both acknowledgements")
            # an alert mid-night, for both: a star that stays between 30 and 80 degrees
            r = httpx.post(f"{url}/api/v1/alerts", json={
                "target": "V Cep", "ra": 60.0, "dec": 85.0, "note": "test alert",
                "nodes": list(SITES)}, headers={"Authorization": f"Bearer {admin}"})
            assert r.status_code == 200, r.text
            aid = r.json()["id"]
            wait_for(lambda: all(nodeplan.pending_alerts(d) for d in data.values()), 30,
                  "the alert on both nodes")
        # the hub is gone; the nodes keep their assignments and act on the alert
        for d in data.values():
            assert nodeplan.current_assignment(d) is not None
            assert [a["id"] for a in nodeplan.pending_alerts(d)] == [aid]
        at = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(minutes=10)
        nodeplan.record_alert_outcome(data["paris"], aid, scheduled_at=at)
        nodeplan.record_alert_outcome(data["rome"], aid, refused="dew on the corrector")
        time.sleep(1.5)  # the forwarders try, fail, and keep the answers
        assert all(nodeplan.unsent_alert_outcomes(d) for d in data.values())
        with serve(hub, port):
            wait_for(lambda: not any(nodeplan.unsent_alert_outcomes(d) for d in data.values()),
                  30, "the answers after the hub's return")
            time.sleep(1.5)  # more heartbeats: nothing is answered twice
    finally:
        for fwd in nodes.values():
            fwd.close(flush_timeout=0)
    with hub.engine.connect() as conn:
        d, n = db.alert_deliveries, db.nodes
        got = {r.name: (r.status, r.reason, r.at) for r in conn.execute(
            sa.select(n.c.name, d.c.status, d.c.reason, d.c.at)
            .select_from(d.join(n, n.c.id == d.c.node_id)).where(d.c.alert_id == aid))}
        acks = conn.execute(sa.select(db.acks.c.subject)).scalars().all()
    assert got["paris"][:2] == ("scheduled", None) and got["paris"][2] == at.timestamp()
    assert got["rome"][:2] == ("refused", "dew on the corrector")
    assert sorted(a.split(":")[0] for a in acks) == ["alert", "alert", "assignment",
                                                     "assignment"]
    hub.close()
