"""Issue 16, section 3: bad input gets a 4xx, never a 500, on SQLite and on a real PostgreSQL;
nothing inconsistent reaches a member's report; reads do not recompute; the API map is closed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx", reason="the hub extra is not installed")
pytest.importorskip("sqlalchemy", reason="the hub extra is not installed")

from hub_helpers import (  # noqa: E402
    JD0,
    NIGHT,
    auth,
    db_url,  # noqa: F401
    hub_store,
    pg_cluster,  # noqa: F401
    result,
    serve,
    wire,
)
from starnode.hub.store import HubStore  # noqa: E402
from starnode.records import SCHEMA_VERSION  # noqa: E402


@pytest.fixture
def hub(tmp_path: Path, db_url: str) -> Any:  # noqa: F811
    with hub_store(tmp_path, db_url, rate_limit_per_minute=10000, max_body_kb=4096) as store:
        yield store


def _good(seed: int = 1) -> dict[str, Any]:
    return wire(result(11.8, JD0 + seed * 0.001, seed=seed), seed=seed)


def _batch(*items: dict[str, Any]) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "node": "scope-a", "measurements": list(items)}


def _with(seed: int = 2, **changes: Any) -> dict[str, Any]:
    item = _good(seed)
    item.update(changes)
    return item


def _comp(**changes: Any) -> list[dict[str, Any]]:
    comps = [dict(c) for c in _good()["comps"]]
    comps[0].update(changes)
    return comps


NUL = "a\x00b"
#: (what, the record's changes, a word the answer must name)
BAD_RECORDS: list[tuple[str, dict[str, Any], str]] = [
    # F1: a NUL in any text field
    ("NUL in quality_reasons", {"quality_reasons": [NUL]}, "quality_reasons"),
    ("NUL in telescope", {"telescope": NUL}, "telescope"),
    ("NUL in frame_kind", {"frame_kind": NUL}, "frame_kind"),
    ("NUL in band", {"band": NUL}, "band"),
    ("NUL in target", {"target_name": NUL}, "target_name"),
    ("NUL in a comp name", {"comps": _comp(name=NUL)}, "comps"),
    ("NUL in the night", {"night": "2025\x00-09-14"}, "night"),
    # F15: a boolean is not a number
    ("true as magnitude", {"magnitude": True}, "magnitude"),
    ("true as uncertainty", {"uncertainty": True}, "uncertainty"),
    ("true as a comp magnitude", {"comps": _comp(catalog_mag=True)}, "comps"),
    # F5: length limits on every name
    ("1 MB comp name", {"comps": _comp(name="C" * 1_000_000)}, "comps"),
    ("long auid", {"auid": "0" * 5000}, "auid"),
    ("long band", {"band": "V" * 5000}, "band"),
    ("long target", {"target_name": "T" * 65}, "target_name"),
    ("long chart", {"chart_id": "X" * 5000}, "chart_id"),
    # F4: cross-field rules
    ("HJD 5 days after the JD", {"hjd": JD0 + 5.0}, "hjd"),
    ("night of 2099 for a 2025 JD", {"night": "2099-12-31"}, "night"),
    ("negative check-star error", {"check_star": {**_good()["check_star"], "error": -5.0}},
     "check_star.error"),
    ("negative comp catalog_err", {"comps": _comp(catalog_err=-0.1)}, "catalog_err"),
    ("negative zero-point error", {"zp_error": -0.01}, "zp_error"),
]


def test_bad_records_get_a_4xx_naming_the_record(hub: HubStore) -> None:
    """F1, F4, F5, F15: every bad record is refused with a 422 naming it (index 1 of the
    batch, so the node sets that one aside); the good one beside it is not stored either
    (all or nothing), and the database never answers 500."""
    token = hub.add_node("scope-a", "ABC")
    with serve(hub) as url, httpx.Client(base_url=url, headers=auth(token),
                                         timeout=30) as http:
        for what, changes, word in BAD_RECORDS:
            r = http.post("/api/v1/measurements", json=_batch(_good(), _with(**changes)))
            assert r.status_code == 422, (what, r.status_code, r.text[:300])
            assert list(r.json()["rejected"]) == ["1"], (what, r.json())
            assert word in r.json()["rejected"]["1"] or word in r.text, (what, r.text[:400])
        # the good record alone goes in
        r = http.post("/api/v1/measurements", json=_batch(_good()))
        assert r.status_code == 200, r.text
    assert hub.measurement_count() == 1


def _heartbeat(**changes: Any) -> dict[str, Any]:
    hb = {"schema_version": SCHEMA_VERSION, "node": "scope-a", "version": "0.2.0",
          "queue_length": 0, "free_disk_gb": 12.5, "frames": {"reported": 3}}
    hb.update(changes)
    return hb


def test_bad_heartbeats_get_a_4xx(hub: HubStore) -> None:
    """F2: NaN or Infinity as free disk (raw JSON tokens, as Python's json writes them);
    F3/F5: control characters, huge numbers and a huge frames dict."""
    token = hub.add_node("scope-a", "ABC")
    raw_cases = [
        ("NaN free disk", json.dumps(_heartbeat(free_disk_gb=float("nan")))),
        ("Infinity free disk", json.dumps(_heartbeat(free_disk_gb=float("inf")))),
        ("-Infinity last frame time", json.dumps(_heartbeat(last_frame_time=float("-inf")))),
    ]
    cases = [
        ("escape sequence in version", _heartbeat(version="\x1b[2J\x1b[H0.2.0")),
        ("NUL in watch mode", _heartbeat(watch_mode="poll\x00")),
        ("41-digit queue", _heartbeat(queue_length=10 ** 40)),
        ("309-digit free disk", _heartbeat(free_disk_gb=1e308)),
        ("true as queue length", _heartbeat(queue_length=True)),
        ("a huge frames dict", _heartbeat(frames={f"s{i}": i for i in range(5000)})),
        ("a long frames key", _heartbeat(frames={"x" * 5000: 1})),
        ("NUL in an error", _heartbeat(recent_errors=["bad\x00"])),
    ]
    with serve(hub) as url, httpx.Client(base_url=url, headers=auth(token)) as http:
        for what, body in raw_cases:
            r = http.post("/api/v1/heartbeat", content=body.encode(),
                          headers={"content-type": "application/json"})
            assert r.status_code == 422, (what, r.status_code, r.text[:300])
        for what, hb in cases:
            r = http.post("/api/v1/heartbeat", json=hb)
            assert r.status_code == 422, (what, r.status_code, r.text[:300])
        # a multi-line error message is fine
        r = http.post("/api/v1/heartbeat", json=_heartbeat(recent_errors=["a\n  b"]))
        assert r.status_code == 200, r.text
    assert hub.nodes()[0]["heartbeat"]["free_disk_gb"] == 12.5


def test_url_inputs_get_a_4xx(hub: HubStore) -> None:
    """F1: a NUL in a light-curve target or band, or in a report's observer code."""
    token = hub.add_node("scope-a", "ABC")
    with serve(hub) as url, httpx.Client(base_url=url, headers=auth(token)) as http:
        assert http.post("/api/v1/measurements", json=_batch(_good())).status_code == 200
        for path, params in [("/api/v1/targets/SS%00Cyg/lightcurve", {}),
                             ("/api/v1/targets/SS%20Cyg/lightcurve", {"band": "V\x00"}),
                             ("/api/v1/targets/SS%00Cyg/lightcurve.png", {}),
                             (f"/api/v1/reports/AB%00C/{NIGHT}", {}),
                             (f"/api/v1/targets/{'X' * 300}/lightcurve", {})]:
            r = http.get(path, params=params)
            assert 400 <= r.status_code < 500, (path, r.status_code, r.text[:200])
        r = http.get("/api/v1/targets/SS%20Cyg/lightcurve", params={"band": "TG"})
        assert r.status_code == 200 and r.json()["measurements"]


def test_no_api_map_and_report_reads_do_not_crosscheck(hub: HubStore) -> None:
    """F15: /docs, /redoc and /openapi.json are closed. F9: a node's GET of its report does
    not run the network-wide cross-check (the verdicts stay as the last cross-check left)."""
    token = hub.add_node("scope-a", "ABC")
    with serve(hub) as url, httpx.Client(base_url=url, headers=auth(token)) as http:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert http.get(path).status_code == 404, path
        assert http.post("/api/v1/measurements",
                         json=_batch(_good(1), _good(2))).status_code == 200
        r = http.get(f"/api/v1/reports/ABC/{NIGHT}")
        assert r.status_code == 200, r.text
    import sqlalchemy as sa

    from starnode.hub import db

    with hub.engine.connect() as conn:
        flags = conn.execute(sa.select(db.measurements.c.flag)).scalars().all()
        windows = conn.execute(sa.select(sa.func.count()).select_from(db.consensus)
                               ).scalar_one()
    assert flags == [None, None] and windows == 0  # nothing was recomputed by the read


def test_consistency_rules_are_shared() -> None:
    """F4: the rules live in records and pass the pipeline's own records."""
    from starnode.records import consistency_problems

    ok = result(11.8, JD0, seed=1, night=NIGHT)
    assert consistency_problems(ok) == []
    assert consistency_problems({**ok, "hjd": JD0 + 5}) != []
    assert consistency_problems({**ok, "night": "2099-12-31"}) != []
    assert consistency_problems({**ok, "night": "2025-09-15"}) == []  # a day either way
    assert consistency_problems({**ok, "check_star": {"error": -5.0}}) != []
    assert "comps.0.catalog_err" in consistency_problems(
        {**ok, "comps": [{"catalog_err": -0.1}]})[0]


def test_an_inconsistent_record_stored_earlier_is_left_out_of_the_report(
        hub: HubStore) -> None:
    """F4: a record stored before the door checked (an HJD 5 days after its JD, a negative
    check-star error) never becomes a report's row: it is left out with the reason."""
    from starnode.hub.reports import member_report
    from starnode.hub.store import Principal
    from starnode.hub.wire import Batch

    token = hub.add_node("scope-a", "ABC")
    who = hub.authenticate(token)
    assert isinstance(who, Principal)
    hub.push(who, Batch.model_validate(_batch(_good(1), _good(2))))
    # what an older hub let in: the payloads edited in the database
    import sqlalchemy as sa

    from starnode.hub import db

    m = db.measurements
    with hub.engine.begin() as conn:
        rows = conn.execute(sa.select(m.c.id, m.c.payload).order_by(m.c.jd)).all()
        bad_hjd = {**rows[0].payload, "hjd": rows[0].payload["jd"] + 5.0}
        bad_check = {**rows[1].payload,
                     "check_star": {**rows[1].payload["check_star"], "error": -5.0}}
        conn.execute(m.update().where(m.c.id == rows[0].id).values(payload=bad_hjd))
        conn.execute(m.update().where(m.c.id == rows[1].id).values(payload=bad_check))
    with pytest.raises(Exception, match="no reportable point") as exc:
        member_report(hub, "ABC", NIGHT, check=False)
    assert "hjd" in str(exc.value) and "check_star.error" in str(exc.value)
