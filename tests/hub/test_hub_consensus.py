"""Cross-validation and member reports, over SQLite and a real PostgreSQL server: three nodes
observe SS Cyg in the same windows, one of them 0.3 mag too faint; its points are flagged with
the reason, its offset is significant and holds it; the others' reports validate."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

httpx = pytest.importorskip("httpx", reason="the hub extra is not installed")
sa = pytest.importorskip("sqlalchemy", reason="the hub extra is not installed")

from hub_helpers import (  # noqa: E402
    JD0,
    NIGHT,
    db_url,  # noqa: F401
    hub_config,
    pg_cluster,  # noqa: F401
    result,
    serve,
    wire,
)
from starnode.aavso.validator import validate_file  # noqa: E402
from starnode.hub import db  # noqa: E402
from starnode.hub.consensus import crosscheck, weighted_median  # noqa: E402
from starnode.hub.reports import member_report  # noqa: E402
from starnode.hub.store import HubError, HubStore, Principal  # noqa: E402
from starnode.hub.wire import Batch  # noqa: E402

WIDTH = 15 / 1440.0
NODES = [("scope-a", "ABC", 0.0), ("scope-b", "DEF", 0.0), ("scope-c", "GHI", 0.3)]


def test_weighted_median() -> None:
    assert weighted_median(np.array([1.0, 2.0, 10.0]), np.ones(3)) == 2.0
    # a heavy point pulls the median onto itself
    assert weighted_median(np.array([1.0, 2.0, 10.0]), np.array([1.0, 1.0, 5.0])) == 10.0
    # exactly on the boundary between two halves: halfway
    assert weighted_median(np.array([1.0, 3.0]), np.array([1.0, 1.0])) == 2.0


def _night(store: HubStore, *, epochs: int = 6) -> dict[str, str]:
    rng = np.random.default_rng(7)
    first = math.floor(JD0 / WIDTH)
    seed = 0
    for name, code, _shift in NODES:
        store.add_node(name, code)
    with store.engine.begin() as conn:  # principals for store.push without HTTP
        tokens = dict(conn.execute(sa.select(db.nodes.c.name, db.nodes.c.id)).all())
    for i, (name, code, shift) in enumerate(NODES):
        who = Principal("node", tokens[name], name, code)
        items = []
        for k in range(epochs):
            jd = (first + 2 * k) * WIDTH + (3 + i) / 1440.0
            mag = 11.8 - 0.05 * k + shift + float(rng.normal(0, 0.01))
            seed += 1
            items.append(wire(result(mag, jd, seed=seed), seed=seed))
        if name == "scope-a":  # one more point that nobody else saw
            jd = (first + 2 * epochs + 1) * WIDTH + 1 / 1440.0
            seed += 1
            items.append(wire(result(11.5, jd, seed=seed), seed=seed))
        store.push(who, Batch.model_validate(
            {"schema_version": 1, "node": name, "measurements": items}))
    return tokens


def test_crosscheck_flags_the_shifted_node(tmp_path: Path, db_url: str) -> None:  # noqa: F811
    store = HubStore(hub_config(tmp_path, db_url))
    try:
        ids = _night(store)
        summary = crosscheck(store, NIGHT)
        assert summary["measurements"] == 19 and summary["windows"] == 6
        assert summary["outliers"] == 6 and summary["unchecked"] == 1
        assert summary["held"] == ["scope-c"]
        m = db.measurements
        with store.engine.connect() as conn:
            flags = conn.execute(sa.select(m.c.node_id, m.c.flag, m.c.flag_reason,
                                           m.c.residual)).all()
        by_node: dict[int, list[Any]] = {}
        for f in flags:
            by_node.setdefault(f.node_id, []).append(f)
        assert {f.flag for f in by_node[ids["scope-c"]]} == {"outlier"}
        assert all(0.25 < f.residual < 0.35 for f in by_node[ids["scope-c"]])
        assert "from the network consensus" in by_node[ids["scope-c"]][0].flag_reason
        assert {f.flag for f in by_node[ids["scope-b"]]} == {"ok"}
        assert sorted(f.flag for f in by_node[ids["scope-a"]]) == ["ok"] * 6 + ["unchecked"]
        offsets = {o["node"]: o for o in summary["offsets"]}
        assert offsets["scope-c"]["significant"]
        assert offsets["scope-c"]["mag_offset"] == pytest.approx(0.3, abs=0.03)
        assert offsets["scope-c"]["error"] < 0.05
        assert not offsets["scope-a"]["significant"] and not offsets["scope-b"]["significant"]
        nodes = {n["name"]: n for n in store.nodes()}
        assert nodes["scope-c"]["held"]
        assert "offset +0.2" in nodes["scope-c"]["hold_reason"] or \
            "offset +0.3" in nodes["scope-c"]["hold_reason"]
        assert nodes["scope-c"]["flagged"] == 6

        # idempotent: the same verdict again, and a released node stays released
        store.set_hold("scope-c", False)
        again = crosscheck(store, NIGHT)
        assert again["outliers"] == 6 and again["held"] == []

        # reports: the good members' files validate; the shifted member's points are left out
        a = member_report(store, "ABC", NIGHT)
        assert a["rows"] == 7 and a["left_out"] == []
        assert validate_file(a["path"]).ok
        text = Path(a["path"]).read_text()
        assert "#OBSCODE=ABC" in text and text.count("\nSS Cyg,") == 7
        b = member_report(store, "DEF", NIGHT)
        assert b["rows"] == 6 and validate_file(b["path"]).ok
        with pytest.raises(HubError, match="no reportable point") as exc:
            member_report(store, "GHI", NIGHT)
        assert "flagged by the cross-check" in str(exc.value)
        # exactly once per row: writing again adds nothing
        assert member_report(store, "ABC", NIGHT)["rows"] == 7
        with store.engine.connect() as conn:
            n = conn.execute(sa.select(sa.func.count()).select_from(db.report_rows)).scalar()
        assert n == 13
        with pytest.raises(HubError, match="no node"):
            member_report(store, "ZZZ", NIGHT)
    finally:
        store.close()


def test_lightcurve_json_and_png(tmp_path: Path, db_url: str) -> None:  # noqa: F811
    store = HubStore(hub_config(tmp_path, db_url))
    try:
        _night(store)
        admin = store.add_admin("ops")
        with serve(store) as url, httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {admin}"}) as http:
            r = http.post("/api/v1/crosscheck", params={"night": NIGHT})
            assert r.status_code == 200 and r.json()["outliers"] == 6
            r = http.get("/api/v1/targets/SS Cyg/lightcurve", params={"night": NIGHT})
            data = r.json()
            assert len(data["consensus"]) == 6
            assert all(p["n_nodes"] == 3 for p in data["consensus"])
            # the consensus follows the two agreeing nodes, not the shifted one
            assert data["consensus"][0]["magnitude"] == pytest.approx(11.8, abs=0.03)
            assert len(data["measurements"]) == 19
            png = http.get("/api/v1/targets/SS Cyg/lightcurve.png", params={"night": NIGHT})
            assert png.headers["content-type"] == "image/png"
            assert png.content[:8] == b"\x89PNG\r\n\x1a\n" and len(png.content) > 5000
            rep = http.get(f"/api/v1/reports/DEF/{NIGHT}")
            assert rep.status_code == 200 and "#OBSCODE=DEF" in rep.text
            assert http.get("/api/v1/reports/DEF/14-09-2025").status_code == 422
    finally:
        store.close()
