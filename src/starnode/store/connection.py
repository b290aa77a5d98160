"""Opening the node's SQLite file: one place that decides how every connection behaves.

Several processes use the file at once (the node, its pool workers, a ``starnode status`` in
another terminal), so every connection gets WAL journaling, a generous busy timeout and
autocommit mode with explicit ``BEGIN IMMEDIATE`` transactions (:class:`transaction`). The file
holds the observer's reports and WebObs bookkeeping, so it is created owner-only (0600) in an
owner-only folder (0700); SQLite gives its ``-wal`` and ``-shm`` companions the same mode.

This module only opens files; the tables belong to :mod:`starnode.store.migrations`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from pathlib import Path

from starnode.util.fsio import private_dir
from starnode.util.sqlite import journal_wal

__all__ = ["DB_FILE_MODE", "connect", "transaction"]

#: Mode of the database file: owner read/write only.
DB_FILE_MODE = 0o600


def _create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist; tighten it if it does."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, DB_FILE_MODE)
    except FileExistsError:
        with contextlib.suppress(OSError):
            st = path.stat()
            if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & 0o077:
                os.chmod(path, DB_FILE_MODE)  # a 0.1.0 file was created with the umask
        return
    os.close(fd)


def connect(path: str | os.PathLike[str], *, timeout: float = 30.0) -> sqlite3.Connection:
    """Open (creating parent folders and the file, owner-only) the database at ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        The SQLite file (``config.db_path``).
    timeout : float
        Seconds to wait for another process's write lock before ``database is locked``.

    Returns
    -------
    sqlite3.Connection
        In autocommit mode (``isolation_level=None``) with :class:`sqlite3.Row` rows: use
        ``with transaction(conn):`` for multi-statement changes. Usable from any thread, one
        thread at a time.

    Raises
    ------
    sqlite3.Error
        The file cannot be opened as a database.
    OSError
        The folder or file cannot be created.
    """
    p = Path(path)
    private_dir(p.parent)  # data_dir: the ledger, reports, audit and logs are the owner's
    _create_private(p)
    conn = sqlite3.connect(str(p), timeout=timeout, isolation_level=None,
                           check_same_thread=False)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        journal_wal(conn, timeout)  # a new file's switch waits for another's write lock
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error:
        conn.close()
        raise
    return conn


class transaction:
    """``with transaction(conn):`` - ``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on error.

    Parameters
    ----------
    conn : sqlite3.Connection
        A connection from :func:`connect` (autocommit mode).
    """

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
