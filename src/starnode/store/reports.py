"""The AAVSO report tables: every reported measurement under its exactly-once key, every row.

``aavso_measurements`` holds one entry per measurement reported, keyed by ``(space, mkey)``
(``space``: ``real`` or ``dry_run``; ``mkey``: observer, star, band and time), so a measurement
handed to :func:`starnode.aavso.submit` twice is found and not written again. ``aavso_rows``
holds one AAVSO data line per ``row_key`` (a single measurement, or a time bin of several), its
outbox file, whether its bin is closed, and its WebObs upload state (``manual``, ``none``,
``pending``, ``uploading``, ``sent``, ``uncertain``). The outbox files are regenerated from
these rows; the SQL lives here, the report logic in :mod:`starnode.aavso`. ``aavso_files``
remembers what was last written to each report file and its audit (size, inode, last row), so
a new row is appended rather than the whole night rewritten, and bytes a killed writer left
after the last COMMIT are recognised and cut.

A :class:`ReportRows` holds one connection: use it as a context manager, and wrap a
read-check-write sequence (the duplicate check, the insert, the file rewrite) in
``with rows.transaction():`` so it is atomic against other processes.
"""

from __future__ import annotations

import datetime as _dt
import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .connection import transaction
from .database import store_at

__all__ = ["DRY", "LOCKED", "REAL", "ReportRows"]

#: The two spaces: real reports and dry-run reports never mix.
REAL, DRY = "real", "dry_run"
#: Upload states in which a row must not change any more.
LOCKED = ("uploading", "sent", "uncertain")


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def _where(night: str | None, target: str | None) -> tuple[str, list[Any]]:
    """`` AND night=? AND UPPER(starid)=?`` for the filters given (target blanks collapsed)."""
    clauses, params = [], []
    if night:
        clauses.append("night=?")
        params.append(night)
    if target:
        clauses.append("UPPER(starid)=?")
        params.append(" ".join(target.upper().split()))
    return "".join(f" AND {c}" for c in clauses), params


class ReportRows:
    """Tables ``aavso_measurements`` and ``aavso_rows`` through one connection.

    Parameters
    ----------
    store : Store or anything :meth:`Store.open` accepts
        The database (a config, a data folder, the file, or an open store).

    Raises
    ------
    StoreError
        The database cannot be opened or is newer than this code.
    """

    def __init__(self, store: Any) -> None:
        self.store = store_at(store)
        self.conn = self.store.connect()

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def __enter__(self) -> ReportRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self) -> transaction:
        """``with rows.transaction():`` - ``BEGIN IMMEDIATE`` ... ``COMMIT`` / ``ROLLBACK``."""
        return transaction(self.conn)

    # ------------------------------------------------------------------ measurements
    def measurement_row_key(self, space: str, mkey: str) -> str | None:
        """The row a measurement was reported in, or None if it never was.

        Parameters
        ----------
        space : str
            ``real`` or ``dry_run``.
        mkey : str
            The measurement's exactly-once key.

        Returns
        -------
        str or None
            Its ``row_key``.
        """
        r = self.conn.execute("SELECT row_key FROM aavso_measurements WHERE space=? AND mkey=?",
                              (space, mkey)).fetchone()
        return None if r is None else str(r["row_key"])

    def member_data(self, space: str, row_key: str) -> list[dict[str, Any]]:
        """The report data (``data`` JSON) of every measurement in a row, by time.

        Parameters
        ----------
        space, row_key : str
            The row.

        Returns
        -------
        list of dict
            One dict per measurement, oldest first.
        """
        return [json.loads(r["data"]) for r in self.conn.execute(
            "SELECT data FROM aavso_measurements WHERE space=? AND row_key=? ORDER BY jd",
            (space, row_key))]

    def add_measurement(self, space: str, mkey: str, row_key: str, *, obscode: str,
                        starid: str, band: str, night: str, jd: float, data: Mapping[str, Any],
                        result: Mapping[str, Any]) -> None:
        """Record a reported measurement under its key (call inside :meth:`transaction`).

        Parameters
        ----------
        space, mkey, row_key : str
            Where, under which exactly-once key, and in which row.
        obscode, starid, band, night : str
            Observer code, AAVSO star name, band, observing night (ISO date).
        jd : float
            Time of the measurement.
        data : mapping
            The report fields (JSON).
        result : mapping
            The whole measurement (JSON, for the audit; it carries its layout version).

        Raises
        ------
        sqlite3.IntegrityError
            The key is already recorded.
        """
        self.conn.execute(
            "INSERT INTO aavso_measurements (space, mkey, row_key, obscode, starid, band, night, "
            "jd, data, result, created) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (space, mkey, row_key, obscode, starid, band, night, jd, _dumps(data),
             _dumps(result), _now()))

    # ------------------------------------------------------------------ rows
    def row(self, space: str, row_key: str) -> sqlite3.Row | None:
        """One row of ``aavso_rows`` (every column), or None."""
        return self.conn.execute("SELECT * FROM aavso_rows WHERE space=? AND row_key=?",
                                 (space, row_key)).fetchone()

    def insert_row(self, space: str, row_key: str, *, obscode: str, starid: str, band: str,
                   night: str, date_type: str, file: str, bin_start: float | None,
                   bin_end: float | None, jd: float, line: str, n: int, closed: bool,
                   upload: str) -> None:
        """Add a data line (a new measurement or a new time bin).

        Parameters
        ----------
        space, row_key : str
            The row's identity.
        obscode, starid, band, night, date_type : str
            Its report fields.
        file : str
            Its outbox file, relative to the outbox.
        bin_start, bin_end : float or None
            The time bin (None for a single measurement).
        jd : float
            The row's time.
        line : str
            The AAVSO data line.
        n : int
            Measurements in it.
        closed : bool
            Whether the row can no longer change.
        upload : str
            Its upload state.
        """
        self.conn.execute(
            "INSERT INTO aavso_rows (space, row_key, obscode, starid, band, night, date_type,"
            " file, bin_start, bin_end, jd, line, n, closed, upload, upload_id, updated) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,NULL,?)",
            (space, row_key, obscode, starid, band, night, date_type, file, bin_start, bin_end,
             jd, line, n, int(closed), upload, _now()))

    def update_row(self, space: str, row_key: str, *, line: str, n: int, jd: float,
                   date_type: str) -> None:
        """Rewrite a row's line after a measurement joined its time bin."""
        self.conn.execute("UPDATE aavso_rows SET line=?, n=?, jd=?, date_type=?, updated=? "
                          "WHERE space=? AND row_key=?",
                          (line, n, jd, date_type, _now(), space, row_key))

    def close_bins_ending_by(self, space: str, obscode: str, jd: float) -> int:
        """Close the observer's open bins that end at or before ``jd``; returns how many."""
        return int(self.conn.execute(
            "UPDATE aavso_rows SET closed=1, updated=? WHERE space=? AND obscode=? "
            "AND closed=0 AND bin_end IS NOT NULL AND bin_end <= ?",
            (_now(), space, obscode, jd)).rowcount)

    def delete_row(self, space: str, row_key: str) -> None:
        """Remove a row from the index (an adopted row a measurement now claims; the line
        stays in the file)."""
        self.conn.execute("DELETE FROM aavso_rows WHERE space=? AND row_key=?", (space, row_key))

    def known_files(self) -> list[tuple[str, str]]:
        """``(space, file)`` of every report file the index knows (rows or a file state)."""
        return [(str(r[0]), str(r[1])) for r in self.conn.execute(
            "SELECT space, file FROM aavso_rows UNION SELECT space, file FROM aavso_files")]

    def has_measurement(self, space: str, mkey: str) -> bool:
        """Whether the measurement key is in the index."""
        return self.conn.execute("SELECT 1 FROM aavso_measurements WHERE space=? AND mkey=?",
                                 (space, mkey)).fetchone() is not None

    def unindexed_reported_frames(self) -> list[int]:
        """Ids of frames ``reported`` whose measurement key the index no longer has (a lost
        or restored ledger): their submission must be made again."""
        return [int(r[0]) for r in self.conn.execute(
            "SELECT id FROM frames WHERE state='reported' AND "
            "json_extract(submission, '$.key') IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
            "aavso_measurements m WHERE m.mkey = json_extract(frames.submission, '$.key'))")]

    def reopen_frames(self, ids: Sequence[int]) -> int:
        """Frames ``reported`` back to ``measured`` with no submission, so the node submits
        them again (call inside :meth:`transaction`); returns how many changed."""
        n = 0
        for fid in ids:
            n += int(self.conn.execute(
                "UPDATE frames SET state='measured', submission=NULL WHERE id=? AND "
                "state='reported'", (int(fid),)).rowcount)
        return n

    def file_rows(self, space: str, file: str) -> list[sqlite3.Row]:
        """Every row of one outbox file."""
        return self.conn.execute("SELECT * FROM aavso_rows WHERE space=? AND file=?",
                                 (space, file)).fetchall()

    def rows(self, space: str, night: str | None = None,
             target: str | None = None) -> list[sqlite3.Row]:
        """Every row of ``space``, optionally of one night and/or target (case-insensitive)."""
        where, params = _where(night, target)
        return self.conn.execute(f"SELECT * FROM aavso_rows WHERE space=?{where}",
                                 [space, *params]).fetchall()

    def files(self, space: str, night: str | None = None,
              target: str | None = None) -> list[sqlite3.Row]:
        """The distinct ``(file, night)`` of the matching rows."""
        where, params = _where(night, target)
        return self.conn.execute(f"SELECT DISTINCT file, night FROM aavso_rows WHERE "
                                 f"space=?{where}", [space, *params]).fetchall()

    def close_open(self, space: str, night: str | None = None,
                   target: str | None = None) -> int:
        """Close every open time bin matching the filters; returns how many."""
        where, params = _where(night, target)
        return int(self.conn.execute(f"UPDATE aavso_rows SET closed=1, updated=? WHERE space=? "
                                     f"AND closed=0{where}", [_now(), space, *params]).rowcount)

    def outbox_rows(self) -> list[sqlite3.Row]:
        """``space, file, night, starid, obscode, closed, upload`` of every row, by night, and
        ``synthetic`` (1 when the row's NOTES say SYNTHETIC DATA: made-up demo frames)."""
        return self.conn.execute("SELECT space, file, night, starid, obscode, closed, upload, "
                                 "instr(line, 'SYNTHETIC DATA') > 0 AS synthetic "
                                 "FROM aavso_rows ORDER BY night, file").fetchall()

    # ------------------------------------------------------------------ uploads
    def pending_uploads(self, files: Sequence[str] | None = None) -> list[sqlite3.Row]:
        """Real, closed rows waiting for WebObs (optionally only of ``files``)."""
        query = "SELECT * FROM aavso_rows WHERE space=? AND upload='pending' AND closed=1"
        params: list[Any] = [REAL]
        if files is not None:
            query += f" AND file IN ({','.join('?' * len(files))})"
            params += list(files)
        return self.conn.execute(query, params).fetchall()

    def set_uploading(self, upload_id: str, row_keys: Iterable[str]) -> None:
        """Mark real rows as being uploaded under ``upload_id``."""
        self.conn.executemany("UPDATE aavso_rows SET upload='uploading', upload_id=?, "
                              "updated=? WHERE space=? AND row_key=?",
                              [(upload_id, _now(), REAL, k) for k in row_keys])

    def set_upload_outcome(self, upload_id: str, row_keys: Iterable[str], state: str) -> None:
        """Set the upload state of the rows of one upload (only if still that upload's)."""
        self.conn.executemany("UPDATE aavso_rows SET upload=?, updated=? WHERE space=? AND "
                              "row_key=? AND upload_id=?",
                              [(state, _now(), REAL, k, upload_id) for k in row_keys])

    def resolve_uncertain(self, *, sent: bool, night: str | None = None,
                          target: str | None = None) -> int:
        """Settle real rows whose upload may or may not have reached WebObs.

        Parameters
        ----------
        sent : bool
            True: they are on WebObs (``sent``); False: upload them again (``pending``).
        night, target : str, optional
            Filters.

        Returns
        -------
        int
            Rows changed.
        """
        where, params = _where(night, target)
        with transaction(self.conn):
            return int(self.conn.execute(
                f"UPDATE aavso_rows SET upload=?, updated=? WHERE space=? AND upload IN "
                f"('uncertain', 'uploading'){where}",
                ["sent" if sent else "pending", _now(), REAL, *params]).rowcount)

    # ------------------------------------------------------------------ per-file state
    def file_state(self, space: str, file: str) -> sqlite3.Row | None:
        """What the writer last committed for one report file (``aavso_files``), or None."""
        return self.conn.execute("SELECT * FROM aavso_files WHERE space=? AND file=?",
                                 (space, file)).fetchone()

    def set_file_state(self, space: str, file: str, **values: Any) -> None:
        """Record (upsert) columns of a file's state (call inside :meth:`transaction`).

        Parameters
        ----------
        space, file : str
            The report file.
        **values
            Columns of ``aavso_files`` (``size``, ``ino``, ``rows``, ``last_jd``, ``last_key``,
            ``obscode``, ``date_type``, ``comments``, ``audit_size``, ``audit_ino``,
            ``sha256``, ``mtime_ns``).
        """
        cols = list(values)
        self.conn.execute("INSERT OR IGNORE INTO aavso_files (space, file) VALUES (?, ?)",
                          (space, file))
        if cols:
            sets = ", ".join(f"{c}=?" for c in cols)
            self.conn.execute(f"UPDATE aavso_files SET {sets} WHERE space=? AND file=?",
                              [*values.values(), space, file])

    def confirm_frames(self, row_keys: Sequence[str], message: str) -> int:
        """Frames whose measurements are in real rows WebObs just confirmed become ``reported``
        with status ``accepted`` (call inside :meth:`transaction`); returns how many changed.

        Parameters
        ----------
        row_keys : sequence of str
            The confirmed rows.
        message : str
            The new submission message.
        """
        keys = [r["mkey"] for k in row_keys for r in self.conn.execute(
            "SELECT mkey FROM aavso_measurements WHERE space=? AND row_key=?", (REAL, k))]
        n = 0
        for mkey in keys:
            n += int(self.conn.execute(
                "UPDATE frames SET state='reported', report_count=report_count + "
                "(state='measured'), submission=json_set(submission, '$.status', 'accepted', "
                "'$.message', ?), updated=? WHERE json_extract(submission, '$.key') = ? "
                "AND state IN ('measured', 'reported') AND "
                "json_extract(submission, '$.status') != 'accepted'",
                (message, _dt.datetime.now(_dt.UTC).timestamp(), mkey)).rowcount)
        return n
