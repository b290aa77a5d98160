"""The AAVSO writer's lines of ``starnode doctor`` (collected by :mod:`starnode.doctor`).

The writer knows best what it needs: where reports go and, in webobs mode, credentials it can
actually use (the same :func:`~starnode.aavso.webobs.load_credentials` the upload calls, so a
group-readable credentials file fails here too, before a night's uploads do).
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from starnode.errors import CredentialsError
from starnode.store import SCHEMA_VERSION

from .outbox import outbox_dir
from .webobs import load_credentials

if TYPE_CHECKING:
    from starnode.config import Config
    from starnode.diagnostics import Check

__all__ = ["health"]


def _version(cfg: Config) -> int:
    """The database's schema version, read-only (0 when unreadable)."""
    try:
        conn = sqlite3.connect(f"file:{cfg.db_path}?mode=ro", uri=True)
        try:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def health(cfg: Config) -> list[Check]:
    """Where reports go; in webobs mode, whether usable credentials exist (never shown).

    Parameters
    ----------
    cfg : Config
        The resolved configuration.

    Returns
    -------
    list of Check
        One line, topic ``aavso``.
    """
    from starnode.diagnostics import Check, Level

    a = cfg.aavso
    reports = _reports(cfg)
    if a.mode != "webobs":
        return [Check(Level.OK, "aavso", f"mode {a.mode}: reports go to {outbox_dir(cfg)}"),
                *reports]
    try:
        load_credentials(cfg)
    except CredentialsError as exc:
        return [Check(Level.FAIL, "aavso", f"aavso.mode is webobs but {exc}"), *reports]
    return [Check(Level.OK, "aavso", "webobs upload enabled, credentials present (not shown)"),
            *reports]


def _reports(cfg: Config) -> list[Check]:
    """Each report file that is not what its index says: deleted, truncated, altered,
    invalid (FAIL), or holding rows the index does not know (WARN)."""
    from starnode.diagnostics import Check, Level

    from .recovery import check_reports

    if not cfg.db_path.exists() or _version(cfg) < SCHEMA_VERSION:
        return []  # doctor never upgrades the database; the reports are checked after
    out = []
    for c in check_reports(cfg):
        if c.state == "ok":
            continue
        level = Level.WARN if c.state == "unindexed" else Level.FAIL
        out.append(Check(level, "reports", f"{c.path} is {c.state} ({c.message}): {c.advice}"))
    if not out:
        return [Check(Level.OK, "reports", "every report file matches its index and checksum")]
    return out
