"""store.health: doctor's read-only view of the database (version, frames, refusals)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from starnode.config import Config
from starnode.doctor import Level
from starnode.store import SCHEMA_VERSION, Store, health

DATADIR_010 = Path(__file__).parents[1] / "data" / "datadir-0.1.0"


def _cfg(data: Path) -> Config:
    return Config({"data_dir": str(data)})


def test_no_database_yet_is_fine_and_not_created(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path / "data")
    [check] = health(cfg)
    assert check.level is Level.OK and "does not exist yet" in check.message
    assert not cfg.db_path.exists()


def test_010_database_is_reported_not_changed(tmp_path: Path) -> None:
    shutil.copytree(DATADIR_010, tmp_path / "data")
    cfg = _cfg(tmp_path / "data")
    cfg.db_path.chmod(0o644)
    before = cfg.db_path.read_bytes()
    checks = health(cfg)
    text = "\n".join(f"{c.level.name} {c.topic}: {c.message}" for c in checks)
    assert "OK ledger" in text and ": 4 frame(s)" in text
    assert f"schema version 0; upgraded to {SCHEMA_VERSION}" in text
    assert "WARN store" in text and "readable by other users" in text
    assert cfg.db_path.read_bytes() == before  # the doctor looks, it does not upgrade


def test_newer_database_fails_clearly(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path / "data")
    Store.open(cfg).close()
    conn = sqlite3.connect(cfg.db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    checks = health(cfg)
    assert [c.level for c in checks] == [Level.FAIL]
    assert "newer starnode" in checks[0].message
