"""starnode.hub.db: the hub's SQLite mode opens a new file while another connection writes it.

Several threads of the hub open connections at once; switching a new file to WAL while another
holds the write lock used to fail at once with ``database is locked`` (SQLite does not call the
busy handler there). The engine waits for the lock, as the node's store does
(tests/store/test_store_connection.py).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import sqlalchemy as sa

from starnode.hub.db import engine_for


def test_the_hubs_sqlite_engine_waits_for_a_writer_on_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    writer = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("CREATE TABLE first (x)")
    released = threading.Timer(0.4, lambda: writer.execute("COMMIT"))
    released.start()
    engine = engine_for(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(sa.text("SELECT name FROM sqlite_master")).scalar() == "first"
    finally:
        released.join()
        writer.close()
        engine.dispose()
