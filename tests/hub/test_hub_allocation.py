"""The network plans a night: 50 nodes at real-world sites, 497 candidate targets and 3 alerts,
allocated into SQLite and into a real PostgreSQL server, and every assignment checked against
an independent altitude computation (tests/hub_sky.py: textbook formulas, no astropy)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

sa = pytest.importorskip("sqlalchemy", reason="the hub extra is not installed")

import hub_sky  # noqa: E402
from hub_helpers import db_url, hub_config, pg_cluster  # noqa: E402, F401
from starnode.hub import db  # noqa: E402
from starnode.hub.allocation import NodeSpec, Wish, allocate  # noqa: E402
from starnode.hub.nightplans import add_wanted, load_plan, plan_night, post_alert  # noqa: E402
from starnode.hub.simnet import (  # noqa: E402
    ALERTS,
    SITES,
    candidate_targets,
    heartbeat,
    register_network,
)
from starnode.hub.store import HubStore  # noqa: E402
from starnode.hub.wire import Heartbeat  # noqa: E402

NIGHT = "2025-09-14"
BEFORE_DUSK = dt.datetime(2025, 9, 14, 6, 0, tzinfo=dt.UTC).timestamp()  # before any dusk
MIN_WINDOW = 60.0


def _node_dicts() -> dict[str, dict[str, Any]]:
    out = {}
    for i, (name, lat, lon, _h) in enumerate(SITES):
        hb = heartbeat(name, lat, lon, 0.0, i)
        out[name] = {"lat": lat, "lon": lon, **hb["limits"],
                     "horizon": [tuple(p) for p in hb["limits"]["horizon"]],
                     "bright_limit": hb["instrument"]["bright_limit"],
                     "faint_limit": hb["instrument"]["faint_limit"]}
    return out


@pytest.fixture
def network(tmp_path: Path, db_url: str) -> Any:  # noqa: F811
    store = HubStore(hub_config(tmp_path, db_url, plan_interval=0))
    register_network(store)
    for t in candidate_targets():
        add_wanted(store, t["name"], ra=t["ra"], dec=t["dec"], brightest=t["brightest"],
                   faintest=t["faintest"], cadence_days=t["cadence_days"], now=BEFORE_DUSK)
    for name, ra, dec in ALERTS:
        add_wanted(store, name, kind="alert", ra=ra, dec=dec, until="2025-09-16",
                   now=BEFORE_DUSK)
    yield store
    store.close()


def _check_observable(plan: dict[str, Any], nodes: dict[str, dict[str, Any]]) -> int:
    """Every item's window, sampled every 5 minutes (and at its ends), passes the independent
    check: sun at or below the node's limit, altitude between floor/mask and ceiling."""
    checked = 0
    for a in plan["assignments"]:
        node = nodes[a["node"]]
        start = dt.datetime.fromisoformat(a["start"].replace("Z", "+00:00")).timestamp()
        end = dt.datetime.fromisoformat(a["end"].replace("Z", "+00:00")).timestamp()
        assert end - start >= MIN_WINDOW * 60, a
        t = start
        while t <= end:
            ok, why = hub_sky.observable(t, node, a["ra_deg"], a["dec_deg"], tol=0.7)
            assert ok, f"{a['target']} given to {a['node']} at {hub_sky.jd(t):.4f}: {why}"
            t += 300.0
            checked += 1
    return checked


def test_fifty_nodes_alerts_doubled_and_nothing_unobservable(network: HubStore) -> None:
    out = plan_night(network, NIGHT, now=BEFORE_DUSK)
    assert out["changed"] and out["night"] == NIGHT
    stats = out["stats"]
    nodes = _node_dicts()
    assert len(out["nodes"]) == 50
    # no target assigned to a node that cannot observe it (independent computation)
    assert _check_observable(out, nodes) > 1000
    # every alert on >= 2 nodes wherever two can see it (independently, with room to spare)
    by_target: dict[str, set[str]] = {}
    for a in out["assignments"]:
        by_target.setdefault(a["target"], set()).add(a["node"])
    d0 = dt.datetime(2025, 9, 14, tzinfo=dt.UTC).timestamp()
    for name, ra, dec in ALERTS:
        seeing = [n for n, nd in nodes.items()
                  if hub_sky.longest_window_minutes(nd, ra, dec, d0 - 12 * 3600, d0 + 48 * 3600,
                                                    tol=-0.7) >= MIN_WINDOW + 30]
        assert len(seeing) >= 2, (name, seeing)
        assert len(by_target.get(name, ())) >= 2, (name, by_target.get(name), seeing)
        assert stats["alerts"][name.upper()] == sorted(by_target[name])
    # the instrument: nothing brighter than a node's bright limit at maximum
    bright = {t["name"] for t in candidate_targets() if t["brightest"] < 7.0}
    assert bright and not bright & set(by_target)
    # the doubled-up share, reported and consistent with the stored plan
    doubled = sum(1 for v in by_target.values() if len(v) > 1)
    assert stats["doubled"] == doubled
    assert stats["doubled_share"] == pytest.approx(doubled / len(by_target), abs=1e-4)
    assert 0 < stats["doubled_share"] < 1
    # the unassigned say why, in words
    assert out["unassigned"] and all(u["reason"] for u in out["unassigned"])
    assert any("instrument" in u["reason"] or "not observable" in u["reason"]
               for u in out["unassigned"])
    print(f"\n50 nodes, {len(by_target)} targets covered, doubled share "
          f"{stats['doubled_share']:.3f}, {stats['unassigned']} unassigned, "
          f"allocation {stats['seconds']:.2f} s + write {stats['write_seconds']:.2f} s")


def test_allocation_is_idempotent_and_a_veto_moves_the_wishes(network: HubStore) -> None:
    first = plan_night(network, NIGHT, now=BEFORE_DUSK)
    again = plan_night(network, NIGHT, now=BEFORE_DUSK)
    assert not again["changed"]
    assert again["assignments"] == first["assignments"]
    hashes = {n["node"]: n["hash"] for n in first["nodes"]}
    # paris reports rain: it gets nothing, with the reason; its wishes go elsewhere
    paris = [a for a in first["assignments"] if a["node"] == "paris"]
    assert paris
    who = network.authenticate(_token(network, "paris"))
    hb = heartbeat("paris", 48.85, 2.35, 35, 0)
    hb["weather"] = {"veto": True, "reason": "rain sensor wet"}
    network.heartbeat(who, Heartbeat.model_validate(hb))
    vetoed = plan_night(network, NIGHT, now=BEFORE_DUSK)
    assert vetoed["changed"]
    node = next(n for n in vetoed["nodes"] if n["node"] == "paris")
    assert node["items"] == 0 and "weather veto (rain sensor wet)" in node["note"]
    assert node["hash"] != hashes["paris"]
    moved = {a["target"] for a in vetoed["assignments"]}
    assert sum(1 for a in paris if a["target"] in moved) >= len(paris) * 0.8
    # only the nodes whose wishes changed got a new hash
    after = {n["node"]: n["hash"] for n in vetoed["nodes"]}
    assert sum(after[n] != hashes[n] for n in hashes) < 50


def _token(store: HubStore, name: str) -> str:
    # a fresh token for an existing node (tests only): insert one more token row
    import time

    token = db.new_token("snn")
    with store.engine.begin() as conn:
        nid = conn.execute(sa.select(db.nodes.c.id).where(db.nodes.c.name == name)).scalar_one()
        conn.execute(db.tokens.insert().values(hash=db.hash_token(token), role="node",
                                               node_id=nid, label=name, created=time.time()))
    return token


def test_unhealthy_nodes_get_nothing(network: HubStore) -> None:
    with network.engine.begin() as conn:
        conn.execute(db.nodes.update().where(db.nodes.c.name == "tokyo").values(held=True))
        conn.execute(db.nodes.update().where(db.nodes.c.name == "sydney")
                     .values(last_heartbeat=BEFORE_DUSK - 86400))
    out = plan_night(network, NIGHT, now=BEFORE_DUSK)
    notes = {n["node"]: n for n in out["nodes"]}
    assert notes["tokyo"]["items"] == 0 and "held" in notes["tokyo"]["note"]
    assert notes["sydney"]["items"] == 0 and "no heartbeat" in notes["sydney"]["note"]
    assert not {a["node"] for a in out["assignments"]} & {"tokyo", "sydney"}


def test_alert_posted_mid_evening_reaches_nodes_that_can_see_it(network: HubStore) -> None:
    plan_night(network, NIGHT, now=BEFORE_DUSK)
    at = dt.datetime(2025, 9, 14, 19, 0, tzinfo=dt.UTC).timestamp()  # dusk in Europe
    out = post_alert(network, "V1405 Cas", 351.1563, 61.1636, note="outburst", now=at)
    assert len(out["nodes"]) >= 2, out
    nodes = _node_dicts()
    for n in out["nodes"]:
        start = dt.datetime.fromisoformat(n["start"].replace("Z", "+00:00")).timestamp()
        assert start >= at - 1  # nothing before the alert was posted
        assert hub_sky.observable(start, nodes[n["node"]], 351.1563, 61.1636, tol=0.7)[0]
    plan = load_plan(network, NIGHT)
    got = {a["node"] for a in plan["assignments"] if a["target"] == "V1405 Cas"}
    assert got == {n["node"] for n in out["nodes"]}


def test_unobservable_alert_names_why_and_polar_summer_gets_nothing() -> None:
    # pure allocation: a star at dec -80 from the north, and a node with no darkness
    nodes = [NodeSpec("oslo", 59.9, 10.75), NodeSpec("tromso", 69.65, 18.96),
             NodeSpec("paris", 48.85, 2.35)]
    wishes = [Wish("BETA HYI", "beta Hyi", "alert", 6.44, -77.25, priority=1000),
              Wish("SS CYG", "SS Cyg", "alert", 325.68, 43.59, priority=1000)]
    out = allocate(nodes, wishes, "2025-06-21")
    un = {u["target"]: u["reason"] for u in out.unassigned}
    # Oslo and Tromso have no darkness (sun above -12 deg all night on June 21), Paris has
    assert un["beta Hyi"] == (
        "not observable from any node tonight: no darkness there tonight (the sun stays "
        "above its limit) (2 nodes); below the floor or horizon while it is dark (1 node)")
    for polar in ("oslo", "tromso"):
        assert out.notes[polar].startswith("nothing tonight: the sun stays above")
    assert [i.node for i in out.items] == ["paris"]


def test_independent_checker_agrees_with_the_allocation_geometry() -> None:
    """The two computations agree within their stated accuracy (so the checks above can
    fail: a wrong sign or a lost longitude in either would show here)."""
    import numpy as np

    from starnode.hub.allocation import _altitude, _ephemeris, _night_grid

    nodes = [NodeSpec("santiago", -33.45, -70.67), NodeSpec("tokyo", 35.68, 139.69)]
    times = _night_grid(nodes, NIGHT, 60.0)
    ra, dec = np.array([325.6785, 83.0]), np.array([43.5862, -20.0])
    last, sun, a_ra, a_dec = _ephemeris(times, np.array([-70.67, 139.69]), ra, dec)
    lat = np.radians([-33.45, 35.68])
    alt = _altitude(lat[:, None, None], last[:, None, :] - a_ra[None, :, None],
                    a_dec[None, :, None])
    sun_alt = _altitude(lat[:, None], last - sun[0], sun[1])
    for i, n in enumerate(nodes):
        for k, t in enumerate(times[i]):
            assert sun_alt[i, k] == pytest.approx(
                hub_sky.sun_alt(float(t), n.latitude, n.longitude), abs=0.3)
            for j in range(2):
                ref = hub_sky.alt_az(float(t), n.latitude, n.longitude, ra[j], dec[j])[0]
                assert alt[i, j, k] == pytest.approx(ref, abs=0.5)
