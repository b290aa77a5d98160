"""The hub's Alembic migrations: a database at revision 0002 (before the network's nights) is
upgraded in place with its data, and the migrated schema is exactly the tables the code uses
(alembic's own comparison finds no difference), on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

sa = pytest.importorskip("sqlalchemy", reason="the hub extra is not installed")

from hub_helpers import db_url, hub_config, pg_cluster  # noqa: E402, F401
from starnode.hub import db  # noqa: E402
from starnode.hub.store import HubStore  # noqa: E402


def _upgrade(engine: sa.Engine, rev: str) -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(db.__file__).with_name("migrations")))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, rev)


def test_an_older_hub_database_is_upgraded_and_matches_the_code(tmp_path: Path,
                                                                db_url: str) -> None:  # noqa: F811
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = db.engine_for(db_url)
    _upgrade(engine, "0002")
    with engine.begin() as conn:
        conn.execute(db.nodes.insert().values(name="old-node", observer_code="ABC",
                                              created=1.0))
        assert "node_profiles" not in sa.inspect(conn).get_table_names()
    engine.dispose()
    store = HubStore(hub_config(tmp_path, db_url, plan_interval=0))  # migrates to head
    try:
        with store.engine.connect() as conn:
            assert {"node_profiles", "wanted", "allocations", "assignments",
                    "assignment_items", "acks", "alerts", "alert_deliveries"} <= set(
                sa.inspect(conn).get_table_names())
            assert [n["name"] for n in store.nodes()] == ["old-node"]
            diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
        assert diff == [], diff
    finally:
        store.close()
