"""The schema of the node's database, as numbered migrations (``PRAGMA user_version``).

starnode 0.1.0 let each module create its own tables with ``CREATE TABLE IF NOT EXISTS`` and
recorded no version, so a later release could neither change a table nor tell an old file from
a new one. Now this module owns every table: migration *n* brings a database from version
*n - 1* to *n*, all pending migrations run in one ``BEGIN IMMEDIATE`` transaction (another
process opening the file at the same moment waits, then finds the work done), and the version is
written in the same transaction, so a crash leaves the file either untouched or upgraded.

Migration 1 is, statement for statement, the 0.1.0 schema. A 0.1.0 database has
``user_version`` 0 but already holds (some of) these tables: migration 1 creates only what is
missing (``IF NOT EXISTS``, as 0.1.0 itself did lazily), checks that the tables present are the
ones 0.1.0 wrote, and stamps the file as version 1 without changing a row.

Rules for later migrations: add, never drop or rename (a node rolled back to 0.1.0 must still
run on the file); never add a column to ``frames`` (0.1.0 builds its ``Frame`` from
``SELECT *``) nor to ``astrometry_solutions`` (0.1.0 inserts into it by position). The layout
version of a stored measurement is therefore the ``schema_version`` key inside its JSON
(absent in a 0.1.0 dict, which is layout 1), not a column.

A database whose version is newer than :data:`SCHEMA_VERSION` is refused with
:class:`~starnode.errors.StoreError`: this code does not know what the newer one changed.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from starnode.errors import StoreError

log = logging.getLogger(__name__)

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "V1_TABLES", "Migration", "migrate",
           "refuse_newer", "schema_version"]

# The 0.1.0 DDL, verbatim (sqlite_master keeps the text, so a fresh file and a 0.1.0 file
# compare equal).
_V1_STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS frames (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    source TEXT,
    category TEXT,
    reason TEXT,
    target TEXT,
    jd REAL,
    magnitude REAL,
    uncertainty REAL,
    quality TEXT,
    result TEXT,
    submission TEXT,
    owner TEXT,
    lease_until REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    crashes INTEGER NOT NULL DEFAULT 0,
    measure_count INTEGER NOT NULL DEFAULT 0,
    report_count INTEGER NOT NULL DEFAULT 0,
    first_seen REAL NOT NULL,
    updated REAL NOT NULL,
    finished REAL,
    UNIQUE (path, size, mtime_ns)
)""",
    "CREATE INDEX IF NOT EXISTS frames_state ON frames (state, crashes, first_seen)",
    "CREATE INDEX IF NOT EXISTS frames_target ON frames (target, jd)",
    """CREATE TABLE IF NOT EXISTS aavso_measurements (
    space    TEXT NOT NULL,
    mkey     TEXT NOT NULL,
    row_key  TEXT NOT NULL,
    obscode  TEXT NOT NULL,
    starid   TEXT NOT NULL,
    band     TEXT NOT NULL,
    night    TEXT NOT NULL,
    jd       REAL NOT NULL,
    data     TEXT NOT NULL,
    result   TEXT NOT NULL,
    created  TEXT NOT NULL,
    PRIMARY KEY (space, mkey)
)""",
    "CREATE INDEX IF NOT EXISTS aavso_measurements_row ON aavso_measurements (space, row_key)",
    """CREATE TABLE IF NOT EXISTS aavso_rows (
    space     TEXT NOT NULL,
    row_key   TEXT NOT NULL,
    obscode   TEXT NOT NULL,
    starid    TEXT NOT NULL,
    band      TEXT NOT NULL,
    night     TEXT NOT NULL,
    date_type TEXT NOT NULL,
    file      TEXT NOT NULL,
    bin_start REAL,
    bin_end   REAL,
    jd        REAL NOT NULL,
    line      TEXT NOT NULL,
    n         INTEGER NOT NULL,
    closed    INTEGER NOT NULL,
    upload    TEXT NOT NULL,
    upload_id TEXT,
    updated   TEXT NOT NULL,
    PRIMARY KEY (space, row_key)
)""",
    "CREATE INDEX IF NOT EXISTS aavso_rows_file ON aavso_rows (space, file)",
    """CREATE TABLE IF NOT EXISTS catalog_cache (
    kind       TEXT NOT NULL,   -- vsx | vsx-cone | vsp | gaia
    key        TEXT NOT NULL,   -- normalised request (name/coords, fov, maglimit)
    fetched_at REAL NOT NULL,   -- unix time of the answer
    url        TEXT,            -- where it came from
    payload    TEXT NOT NULL,   -- the answer, as JSON text
    PRIMARY KEY (kind, key)
)""",
    """CREATE TABLE IF NOT EXISTS astrometry_solutions (
    cache_key TEXT PRIMARY KEY,
    wcs_header TEXT NOT NULL,
    n_matched INTEGER NOT NULL,
    rms_px REAL NOT NULL,
    scale_arcsec REAL NOT NULL,
    mirrored INTEGER NOT NULL,
    method TEXT NOT NULL,
    n_detected INTEGER NOT NULL DEFAULT 0,
    n_reference INTEGER NOT NULL DEFAULT 0,
    created_utc TEXT NOT NULL
)""",
)

#: The columns of every table 0.1.0 wrote (what migration 1 checks an existing file against).
V1_TABLES: dict[str, tuple[str, ...]] = {
    "frames": ("id", "path", "size", "mtime_ns", "state", "source", "category", "reason",
               "target", "jd", "magnitude", "uncertainty", "quality", "result", "submission",
               "owner", "lease_until", "attempts", "crashes", "measure_count", "report_count",
               "first_seen", "updated", "finished"),
    "aavso_measurements": ("space", "mkey", "row_key", "obscode", "starid", "band", "night",
                           "jd", "data", "result", "created"),
    "aavso_rows": ("space", "row_key", "obscode", "starid", "band", "night", "date_type",
                   "file", "bin_start", "bin_end", "jd", "line", "n", "closed", "upload",
                   "upload_id", "updated"),
    "catalog_cache": ("kind", "key", "fetched_at", "url", "payload"),
    "astrometry_solutions": ("cache_key", "wcs_header", "n_matched", "rms_px", "scale_arcsec",
                             "mirrored", "method", "n_detected", "n_reference", "created_utc"),
}


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})")]


def _v1(conn: sqlite3.Connection) -> None:
    """The 0.1.0 schema; tables already there must carry the 0.1.0 columns."""
    for table, expected in V1_TABLES.items():
        have = _columns(conn, table)
        missing = [c for c in expected if c not in have]
        if have and missing:
            raise StoreError(f"table {table} is not the one starnode wrote (missing column(s) "
                             f"{', '.join(missing)}): this file is not a starnode database")
    for statement in _V1_STATEMENTS:
        conn.execute(statement)


def _v2(conn: sqlite3.Connection) -> None:
    """The upgrade history; indexes for ``starnode status`` and per-night reports."""
    conn.execute("""CREATE TABLE IF NOT EXISTS store_history (
    version     INTEGER PRIMARY KEY,
    applied_utc TEXT NOT NULL,
    software    TEXT NOT NULL
)""")
    conn.execute("CREATE INDEX IF NOT EXISTS frames_updated ON frames (updated)")
    conn.execute("CREATE INDEX IF NOT EXISTS aavso_rows_night ON aavso_rows (space, night)")


def _v3(conn: sqlite3.Connection) -> None:
    """The check star chosen for each target and night (one per night, kept over restarts)."""
    conn.execute("""CREATE TABLE IF NOT EXISTS check_stars (
    target     TEXT NOT NULL,   -- normalised target name
    night      TEXT NOT NULL,   -- observing night (YYYY-MM-DD)
    label      TEXT NOT NULL,   -- the comp's chart label
    auid       TEXT,
    chosen_utc TEXT NOT NULL,
    file       TEXT,            -- the frame it was chosen on
    PRIMARY KEY (target, night)
)""")


def _v4(conn: sqlite3.Connection) -> None:
    """The hub queue: measurements waiting to be pushed to the network hub
    (:mod:`starnode.store.hub_queue`; 0.1.0 ignores the table)."""
    conn.execute("""CREATE TABLE IF NOT EXISTS hub_queue (
    key        TEXT PRIMARY KEY,   -- frame content hash | JD: the exactly-once key
    frame_id   INTEGER,            -- frames.id
    payload    TEXT NOT NULL,      -- the wire record (JSON)
    state      TEXT NOT NULL DEFAULT 'queued',  -- queued | sent | rejected
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created    REAL NOT NULL,
    sent       REAL
)""")
    conn.execute("CREATE INDEX IF NOT EXISTS hub_queue_state ON hub_queue (state, created)")


def _v5(conn: sqlite3.Connection) -> None:
    """Per report file: what the writer last put on disk (so a new row is appended, not the
    whole night rewritten, and a tail left by a killed writer is recognised); an index to find
    the frames of a report row (:meth:`starnode.store.ReportRows.confirm_frames`); the open
    time bins (closing them no longer scans the whole night)."""
    conn.execute("""CREATE TABLE IF NOT EXISTS aavso_files (
    space       TEXT NOT NULL,
    file        TEXT NOT NULL,   -- relative to the outbox
    size        INTEGER,         -- the report's size and inode after the last committed write
    ino         INTEGER,
    rows        INTEGER,         -- data lines in it
    last_jd     REAL,            -- the last row's jd and row_key (appending keeps the order)
    last_key    TEXT,
    obscode     TEXT,
    date_type   TEXT,
    comments    TEXT,            -- the header comments (JSON list)
    audit_size  INTEGER,         -- the audit file's size and inode after the last record
    audit_ino   INTEGER,
    PRIMARY KEY (space, file)
)""")
    conn.execute("CREATE INDEX IF NOT EXISTS frames_submission_key ON frames "
                 "(json_extract(submission, '$.key'))")
    conn.execute("CREATE INDEX IF NOT EXISTS aavso_rows_open ON aavso_rows (space, obscode, "
                 "bin_end) WHERE closed=0")


def _v6(conn: sqlite3.Connection) -> None:
    """Each report's content checksum and modification time (the report file is the record, the
    database its index: a file that is not byte for byte what was last committed is checked
    row by row before anything is written to it; docs/store.md)."""
    have = _columns(conn, "aavso_files")
    for column, kind in (("sha256", "TEXT"), ("mtime_ns", "INTEGER")):
        if column not in have:
            conn.execute(f"ALTER TABLE aavso_files ADD COLUMN {column} {kind}")
    conn.execute("CREATE INDEX IF NOT EXISTS aavso_rows_file ON aavso_rows (space, file)")


def _v7(conn: sqlite3.Connection) -> None:
    """Each frame's fitted colour coefficient Tv_bv, per telescope and observing night, so that
    the night's combined coefficient can transform frames whose own fit is too uncertain
    (:mod:`starnode.store.colourterms`)."""
    conn.execute("""CREATE TABLE IF NOT EXISTS colour_terms (
    telescope   TEXT NOT NULL,   -- TELESCOP ('' when the header has none)
    night       TEXT NOT NULL,   -- observing night (YYYY-MM-DD)
    frame_sha1  TEXT NOT NULL,   -- the frame's content hash (a frame counts once)
    tv_bv       REAL NOT NULL,   -- V - g = zp + Tv_bv (B-V), this frame's fit
    tv_bv_err   REAL NOT NULL,   -- its error (chi2-inflated)
    n_comps     INTEGER NOT NULL,
    jd          REAL,
    recorded_utc TEXT NOT NULL,
    PRIMARY KEY (telescope, night, frame_sha1)
)""")


def _v8(conn: sqlite3.Connection) -> None:
    """The telescope's journal (every step of ``starnode observe``, so a restart resumes an
    item or parks) and its current state (parked or not as the mount reported it, the alarm)."""
    conn.execute("""CREATE TABLE IF NOT EXISTS telescope_journal (
    id          INTEGER PRIMARY KEY,
    t_utc       TEXT NOT NULL,       -- ISO 8601 UTC, by the runner's clock
    night       TEXT,
    plan_hash   TEXT,
    item        INTEGER,             -- index in the plan, NULL for night-level steps
    target      TEXT,
    step        TEXT NOT NULL,       -- gate, unpark, slew, settle, verify, frame, done, skip,
                                     -- park, parked, park_failed, refused, error, stop
    detail      TEXT,
    frames      INTEGER              -- frames of the item taken so far (step 'frame')
)""")
    conn.execute("CREATE INDEX IF NOT EXISTS telescope_journal_plan ON telescope_journal "
                 "(plan_hash, item)")
    conn.execute("""CREATE TABLE IF NOT EXISTS telescope_state (
    key         TEXT PRIMARY KEY,    -- parked, alarm, activity, pid
    value       TEXT,
    updated     TEXT NOT NULL
)""")


def _record_history(conn: sqlite3.Connection, applied: list[int]) -> None:
    """Note when, and by which starnode, each migration ran (once ``store_history`` exists)."""
    if not applied or applied[-1] < 2:
        return
    from starnode._version import SOFTWARE

    now = datetime.now(UTC).isoformat(timespec="seconds")
    conn.executemany("INSERT OR REPLACE INTO store_history (version, applied_utc, software) "
                     "VALUES (?, ?, ?)", [(v, now, SOFTWARE) for v in applied])


@dataclass(frozen=True)
class Migration:
    """One step of the schema.

    Parameters
    ----------
    version : int
        The ``user_version`` the database has after this step.
    summary : str
        What the step does (logged when it runs).
    apply : callable
        Runs the step's statements on a connection already inside the transaction.
    """

    version: int
    summary: str
    apply: Callable[[sqlite3.Connection], None]


#: Every migration, in order; ``MIGRATIONS[i].version == i + 1``.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "the 0.1.0 schema (frames, aavso_measurements, aavso_rows, catalog_cache, "
                 "astrometry_solutions)", _v1),
    Migration(2, "store_history table; frames_updated and aavso_rows_night indexes", _v2),
    Migration(3, "check_stars table: one check star per target and night", _v3),
    Migration(4, "hub_queue table (measurements waiting for the network hub)", _v4),
    Migration(5, "aavso_files table (report appends, killed-writer tails); frames by report "
                 "key", _v5),
    Migration(6, "aavso_files: content checksum and mtime of each report; rows by file", _v6),
    Migration(7, "colour_terms table: each frame's Tv_bv per telescope and night", _v7),
    Migration(8, "telescope_journal and telescope_state (starnode observe)", _v8),
)

#: The schema version this code writes and understands.
SCHEMA_VERSION = MIGRATIONS[-1].version


def schema_version(conn: sqlite3.Connection) -> int:
    """The database's ``PRAGMA user_version`` (0 for a new file or a 0.1.0 file).

    Parameters
    ----------
    conn : sqlite3.Connection
        An open connection.

    Returns
    -------
    int
        The stored schema version.
    """
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def refuse_newer(version: int, where: str) -> None:
    """Raise :class:`StoreError` when ``version`` is newer than this code.

    Parameters
    ----------
    version : int
        A database's ``user_version``.
    where : str
        The database, for the message.

    Raises
    ------
    StoreError
        ``version > SCHEMA_VERSION``.
    """
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{where} has schema version {version}, but this starnode knows versions up to "
            f"{SCHEMA_VERSION}: it was written by a newer starnode. Upgrade starnode, or point "
            "data_dir at another folder; the file was not changed.")


def migrate(conn: sqlite3.Connection, *, target: int | None = None,
            path: str | Path | None = None) -> int:
    """Bring the database up to ``target`` (default: :data:`SCHEMA_VERSION`).

    Parameters
    ----------
    conn : sqlite3.Connection
        A connection in autocommit mode (from :func:`starnode.store.connection.connect`),
        not inside a transaction.
    target : int, optional
        Stop at this version (tests build intermediate versions); never goes down.
    path : str or Path, optional
        The file's name for messages.

    Returns
    -------
    int
        The schema version after the call.

    Raises
    ------
    StoreError
        The database is newer than this code, is not a starnode database, or a migration
        failed (the transaction is rolled back: the file is as it was).
    """
    target = SCHEMA_VERSION if target is None else target
    where = f"the database {path}" if path else "the database"
    if not 0 <= target <= SCHEMA_VERSION:
        raise ValueError(f"target schema version {target} is not in 0..{SCHEMA_VERSION}")
    current = schema_version(conn)
    refuse_newer(current, where)
    if current >= target:
        return current
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = schema_version(conn)  # another process may have migrated meanwhile
        refuse_newer(current, where)
        applied = []
        for m in MIGRATIONS[current:target]:
            log.info("%s: schema migration %d: %s", where, m.version, m.summary)
            m.apply(conn)
            conn.execute(f"PRAGMA user_version = {int(m.version)}")
            applied.append(m.version)
        _record_history(conn, applied)
        conn.execute("COMMIT")
    except BaseException as exc:
        conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"{where}: schema migration failed, nothing changed: "
                             f"{exc}") from exc
        raise
    return max(current, target)
