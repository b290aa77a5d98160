"""starnode.store.database: the connections a StoreTable keeps between statements (issue 18) are
per process, thread and file, and never outlive the file they were opened on."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from starnode.config import Config
from starnode.store import Store, database
from starnode.store.checkstars import CheckStars


@pytest.fixture(autouse=True)
def _no_kept() -> Iterator[None]:
    database.close_kept_connections()
    yield
    database.close_kept_connections()


def _cfg(data: Path) -> Config:
    return Config({"data_dir": str(data)})


def _kept_for(db: Path) -> list[sqlite3.Connection]:
    return [conn for (pid, _, path), (conn, _) in database._KEPT.items()
            if path == str(db) and pid == os.getpid()]


def _opened(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files :meth:`Store.connect` opens a connection to from now on (the real ones)."""
    opened: list[Path] = []
    real = Store.connect

    def counting(self: Store) -> sqlite3.Connection:
        opened.append(self.path)
        return real(self)

    monkeypatch.setattr(Store, "connect", counting)
    return opened


def test_one_connection_serves_every_statement_of_a_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _cfg(tmp_path / "data")
    opened = _opened(monkeypatch)
    CheckStars(cfg).choose("x cyg", "2025-09-14", "110", "000-AAA-001")
    for _ in range(3):  # a new table object per frame, as the pipeline makes them
        assert CheckStars(cfg).get("x cyg", "2025-09-14").label == "110"  # type: ignore[union-attr]
    assert opened == [cfg.db_path]
    assert len(_kept_for(cfg.db_path)) == 1


def test_each_data_folder_has_its_own_connection(tmp_path: Path) -> None:
    a, b = _cfg(tmp_path / "a"), _cfg(tmp_path / "b")
    CheckStars(a).choose("x cyg", "2025-09-14", "110", None)
    assert CheckStars(b).get("x cyg", "2025-09-14") is None
    CheckStars(b).choose("x cyg", "2025-09-14", "121", None)
    assert CheckStars(a).get("x cyg", "2025-09-14").label == "110"  # type: ignore[union-attr]
    assert CheckStars(b).get("x cyg", "2025-09-14").label == "121"  # type: ignore[union-attr]
    assert _kept_for(a.db_path) != _kept_for(b.db_path)


def test_a_deleted_database_is_not_written_through_a_kept_connection(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = _cfg(tmp_path / "data")
    table = CheckStars(cfg)
    table.choose("x cyg", "2025-09-14", "110", None)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{cfg.db_path}{suffix}").unlink(missing_ok=True)
    # the table that used the file says so, as it did with a new connection per statement
    assert table.get("x cyg", "2025-09-14") is None
    assert "was deleted" in caplog.text
    # a new table (a new frame) opens the new, empty file: nothing went to the deleted one
    assert CheckStars(cfg).get("x cyg", "2025-09-14") is None
    CheckStars(cfg).choose("x cyg", "2025-09-14", "121", None)
    with sqlite3.connect(cfg.db_path) as plain:
        assert plain.execute("SELECT label FROM check_stars").fetchall() == [("121",)]


def test_a_replaced_database_gets_a_new_connection(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _cfg(tmp_path / "data")
    CheckStars(cfg).choose("x cyg", "2025-09-14", "110", None)
    other = _cfg(tmp_path / "other")
    CheckStars(other).choose("x cyg", "2025-09-14", "121", None)
    database.close_kept_connections()
    CheckStars(cfg).get("x cyg", "2025-09-14")
    os.replace(other.db_path, cfg.db_path)
    opened = _opened(monkeypatch)
    assert CheckStars(cfg).get("x cyg", "2025-09-14").label == "121"  # type: ignore[union-attr]
    assert opened == [cfg.db_path]


def _child(db: str, parent_conn_id: int, out: multiprocessing.SimpleQueue) -> None:  # type: ignore[type-arg]
    before = list(database._KEPT)
    CheckStars(db).choose("x cyg", "2025-09-15", "121", None)
    mine = [(key[0], id(conn)) for key, (conn, _) in database._KEPT.items()]
    out.put((before, mine, os.getpid(), parent_conn_id in {c for _, c in mine}))


def test_a_forked_worker_opens_its_own_connection(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path / "data")
    CheckStars(cfg).choose("x cyg", "2025-09-14", "110", None)
    (parent_conn,) = _kept_for(cfg.db_path)
    ctx = multiprocessing.get_context("fork")
    out = ctx.SimpleQueue()
    proc = ctx.Process(target=_child, args=(str(cfg.db_path), id(parent_conn), out))
    proc.start()
    before, mine, pid, reused = out.get()
    proc.join(30)
    assert proc.exitcode == 0
    assert before == []  # the parent's kept connections are not the child's
    assert [p for p, _ in mine] == [pid] and not reused
    # the parent's connection was neither used nor closed by the child, and sees its write
    assert _kept_for(cfg.db_path) == [parent_conn]
    assert CheckStars(cfg).get("x cyg", "2025-09-15").label == "121"  # type: ignore[union-attr]
    assert _kept_for(cfg.db_path) == [parent_conn]


def test_a_kept_connection_holds_no_snapshot_between_statements(tmp_path: Path) -> None:
    from starnode.store.caches import SolutionCache, StoredSolution

    cfg = _cfg(tmp_path / "data")
    cache = SolutionCache(cfg)
    for i in range(3):
        cache.put(StoredSolution(cache_key=f"k{i}", wcs_header="x", n_matched=5, rms_px=0.1,
                                 scale_arcsec=2.4, mirrored=False, method="test",
                                 n_detected=9, n_reference=9))
    assert cache.get("k1") is not None and cache.get("nope") is None
    CheckStars(cfg).get("x cyg", "2025-09-14")
    assert len(_kept_for(cfg.db_path)) == 1
    # another process's checkpoint completes: no reader holds the write-ahead log
    other = sqlite3.connect(cfg.db_path, timeout=0.2)
    try:
        busy, _, _ = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        other.close()
    assert busy == 0
    assert Path(f"{cfg.db_path}-wal").stat().st_size == 0


def test_a_command_leaves_no_wal_files_when_it_ends(tmp_path: Path) -> None:
    """A process that read through a kept connection closes it at exit: SQLite checkpoints
    and removes the -wal and -shm files, as when every connection was closed at once."""
    import subprocess
    import sys

    data = tmp_path / "data"
    code = ("from starnode.config import Config\n"
            "from starnode.store.checkstars import CheckStars\n"
            f"cfg = Config({{'data_dir': {str(data)!r}}})\n"
            "CheckStars(cfg).choose('x cyg', '2025-09-14', '110', '000-AAA-001')\n"
            "assert CheckStars(cfg).get('x cyg', '2025-09-14').label == '110'\n"
            "import os, sys; sys.stdout.write(' '.join(sorted(os.listdir(cfg.data_dir))))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       check=True)
    assert "starnode.sqlite3-wal" in p.stdout.split()  # kept open while the command ran
    assert sorted(x.name for x in data.iterdir() if x.name.startswith("starnode.sqlite3")) \
        == ["starnode.sqlite3"]
