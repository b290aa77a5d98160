"""The telescope's journal and state (tables of migration 8): what ``starnode observe`` did,
step by step, and whether the mount is parked *as the mount reported it*.

The runner writes a row for every step (gate, unpark, slew, settle, verify, frame, done, skip,
park, parked, park_failed, refused, error, stop); a restart reads :meth:`TelescopeJournal.
progress` to resume an item (frames already taken count) or skip it, never to repeat it.
``telescope_state`` holds the latest facts for ``starnode status`` and the local page:
``parked`` ("yes"/"no"/"unknown", only ever "yes" after the mount said ``AtPark``), ``alarm``
(a failed park: set until a verified park clears it), ``activity`` and ``pid``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .connection import transaction
from .database import StoreSession

__all__ = ["ItemProgress", "TelescopeJournal"]

#: Steps after which an item is over (it is never started again for the same plan).
FINAL_STEPS = ("done", "skip")


@dataclass(frozen=True)
class ItemProgress:
    """An item's journal so far: frames taken, and whether it is over."""

    frames: int
    finished: bool
    last_step: str


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class TelescopeJournal(StoreSession):
    """Tables ``telescope_journal`` and ``telescope_state`` through one connection."""

    def record(self, t: datetime, step: str, detail: str = "", *, night: str | None = None,
               plan_hash: str | None = None, item: int | None = None,
               target: str | None = None, frames: int | None = None) -> None:
        """Append one step (committed before the call returns)."""
        with self._lock, transaction(self.conn):
            self.conn.execute(
                "INSERT INTO telescope_journal (t_utc, night, plan_hash, item, target, step, "
                "detail, frames) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (_iso(t), night, plan_hash, item, target, step, detail, frames))
            self.conn.execute(
                "INSERT OR REPLACE INTO telescope_state (key, value, updated) VALUES "
                "('activity', ?, ?)", (f"{step} {target or ''} {detail}".strip()[:300],
                                       _iso(t)))

    def progress(self, plan_hash: str) -> dict[int, ItemProgress]:
        """Per item of the plan: frames taken, finished or not, the last step."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT item, step, frames FROM telescope_journal WHERE plan_hash=? AND item IS "
                "NOT NULL ORDER BY id", (plan_hash,)).fetchall()
        out: dict[int, ItemProgress] = {}
        for r in rows:
            prev = out.get(r["item"], ItemProgress(0, False, ""))
            frames = max(prev.frames, int(r["frames"] or 0))
            out[r["item"]] = ItemProgress(frames, prev.finished or r["step"] in FINAL_STEPS,
                                          r["step"])
        return out

    def steps(self, plan_hash: str | None = None, limit: int | None = None
              ) -> list[dict[str, Any]]:
        """Journal rows (oldest first), of one plan or all."""
        sql = "SELECT * FROM telescope_journal"
        args: list[Any] = []
        if plan_hash is not None:
            sql += " WHERE plan_hash=?"
            args.append(plan_hash)
        sql += " ORDER BY id"
        with self._lock:
            rows = [dict(r) for r in self.conn.execute(sql, args).fetchall()]
        return rows[-limit:] if limit else rows

    def set_state(self, t: datetime, **values: str | None) -> None:
        """Set keys of ``telescope_state`` (a None value deletes the key)."""
        with self._lock, transaction(self.conn):
            for key, value in values.items():
                if value is None:
                    self.conn.execute("DELETE FROM telescope_state WHERE key=?", (key,))
                else:
                    self.conn.execute("INSERT OR REPLACE INTO telescope_state (key, value, "
                                      "updated) VALUES (?, ?, ?)", (key, value, _iso(t)))

    def state(self) -> dict[str, dict[str, str]]:
        """``{key: {"value", "updated"}}``."""
        with self._lock:
            rows = self.conn.execute("SELECT key, value, updated FROM telescope_state"
                                     ).fetchall()
        return {r["key"]: {"value": r["value"], "updated": r["updated"]} for r in rows}
