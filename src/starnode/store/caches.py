"""The two caches in the node's database: catalogue answers and astrometric solutions.

Both are conveniences, never the record: a cache that cannot be read or written is logged at
WARNING and the caller goes without it (asks the network again, solves again), exactly as
0.1.0 did. Each call uses a short-lived connection, so pool workers and the node can share the
file without holding connections open between frames.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starnode.errors import StoreError

from .database import StoreTable

log = logging.getLogger(__name__)

__all__ = ["CatalogCache", "CatalogEntry", "SolutionCache", "StoredSolution"]

_UNREADABLE = "catalogue cache %s unreadable (%s); going without it"


@dataclass(frozen=True)
class CatalogEntry:
    """One cached catalogue answer.

    Attributes
    ----------
    payload : Any
        The answer, decoded from its JSON.
    fetched_at : float
        Unix time of the answer.
    url : str or None
        Where it came from.
    """

    payload: Any
    fetched_at: float
    url: str | None

    @property
    def age_days(self) -> float:
        """Days since the answer was fetched (never negative)."""
        return max(0.0, (time.time() - self.fetched_at) / 86400.0)


class CatalogCache(StoreTable):
    """Table ``catalog_cache``: VSX, VSX cone, VSP and Gaia answers by ``(kind, key)``."""

    def get(self, kind: str, key: str) -> CatalogEntry | None:
        """The cached answer for ``(kind, key)``.

        Parameters
        ----------
        kind : str
            ``vsx``, ``vsx-cone``, ``vsp`` or ``gaia``.
        key : str
            The normalised request.

        Returns
        -------
        CatalogEntry or None
            None when absent, when the entry is corrupt, or when the database cannot be read
            (both logged at WARNING).
        """
        rows = self._read("SELECT payload, fetched_at, url FROM catalog_cache WHERE kind = ? AND "
                          "key = ?", (kind, key), _UNREADABLE)
        if not rows:
            return None
        row = rows[0]
        try:
            return CatalogEntry(json.loads(row["payload"]), float(row["fetched_at"]), row["url"])
        except ValueError:
            log.warning("catalogue cache entry %s/%s is corrupt; ignored", kind, key)
            return None

    def put(self, kind: str, key: str, url: str | None, payload: Any) -> None:
        """Keep an answer (replacing an older one); a failure is logged, never raised.

        Parameters
        ----------
        kind, key : str
            As in :meth:`get`.
        url : str or None
            Where the answer came from.
        payload : Any
            The answer (JSON-serialisable).
        """
        self._write("INSERT OR REPLACE INTO catalog_cache (kind, key, fetched_at, url, payload) "
                    "VALUES (?, ?, ?, ?, ?)", (kind, key, time.time(), url, json.dumps(payload)),
                    "catalogue cache %s not writable (%s); answer not kept")

    def clear(self, kind: str | None = None) -> int:
        """Forget cached answers (all, or one ``kind``).

        Parameters
        ----------
        kind : str, optional
            Only this kind.

        Returns
        -------
        int
            How many entries were removed.

        Raises
        ------
        StoreError
            The database cannot be used.
        """
        with closing(self.store.connect()) as conn:
            if kind is None:
                cur = conn.execute("DELETE FROM catalog_cache")
            else:
                cur = conn.execute("DELETE FROM catalog_cache WHERE kind = ?", (kind,))
            return int(cur.rowcount)

    def keys(self, kind: str) -> list[tuple[str, float]]:
        """The keys cached for one ``kind`` (for lookups by coverage, e.g. sky cones).

        Parameters
        ----------
        kind : str
            As in :meth:`get`.

        Returns
        -------
        list of (str, float)
            ``(key, fetched_at)``, newest first; empty when the database cannot be read
            (logged at WARNING).
        """
        rows = self._read("SELECT key, fetched_at FROM catalog_cache WHERE kind = ? "
                          "ORDER BY fetched_at DESC", (kind,), _UNREADABLE)
        return [(str(r[0]), float(r[1])) for r in rows or []]

    def summary(self) -> list[tuple[str, int, float]]:
        """What the cache holds, for ``starnode doctor``.

        Returns
        -------
        list of (str, int, float)
            ``(kind, entries, oldest fetched_at)`` per kind.

        Raises
        ------
        StoreError
            The database cannot be used.
        """
        with closing(self.store.connect()) as conn:
            rows = conn.execute("SELECT kind, COUNT(*), MIN(fetched_at) FROM catalog_cache "
                                "GROUP BY kind ORDER BY kind").fetchall()
        return [(str(r[0]), int(r[1]), float(r[2])) for r in rows]


@dataclass(frozen=True)
class StoredSolution:
    """One row of ``astrometry_solutions`` (the astrometry layer rebuilds its ``Solution``).

    Attributes
    ----------
    cache_key : str
        Frame key, plane shape and binning.
    wcs_header : str
        The WCS as FITS header cards separated by newlines.
    n_matched, n_detected, n_reference : int
        Stars matched / detected / in the reference catalogue.
    rms_px, scale_arcsec : float
        Fit residual (pixels) and pixel scale.
    mirrored : bool
        Parity of the solution.
    method : str
        The solver that found it.
    created_utc : str
        ISO time the solution was stored.
    """

    cache_key: str
    wcs_header: str
    n_matched: int
    rms_px: float
    scale_arcsec: float
    mirrored: bool
    method: str
    n_detected: int = 0
    n_reference: int = 0
    created_utc: str = ""


class SolutionCache(StoreTable):
    """Table ``astrometry_solutions``: verified WCS solutions by cache key."""

    def get(self, key: str) -> StoredSolution | None:
        """The stored solution for ``key``; None when absent or unreadable (logged).

        Parameters
        ----------
        key : str
            The cache key.

        Returns
        -------
        StoredSolution or None
            The row.
        """
        try:
            with self._connection() as conn:  # every row read: no statement left open
                rows = conn.execute("SELECT * FROM astrometry_solutions WHERE cache_key = ?",
                                    (key,)).fetchall()
            row = rows[0] if rows else None
        except (sqlite3.Error, StoreError) as exc:
            log.warning("astrometry cache unreadable (%s): solving again", exc)
            return None
        if row is None:
            return None
        return StoredSolution(
            cache_key=str(row["cache_key"]), wcs_header=str(row["wcs_header"]),
            n_matched=int(row["n_matched"]), rms_px=float(row["rms_px"]),
            scale_arcsec=float(row["scale_arcsec"]), mirrored=bool(row["mirrored"]),
            method=str(row["method"]), n_detected=int(row["n_detected"]),
            n_reference=int(row["n_reference"]), created_utc=str(row["created_utc"]))

    def put(self, sol: StoredSolution) -> None:
        """Store (or replace) a solution; a failure is logged, never raised.

        Parameters
        ----------
        sol : StoredSolution
            The solution; an empty ``created_utc`` is set to now.
        """
        created = sol.created_utc or datetime.now(UTC).isoformat(timespec="seconds")
        self._write("INSERT OR REPLACE INTO astrometry_solutions (cache_key, wcs_header, "
                    "n_matched, rms_px, scale_arcsec, mirrored, method, n_detected, "
                    "n_reference, created_utc) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (sol.cache_key, sol.wcs_header, int(sol.n_matched), float(sol.rms_px),
                     float(sol.scale_arcsec), int(bool(sol.mirrored)), sol.method,
                     int(sol.n_detected), int(sol.n_reference), created),
                    "could not store the astrometric solution in %s: %s")

