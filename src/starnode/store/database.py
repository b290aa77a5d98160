"""The node's database as one object: where the file is, its connections, its migrations.

:meth:`Store.open` is the only way the rest of starnode reaches the SQLite file: it finds the
file (from a config, a data folder or the file itself), runs the pending migrations once
(:mod:`starnode.store.migrations`) and hands out connections, so no caller can use a table the
schema owner did not create, or a file newer than the code.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import logging
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from starnode.errors import StoreError

from .connection import connect
from .migrations import SCHEMA_VERSION, migrate, schema_version

if TYPE_CHECKING:
    from starnode.config import Config

__all__ = ["DB_NAME", "Store", "StoreSession", "StoreTable", "check_integrity",
           "close_kept_connections", "damaged_message", "db_path", "store_at"]

#: The database's file name inside ``data_dir`` (``Config.db_path``).
DB_NAME = "starnode.sqlite3"


def damaged_message(path: Path, detail: str) -> str:
    """What a damaged database means and what to do about it (one message, everywhere)."""
    return (f"the database {path} is damaged ({detail}). Stop starnode, then run 'starnode "
            "repair': it keeps the damaged file as a copy (moved aside), rebuilds the report "
            "index from the outbox, its audit and the frames, loses no report row and says what "
            "it did "
            f"(or restore {path} from a backup: 'starnode repair' then reconciles it with the "
            "report files)")


def check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    """``PRAGMA quick_check`` of an open database.

    Parameters
    ----------
    conn : sqlite3.Connection
        An open connection to the file.
    path : Path
        The file (named in the message).

    Raises
    ------
    StoreError
        The file is damaged; the message says what to do.
    """
    try:
        rows = conn.execute("PRAGMA quick_check(5)").fetchall()
    except sqlite3.DatabaseError as exc:
        raise StoreError(damaged_message(path, str(exc))) from exc
    problems = [str(r[0]) for r in rows if str(r[0]) != "ok"]
    if problems:
        raise StoreError(damaged_message(path, "; ".join(problems)[:300]))


def _open_error(path: Path, exc: BaseException) -> StoreError:
    """A clear :class:`StoreError` for a database that cannot be opened."""
    code = getattr(exc, "errno", None)
    text = str(exc).lower()
    if code in (errno.EROFS, errno.EACCES, errno.EPERM) or "readonly" in text \
            or "read-only" in text:
        return StoreError(f"the data folder {path.parent} is not writable ({exc}): starnode "
                          "keeps its ledger and reports there. Remount it read-write (or fix "
                          "its permissions), or set data_dir to a writable folder")
    if "malformed" in text or "not a database" in text:
        return StoreError(damaged_message(path, str(exc)))
    return StoreError(f"cannot open the database {path}: {exc}")



def db_path(where: Config | Mapping[str, Any] | str | os.PathLike[str] | None) -> Path:
    """The database file meant by ``where``.

    Parameters
    ----------
    where : Config, mapping, str, os.PathLike or None
        A :class:`~starnode.config.Config` or config mapping (its ``db_path``), a YAML config
        file (``.yaml``/``.yml``), an existing folder (the ``data_dir``: its
        ``starnode.sqlite3``), or the database file itself. None means the default config.

    Returns
    -------
    Path
        The SQLite file (it may not exist yet).
    """
    from starnode.config import Config, resolve

    if isinstance(where, Config) or where is None or isinstance(where, Mapping):
        return resolve(where).db_path
    p = Path(where)
    if p.suffix.lower() in (".yaml", ".yml"):
        return resolve(p).db_path
    if p.is_dir():
        return p / DB_NAME
    return p


class Store:
    """The node's SQLite database, migrated to the current schema.

    Parameters
    ----------
    path : str or os.PathLike
        The database file. Prefer :meth:`open`, which also accepts a config or a data folder
        and runs the migrations at once.

    Notes
    -----
    :attr:`conn` is one connection per thread (and per process: a forked worker opens its own);
    :meth:`connect` gives a fresh connection the caller closes. Both see a migrated file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._migrated = False
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) once opened

    @classmethod
    def open(cls, where: Config | Mapping[str, Any] | str | os.PathLike[str] | Store | None = None
             ) -> Store:
        """Open the database meant by ``where`` and bring its schema up to date.

        Parameters
        ----------
        where : Config, mapping, str, os.PathLike, Store or None
            See :func:`db_path`; a :class:`Store` is returned as it is.

        Returns
        -------
        Store
            The open, migrated store.

        Raises
        ------
        StoreError
            The file is newer than this code, is not a starnode database, or cannot be opened.
        """
        if isinstance(where, Store):
            return where
        store = cls(db_path(where))
        check_integrity(store.conn, store.path)  # opens and migrates now: a bad file fails here
        return store

    # ------------------------------------------------------------------ connections
    def connect(self) -> sqlite3.Connection:
        """A new connection to the migrated database; the caller closes it.

        Returns
        -------
        sqlite3.Connection
            See :func:`starnode.store.connection.connect`.

        Raises
        ------
        StoreError
            The database cannot be opened or migrated.
        """
        self.verify()
        try:
            conn = connect(self.path)
        except (sqlite3.Error, OSError) as exc:
            raise _open_error(self.path, exc) from exc
        if not self._migrated:
            try:
                migrate(conn, path=self.path)
            except sqlite3.DatabaseError as exc:  # e.g. "file is not a database"
                conn.close()
                raise _open_error(self.path, exc) from exc
            except BaseException:
                conn.close()
                raise
            self._migrated = True
        if self._identity is None:
            with contextlib.suppress(OSError):
                st = os.stat(self.path)
                self._identity = (st.st_dev, st.st_ino)
        return conn

    def verify(self) -> None:
        """Check that the file is still the one this store opened first.

        A ledger deleted or replaced under a running node must not be followed by a fresh,
        empty one: the node would forget what it reported and rewrite the night's files.

        Raises
        ------
        StoreError
            The file was deleted, or another file now has its name.
        """
        if self._identity is None:
            return
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise StoreError(f"the database {self.path} was deleted while starnode was using "
                             "it; stopping so that nothing is reported twice or lost. Restore "
                             "it from a backup (or move the outbox aside) and start again"
                             ) from None
        if (st.st_dev, st.st_ino) != self._identity:
            raise StoreError(f"the database {self.path} was replaced by another file while "
                             "starnode was using it; stopping so that nothing is reported twice "
                             "or lost. Check which file is right, put it in place and start "
                             "again")

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use, closed by :meth:`close`)."""
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = self.connect()
            self._local.conn = conn
            self._local.pid = os.getpid()
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        """Close every connection :attr:`conn` opened (all threads)."""
        with self._lock:
            for conn in self._all:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._all.clear()
        self._local = threading.local()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def version(self) -> int:
        """The file's schema version (``PRAGMA user_version``)."""
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])


def store_at(where: Config | Mapping[str, Any] | str | os.PathLike[str] | Store | None) -> Store:
    """The store meant by ``where`` (as :func:`db_path` reads it; a :class:`Store` as it is),
    not opened yet: its first connection migrates it, so a table class that opens short-lived
    connections never fails on creation."""
    return where if isinstance(where, Store) else Store(db_path(where))


#: StoreTable's kept connections, one per (process, thread, file): opening one runs four PRAGMAs
#: and a schema check (~0.4 ms, twice per measured frame). Each is taken out while in use, and
#: used again only by the same process and thread, while the file is the same (device, inode)
#: at the current schema version and no transaction is open; else a new one is opened.
_KEPT: OrderedDict[tuple[int, int, str], tuple[sqlite3.Connection, tuple[int, int]]] = \
    OrderedDict()
_KEPT_MAX = 8
_kept_lock = threading.Lock()
#: the parent's kept connections in a forked child: never used, never closed (closing a
#: connection inherited across fork can release the parent's SQLite locks)
_INHERITED: list[object] = []


def _after_fork_in_child() -> None:
    global _kept_lock
    _kept_lock = threading.Lock()  # another thread of the parent may have held it
    _INHERITED.append(dict(_KEPT))
    _KEPT.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _close(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        conn.close()


def _take_kept(key: tuple[int, int, str], path: Path
               ) -> tuple[sqlite3.Connection, tuple[int, int]] | None:
    """The kept connection of ``key`` (removed from the cache) and the (device, inode) it is
    open on, when still good for ``path``."""
    with _kept_lock:
        entry = _KEPT.pop(key, None)
    if entry is None:
        return None
    conn, identity = entry
    try:
        if (_file_identity(path) == identity and not conn.in_transaction
                and schema_version(conn) == SCHEMA_VERSION):
            return entry
    except sqlite3.Error:
        pass
    _close(conn)
    return None


def _keep(key: tuple[int, int, str], conn: sqlite3.Connection, path: Path) -> None:
    """Keep ``conn`` for the next statement of ``key`` (closed if it cannot be kept)."""
    identity = _file_identity(path)
    if identity is None or key[0] != os.getpid() or conn.in_transaction:
        _close(conn)
        return
    evicted = []
    with _kept_lock:
        if key in _KEPT:  # a nested use opened a second one
            evicted.append(conn)
        else:
            _KEPT[key] = (conn, identity)
        while len(_KEPT) > _KEPT_MAX:
            evicted.append(_KEPT.popitem(last=False)[1][0])
    for old in evicted:
        _close(old)


def close_kept_connections() -> None:
    """Close this process's kept :class:`StoreTable` connections (at exit, after ``doctor``'s
    checks, in tests).

    Examples
    --------
    >>> close_kept_connections()  # nothing kept: nothing to do
    """
    with _kept_lock:
        kept = [conn for conn, _ in _KEPT.values()]
        _KEPT.clear()
    for conn in kept:
        _close(conn)


# a command's kept connections closed at its end, so that SQLite checkpoints its WAL and
# removes the -wal and -shm files (the last connection to close does)
atexit.register(close_kept_connections)


class StoreTable:
    """A table class on short-lived connections (:attr:`store` opened on first use).

    Parameters
    ----------
    store : Store or anything :meth:`Store.open` accepts
        The database (a config, a data folder, the file, or an open store).
    """

    def __init__(self, store: Any) -> None:
        self.store = store_at(store)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """A connection to the migrated database for one statement: this process's and
        thread's kept one for the file (:data:`_KEPT`), else a new one from
        :meth:`Store.connect`, kept afterwards. Closed when the statement fails.

        Raises
        ------
        StoreError
            As :meth:`Store.connect`.
        """
        self.store.verify()
        path = self.store.path
        key = (os.getpid(), threading.get_ident(), str(path))
        kept = _take_kept(key, path)
        if kept is None:
            conn = self.store.connect()
        else:
            conn = kept[0]
            if self.store._identity is None:  # as its first connect would have noted it
                self.store._identity = kept[1]
        try:
            yield conn
        except BaseException:
            _close(conn)
            raise
        _keep(key, conn, path)

    def _read(self, sql: str, args: Sequence[Any], unreadable: str) -> list[sqlite3.Row] | None:
        """The rows of one query; None when the database cannot be read, logged at WARNING by
        the table's module as ``unreadable % (file, error)``."""
        try:
            with self._connection() as conn:
                return list(conn.execute(sql, args).fetchall())
        except (sqlite3.Error, StoreError) as exc:
            logging.getLogger(type(self).__module__).warning(unreadable, self.store.path, exc)
            return None

    def _write(self, sql: str, args: Sequence[Any], unwritable: str) -> bool:
        """Run one statement; False when the database cannot be written, logged at WARNING by
        the table's module as ``unwritable % (file, error)``."""
        try:
            with self._connection() as conn:
                conn.execute(sql, args)
        except (sqlite3.Error, StoreError) as exc:
            logging.getLogger(type(self).__module__).warning(unwritable, self.store.path, exc)
            return False
        return True


class StoreSession:
    """One connection of its own to the database, for a table class (thread-safe through
    :attr:`_lock`, which its methods hold).

    Parameters
    ----------
    store : Store or anything :meth:`Store.open` accepts
        The node's database (a config, a data folder, the file, or an open store).

    Raises
    ------
    StoreError
        The database cannot be opened or is newer than this code.
    """

    def __init__(self, store: Any) -> None:
        self._own = not isinstance(store, Store)
        self.store = Store.open(store)
        self.conn = self.store.connect()
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the connection (and the store, when this object opened it)."""
        self.conn.close()
        if self._own:
            self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
