"""The ledger: a durable record and work queue of every frame the node has seen.

One SQLite table (``frames``) in ``config.db_path`` (the node's embedded database, no server).
A frame is identified by its path, size and modification time: a file rewritten in place is new
work and gets a new row. Each row walks through these states::

    pending -> processing -> measured -> reported
                          -> skipped   (the pipeline refused it: reason and category kept)
                          -> failed    (an error or a crashed worker: the error kept)

``processing`` rows carry an owner (``host:pid:token``) and a lease; rows whose owner is gone
(a node killed with SIGKILL) or whose lease ran out go back to ``pending`` on the next start
(:meth:`Ledger.recover`), so no frame is lost. A frame's result is written once, in the same
transaction that leaves ``processing``, and only by the owner of the claim, so no frame is
measured twice into the ledger. ``measured`` rows whose submission was never recorded are handed
to :func:`starnode.aavso.submit` again after a crash; ``submit`` itself never writes the same
observation twice.

Every change is a transaction (``BEGIN IMMEDIATE``); each thread has its own connection.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Config, resolve
from .db import connect, transaction

log = logging.getLogger(__name__)

__all__ = [
    "DONE_STATES",
    "FAILED",
    "MEASURED",
    "PENDING",
    "PROCESSING",
    "REPORTED",
    "SKIPPED",
    "STATES",
    "Frame",
    "Ledger",
    "file_identity",
    "make_owner",
]

PENDING = "pending"
PROCESSING = "processing"
MEASURED = "measured"
REPORTED = "reported"
SKIPPED = "skipped"
FAILED = "failed"
STATES = (PENDING, PROCESSING, MEASURED, REPORTED, SKIPPED, FAILED)
#: States in which a frame needs no more measuring.
DONE_STATES = (MEASURED, REPORTED, SKIPPED, FAILED)

#: ``aavso.submit`` statuses meaning the observation is in a report (``queued``: in the outbox;
#: ``duplicate``: already reported earlier, e.g. before a crash). ``skipped`` (quality gate) and
#: ``rejected`` (WebObs refused) leave the frame ``measured`` with the answer kept; ``error`` is
#: retried on the next start.
REPORTED_STATUSES = frozenset({"queued", "dry_run", "accepted", "duplicate", "ok"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS frames (
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
);
CREATE INDEX IF NOT EXISTS frames_state ON frames (state, crashes, first_seen);
CREATE INDEX IF NOT EXISTS frames_target ON frames (target, jd);
"""


def make_owner() -> str:
    """A claim owner for this process: ``host:pid:token`` (the token tells runs apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user
        return True
    except OSError:
        return False
    return True


def file_identity(path: str | os.PathLike[str]) -> tuple[str, int, int]:
    """``(absolute path, size, mtime_ns)`` of a file: what identifies a frame."""
    p = os.path.abspath(os.fspath(path))
    st = os.stat(p)
    return p, int(st.st_size), int(st.st_mtime_ns)


def _in(values: Sequence[Any]) -> str:
    """``IN (?, ?, ...)`` with one placeholder per value."""
    return f"IN ({','.join('?' * len(values))})"


def _clean(value: Any) -> Any:
    """Make a result JSON-safe: NaN/inf -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    item = getattr(value, "item", None)  # numpy scalar
    if callable(item):
        try:
            return _clean(item())
        except (TypeError, ValueError):
            pass
    return str(value)


def _dumps(value: Any) -> str:
    return json.dumps(_clean(value), allow_nan=False, sort_keys=True)


def _float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


@dataclass(frozen=True)
class Frame:
    """One ledger row."""

    id: int
    path: str
    size: int
    mtime_ns: int
    state: str
    source: str | None
    category: str | None
    reason: str | None
    target: str | None
    jd: float | None
    magnitude: float | None
    uncertainty: float | None
    quality: str | None
    result: dict[str, Any] | None
    submission: dict[str, Any] | None
    owner: str | None
    attempts: int
    crashes: int
    measure_count: int
    report_count: int
    first_seen: float
    updated: float
    finished: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Frame:
        d = dict(row)
        d.pop("lease_until", None)
        d["result"] = json.loads(d["result"]) if d["result"] else None
        d["submission"] = json.loads(d["submission"]) if d["submission"] else None
        return cls(**d)

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class Ledger:
    """The frames table of the node's database. Safe to share between threads."""

    def __init__(self, db: Config | Mapping[str, Any] | str | os.PathLike[str] | None = None,
                 *, path: str | os.PathLike[str] | None = None) -> None:
        if path is None:
            path = resolve(db).db_path
        self.path = Path(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.conn.executescript(_SCHEMA)

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._all.clear()
        self._local = threading.local()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ adding
    def add(self, path: str | os.PathLike[str], *, source: str = "watch",
            size: int | None = None, mtime_ns: int | None = None) -> tuple[int, bool]:
        """Record a frame (stat'ed now unless size and mtime are given).

        Returns ``(row id, True)`` for new work, ``(row id, False)`` for a frame already known
        with this path, size and mtime. Raises ``OSError`` when the file cannot be stat'ed.
        """
        if size is None or mtime_ns is None:
            p, size, mtime_ns = file_identity(path)
        else:
            p = os.path.abspath(os.fspath(path))
        now = time.time()
        with transaction(self.conn) as c:
            cur = c.execute(
                "INSERT OR IGNORE INTO frames (path, size, mtime_ns, state, source, first_seen,"
                " updated) VALUES (?, ?, ?, 'pending', ?, ?, ?)",
                (p, size, mtime_ns, source, now, now))
            if cur.rowcount:
                return int(cur.lastrowid or 0), True
            row = c.execute("SELECT id FROM frames WHERE path=? AND size=? AND mtime_ns=?",
                            (p, size, mtime_ns)).fetchone()
            return int(row["id"]), False

    def known(self, path: str, size: int, mtime_ns: int) -> bool:
        row = self.conn.execute("SELECT 1 FROM frames WHERE path=? AND size=? AND mtime_ns=?",
                                (os.path.abspath(path), size, mtime_ns)).fetchone()
        return row is not None

    def known_identities(self) -> set[tuple[str, int, int]]:
        """Every ``(path, size, mtime_ns)`` in the ledger (for the startup scan)."""
        rows = self.conn.execute("SELECT path, size, mtime_ns FROM frames").fetchall()
        return {(r[0], r[1], r[2]) for r in rows}

    # ------------------------------------------------------------------ claiming
    def claim(self, owner: str, *, limit: int = 1, lease_s: float = 3600.0,
              ids: Iterable[int] | None = None, suspects: bool = True) -> list[Frame]:
        """Atomically move up to ``limit`` pending frames to ``processing`` for ``owner``.

        Oldest first; frames that were in hand when a worker crashed (``crashes > 0``) only when
        ``suspects`` is true (the caller runs them alone, to tell which one crashes).
        ``ids`` restricts the claim to those rows (``starnode process``).
        """
        if limit <= 0:
            return []
        now = time.time()
        where = "state='pending'"
        args: list[Any] = []
        if not suspects:
            where += " AND crashes=0"
        if ids is not None:
            id_list = list(ids)
            if not id_list:
                return []
            where += f" AND id {_in(id_list)}"
            args.extend(id_list)
        with transaction(self.conn) as c:
            rows = c.execute(f"SELECT id FROM frames WHERE {where} "
                             "ORDER BY crashes, first_seen, id LIMIT ?",
                             [*args, limit]).fetchall()
            got = [r["id"] for r in rows]
            for fid in got:
                c.execute("UPDATE frames SET state='processing', owner=?, lease_until=?, "
                          "attempts=attempts+1, updated=? WHERE id=? AND state='pending'",
                          (owner, now + lease_s, now, fid))
            if not got:
                return []
            out = c.execute(f"SELECT * FROM frames WHERE id {_in(got)} "
                            "ORDER BY crashes, first_seen, id", got).fetchall()
        return [Frame.from_row(r) for r in out]

    def _finish(self, fid: int, owner: str, sets: str, args: list[Any]) -> bool:
        now = time.time()
        with transaction(self.conn) as c:
            cur = c.execute(f"UPDATE frames SET {sets}, owner=NULL, lease_until=NULL, updated=?,"
                            " finished=? WHERE id=? AND state='processing' AND owner=?",
                            [*args, now, now, fid, owner])
            ok = cur.rowcount == 1
        if not ok:
            log.warning("frame #%d is no longer claimed by this node; its outcome is dropped",
                        fid)
        return ok

    def record_measured(self, fid: int, owner: str, result: Mapping[str, Any]) -> bool:
        """processing -> measured, with the pipeline's result (once; False if not our claim)."""
        return self._finish(
            fid, owner,
            "state='measured', result=?, target=?, jd=?, magnitude=?, uncertainty=?, quality=?,"
            " category=NULL, reason=NULL, submission=NULL, measure_count=measure_count+1",
            [_dumps(result), result.get("target_name"),
             _float(result.get("hjd", result.get("jd"))), _float(result.get("magnitude")),
             _float(result.get("uncertainty")), result.get("quality_flag")])

    def record_skipped(self, fid: int, owner: str, reason: str, category: str | None) -> bool:
        """processing -> skipped (the pipeline refused the frame), with the reason."""
        return self._finish(fid, owner, "state='skipped', reason=?, category=?, result=NULL",
                            [reason, category])

    def record_failed(self, fid: int, owner: str, error: str, *, crashed: bool = False) -> bool:
        """processing -> failed, with the error."""
        return self._finish(
            fid, owner,
            "state='failed', reason=?, category=?, crashes=crashes+?",
            [error, "crash" if crashed else "error", 1 if crashed else 0])

    def requeue(self, fid: int, owner: str, *, crashed: bool = False) -> bool:
        """processing -> pending (shutdown, or a crash shared by several frames)."""
        with transaction(self.conn) as c:
            cur = c.execute("UPDATE frames SET state='pending', owner=NULL, lease_until=NULL, "
                            "crashes=crashes+?, updated=? "
                            "WHERE id=? AND state='processing' AND owner=?",
                            (1 if crashed else 0, time.time(), fid, owner))
            return cur.rowcount == 1

    def record_submission(self, fid: int, submission: Mapping[str, Any]) -> str:
        """Keep ``submit``'s answer; measured -> reported when the observation is in a report.

        Returns the new state.
        """
        status = str(submission.get("status", "")).lower()
        reported = status in REPORTED_STATUSES or bool(submission.get("accepted"))
        with transaction(self.conn) as c:
            if reported:
                c.execute("UPDATE frames SET state='reported', submission=?, "
                          "report_count=report_count+1, updated=? "
                          "WHERE id=? AND state='measured'",
                          (_dumps(submission), time.time(), fid))
            else:
                c.execute("UPDATE frames SET submission=?, updated=? "
                          "WHERE id=? AND state='measured'",
                          (_dumps(submission), time.time(), fid))
            row = c.execute("SELECT state FROM frames WHERE id=?", (fid,)).fetchone()
        return str(row["state"]) if row else ""

    def to_submit(self) -> list[Frame]:
        """Measured frames whose submission never completed (a crash between the two)."""
        rows = self.conn.execute(
            "SELECT * FROM frames WHERE state='measured' AND (submission IS NULL OR "
            "json_extract(submission, '$.status') = 'error') ORDER BY jd, id").fetchall()
        return [Frame.from_row(r) for r in rows]

    # ------------------------------------------------------------------ recovery / retry
    def recover(self, owner: str | None = None, *, now: float | None = None) -> int:
        """Stale ``processing`` rows -> ``pending``. A claim is stale when its lease ran out,
        its process is gone, or it belongs to an earlier run inside this same process.
        Returns how many rows were requeued."""
        now = time.time() if now is None else now
        host = socket.gethostname()
        stale: list[int] = []
        rows = self.conn.execute(
            "SELECT id, owner, lease_until FROM frames WHERE state='processing'").fetchall()
        for r in rows:
            parts = str(r["owner"] or "").split(":")
            expired = r["lease_until"] is None or r["lease_until"] < now
            if expired or len(parts) != 3 or parts[0] != host:
                stale.append(r["id"])
                continue
            try:
                pid = int(parts[1])
            except ValueError:
                stale.append(r["id"])
                continue
            if not _pid_alive(pid) or (pid == os.getpid() and r["owner"] != owner):
                stale.append(r["id"])
        if not stale:
            return 0
        with transaction(self.conn) as c:
            n = 0
            for fid in stale:
                n += c.execute("UPDATE frames SET state='pending', owner=NULL, lease_until=NULL,"
                               " updated=? WHERE id=? AND state='processing'",
                               (time.time(), fid)).rowcount
        log.info("requeued %d frame(s) left in processing by a stopped node", n)
        return n

    def reset(self, states: Iterable[str], *, ids: Iterable[int] | None = None,
              category: str | None = None) -> list[int]:
        """Put frames in ``states`` back to ``pending`` (retry / --force). Returns their ids.

        The previous reason is cleared; a previous result stays until a new one replaces it.
        """
        states = [s for s in states if s in DONE_STATES]
        if not states:
            return []
        where = f"state {_in(states)}"
        args: list[Any] = list(states)
        if category is not None:
            where += " AND category=?"
            args.append(category)
        if ids is not None:
            id_list = list(ids)
            if not id_list:
                return []
            where += f" AND id {_in(id_list)}"
            args.extend(id_list)
        with transaction(self.conn) as c:
            got = [r["id"] for r in c.execute(f"SELECT id FROM frames WHERE {where}", args)]
            for fid in got:
                c.execute("UPDATE frames SET state='pending', reason=NULL, category=NULL, "
                          "crashes=0, updated=? WHERE id=?", (time.time(), fid))
        return got

    # ------------------------------------------------------------------ reading
    def get(self, fid: int) -> Frame | None:
        row = self.conn.execute("SELECT * FROM frames WHERE id=?", (fid,)).fetchone()
        return Frame.from_row(row) if row else None

    def find(self, path: str | os.PathLike[str]) -> list[Frame]:
        """Every row for this path (several when the file was rewritten), oldest first."""
        rows = self.conn.execute("SELECT * FROM frames WHERE path=? ORDER BY id",
                                 (os.path.abspath(os.fspath(path)),)).fetchall()
        return [Frame.from_row(r) for r in rows]

    def frames(self, *, states: Iterable[str] | None = None, target: str | None = None,
               limit: int | None = None, newest_first: bool = False) -> list[Frame]:
        where, args = ["1=1"], []
        if states is not None:
            st = list(states)
            where.append(f"state {_in(st)}")
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
        out = dict.fromkeys(STATES, 0)
        for r in self.conn.execute("SELECT state, COUNT(*) n FROM frames GROUP BY state"):
            out[r["state"]] = r["n"]
        return out

    def problems(self) -> list[dict[str, Any]]:
        """Skipped and failed frames grouped by state, category and reason (most frequent
        first), with an example file and the count."""
        rows = self.conn.execute(
            "SELECT state, category, reason, COUNT(*) n, MAX(path) example FROM frames "
            "WHERE state IN ('skipped', 'failed') GROUP BY state, category, reason "
            "ORDER BY n DESC, state").fetchall()
        return [dict(r) for r in rows]

    def targets(self) -> list[tuple[str, int]]:
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
