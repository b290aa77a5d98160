"""Table ``check_stars``: the one check star of each target and observing night.

Why it is stored: the check star's K - C over a night is only useful for review when it is the
same star on every row of the night (issue 11: a demo night went 000-BCP-207 -> 241 -> 202 ->
183). The choice is made once, at the night's first good frame, and a restarted node (or a pool
worker in another process) must find it again: hence a row in the node's database, not a module
global. A database that cannot be read or written is logged at WARNING and the caller falls back
to choosing per frame, as before.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from .database import StoreTable

log = logging.getLogger(__name__)

__all__ = ["CheckStarChoice", "CheckStars"]


@dataclass(frozen=True)
class CheckStarChoice:
    """The check star kept for one target and night."""

    label: str
    auid: str | None
    file: str | None


class CheckStars(StoreTable):
    """The per-night check-star choices."""

    def get(self, target: str, night: str) -> CheckStarChoice | None:
        """The chosen check star of ``target`` on ``night``.

        Parameters
        ----------
        target : str
            Normalised target name.
        night : str
            Observing night (YYYY-MM-DD).

        Returns
        -------
        CheckStarChoice or None
            None when none was chosen yet or the database cannot be read (logged).
        """
        rows = self._read("SELECT label, auid, file FROM check_stars WHERE target = ? AND "
                          "night = ?", (target, night), "check-star table in %s unreadable (%s)")
        return CheckStarChoice(rows[0]["label"], rows[0]["auid"], rows[0]["file"]) if rows \
            else None

    def between(self, first: str, last: str) -> dict[tuple[str, str], str]:
        """The labels chosen on the nights from ``first`` to ``last`` (YYYY-MM-DD, inclusive).

        What the node hands a worker: the choices a frame of those nights may need.

        Returns
        -------
        dict
            ``(target, night) -> label``; empty when the database cannot be read (logged).
        """
        rows = self._read("SELECT target, night, label FROM check_stars WHERE night BETWEEN ? "
                          "AND ?", (first, last), "check-star table in %s unreadable (%s)")
        return {(r["target"], r["night"]): r["label"] for r in rows or []}

    def choose(self, target: str, night: str, label: str, auid: str | None,
               file: str | None = None) -> CheckStarChoice:
        """Keep ``label`` as the night's check star unless one is kept already.

        Two processes choosing at once: the first write wins and both get its choice.

        Parameters
        ----------
        target, night : str
            As in :meth:`get`.
        label : str
            The comp's chart label.
        auid : str or None
            Its AUID.
        file : str, optional
            The frame it was chosen on.

        Returns
        -------
        CheckStarChoice
            The night's choice (the proposed one, or the one already kept).
        """
        now = datetime.now(UTC).isoformat(timespec="seconds")
        if not self._write("INSERT OR IGNORE INTO check_stars (target, night, label, auid, "
                           "chosen_utc, file) VALUES (?, ?, ?, ?, ?, ?)",
                           (target, night, label, auid, now, file),
                           "check-star choice not kept in %s (%s)"):
            return CheckStarChoice(label, auid, file)
        return self.get(target, night) or CheckStarChoice(label, auid, file)
