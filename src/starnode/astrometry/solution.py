"""The solver's answer, and where answers are remembered.

:class:`Solution` is what :func:`~starnode.astrometry.solve_frame` returns. Two memories spare
work: :class:`SolutionMemo` keeps, per TELESCOP+OBJECT, the last solution of this process (the
next frame of a series starts from it, whatever its binning), and :class:`SolvedFrames` stores
solutions by file content in the node's database (:class:`starnode.store.SolutionCache`, table
``astrometry_solutions``) so a frame measured again is not solved again.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from starnode.frame.wcs import binned_wcs
from starnode.store import SolutionCache, StoredSolution

from .geometry import Shape, rotation_deg
from .reference import Refs

log = logging.getLogger("starnode.astrometry")

__all__ = ["MEMO", "Solution", "SolutionMemo", "SolvedFrames", "clear_memo"]


@dataclass(frozen=True)
class Solution:
    """A WCS for the measured plane (0-based pixel coordinates of ``plane``)."""

    wcs: WCS
    n_matched: int
    rms_px: float
    scale_arcsec: float  # per native sensor pixel (plane scale / binning)
    mirrored: bool  # determinant of the CD matrix > 0 (Seestar images are mirrored)
    method: str  # hint | previous | header | catalog-match | tetra3rs | astap | solve-field | cache
    n_detected: int = 0  # stars detected in the plane (0 for a cache hit)
    n_reference: int = 0  # reference stars inside the solved field
    solved_by: str = ""  # for a cache hit: the method that produced the stored solution
    rotation_deg: float = 0.0  # position angle of the plane's +y axis, east of north
    elapsed_s: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)  # reasons of failed earlier attempts

    def as_dict(self) -> dict[str, Any]:
        """The summary the photometry result carries (plain JSON types).

        Returns
        -------
        dict
            ``method``, ``n_matched``, ``rms_px`` and ``scale_arcsec``.
        """
        return {"method": self.method, "n_matched": int(self.n_matched),
                "rms_px": round(float(self.rms_px), 3),
                "scale_arcsec": round(float(self.scale_arcsec), 4)}


def _native(w: WCS, binning: int) -> WCS:
    """The WCS of the native sensor pixels of a plane binned by ``binning`` (no SIP).

    The inverse of :func:`starnode.frame.wcs.binned_wcs` with the cell-centre convention.
    """
    if binning == 1:
        return w.deepcopy()
    off = (binning - 1) / 2.0
    # a new WCS, never an edited copy: a WCS read back from cards (the solution cache) holds
    # PC + CDELT, and setting CD on it leaves the PC matrix of the binned plane in its cards
    out = WCS(naxis=2)
    out.wcs.ctype = [str(c).replace("-SIP", "") for c in w.wcs.ctype]
    out.wcs.cunit = list(w.wcs.cunit)
    out.wcs.crval = list(w.wcs.crval)
    out.wcs.crpix = [(w.wcs.crpix[0] - 1.0) * binning + off + 1.0,
                     (w.wcs.crpix[1] - 1.0) * binning + off + 1.0]
    out.wcs.cd = w.pixel_scale_matrix / binning
    out.wcs.lonpole, out.wcs.latpole = w.wcs.lonpole, w.wcs.latpole
    if w.wcs.radesys:
        out.wcs.radesys = w.wcs.radesys
    if w.pixel_shape is not None:
        out.pixel_shape = (w.pixel_shape[0] * binning, w.pixel_shape[1] * binning)
    out.wcs.set()
    return out


@dataclass(frozen=True)
class _Previous:
    native: WCS  # in native sensor pixels
    native_shape: Shape
    extra: Refs | None  # catalogue stars a blind solver verified in that frame


class SolutionMemo:
    """The last solution per TELESCOP+OBJECT in this process (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._prev: dict[tuple[str, str], _Previous] = {}

    @staticmethod
    def key(header: Mapping[str, Any]) -> tuple[str, str] | None:
        """``(TELESCOP, OBJECT)`` of a header; None when it has neither."""
        tel = str(header.get("TELESCOP", "") or "").strip()
        obj = str(header.get("OBJECT", "") or "").strip()
        return None if not tel and not obj else (tel, obj)

    def recall(self, header: Mapping[str, Any], shape: Shape, binning: int
               ) -> tuple[WCS, Refs | None] | None:
        """The previous solution as a guess for a plane of ``shape`` and ``binning``.

        Returns
        -------
        (WCS, Refs or None) or None
            None when there is none for this sensor size.
        """
        k = self.key(header)
        with self._lock:
            prev = self._prev.get(k) if k is not None else None
        if prev is None or prev.native_shape != (shape[0] * binning, shape[1] * binning):
            return None
        return binned_wcs(prev.native, binning), prev.extra

    def remember(self, header: Mapping[str, Any], w: WCS, shape: Shape, binning: int,
                 extra: Refs | None = None) -> None:
        """Keep a verified solution (and a blind solver's verified stars, which are kept
        until another blind solve replaces them)."""
        k = self.key(header)
        if k is None:
            return
        native = _native(w, binning)
        with self._lock:
            old = self._prev.get(k)
            if extra is None and old is not None:
                extra = old.extra
            self._prev[k] = _Previous(native, (shape[0] * binning, shape[1] * binning), extra)

    def clear(self) -> None:
        """Forget every previous solution."""
        with self._lock:
            self._prev.clear()


#: The process's previous solutions.
MEMO = SolutionMemo()


def clear_memo() -> None:
    """Forget the in-process previous solutions (tests, benchmarks)."""
    MEMO.clear()


#: the WCS of stored solutions read lately (header text -> WCS): a frame measured again in the
#: same process (a retry, a re-run, a benchmark) copies it (~0.05 ms) instead of parsing the
#: cards again (~2 ms); bounded by :data:`_STORED_WCS_KEPT`
_STORED_WCS: OrderedDict[str, WCS] = OrderedDict()
_STORED_WCS_KEPT = 16
_stored_lock = threading.Lock()


def _stored_wcs(text: str) -> WCS:
    """A new WCS (the caller's own) from a stored solution's header text."""
    with _stored_lock:
        known = _STORED_WCS.get(text)
        if known is not None:
            _STORED_WCS.move_to_end(text)
            return known.deepcopy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        w = WCS(fits.Header.fromstring(text, sep="\n"), relax=True)
    with _stored_lock:
        _STORED_WCS[text] = w.deepcopy()
        while len(_STORED_WCS) > _STORED_WCS_KEPT:
            _STORED_WCS.popitem(last=False)
    return w


class SolvedFrames:
    """Solutions stored by frame content in the node's database.

    Parameters
    ----------
    db_path : path-like
        The node's database (``config.db_path``).
    """

    def __init__(self, db_path: str | Path) -> None:
        self.cache = SolutionCache(db_path)

    @staticmethod
    def key(cache_key: str, shape: Shape, binning: int) -> str:
        """The stored key: content key, plane shape and binning (another plane, another key)."""
        return f"{cache_key}|{shape[0]}x{shape[1]}|bin{binning}"

    def get(self, key: str) -> Solution | None:
        """The stored solution as a ``method="cache"`` :class:`Solution`, or None."""
        row = self.cache.get(key)
        if row is None:
            return None
        w = _stored_wcs(row.wcs_header)
        return Solution(wcs=w, n_matched=row.n_matched, rms_px=row.rms_px,
                        scale_arcsec=row.scale_arcsec, mirrored=row.mirrored, method="cache",
                        n_reference=row.n_reference, n_detected=row.n_detected,
                        solved_by=row.method, rotation_deg=rotation_deg(w))

    def put(self, key: str, sol: Solution, shape: Shape) -> None:
        """Store a solution (failures are logged by the store, never raised)."""
        hdr = sol.wcs.to_header(relax=True)
        hdr["NAXIS1"] = shape[1]
        hdr["NAXIS2"] = shape[0]
        self.cache.put(StoredSolution(
            cache_key=key, wcs_header=hdr.tostring(sep="\n"), n_matched=int(sol.n_matched),
            rms_px=float(sol.rms_px), scale_arcsec=float(sol.scale_arcsec),
            mirrored=bool(sol.mirrored), method=sol.method, n_detected=int(sol.n_detected),
            n_reference=int(sol.n_reference)))
