"""The node's embedded SQLite database: one file in ``data_dir`` shared by the ledger, the AAVSO
submission keys and the catalogue and astrometry caches. Each module creates its own tables
(``CREATE TABLE IF NOT EXISTS``) through :func:`connect`.

Several processes (the node, its workers, a ``starnode status`` in another terminal) may use the
file at once: WAL journaling and a generous busy timeout make that safe.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["connect", "transaction"]


def connect(path: str | Path, *, timeout: float = 30.0) -> sqlite3.Connection:
    """Open (creating parent folders and the file) the database at ``path``.

    Autocommit mode (``isolation_level=None``): use ``with transaction(conn):`` or explicit
    ``BEGIN IMMEDIATE`` / ``COMMIT`` for multi-statement changes.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(p), timeout=timeout, isolation_level=None,
                           check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


class transaction:
    """``with transaction(conn):`` - BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")
