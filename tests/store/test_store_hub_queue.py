"""The node's hub queue is a table of the store: created by a migration (also over a file where
the pre-release hub client had created it itself), exactly once per key, states and errors as
``starnode status`` shows them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from starnode.store import Store
from starnode.store.hub_queue import QUEUED, REJECTED, SENT, HubQueue
from starnode.store.migrations import MIGRATIONS


def _tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()


def test_queue_lifecycle(tmp_path: Path) -> None:
    with HubQueue(tmp_path) as q:
        assert "hub_queue" in _tables(tmp_path / "starnode.sqlite3")
        assert q.enqueue("a|1.0", {"jd": 1.0}, frame_id=1)
        assert not q.enqueue("a|1.0", {"jd": 2.0}, frame_id=1)  # the same key: nothing
        assert q.enqueue("b|2.0", {"jd": 2.0})
        assert q.enqueue("c|3.0", {"jd": 3.0})
        assert [k for k, _p in q.pending(10)] == ["a|1.0", "b|2.0", "c|3.0"]
        assert q.pending(1)[0][1] == {"jd": 1.0}
        q.failed_attempt(["a|1.0", "b|2.0"], "hub unreachable")
        assert q.counts() == {QUEUED: 3}
        q.mark(["a|1.0", "b|2.0"], SENT)
        q.mark(["c|3.0"], REJECTED, "refused by the hub: jd out of range")
        assert q.pending(10) == []
        summary = q.summary()
    assert summary["counts"] == {SENT: 2, REJECTED: 1}
    assert summary["last_sent"] is not None
    assert summary["errors"] == [{"key": "c|3.0", "state": REJECTED,
                                  "last_error": "refused by the hub: jd out of range"}]


def test_migration_adopts_a_queue_the_old_client_created(tmp_path: Path) -> None:
    """Before the store owned it, the hub client created ``hub_queue`` itself: the migration
    keeps that table and its rows."""
    version = next(m.version for m in MIGRATIONS if "hub_queue" in m.summary)
    path = tmp_path / "starnode.sqlite3"
    with Store(path) as store:
        from starnode.store.migrations import migrate

        conn = store.connect()
        migrate(conn, target=version - 1)
        conn.execute("""CREATE TABLE IF NOT EXISTS hub_queue (
    key TEXT PRIMARY KEY, frame_id INTEGER, payload TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued', attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT, created REAL NOT NULL, sent REAL)""")
        conn.execute("INSERT INTO hub_queue (key, payload, created) VALUES ('k|1', '{}', 1)")
        conn.close()
    with HubQueue(path) as q:
        assert q.counts() == {QUEUED: 1}
        assert q.store.version() >= version
