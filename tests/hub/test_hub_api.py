"""The hub's HTTP API on a real uvicorn, over SQLite and over a real PostgreSQL server: tokens,
exactly-once pushes, heartbeats, and every kind of bad input refused with a 4xx and nothing
stored."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx", reason="the hub extra is not installed")
sa = pytest.importorskip("sqlalchemy", reason="the hub extra is not installed")

from hub_helpers import (  # noqa: E402
    JD0,
    auth,
    db_url,  # noqa: F401
    hub_config,
    hub_store,
    pg_cluster,  # noqa: F401
    result,
    serve,
    wire,
)
from starnode.hub import db  # noqa: E402
from starnode.hub.store import HubStore  # noqa: E402
from starnode.records import SCHEMA_VERSION, Measurement  # noqa: E402


@pytest.fixture
def hub(tmp_path: Path, db_url: str) -> Any:  # noqa: F811
    with hub_store(tmp_path, db_url, rate_limit_per_minute=1000, max_body_kb=64) as store:
        yield store


def _batch(node: str, items: list[dict[str, Any]],
           version: int = SCHEMA_VERSION) -> dict[str, Any]:
    return {"schema_version": version, "node": node, "measurements": items}


def test_push_is_stored_exactly_once(hub: HubStore) -> None:
    token = hub.add_node("scope-a", "abc")
    items = [wire(result(11.8 + 0.01 * i, JD0 + i * 0.001, seed=i), seed=i) for i in range(5)]
    with serve(hub) as url, httpx.Client(base_url=url, headers=auth(token)) as http:
        me = http.get("/api/v1/whoami").json()
        assert me["node"] == "scope-a" and me["observer_code"] == "ABC"
        r = http.post("/api/v1/measurements", json=_batch("scope-a", items[:3]))
        assert r.status_code == 200, r.text
        assert r.json()["stored"] == 3
        # the answer was "lost": the node sends the batch again, plus two new ones
        r = http.post("/api/v1/measurements", json=_batch("scope-a", items))
        assert r.status_code == 200
        assert (r.json()["stored"], r.json()["duplicates"]) == (2, 3)
        assert [k["stored"] for k in r.json()["keys"]] == [False] * 3 + [True] * 2
    assert hub.measurement_count() == 5
    with hub.engine.connect() as conn:
        stored = conn.execute(sa.select(db.measurements.c.payload, db.measurements.c.night)
                              .order_by(db.measurements.c.jd)).all()
    assert stored[0].payload["target_name"] == "SS Cyg"
    assert stored[0].payload["comps"][0]["label"] == "105"
    assert stored[0].night == "2025-09-14"
    assert hub.nodes()[0]["measurements"] == 5


def test_bad_input_is_refused_and_nothing_stored(hub: HubStore, tmp_path: Path) -> None:
    token = hub.add_node("scope-a", "ABC")
    other = hub.add_node("scope-b", "DEF")
    good = wire(result(), seed=1)

    def bad(**changes: Any) -> dict[str, Any]:
        item = dict(good)
        item.update(changes)
        return _batch("scope-a", [wire(result(seed=2), seed=2), item])

    big = _batch("scope-a", [wire(result(seed=i), seed=i) for i in range(100)])
    cases: list[tuple[str, dict[str, str], Any, int, str]] = [
        ("no token", {}, _batch("scope-a", [good]), 401, "Authorization"),
        ("unknown token", auth("snn_nope"), _batch("scope-a", [good]), 401, "unknown"),
        ("another node's id", auth(other), _batch("scope-a", [good]), 403, "scope-b"),
        ("magnitude out of range", auth(token), bad(magnitude=99.0), 422, "magnitude"),
        ("JD out of range", auth(token), bad(jd=60933.4), 422, "jd"),
        ("negative error", auth(token), bad(uncertainty=-0.1), 422, "uncertainty"),
        ("comma in a name", auth(token), bad(target_name="SS Cyg,V,1"), 422, "target_name"),
        ("newline in a name", auth(token), bad(chart_id="X1\n2460000.5,1"), 422, "chart_id"),
        ("comma in a comp", auth(token),
         bad(comps=[{"label": "1,2", "used": True}]), 422, "comps"),
        ("not a filter", auth(token), bad(filter="ZZ"), 422, "filter"),
        ("bad hash", auth(token), bad(frame_sha256="xyz"), 422, "frame_sha256"),
        ("unknown schema", auth(token), _batch("scope-a", [good], version=99), 422,
         "schema_version"),
        ("record schema", auth(token), bad(schema_version=7), 422, "schema_version"),
        ("over the size limit", auth(token), big, 413, "limit"),
        ("not JSON", auth(token), b"{nope", 400, "JSON"),
    ]
    with serve(hub) as url, httpx.Client(base_url=url) as http:
        for name, headers, body, status, word in cases:
            if isinstance(body, bytes):
                r = http.post("/api/v1/measurements", content=body,
                              headers={**headers, "content-type": "application/json"})
            else:
                r = http.post("/api/v1/measurements", json=body, headers=headers)
            assert r.status_code == status, (name, r.status_code, r.text[:300])
            assert word in r.text, (name, r.text[:300])
        # a node token cannot use the admin API
        assert http.get("/api/v1/nodes", headers=auth(token)).status_code == 403
        admin = hub.add_admin("ops")
        assert http.get("/api/v1/nodes", headers=auth(admin)).status_code == 200
        # the 422 names which record was refused, so the node keeps that one aside
        r = http.post("/api/v1/measurements", json=bad(magnitude=99.0), headers=auth(token))
        assert list(r.json()["rejected"]) == ["1"]
    assert hub.measurement_count() == 0


def test_rate_limit_per_node(tmp_path: Path, db_url: str) -> None:  # noqa: F811
    store = HubStore(hub_config(tmp_path, db_url, rate_limit_per_minute=3))
    a, b = store.add_node("a", "AAA"), store.add_node("b", "BBB")
    try:
        with serve(store) as url, httpx.Client(base_url=url) as http:
            codes = [http.get("/api/v1/whoami", headers=auth(a)).status_code
                     for _ in range(4)]
            assert codes == [200, 200, 200, 429]
            r = http.get("/api/v1/whoami", headers=auth(a))
            assert r.status_code == 429 and r.headers["retry-after"]
            # another node has its own budget
            assert http.get("/api/v1/whoami", headers=auth(b)).status_code == 200
    finally:
        store.close()


def test_heartbeat_and_node_list(hub: HubStore, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = hub.add_node("scope-a", "ABC")
    hub.add_node("scope-b", "ABC")
    hb = {"schema_version": 1, "node": "scope-a", "version": "0.1.0", "watch_mode": "poll",
          "last_frame": "Light_x.fit", "queue_length": 4, "free_disk_gb": 12.5,
          "recent_errors": ["frame y.fit failed: MemoryError"]}
    with serve(hub) as url, httpx.Client(base_url=url, headers=auth(token)) as http:
        assert http.post("/api/v1/heartbeat", json=hb).status_code == 200
        r = http.post("/api/v1/heartbeat", json={**hb, "node": "scope-b"})
        assert r.status_code == 403
    nodes = {n["name"]: n for n in hub.nodes()}
    assert nodes["scope-a"]["heartbeat"]["queue_length"] == 4
    assert nodes["scope-a"]["state"] == "failing"  # it reported an error
    assert nodes["scope-b"]["state"] == "never seen"
    # the token is stored only hashed, and never logged
    with hub.engine.connect() as conn:
        dump = json.dumps([list(r) for r in conn.execute(sa.select(db.tokens))])
    assert token not in dump and db.hash_token(token) in dump
    assert token not in caplog.text


def test_cli_add_node_and_nodes(tmp_path: Path, db_url: str,  # noqa: F811
                                capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from starnode.cli import main

    cfg = tmp_path / "hub.yaml"
    cfg.write_text(yaml.safe_dump(hub_config(tmp_path, db_url)))
    assert main(["--config", str(cfg), "hub", "add-node", "scope-a", "--observer-code",
                 "xyz"]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("snn_") and len(token) > 40
    assert main(["--config", str(cfg), "hub", "add-node", "scope-a", "--observer-code",
                 "XYZ"]) == 1
    assert "exists already" in capsys.readouterr().err
    assert main(["--config", str(cfg), "hub", "add-node", "bad name", "--observer-code",
                 "XYZ"]) == 1
    assert main(["--config", str(cfg), "hub", "nodes"]) == 0
    out = capsys.readouterr().out
    assert "scope-a" in out and "XYZ" in out and "never seen" in out
    assert token not in out


def test_wire_record_is_the_typed_measurement(hub: HubStore) -> None:
    """The wire record comes from :class:`Measurement`: its site and night travel and are
    used as recorded (a night the JD alone would not give), the current schema version is
    accepted, a version 1 (0.1.0) record without a night too, an unknown one refused."""
    token = hub.add_node("scope-a", "ABC")
    typed = Measurement.from_dict(result(11.8, JD0, seed=1, night="2025-09-13",
                                         site_longitude=-150.0))
    from starnode.node.forwarder import wire_measurement

    rec = wire_measurement(typed, frame_sha256=f"{1:064x}")
    assert rec["schema_version"] == SCHEMA_VERSION
    assert (rec["site_longitude"], rec["night"]) == (-150.0, "2025-09-13")
    assert rec["file"] == "Light_SS Cyg_10.0s_0001.fit"  # the bare name, never the path
    old = {k: v for k, v in wire(result(11.9, JD0 + 0.01, seed=2), seed=2).items()
           if k not in ("night", "site_longitude", "site_latitude", "site_height")}
    old["schema_version"] = 1
    with serve(hub) as url, httpx.Client(base_url=url, headers=auth(token)) as http:
        assert http.get("/api/v1/health").json()["schema_version"] == SCHEMA_VERSION
        r = http.post("/api/v1/measurements", json=_batch("scope-a", [rec]))
        assert r.status_code == 200 and r.json()["stored"] == 1, r.text
        r = http.post("/api/v1/measurements", json=_batch("scope-a", [old], version=1))
        assert r.status_code == 200 and r.json()["stored"] == 1, r.text
        for version in (0, SCHEMA_VERSION + 1):
            r = http.post("/api/v1/measurements",
                          json=_batch("scope-a", [{**rec, "jd": JD0 + 0.02}], version=version))
            assert r.status_code == 422 and "schema_version" in r.json()["detail"]
    with hub.engine.connect() as conn:
        nights = dict(conn.execute(sa.select(db.measurements.c.magnitude,
                                             db.measurements.c.night)).all())
    # the record's own night; the 0.1.0 record's night from its JD at Greenwich
    assert nights == {11.8: "2025-09-13", 11.9: "2025-09-14"}
