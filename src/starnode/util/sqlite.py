"""SQLite connections shared between processes: the one step SQLite does not wait for.

The node's store (:mod:`starnode.store.connection`) and the hub's SQLite mode
(:mod:`starnode.hub.db`) both put their files in WAL mode with a busy timeout. Switching a
file that is still in rollback mode (a new one) to WAL needs an exclusive lock, taken from the
shared lock the pragma reads with. When another process holds the write lock meanwhile (it is
creating the tables, or switching too), SQLite answers ``database is locked`` at once instead
of calling the busy handler, because waiting while holding a shared lock could deadlock; so
two processes that open a new database together (the node and a ``starnode submit`` on the
first night) would have one of them fail. :func:`journal_wal` waits for that lock instead.
"""

from __future__ import annotations

import sqlite3
import time

__all__ = ["journal_wal"]

#: SQLite's result codes for a lock held elsewhere
_LOCKED = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def journal_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """``PRAGMA journal_mode = WAL``, retried (its lock released in between) while another
    connection holds the lock it needs, up to ``timeout`` seconds.

    Parameters
    ----------
    conn : sqlite3.Connection
        A connection not inside a transaction.
    timeout : float
        Seconds to keep trying.

    Raises
    ------
    sqlite3.OperationalError
        Still locked after ``timeout``, or any other error of the pragma.
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode not in _LOCKED or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(2 * delay, 0.25)
