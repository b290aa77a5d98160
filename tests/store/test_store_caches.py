"""CatalogCache and SolutionCache on a real SQLite file: round trips, replacement, clearing, and
a database that cannot be used degrades to "no cache" with a warning, never an exception."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from starnode.store import SCHEMA_VERSION, CatalogCache, SolutionCache, Store, StoredSolution


def test_catalog_cache_round_trip_replace_and_clear(tmp_path: Path) -> None:
    cache = CatalogCache(tmp_path / "data")  # a data_dir folder that does not exist yet
    assert cache.get("vsx", "ss cyg") is None
    cache.put("vsx", "ss cyg", "https://vsx.example/1", {"Name": "SS Cyg", "n": [1, 2]})
    got = cache.get("vsx", "ss cyg")
    assert got is not None and got.payload == {"Name": "SS Cyg", "n": [1, 2]}
    assert got.url == "https://vsx.example/1" and 0.0 <= got.age_days < 1.0
    cache.put("vsx", "ss cyg", None, {"Name": "SS Cyg", "n": [3]})
    again = cache.get("vsx", "ss cyg")
    assert again is not None and again.payload["n"] == [3] and again.url is None
    cache.put("vsp", "ss cyg|60|15", "https://vsp.example", {"photometry": []})
    assert [(k, n) for k, n, _ in cache.summary()] == [("vsp", 1), ("vsx", 1)]
    assert cache.clear("vsp") == 1
    assert cache.clear() == 1
    assert cache.summary() == []


def test_catalog_cache_corrupt_entry_is_ignored(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    store = Store.open(tmp_path / "starnode.sqlite3")
    store.conn.execute("INSERT INTO catalog_cache VALUES ('vsx', 'x', 0, NULL, '{not json')")
    with caplog.at_level(logging.WARNING):
        assert CatalogCache(store).get("vsx", "x") is None
    assert "corrupt" in caplog.text
    store.close()


def test_caches_of_a_too_new_database_warn_and_go_without(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "starnode.sqlite3"
    Store.open(db).close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with caplog.at_level(logging.WARNING):
        CatalogCache(db).put("vsx", "k", None, {})
        assert CatalogCache(db).get("vsx", "k") is None
        SolutionCache(db).put(StoredSolution("k", "", 1, 0.1, 2.0, False, "m"))
        assert SolutionCache(db).get("k") is None
    assert caplog.text.count("newer starnode") == 4


def test_solution_cache_round_trip(tmp_path: Path) -> None:
    cache = SolutionCache(tmp_path / "starnode.sqlite3")
    assert cache.get("abc|1080x1920|bin2") is None
    sol = StoredSolution(cache_key="abc|1080x1920|bin2", wcs_header="CTYPE1  = 'RA---TAN'",
                         n_matched=42, rms_px=0.31, scale_arcsec=2.39, mirrored=True,
                         method="triangles", n_detected=120, n_reference=80)
    cache.put(sol)
    got = cache.get(sol.cache_key)
    assert got is not None and got.created_utc  # stamped when stored
    assert got == StoredSolution(**{**sol.__dict__, "created_utc": got.created_utc})
    # 0.1.0 inserted by position: the column order is still the 0.1.0 order
    conn = sqlite3.connect(cache.store.path)
    cols = [r[1] for r in conn.execute("PRAGMA table_info(astrometry_solutions)")]
    conn.close()
    assert cols == ["cache_key", "wcs_header", "n_matched", "rms_px", "scale_arcsec",
                    "mirrored", "method", "n_detected", "n_reference", "created_utc"]
