"""The ledger: a durable record and work queue of every frame the node has seen.

One table (``frames``) of the node's database (:class:`~starnode.store.Store`). A frame is
identified by its path, size and modification time: a file rewritten in place is new work and
gets a new row. Each row walks through these states (:class:`~starnode.errors.FrameState`)::

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

The measurement is kept as JSON (``Measurement.to_dict()``), which carries its layout version
(``schema_version``; absent in rows written by 0.1.0, whose dicts are layout 1), so a later
reader knows which layout it is reading (:attr:`Frame.schema_version`).

Every change is a transaction (``BEGIN IMMEDIATE``); each thread has its own connection.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starnode.errors import LEGACY_CATEGORIES, FrameState, RejectCategory, SubmitStatus
from starnode.util.proc import pid_alive
from starnode.util.values import finite_float

from .connection import transaction
from .database import Store, db_path
from .frame import Frame, category_to_store, dumps, file_identity, json_safe, make_owner
from .ledger_reads import STATES, LedgerReads, in_clause

if TYPE_CHECKING:
    from starnode.config import Config
    from starnode.records import Measurement

log = logging.getLogger(__name__)

__all__ = [
    "DONE_STATES",
    "FAILED",
    "MEASURED",
    "PENDING",
    "PROCESSING",
    "REPORTED",
    "REPORTED_STATUSES",
    "SKIPPED",
    "STATES",
    "Frame",
    "Ledger",
    "file_identity",
    "make_owner",
]

PENDING = FrameState.PENDING
PROCESSING = FrameState.PROCESSING
MEASURED = FrameState.MEASURED
REPORTED = FrameState.REPORTED
SKIPPED = FrameState.SKIPPED
FAILED = FrameState.FAILED
#: States in which a frame needs no more measuring.
DONE_STATES = (MEASURED, REPORTED, SKIPPED, FAILED)

#: ``aavso.submit`` statuses meaning the observation is in a report (``queued``: in the outbox;
#: ``duplicate``: already reported earlier, e.g. before a crash). ``skipped`` (quality gate) and
#: ``rejected`` (WebObs refused) leave the frame ``measured`` with the answer kept; ``error`` is
#: retried on the next start.
REPORTED_STATUSES = frozenset({SubmitStatus.QUEUED, SubmitStatus.DRY_RUN,
                               SubmitStatus.ACCEPTED, SubmitStatus.DUPLICATE, "ok"})


def _only_ids(where: str, args: list[Any], ids: Iterable[int] | None) -> str | None:
    """``where`` restricted to the rows ``ids`` (their values appended to ``args``); None when
    ``ids`` is empty, i.e. nothing can match."""
    if ids is None:
        return where
    id_list = list(ids)
    if not id_list:
        return None
    args.extend(id_list)
    return f"{where} AND id {in_clause(id_list)}"


def _as_dict(result: Measurement | Mapping[str, Any]) -> dict[str, Any]:
    """A measurement as its plain dict (a :class:`~starnode.records.Measurement` or a dict)."""
    to_dict = getattr(result, "to_dict", None)
    if callable(to_dict):
        return dict(to_dict())
    if isinstance(result, Mapping):
        return dict(result)
    raise TypeError(f"a measurement must be a Measurement or a mapping, not "
                    f"{type(result).__name__}")


class Ledger(LedgerReads):
    """The frames table of the node's database. Safe to share between threads.

    Parameters
    ----------
    db : Config, mapping, str, os.PathLike or None
        What :func:`starnode.config.resolve` accepts (the database is its ``db_path``).
    path : str or os.PathLike, optional
        The database file itself (instead of ``db``).
    store : Store, optional
        An open :class:`~starnode.store.Store` to share (instead of ``db``/``path``).

    Raises
    ------
    StoreError
        The database is newer than this code or cannot be used.
    """

    def __init__(self, db: Config | Mapping[str, Any] | str | os.PathLike[str] | None = None,
                 *, path: str | os.PathLike[str] | None = None,
                 store: Store | None = None) -> None:
        if store is None:
            if path is None:
                from starnode.config import resolve

                path = db_path(resolve(db))
            store = Store.open(path)
        self.store = store
        self.path = Path(store.path)

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection."""
        return self.store.conn

    def close(self) -> None:
        """Close every connection (all threads)."""
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ adding
    def add(self, path: str | os.PathLike[str], *, source: str = "watch",
            size: int | None = None, mtime_ns: int | None = None) -> tuple[int, bool]:
        """Record a frame as ``pending`` work, once per identity.

        Parameters
        ----------
        path : str or os.PathLike
            The frame file.
        source : str
            Who found it (``watch``, ``scan``, ``process``).
        size, mtime_ns : int, optional
            Its identity when already known (else the file is stat'ed now).

        Returns
        -------
        tuple of (int, bool)
            ``(row id, True)`` for new work, ``(row id, False)`` for a frame already known with
            this path, size and mtime.

        Raises
        ------
        OSError
            The file cannot be stat'ed.
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

    # ------------------------------------------------------------------ claiming
    def claim(self, owner: str, *, limit: int = 1, lease_s: float = 3600.0,
              ids: Iterable[int] | None = None, suspects: bool = True) -> list[Frame]:
        """Atomically move up to ``limit`` pending frames to ``processing`` for ``owner``.

        Parameters
        ----------
        owner : str
            The claimant (:func:`make_owner`).
        limit : int
            At most this many frames, oldest first.
        lease_s : float
            Seconds after which the claim is stale even if its owner lives.
        ids : iterable of int, optional
            Only these rows (``starnode process``).
        suspects : bool
            Include frames that were in hand when a worker crashed (``crashes > 0``); the
            caller runs those alone, to tell which one crashes.

        Returns
        -------
        list of Frame
            The claimed frames, now ``processing``.
        """
        if limit <= 0:
            return []
        now = time.time()
        where = "state='pending'"
        args: list[Any] = []
        if not suspects:
            where += " AND crashes=0"
        restricted = _only_ids(where, args, ids)
        if restricted is None:
            return []
        where = restricted
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
            out = c.execute(f"SELECT * FROM frames WHERE id {in_clause(got)} "
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

    def record_measured(self, fid: int, owner: str,
                        result: Measurement | Mapping[str, Any]) -> bool:
        """processing -> measured, with the measurement (once; only by the claim's owner).

        Parameters
        ----------
        fid : int
            The frame's row id.
        owner : str
            The claim's owner (:func:`make_owner`).
        result : Measurement or mapping
            The measurement, or its plain dict (``run_pipeline``'s result).

        Returns
        -------
        bool
            False (and nothing written) when the frame is not claimed by ``owner``.
        """
        d = _as_dict(result)
        return self._finish(
            fid, owner,
            "state='measured', result=?, target=?, jd=?, magnitude=?, uncertainty=?, "
            "quality=?, category=NULL, reason=NULL, submission=NULL, "
            "measure_count=measure_count+1",
            [dumps(d), d.get("target_name"), finite_float(d.get("hjd", d.get("jd"))),
             finite_float(d.get("magnitude")), finite_float(d.get("uncertainty")),
             json_safe(d.get("quality_flag"))])

    def record_skipped(self, fid: int, owner: str, reason: str,
                       category: RejectCategory | str | None) -> bool:
        """processing -> skipped (the pipeline refused the frame), with the reason.

        Parameters
        ----------
        fid : int
            The frame's row id.
        owner : str
            The claim's owner.
        reason : str
            Why, in a sentence.
        category : RejectCategory, str or None
            The kind of reason (a :class:`~starnode.errors.RejectCategory` or its value; see
            :func:`~starnode.store.frame.category_to_store`).

        Returns
        -------
        bool
            False (nothing written) when the frame is not claimed by ``owner``.
        """
        return self._finish(fid, owner, "state='skipped', reason=?, category=?, result=NULL",
                            [reason, category_to_store(category)])

    def record_failed(self, fid: int, owner: str, error: str, *, crashed: bool = False,
                      category: RejectCategory | str | None = None) -> bool:
        """processing -> failed, with the error.

        Parameters
        ----------
        fid : int
            The frame's row id.
        owner : str
            The claim's owner.
        error : str
            What went wrong.
        crashed : bool
            A worker process died with it or was stopped (``crashes`` counted; category
            ``crashed`` unless ``category`` says more).
        category : RejectCategory or str, optional
            The kind of failure (``timeout``...); default ``crashed`` or ``error``. Rows written
            ``crash`` by 0.2.0 are read as ``crashed``.

        Returns
        -------
        bool
            False (nothing written) when the frame is not claimed by ``owner``.
        """
        return self._finish(
            fid, owner,
            "state='failed', reason=?, category=?, crashes=crashes+?",
            [error, category_to_store(category or (RejectCategory.CRASHED if crashed
                                                    else RejectCategory.ERROR)),
             1 if crashed else 0])

    def requeue(self, fid: int, owner: str, *, crashed: bool = False) -> bool:
        """processing -> pending (shutdown, or a crash shared by several frames).

        Parameters
        ----------
        fid : int
            The frame's row id.
        owner : str
            The claim's owner.
        crashed : bool
            Count a crash against the frame.

        Returns
        -------
        bool
            False when the frame is not claimed by ``owner``.
        """
        with transaction(self.conn) as c:
            cur = c.execute("UPDATE frames SET state='pending', owner=NULL, lease_until=NULL, "
                            "crashes=crashes+?, updated=? "
                            "WHERE id=? AND state='processing' AND owner=?",
                            (1 if crashed else 0, time.time(), fid, owner))
            return cur.rowcount == 1

    def record_submission(self, fid: int, submission: Mapping[str, Any]) -> str:
        """Keep ``submit``'s answer; measured -> reported when the observation is in a report.

        Parameters
        ----------
        fid : int
            The frame's row id (a ``measured`` frame).
        submission : mapping
            :func:`starnode.aavso.submit`'s answer; its ``status`` decides
            (:data:`REPORTED_STATUSES`).

        Returns
        -------
        str
            The frame's state afterwards (a :class:`~starnode.errors.FrameState`), or ``""``
            when there is no such frame.
        """
        status = str(submission.get("status", "")).lower()
        reported = status in REPORTED_STATUSES or bool(submission.get("accepted"))
        with transaction(self.conn) as c:
            if reported:
                c.execute("UPDATE frames SET state='reported', submission=?, "
                          "report_count=report_count+1, updated=? "
                          "WHERE id=? AND state='measured'",
                          (dumps(submission), time.time(), fid))
            else:
                c.execute("UPDATE frames SET submission=?, updated=? "
                          "WHERE id=? AND state='measured'",
                          (dumps(submission), time.time(), fid))
            row = c.execute("SELECT state FROM frames WHERE id=?", (fid,)).fetchone()
        if row is None:
            return ""
        state = str(row["state"])
        return FrameState(state) if state in STATES else state

    # ------------------------------------------------------------------ recovery / retry
    def recover(self, owner: str | None = None, *, now: float | None = None) -> int:
        """Stale ``processing`` rows -> ``pending``.

        A claim is stale when its lease ran out, its process is gone (or on another host), or
        it belongs to an earlier run inside this same process.

        Parameters
        ----------
        owner : str, optional
            This run's owner: its own claims are kept.
        now : float, optional
            The time to compare leases with (default: now).

        Returns
        -------
        int
            How many rows were requeued.
        """
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
            if not pid_alive(pid) or (pid == os.getpid() and r["owner"] != owner):
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
        """Put done frames back to ``pending`` (retry, ``--force``).

        The previous reason is cleared; a previous result stays until a new one replaces it.

        Parameters
        ----------
        states : iterable of str
            Which done states (others are ignored).
        ids : iterable of int, optional
            Only these rows.
        category : str, optional
            Only frames with this reject category.

        Returns
        -------
        list of int
            The row ids put back.
        """
        states = [s for s in states if s in DONE_STATES]
        if not states:
            return []
        where = f"state {in_clause(states)}"
        args: list[Any] = list(states)
        if category is not None:  # 0.2.0 wrote ``crash`` for ``crashed``
            alias = [k for k, v in LEGACY_CATEGORIES.items() if v == category]
            where += f" AND category {in_clause([category, *alias])}"
            args.extend([category, *alias])
        restricted = _only_ids(where, args, ids)
        if restricted is None:
            return []
        where = restricted
        with transaction(self.conn) as c:
            got = [r["id"] for r in c.execute(f"SELECT id FROM frames WHERE {where}", args)]
            for fid in got:
                c.execute("UPDATE frames SET state='pending', reason=NULL, category=NULL, "
                          "crashes=0, updated=? WHERE id=?", (time.time(), fid))
        return got
