"""``starnode doctor``'s view of the database: it opens, its schema version, its frames.

Read-only on purpose: the doctor looks, it does not upgrade (the node migrates the file when
it next opens it) and it never creates a database that does not exist yet.
"""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from starnode.errors import StoreError

from .database import check_integrity
from .migrations import SCHEMA_VERSION, refuse_newer, schema_version

if TYPE_CHECKING:
    from starnode.config import Config
    from starnode.diagnostics import Check

__all__ = ["cached_answers", "health"]


def cached_answers(path: Path) -> int:
    """How many catalogue answers the database holds (read-only; 0 without a database)."""
    if not path.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM catalog_cache").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def _read(path: Path) -> tuple[int, dict[str, int]]:
    """``(schema version, frames by state)`` read through a read-only connection."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        check_integrity(conn, path)
        version = schema_version(conn)
        has_frames = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND "
                                  "name='frames'").fetchone()
        counts: dict[str, int] = {}
        if has_frames:
            counts = {str(s): int(n) for s, n in conn.execute(
                "SELECT state, COUNT(*) FROM frames GROUP BY state")}
        return version, counts
    finally:
        conn.close()


def health(config: Config) -> list[Check]:
    """The database's health lines for ``starnode doctor``.

    Parameters
    ----------
    config : Config
        The node's configuration (its ``db_path``).

    Returns
    -------
    list of Check
        FAIL when the file cannot be read, is damaged (``PRAGMA quick_check``, with what to
        do) or is newer than this code; WARN when others may
        read it; OK lines with the schema version and the frames otherwise.
    """
    from starnode.diagnostics import Check, Level

    path = config.db_path
    if not path.exists():
        return [Check(Level.OK, "ledger", f"{path} does not exist yet (the first frame creates "
                      "it)")]
    try:
        version, counts = _read(path)
        refuse_newer(version, f"the database {path}")
    except (sqlite3.Error, StoreError) as exc:
        return [Check(Level.FAIL, "ledger", f"cannot use {path}: {exc}")]
    out = []
    failed = counts.get("failed", 0)
    out.append(Check(Level.OK, "ledger", f"{path}: {sum(counts.values())} frame(s)"
                     + (f", {failed} failed (see 'starnode status')" if failed else "")))
    if version < SCHEMA_VERSION:
        out.append(Check(Level.OK, "store", f"schema version {version}; upgraded to "
                         f"{SCHEMA_VERSION} when starnode next opens it"))
    else:
        out.append(Check(Level.OK, "store", f"schema version {version}"))
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        out.append(Check(Level.WARN, "store", f"{path} is readable by other users; starnode "
                         "makes it owner-only (0600) when it next opens it"))
    return out
