"""Issue 21 end to end: two nodes (two data folders, two fake Alpaca telescopes, real
forwarders) and a real hub on loopback (SQLite, and PostgreSQL when a server can start), on a
simulated night (2025-09-14).

The hub allocates the night and both nodes plan their assignments; mid-night an alert (SS Cyg)
is posted for both; each runner inserts it at its next safe boundary and observes it (the fake
cameras render synthetic SS Cyg subs); the hub is stopped mid-night and the nodes go on with
their plans; when it returns the alert answers arrive once; the nodes measure their frames
(``starnode process``) and forward them; the hub cross-checks the two telescopes' points and
each member's report carries its own node's rows, once.

The hub's clock and the node's assignment clock follow the simulated night (monkeypatched:
the hub and the forwarders run in this process), so assignments and alerts do not expire in
real time.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

httpx = pytest.importorskip("httpx", reason="the hub extra is not installed")

from hub_helpers import db_url, free_port, hub_config, pg_cluster, serve  # noqa: E402, F401
from starnode.config import resolve  # noqa: E402
from starnode.hub import nightplans  # noqa: E402
from starnode.hub.consensus import lightcurve  # noqa: E402
from starnode.hub.nightplans import add_wanted, plan_night  # noqa: E402
from starnode.hub.reports import member_report  # noqa: E402
from starnode.hub.store import HubStore  # noqa: E402
from starnode.node import assignment as nodeplan  # noqa: E402
from starnode.node.forwarder import Forwarder  # noqa: E402
from starnode.node.nightwork import NodeNetwork, network_plan  # noqa: E402
from starnode.synthetic import DEMO_SEQUENCE_FILE, make_sub  # noqa: E402
from starnode.telescope.settings import TelescopeSettings  # noqa: E402
from telescope_helpers import (  # noqa: E402
    CHI_CYG,
    FAST,
    R_AND,
    RU_PEG,
    SS_CYG,
    Z_CAM,
    assert_safe_sequence,
    night,
    utc,
)
from waiting import wait_for  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

NIGHT = "2025-09-14"
NODES = {"delft": ("HKA", 52.0, 5.0), "paris": ("XYZ", 48.85, 2.35)}
ALERT_AT = utc(20, 33)  # mid-night, inside one 15-minute cross-check window
WANTED = {"Chi Cyg": CHI_CYG, "RU Peg": RU_PEG, "Z Cam": Z_CAM, "R And": R_AND}


def _node_config(tmp_path: Path, name: str, port: int, fake: str) -> dict[str, Any]:
    code, lat, lon = NODES[name]
    targets = [{"name": n, "ra": p[0], "dec": p[1], "brightest": 7.0, "faintest": 10.0}
               for n, p in {**WANTED, "SS Cyg": SS_CYG}.items()]
    return {"data_dir": str(tmp_path / name / "data"),
            "site": {"latitude": lat, "longitude": lon, "elevation": 10.0},
            "watch": {"path": str(tmp_path / name / "MyWorks"), "include": ["Light_SS Cyg_*"]},
            "photometry": {"sequence_file": str(DEMO_SEQUENCE_FILE), "offline": True},
            "aavso": {"observer_code": code, "mode": "outbox"},
            "telescope": {"driver": "alpaca", "motion": True, "address": fake,
                          "alert_min_minutes": 2},
            "planning": {"slot_minutes": 2, "min_slot_minutes": 2},
            "targets": targets,
            "hub": {"url": f"http://127.0.0.1:{port}", "heartbeat_interval": 1,
                    "retry_backoff": 0.05, "max_backoff": 0.5, "http_timeout": 5,
                    "flush_timeout": 60}}


class _Gate(NodeNetwork):
    """The node's real link, holding the runner at its first safe boundary after
    :data:`ALERT_AT` until the test has posted the alert (so "mid-night" is a fixed time)."""

    def __init__(self, config: Any, reached: threading.Event, go: threading.Event) -> None:
        super().__init__(config)
        self.reached, self.go = reached, go

    def new_plan(self, now: dt.datetime, night: str, applied: str | None) -> Any:
        if now >= ALERT_AT and not self.reached.is_set():
            self.reached.set()
            assert self.go.wait(60), "the test did not release the runner"
        return super().new_plan(now, night, applied)


def _images(seed0: int) -> Any:
    """SS Cyg subs for the fake camera (three rendered per node, reused; noise elsewhere)."""
    cache: dict[int, np.ndarray] = {}
    count = [0]

    def image(ra: float, dec: float, exposure_s: float, start: dt.datetime) -> np.ndarray:
        if abs(ra - SS_CYG[0]) > 2 or abs(dec - SS_CYG[1]) > 2:
            return np.random.default_rng(0).integers(900, 1100, (16, 24)).astype(np.uint16)
        k = count[0] % 3
        count[0] += 1
        if k not in cache:
            hdul, _ = make_sub(target_mag=11.4, seed=seed0 + k, exptime=exposure_s,
                               date_obs=start.strftime("%Y-%m-%dT%H:%M:%S"), site=(52.0, 5.0))
            cache[k] = np.asarray(hdul[0].data, dtype=np.uint16)
        return cache[k]
    return image


def test_two_nodes_an_alert_a_dead_hub_and_each_members_rows_once(
        tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    clocks: dict[str, Any] = {}

    def wall() -> dt.datetime:  # the simulated night, as far as the slower node has got
        return min(c.now() for c in clocks.values()) if clocks else utc(19, 30)

    class _HubTime:
        perf_counter = staticmethod(time.perf_counter)
        monotonic = staticmethod(time.monotonic)

        @staticmethod
        def time() -> float:
            return wall().timestamp()

    monkeypatch.setattr(nightplans, "time", _HubTime)
    monkeypatch.setattr(nodeplan, "_now", lambda now=None: (now or wall()).astimezone(dt.UTC))

    hub = HubStore(hub_config(tmp_path, db_url,
                              plan_interval=0, plan_min_window_minutes=30, min_nodes=2))
    admin = hub.add_admin("ops")
    for name, pos in WANTED.items():
        add_wanted(hub, name, ra=pos[0], dec=pos[1], brightest=7.0, faintest=10.0)
    port = free_port()
    reached = {n: threading.Event() for n in NODES}
    go = threading.Event()
    results: dict[str, Any] = {}
    with night(tmp_path / "delft", start=utc(19, 30), image=_images(100)) as a, \
            night(tmp_path / "paris", start=utc(19, 30), image=_images(200)) as b:
        tel = {"delft": a, "paris": b}
        cfgs = {n: resolve(_node_config(tmp_path, n, port, tel[n].fake.address))
                for n in NODES}
        tokens = {n: hub.add_node(n, NODES[n][0]) for n in NODES}
        fwds: dict[str, Forwarder] = {}
        for n in NODES:
            monkeypatch.setenv("STARNODE_HUB_TOKEN", tokens[n])
            fwds[n] = Forwarder(cfgs[n]).start()
        try:
            with serve(hub, port) as url:
                wait_for(lambda: all((x["heartbeat"] or {}).get("site") for x in hub.nodes()),
                      30, "both sites")
                alloc = plan_night(hub, NIGHT, force=True)
                assert {x["node"] for x in alloc["assignments"]} == set(NODES), alloc
                wait_for(lambda: all(nodeplan.current_assignment(c.data_dir) for c in
                                  cfgs.values()), 30, "both assignments")
                plans = {}
                for n, cfg in cfgs.items():
                    plans[n] = network_plan(cfg, NIGHT, now=tel[n].clock.now())
                    assert plans[n][1] == nodeplan.current_assignment(cfg.data_dir)["hash"]
                    assert plans[n][0].items, plans[n][0].excluded
                clocks.update({n: tel[n].clock for n in NODES})

                def observe(n: str) -> None:
                    p, h = plans[n]
                    tel[n].folder = Path(cfgs[n].watch.path)  # the watched folder
                    results[n] = tel[n].runner(
                        p, TelescopeSettings.from_config(cfgs[n]), options=FAST,
                        network=_Gate(cfgs[n], reached[n], go), assignment=h).run()

                threads = [threading.Thread(target=observe, args=(n,)) for n in NODES]
                for t in threads:
                    t.start()
                # the runners applied their assignments; the hub hears it
                wait_for(lambda: all(x["ack"] == "applied" for x in plan_night(hub, NIGHT)[
                    "nodes"] if x["node"] in NODES), 30, "both assignments applied")
                for e in reached.values():
                    assert e.wait(120), "a runner did not reach mid-night"
                r = httpx.post(f"{url}/api/v1/alerts", json={
                    "target": "SS Cyg", "ra": SS_CYG[0], "dec": SS_CYG[1],
                    "note": "outburst", "nodes": list(NODES)},
                    headers={"Authorization": f"Bearer {admin}"})
                assert r.status_code == 200, r.text
                aid = r.json()["id"]
                wait_for(lambda: all(nodeplan.pending_alerts(c.data_dir) for c in cfgs.values()),
                      30, "the alert on both nodes")
            # the hub is gone mid-night: the nodes go on with their plans and the alert
            go.set()
            for t in threads:
                t.join(300)
            for n, res in results.items():
                assert res.parked is True and res.alarm is None, (n, res)
                assert res.ended == "dawn", res.ended
                assert res.alerts and res.alerts[0][0] == aid
                assert res.alerts[0][1].startswith("scheduled at 2025-09-14T20:3"), res.alerts
                assert res.items_done.count("SS Cyg") == 1
                assert_safe_sequence(tel[n], TelescopeSettings.from_config(cfgs[n]))
            assert all(nodeplan.unsent_alert_outcomes(c.data_dir) for c in cfgs.values())
            with serve(hub, port):  # it returns: the answers arrive, once
                wait_for(lambda: not any(nodeplan.unsent_alert_outcomes(c.data_dir)
                                      for c in cfgs.values()), 30, "the answers")
                env = {**os.environ}
                for n, cfg in cfgs.items():  # the nodes measure and forward
                    path = tmp_path / n / "config.json"
                    path.write_text(json.dumps(_node_config(tmp_path, n, port,
                                                            tel[n].fake.address)))
                    env["STARNODE_HUB_TOKEN"] = tokens[n]
                    run = subprocess.run([sys.executable, "-m", "starnode", "--config",
                                          str(path), "process", "--quiet",
                                          str(cfg.watch.path)], capture_output=True,
                                         text=True, timeout=600, env=env)
                    assert run.returncode == 0, run.stdout + run.stderr
        finally:
            for f in fwds.values():
                f.close(flush_timeout=0)
    frames = {n: len(list(Path(cfgs[n].watch.path).rglob("Light_SS Cyg_*.fit")))
              for n in NODES}
    assert all(v >= 5 for v in frames.values()), frames
    assert hub.measurement_count() == sum(frames.values())
    curve = lightcurve(hub, "SS Cyg", NIGHT)
    by_node = {n: [m for m in curve["measurements"] if m["node"] == n] for n in NODES}
    assert all(len(by_node[n]) == frames[n] for n in NODES)
    reports = {}
    for n, (code, _lat, _lon) in NODES.items():
        rep = member_report(hub, code, NIGHT)  # cross-checks first
        again = member_report(hub, code, NIGHT)
        rows = [ln for ln in Path(rep["path"]).read_text().splitlines()
                if ln.upper().startswith("SS CYG")]
        assert again["rows"] == rep["rows"] == len(rows)
        reports[n] = (rep, rows)
    curve = lightcurve(hub, "SS Cyg", NIGHT)
    flags = {m["flag"] for m in curve["measurements"]}
    assert flags <= {"ok", "outlier"} and "ok" in flags, flags  # checked against each other
    for n in NODES:
        ok = [m for m in curve["measurements"] if m["node"] == n and m["flag"] == "ok"]
        rep, rows = reports[n]
        assert len(rows) == len(ok) > 0, (n, rep["left_out"])
    hub.close()
