"""Versioned migrations: the 0.1.0 schema is version 1, a newer file is refused, a failed
migration leaves the file as it was, the file is owner-only."""

from __future__ import annotations

import shutil
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from starnode import SOFTWARE
from starnode.errors import StoreError
from starnode.store import SCHEMA_VERSION, Ledger, Store, connect, migrate, schema_version
from starnode.store.migrations import V1_TABLES

DATADIR_010 = Path(__file__).parents[1] / "data" / "datadir-0.1.0"


def _copy_010(tmp_path: Path) -> Path:
    dst = tmp_path / "data"
    shutil.copytree(DATADIR_010, dst)
    return dst / "starnode.sqlite3"


def _schema(path: Path) -> set[tuple[str, str, str]]:
    """(type, name, sql) of every table and index in the file (sql as SQLite keeps it)."""
    conn = sqlite3.connect(path)
    try:
        return {(r[0], r[1], r[2]) for r in conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE type IN ('table', 'index')")}
    finally:
        conn.close()


def _dump(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def _raw_db(path: Path, sql: str) -> Path:
    """A SQLite file made by hand (not by starnode) with one statement."""
    conn = sqlite3.connect(path)
    conn.execute(sql)
    conn.commit()
    conn.close()
    return path


def _user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def test_fixture_is_a_real_010_file() -> None:
    db = DATADIR_010 / "starnode.sqlite3"
    assert _user_version(db) == 0
    assert {name for kind, name, _ in _schema(db) if kind == "table"} == set(V1_TABLES)


def test_version_1_is_exactly_the_010_schema(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.sqlite3"
    conn = connect(fresh)
    assert migrate(conn, target=1) == 1
    conn.close()
    assert _schema(fresh) == _schema(DATADIR_010 / "starnode.sqlite3")


def test_010_file_is_stamped_version_1_without_change(tmp_path: Path) -> None:
    db = _copy_010(tmp_path)
    before = _dump(db)
    conn = connect(db)
    assert schema_version(conn) == 0
    assert migrate(conn, target=1) == 1
    conn.close()
    assert _user_version(db) == 1
    assert _dump(db) == before  # not a row, table or index changed


def test_010_file_upgrades_to_current_keeping_every_row(tmp_path: Path) -> None:
    db = _copy_010(tmp_path)
    before = {t: sqlite3.connect(db).execute(f"SELECT {', '.join(cols)} FROM {t}").fetchall()
              for t, cols in V1_TABLES.items()}
    with Store.open(db) as store:
        assert store.version() == SCHEMA_VERSION
        for table, cols in V1_TABLES.items():
            rows = store.conn.execute(f"SELECT {', '.join(cols)} FROM {table}").fetchall()
            assert [tuple(r) for r in rows] == before[table]
        history = store.conn.execute("SELECT version, software FROM store_history "
                                     "ORDER BY version").fetchall()
        assert [r[0] for r in history] == list(range(1, SCHEMA_VERSION + 1))
        assert {r[1] for r in history} == {SOFTWARE}
    assert Store.open(db).version() == SCHEMA_VERSION  # a second open changes nothing


def test_new_file_is_current_and_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "data" / "starnode.sqlite3"
    with Store.open(tmp_path / "data" / "starnode.sqlite3") as store:
        assert store.version() == SCHEMA_VERSION
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_010_file_is_made_owner_only(tmp_path: Path) -> None:
    db = _copy_010(tmp_path)
    db.chmod(0o644)
    Store.open(db.parent).close()  # a data_dir folder is accepted too
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_newer_database_is_refused_clearly(tmp_path: Path) -> None:
    db = tmp_path / "starnode.sqlite3"
    Store.open(db).close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = _dump(db)
    with pytest.raises(StoreError, match=r"newer starnode") as info:
        Store.open(db)
    assert f"version {SCHEMA_VERSION + 1}" in str(info.value)
    assert str(db) in str(info.value)
    with pytest.raises(StoreError):
        Ledger(path=db)
    assert _user_version(db) == SCHEMA_VERSION + 1 and _dump(db) == before


def test_failed_migration_changes_nothing(tmp_path: Path) -> None:
    # A file where store_history is a view: migrations 1 and 2 run, recording the history
    # fails, and the whole upgrade is rolled back.
    db = _raw_db(tmp_path / "odd.sqlite3", "CREATE VIEW store_history AS SELECT 1 AS version")
    before = _schema(db)
    with pytest.raises(StoreError, match="migration failed"):
        Store.open(db)
    assert _user_version(db) == 0
    assert _schema(db) == before  # migration 1's tables were rolled back too


def test_later_migrations_leave_what_010_reads_by_position_alone(tmp_path: Path) -> None:
    # 0.1.0 builds its Frame from SELECT * on frames and inserts into astrometry_solutions by
    # position: a node rolled back to 0.1.0 keeps working only if these stay as they were.
    v1, now = tmp_path / "v1.sqlite3", tmp_path / "now.sqlite3"
    conn = connect(v1)
    migrate(conn, target=1)
    conn.close()
    Store.open(now).close()
    for table in ("frames", "astrometry_solutions"):
        info = [sqlite3.connect(p).execute(f"PRAGMA table_info({table})").fetchall()
                for p in (v1, now)]
        assert info[0] == info[1]


def test_foreign_table_is_refused(tmp_path: Path) -> None:
    db = _raw_db(tmp_path / "other.sqlite3", "CREATE TABLE frames (id INTEGER PRIMARY KEY, "
                 "name TEXT)")
    with pytest.raises(StoreError, match="not a starnode database"):
        Store.open(db)
    assert _user_version(db) == 0


def test_not_sqlite_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "starnode.sqlite3"
    db.write_bytes(b"this is not a database file, it is text " * 100)
    with pytest.raises(StoreError, match=str(db)):
        Store.open(db)


def test_concurrent_first_opens_migrate_once(tmp_path: Path) -> None:
    db = _copy_010(tmp_path)
    errors: list[BaseException] = []
    versions: list[int] = []

    def opener() -> None:
        try:
            with Store.open(db) as s:
                versions.append(s.version())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and versions == [SCHEMA_VERSION] * 6
