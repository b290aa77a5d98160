"""starnode.store.connection: two processes that open a new database together both get it.

Switching a new (rollback-mode) file to WAL needs an exclusive lock; while another connection
holds the write lock SQLite answers ``database is locked`` at once, without the busy handler
(a fresh-clone CI run lost ``test_duplicates_across_processes`` to it). :func:`connect` waits
for the lock instead, up to its timeout.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from starnode.store.connection import connect


def _writer_holding_the_lock(path: Path) -> sqlite3.Connection:
    """Another process's connection, in rollback mode, in the middle of creating a table."""
    other = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("CREATE TABLE made_by_the_other (x)")
    return other


def test_a_new_database_opened_while_another_writes_it_waits_and_is_wal(tmp_path: Path
                                                                        ) -> None:
    path = tmp_path / "data" / "starnode.sqlite3"
    path.parent.mkdir()
    other = _writer_holding_the_lock(path)
    released = threading.Timer(0.4, lambda: other.execute("COMMIT"))
    released.start()
    t0 = time.monotonic()
    try:
        conn = connect(path, timeout=10.0)
    finally:
        released.join()
        other.close()
    waited = time.monotonic() - t0
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        # the other's table is there: the pragma ran after its commit, not instead of it
        assert conn.execute("SELECT name FROM sqlite_master").fetchone()[0] == (
            "made_by_the_other")
    finally:
        conn.close()
    assert waited >= 0.3  # it waited for the lock (it used to fail at once)


def test_a_lock_held_past_the_timeout_is_still_an_error(tmp_path: Path) -> None:
    path = tmp_path / "starnode.sqlite3"
    other = _writer_holding_the_lock(path)
    t0 = time.monotonic()
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            connect(path, timeout=0.5)
    finally:
        other.close()
    assert 0.2 <= time.monotonic() - t0 < 5.0  # waited about the timeout, no longer

