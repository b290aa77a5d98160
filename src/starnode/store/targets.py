"""What the planner reads from the ledger: when each target was last measured, and the S/N the
node really reached (to calibrate the planner's S/N model). Read-only; no table of its own (the
Target Tool's answers live in ``catalog_cache`` as kind ``target-tool``)."""

from __future__ import annotations

import logging
import sqlite3
from contextlib import closing
from typing import Any

from starnode.errors import StoreError
from starnode.util.values import normalize_name

from .database import StoreTable

log = logging.getLogger(__name__)

__all__ = ["ObservingHistory"]


class ObservingHistory(StoreTable):
    """The measured frames seen as an observing history."""

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        try:
            with closing(self.store.connect()) as conn:
                return list(conn.execute(sql, args).fetchall())
        except (sqlite3.Error, StoreError) as exc:
            log.warning("observing history unreadable (%s): planning without it", exc)
            return []

    def last_observed(self) -> dict[str, float]:
        """Normalised target name -> JD (HJD) of its latest measured frame."""
        rows = self._rows(
            "SELECT target, MAX(jd) AS jd FROM frames WHERE state IN ('measured', 'reported') "
            "AND target IS NOT NULL AND jd IS NOT NULL GROUP BY target")
        out: dict[str, float] = {}
        for r in rows:
            key = normalize_name(r["target"])
            out[key] = max(float(r["jd"]), out.get(key, float("-inf")))
        return out

    def snr_samples(self, limit: int = 2000) -> list[tuple[float, float, float]]:
        """``(magnitude, exposure_s, snr)`` of the latest measured single frames (subs and mono
        frames, not stacks), newest first."""
        rows = self._rows(
            "SELECT magnitude, json_extract(result, '$.exptime') AS exptime, "
            "json_extract(result, '$.snr') AS snr FROM frames "
            "WHERE state IN ('measured', 'reported') AND magnitude IS NOT NULL "
            "AND COALESCE(json_extract(result, '$.frame_kind'), 'sub') != 'stack' "
            "ORDER BY jd DESC LIMIT ?", (int(limit),))
        out = []
        for r in rows:
            try:
                mag, exp, snr = float(r["magnitude"]), float(r["exptime"]), float(r["snr"])
            except (TypeError, ValueError):
                continue
            if exp > 0 and snr > 0:
                out.append((mag, exp, snr))
        return out

    def latest_telescope(self) -> str | None:
        """TELESCOP / INSTRUME of the latest measured frame (to pick the instrument profile)."""
        rows = self._rows(
            "SELECT json_extract(result, '$.telescope') AS tel, "
            "json_extract(result, '$.instrument') AS ins FROM frames "
            "WHERE state IN ('measured', 'reported') AND result IS NOT NULL "
            "ORDER BY updated DESC LIMIT 1")
        if not rows:
            return None
        text = " ".join(str(v) for v in (rows[0]["ins"], rows[0]["tel"]) if v)
        return text or None
