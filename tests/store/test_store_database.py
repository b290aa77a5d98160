"""starnode.store.database: a damaged, deleted or replaced database is named, never used blindly
(issue 10, items 6 and 7)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from starnode.config import Config
from starnode.doctor import Level
from starnode.errors import StoreError
from starnode.store import Ledger, Store, health


def _cfg(data: Path) -> Config:
    return Config({"data_dir": str(data)})


def _filled(data: Path, n: int = 400) -> Path:
    """A real ledger with ``n`` frames (several pages), checkpointed into the main file."""
    frames = data.parent / "frames"
    frames.mkdir(parents=True, exist_ok=True)
    with Ledger(_cfg(data)) as ledger:
        for i in range(n):
            p = frames / f"Light_{i:04d}_{'x' * 60}.fit"
            p.write_bytes(b"x")
            ledger.add(p)
        ledger.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return data / "starnode.sqlite3"


def _damage(db: Path) -> None:
    """Overwrite pages in the middle of the file (a bad sector, a torn copy)."""
    raw = bytearray(db.read_bytes())
    page = 4096
    assert len(raw) > 6 * page
    for off in range(2 * page, len(raw) - page, page):
        raw[off + 8:off + 200] = b"\xa5" * 192
    db.write_bytes(bytes(raw))


def test_damaged_database_is_refused_with_what_to_do(tmp_path: Path) -> None:
    data = tmp_path / "data"
    db = _filled(data)
    _damage(db)
    with pytest.raises(StoreError) as err:
        Ledger(_cfg(data))
    msg = str(err.value)
    assert "damaged" in msg and str(db) in msg
    assert "copy" in msg and "starnode repair" in msg   # what to do: the command that rebuilds
    lines = health(_cfg(data))
    assert any(c.level == Level.FAIL and "damaged" in c.message for c in lines), lines


def test_status_of_a_damaged_database_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _damage(_filled(data))
    proc = subprocess.run([sys.executable, "-m", "starnode", "status", "--data-dir", str(data)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "damaged" in proc.stderr


def test_healthy_database_passes_the_check(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _filled(data, 50)
    lines = health(_cfg(data))
    assert all(c.level == Level.OK for c in lines), lines


def test_store_notices_its_file_deleted_or_replaced(tmp_path: Path) -> None:
    data = tmp_path / "data"
    db = _filled(data, 5)
    store = Store.open(db)
    store.verify()                       # the same file: fine
    copy = tmp_path / "copy.sqlite3"
    shutil.copy(db, copy)
    for p in data.glob("starnode.sqlite3*"):
        p.unlink()
    with pytest.raises(StoreError, match="deleted"):
        store.verify()
    shutil.copy(copy, db)                # another file under the same name
    with pytest.raises(StoreError, match="replaced"):
        store.verify()
    store.close()
