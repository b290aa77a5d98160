"""Table ``colour_terms``: each frame's colour coefficient, combined into the night's.

Why it is stored: a 10 s sub's own Tv_bv fit rarely reaches the 0.02 needed to transform it
(1 frame in 4 on the synthetic nights), but the coefficient is a property of the telescope and
the sky, not of one frame: over a night the frames' fits average down. Frames are measured by
independent pool workers and a node may restart, so the fits are kept in the node's database
per telescope and observing night, and every frame reads the night's combination so far. A
database that cannot be read or written is logged at WARNING and the frame falls back to its
own fit.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from .database import StoreTable

log = logging.getLogger(__name__)

__all__ = ["ColourTerms", "NightCoefficient", "combine"]


@dataclass(frozen=True)
class NightCoefficient:
    """The night's Tv_bv: the inverse-variance weighted mean of its frames' fits."""

    value: float
    error: float  # 1 / sqrt(sum w), times sqrt(chi2/dof) when the frames disagree
    n_frames: int
    chi2: float  # reduced chi-square of the frames about the mean (1 for one frame)


def combine(values: list[float], errors: list[float]) -> NightCoefficient | None:
    """Weighted mean of per-frame coefficients, its error inflated by sqrt(chi2/dof) > 1.

    Parameters
    ----------
    values, errors : list of float
        The frames' Tv_bv and their errors (non-finite or non-positive errors skipped).

    Returns
    -------
    NightCoefficient or None
        None without a usable frame.
    """
    pairs = [(v, e) for v, e in zip(values, errors, strict=True)
             if math.isfinite(v) and math.isfinite(e) and e > 0]
    if not pairs:
        return None
    w = [1.0 / (e * e) for _, e in pairs]
    sw = sum(w)
    mean = sum(wi * v for wi, (v, _) in zip(w, pairs, strict=True)) / sw
    n = len(pairs)
    chi2 = (sum(wi * (v - mean) ** 2 for wi, (v, _) in zip(w, pairs, strict=True)) / (n - 1)
            if n > 1 else 1.0)
    return NightCoefficient(mean, math.sqrt(1.0 / sw) * math.sqrt(max(chi2, 1.0)), n, chi2)


class ColourTerms(StoreTable):
    """The per-frame colour coefficients of each telescope and night."""

    def add(self, telescope: str, night: str, frame_sha1: str, tv_bv: float, tv_bv_err: float,
            n_comps: int, jd: float | None = None) -> bool:
        """Keep one frame's fit (a frame measured again replaces its own row).

        Returns
        -------
        bool
            False when the database could not be written (logged).
        """
        now = datetime.now(UTC).isoformat(timespec="seconds")
        return self._write("INSERT OR REPLACE INTO colour_terms (telescope, night, frame_sha1, "
                           "tv_bv, tv_bv_err, n_comps, jd, recorded_utc) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           (telescope, night, frame_sha1, float(tv_bv), float(tv_bv_err),
                            int(n_comps), jd, now), "colour term not kept in %s (%s)")

    def night(self, telescope: str, night: str) -> NightCoefficient | None:
        """The night's combined coefficient so far (None: no frame yet, or unreadable)."""
        rows = self._read("SELECT tv_bv, tv_bv_err FROM colour_terms WHERE telescope = ? AND "
                          "night = ?", (telescope, night),
                          "colour-term table in %s unreadable (%s)")
        if rows is None:
            return None
        return combine([r["tv_bv"] for r in rows], [r["tv_bv_err"] for r in rows])
