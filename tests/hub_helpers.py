"""Shared pieces of the hub tests: a real database per test (SQLite file, or a database in a
private PostgreSQL cluster started once per session), the hub served by a real uvicorn on a
loopback port, and node results shaped like the pipeline's.

Test modules import the fixtures: ``from hub_helpers import db_url, pg_cluster  # noqa: F401``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the hub extra is not installed (pip install -e '.[hub]')")
pytest.importorskip("sqlalchemy", reason="the hub extra is not installed")

from loopback import AppServer, free_port  # noqa: F401 (free_port: the hub tests' import)
from pgcluster import PgCluster, PgUnavailable

JD0 = 2460933.40  # 2025-09-14 21:36 UTC, the night of 2025-09-14 at longitude 2.35 E
NIGHT = "2025-09-14"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    try:
        cluster = PgCluster().start()
    except PgUnavailable as exc:
        pytest.skip(f"no PostgreSQL server can start here: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh empty hub database: a SQLite file, or a new database on the private cluster."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    cluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database(f"t_{uuid.uuid4().hex[:12]}")


def add_ring(store: Any) -> None:
    """24 targets around the sky at dec +50: some are up on any night at latitude 45-50 N."""
    from starnode.hub.nightplans import add_wanted

    for k in range(24):
        add_wanted(store, f"RING {k:02d}", ra=15.0 * k, dec=50.0)


def hub_config(tmp_path: Path, url: str, **hub: Any) -> dict[str, Any]:
    return {"data_dir": str(tmp_path / "hubdata"),
            "hub": {"database_url": url, **hub}}


def auth(token: str) -> dict[str, str]:
    """The HTTP headers that present ``token`` to the hub."""
    return {"Authorization": f"Bearer {token}"}


@contextlib.contextmanager
def hub_store(tmp_path: Path, url: str, **hub: Any) -> Iterator[Any]:
    """A :class:`~starnode.hub.store.HubStore` on ``url`` with these ``hub`` settings, closed
    after use (the hub tests' fixture)."""
    from starnode.hub.store import HubStore

    store = HubStore(hub_config(tmp_path, url, **hub))
    try:
        yield store
    finally:
        store.close()


@contextlib.contextmanager
def serve(store: Any, port: int | None = None) -> Iterator[str]:
    """The hub app over ``store``, served by uvicorn on a loopback port; yields its base URL."""
    from starnode.hub.app import create_app

    with AppServer(create_app(store=store), port) as server:
        yield server.url()


def result(mag: float = 11.8, jd: float = JD0, *, seed: int = 0, err: float = 0.02,
           target: str = "SS Cyg", **extra: Any) -> dict[str, Any]:
    """A node result dict shaped like the pipeline's (docs/INTERFACES.md)."""
    comps = [{"name": f"{lab}", "auid": f"000-BCP-{100 + i}", "label": lab,
              "catalog_mag": 10.5 + 0.4 * i, "catalog_err": 0.02,
              "instrumental_mag": -8.0 + 0.4 * i, "residual": 0.01, "used": True}
             for i, lab in enumerate(["105", "109", "113"])]
    out = {
        "target_name": target, "auid": "000-BCP-220", "filter": "TG", "band": "V",
        "transformed": False, "jd": jd, "hjd": jd + 0.0035, "magnitude": mag,
        "uncertainty": err, "quality_flag": "good", "quality_reasons": [],
        "comparison_stars": 3, "comps": comps,
        "check_star": {"name": "116", "label": "116", "auid": "000-BCP-116", "mag": 11.62,
                       "catalog_mag": 11.6, "instrumental_mag": -6.9, "deviation": 0.02,
                       "error": 0.02},
        "chart_id": "X41941HP", "sequence_source": "vsp", "airmass": 1.2, "exptime": 10.0,
        "instrumental_mag": -7.2, "frame_kind": "sub", "telescope": "Seestar S50 synthetic",
        "file": f"/data/MyWorks/SS Cyg_sub/Light_SS Cyg_10.0s_{seed:04d}.fit",
        "site_longitude": 2.35,
    }
    out.update(extra)
    return out


def wire(res: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    from starnode.node.forwarder import wire_measurement

    sha = f"{seed:064x}"
    return wire_measurement(res, frame_sha256=sha)
