"""The ledger's read side: what ``starnode status``, the light curve and the node ask it.

Split from :mod:`starnode.store.ledger` (the state machine that writes rows) so each stays
short; :class:`~starnode.store.ledger.Ledger` inherits these queries. None of them changes a
row.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from starnode.errors import LEGACY_CATEGORIES, FrameState

from .frame import Frame

__all__ = ["STATES", "LedgerReads"]

STATES = tuple(FrameState)


#: The category column as it reads now: the texts of older versions mapped to today's.
_CATEGORY = ("CASE category " + " ".join(f"WHEN '{old}' THEN '{new}'" for old, new
                                         in LEGACY_CATEGORIES.items()) + " ELSE category END")


def in_clause(values: Sequence[Any]) -> str:
    """``IN (?, ?, ...)`` with one placeholder per value."""
    return f"IN ({','.join('?' * len(values))})"


class LedgerReads:
    """Read-only queries of the ``frames`` table (a base of :class:`Ledger`)."""

    @property
    def conn(self) -> sqlite3.Connection:  # pragma: no cover - provided by Ledger
        """This thread's connection."""
        raise NotImplementedError

    def known(self, path: str, size: int, mtime_ns: int) -> bool:
        """Whether a frame with this identity is in the ledger.

        Parameters
        ----------
        path : str
            The file (made absolute).
        size, mtime_ns : int
            Its size and modification time.

        Returns
        -------
        bool
            True when a row has exactly this path, size and mtime.
        """
        row = self.conn.execute("SELECT 1 FROM frames WHERE path=? AND size=? AND mtime_ns=?",
                                (os.path.abspath(path), size, mtime_ns)).fetchone()
        return row is not None

    def known_identities(self) -> set[tuple[str, int, int]]:
        """Every ``(path, size, mtime_ns)`` in the ledger (for the startup scan)."""
        rows = self.conn.execute("SELECT path, size, mtime_ns FROM frames").fetchall()
        return {(r[0], r[1], r[2]) for r in rows}

    def outstanding(self, ids: Iterable[int]) -> int:
        """How many of the frames ``ids`` still wait for, or are in, measurement.

        Parameters
        ----------
        ids : iterable of int
            Row ids.

        Returns
        -------
        int
            The number of them in ``pending`` or ``processing``.
        """
        id_list = list(ids)
        n = 0
        for i in range(0, len(id_list), 500):
            chunk = id_list[i:i + 500]
            n += int(self.conn.execute(
                f"SELECT COUNT(*) FROM frames WHERE id {in_clause(chunk)} AND state IN (?, ?)",
                [*chunk, FrameState.PENDING, FrameState.PROCESSING]).fetchone()[0])
        return n

    def to_submit(self) -> list[Frame]:
        """Measured frames whose submission never completed (a crash between the two, or an
        ``error`` answer), by time."""
        rows = self.conn.execute(
            "SELECT * FROM frames WHERE state='measured' AND (submission IS NULL OR "
            "json_extract(submission, '$.status') = 'error') ORDER BY jd, id").fetchall()
        return [Frame.from_row(r) for r in rows]

    def get(self, fid: int) -> Frame | None:
        """The frame with row id ``fid``, or None."""
        row = self.conn.execute("SELECT * FROM frames WHERE id=?", (fid,)).fetchone()
        return Frame.from_row(row) if row else None

    def find(self, path: str | os.PathLike[str]) -> list[Frame]:
        """Every row for this path (several when the file was rewritten), oldest first."""
        rows = self.conn.execute("SELECT * FROM frames WHERE path=? ORDER BY id",
                                 (os.path.abspath(os.fspath(path)),)).fetchall()
        return [Frame.from_row(r) for r in rows]

    def frames(self, *, states: Iterable[str] | None = None, target: str | None = None,
               limit: int | None = None, newest_first: bool = False) -> list[Frame]:
        """Frames by last change.

        Parameters
        ----------
        states : iterable of str, optional
            Only these states.
        target : str, optional
            Only this target (AAVSO name, case-insensitive).
        limit : int, optional
            At most this many.
        newest_first : bool
            Most recently changed first (default: oldest first).

        Returns
        -------
        list of Frame
            The matching rows.
        """
        where, args = ["1=1"], []
        if states is not None:
            st = list(states)
            where.append(f"state {in_clause(st)}")
            args.extend(st)
        if target is not None:
            where.append("target = ? COLLATE NOCASE")
            args.append(target)
        order = "DESC" if newest_first else "ASC"
        sql = f"SELECT * FROM frames WHERE {' AND '.join(where)} ORDER BY updated {order}, id " \
              f"{order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [Frame.from_row(r) for r in self.conn.execute(sql, args).fetchall()]

    def counts(self) -> dict[str, int]:
        """Frames by state (every state present, zeros included)."""
        out: dict[str, int] = {str(s): 0 for s in STATES}
        for r in self.conn.execute("SELECT state, COUNT(*) n FROM frames GROUP BY state"):
            out[r["state"]] = r["n"]
        return out

    def problems(self) -> list[dict[str, Any]]:
        """Skipped and failed frames grouped by state, category and reason.

        Returns
        -------
        list of dict
            ``state``, ``category``, ``reason``, ``n`` (how many) and ``example`` (a path),
            most frequent first.
        """
        rows = self.conn.execute(
            f"SELECT state, {_CATEGORY} category, reason, COUNT(*) n, MAX(path) example "
            "FROM frames WHERE state IN ('skipped', 'failed') GROUP BY 1, 2, reason "
            "ORDER BY n DESC, state").fetchall()
        return [dict(r) for r in rows]

    def synthetic(self) -> int:
        """Measured and reported frames whose measurement says ``synthetic`` (made-up frames,
        ``SYNTHET = T``: the demo's), never observations."""
        row = self.conn.execute(
            "SELECT COUNT(*) FROM frames WHERE state IN ('measured', 'reported') AND "
            "json_extract(result, '$.synthetic') = 1").fetchone()
        return int(row[0] or 0)

    def copies(self) -> dict[str, int]:
        """Measured and reported frames that repeat an observation another frame in the same
        state already holds (the same exposure copied twice: its measurement key,
        ``submission.key``, is the same; the outbox has it once), by state."""
        rows = self.conn.execute(
            "SELECT state, COUNT(*) - COUNT(DISTINCT COALESCE(json_extract(submission, "
            "'$.key'), 'frame:' || id)) n FROM frames WHERE state IN ('measured', 'reported') "
            "GROUP BY state").fetchall()
        return {str(r["state"]): int(r["n"]) for r in rows if r["n"]}

    def targets(self) -> list[tuple[str, int]]:
        """``(target, measured frames)`` of every measured target, most frames first."""
        rows = self.conn.execute(
            "SELECT target, COUNT(*) n FROM frames WHERE state IN ('measured', 'reported') "
            "AND target IS NOT NULL GROUP BY target ORDER BY n DESC").fetchall()
        return [(r["target"], r["n"]) for r in rows]

    def measurements(self, target: str) -> list[Frame]:
        """Measured/reported frames of ``target`` (AAVSO name, case-insensitive) by time."""
        rows = self.conn.execute(
            "SELECT * FROM frames WHERE state IN ('measured', 'reported') AND "
            "target = ? COLLATE NOCASE ORDER BY jd, id", (target,)).fetchall()
        return [Frame.from_row(r) for r in rows]
