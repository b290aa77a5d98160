"""The hub queue: measurements waiting to be pushed to the network hub (store and forward).

Why in the node's own database, beside the frames: the hub may be down, the network may drop,
the node may be killed; none of that may lose a measurement or make the node wait. A
measurement is first written here (a local insert under its exactly-once key: frame content
hash and JD, so the same frame never enters twice), then the forwarder
(:mod:`starnode.node.forwarder`) pushes the ``queued`` rows in batches and marks them ``sent``, or
``rejected`` with the hub's reason (never resent). ``starnode status`` reads :meth:`summary`.

The table is created by migration 3 (:mod:`starnode.store.migrations`); this module is the only
code that reads or writes it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from .connection import transaction
from .database import StoreSession

__all__ = ["QUEUED", "REJECTED", "SENT", "HubQueue"]

#: Row states: waiting, acknowledged by the hub, refused by the hub (kept with the reason).
QUEUED, SENT, REJECTED = "queued", "sent", "rejected"


class HubQueue(StoreSession):
    """Table ``hub_queue`` through one connection (thread-safe: calls are serialised)."""

    def enqueue(self, key: str, payload: Mapping[str, Any], frame_id: int | None = None) -> bool:
        """Queue one wire record under its exactly-once ``key``.

        Parameters
        ----------
        key : str
            Frame content hash and JD (:func:`starnode.node.forwarder.queue_key`).
        payload : Mapping
            The wire record (JSON-able).
        frame_id : int, optional
            The frame's ledger row.

        Returns
        -------
        bool
            False when the key was queued before (nothing changed).
        """
        with self._lock:
            cur = self.conn.execute(
                "INSERT OR IGNORE INTO hub_queue (key, frame_id, payload, created) "
                "VALUES (?, ?, ?, ?)", (key, frame_id, json.dumps(dict(payload)), time.time()))
        return cur.rowcount == 1

    def pending(self, limit: int) -> list[tuple[str, dict[str, Any]]]:
        """The oldest ``queued`` rows.

        Parameters
        ----------
        limit : int
            At most this many.

        Returns
        -------
        list of (str, dict)
            Key and wire record, oldest first.
        """
        with self._lock:
            rows = self.conn.execute(
                "SELECT key, payload FROM hub_queue WHERE state = ? ORDER BY created, key "
                "LIMIT ?", (QUEUED, int(limit))).fetchall()
        return [(str(r["key"]), json.loads(r["payload"])) for r in rows]

    def mark(self, keys: list[str], state: str, error: str | None = None) -> None:
        """Set the state of rows after the hub answered (one transaction).

        Parameters
        ----------
        keys : list of str
            The rows.
        state : str
            :data:`SENT` or :data:`REJECTED` (or :data:`QUEUED` to retry).
        error : str, optional
            The hub's reason (for a rejection).
        """
        if not keys:
            return
        now = time.time()
        with self._lock, transaction(self.conn):
            self.conn.executemany(
                "UPDATE hub_queue SET state = ?, last_error = ?, sent = ?, "
                "attempts = attempts + 1 WHERE key = ?",
                [(state, error, now if state == SENT else None, k) for k in keys])

    def failed_attempt(self, keys: list[str], error: str) -> None:
        """Note a failed push of rows that stay queued.

        Parameters
        ----------
        keys : list of str
            The rows.
        error : str
            What went wrong (shown by ``starnode status``).
        """
        with self._lock, transaction(self.conn):
            self.conn.executemany("UPDATE hub_queue SET attempts = attempts + 1, "
                                  "last_error = ? WHERE key = ?", [(error, k) for k in keys])

    def counts(self) -> dict[str, int]:
        """Rows by state (only states present).

        Returns
        -------
        dict
            State -> rows.
        """
        with self._lock:
            rows = self.conn.execute("SELECT state, COUNT(*) FROM hub_queue GROUP BY state")
            return {str(r[0]): int(r[1]) for r in rows}

    def summary(self) -> dict[str, Any]:
        """The queue as ``starnode status`` shows it.

        Returns
        -------
        dict
            ``counts`` (state -> rows), ``last_sent`` (Unix time or None) and ``errors`` (the
            five newest rows not sent that carry an error: ``key``, ``last_error``, ``state``).
        """
        counts = self.counts()
        with self._lock:
            last = self.conn.execute("SELECT MAX(sent) FROM hub_queue").fetchone()[0]
            errors = [dict(r) for r in self.conn.execute(
                "SELECT key, last_error, state FROM hub_queue WHERE last_error IS NOT NULL "
                "AND state != ? ORDER BY created DESC LIMIT 5", (SENT,))]
        return {"counts": counts, "last_sent": last, "errors": errors}
