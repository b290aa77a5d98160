"""The one star detector: sep background and source extraction, with what each caller asks.

Two callers, one code path; they differ only in the parameters of :func:`find_stars`:

- the astrometry (the default): background mesh of an eighth of the shorter side within
  16-64 px, 3 sigma, 3 connected pixels; the brightest point sources, brightest first, with
  windowed centroids (``sep.winpos``). Extended blobs (galaxy cores, satellite trails) and
  elongated sources are dropped: they are useless, even harmful, as astrometric anchors.
- the starlists and the noise checks (:func:`field_stars`): 32 px mesh, 3 sigma, 4 connected
  pixels; every source, in sep's order, each with its FWHM, whether sep merged it with a
  neighbour (``blended``) and whether it looks like a star (``starlike``: round, compact, on a
  smooth background, unflagged).

A frame keeps its extractions (``memo``: :attr:`starnode.frame.load.Frame.extractions`): an
extraction is made once per plane and settings, and every selection reuses it. (The solver and
the starlist share one only when their extraction settings agree; docs/performance.md says
what aligning them would change.)

Positions are 0-based pixel coordinates of the plane. The detector owns sep's process-wide
buffer sizes: each extraction starts from sep's defaults (a larger pixel stack costs time in
every extraction) and is retried with larger buffers only when sep reports them full.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sep

from ..util.memory import reuse_freed_memory

log = logging.getLogger(__name__)

__all__ = ["Extractions", "Stars", "field_stars", "find_stars"]

#: sep's active-pixel stack and deblending sub-object limit: its defaults first, then larger
#: ones (half the plane, then twice it) when an extraction reports a buffer full (capacity
#: only: the objects are the same)
_CAPACITY = ((300_000, 1024), (None, 4096), (-1, 16384))


@dataclass(frozen=True)
class Stars:
    """Detected sources (one entry per source in each array)."""

    x: np.ndarray  # 0-based column
    y: np.ndarray  # 0-based row
    flux: np.ndarray  # sep's isophotal flux, background removed
    fwhm_px: float  # median FWHM of the returned sources (plane pixels), nan when none
    background_rms: float
    #: per source: 2.3548 sqrt((a^2 + b^2) / 2) from the second moments (plane pixels)
    fwhm: np.ndarray = field(default_factory=lambda: np.empty(0))
    #: per source: sep merged / deblended it with a neighbour
    blended: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=bool))
    #: per source: round (b/a > 0.6), compact (a < 4 px), on a smooth background (not a
    #: galaxy's), unflagged
    starlike: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=bool))

    def __len__(self) -> int:
        return len(self.x)

    @property
    def xy(self) -> np.ndarray:
        """(N, 2) array of ``(x, y)`` positions, in the order of the arrays."""
        return np.column_stack([self.x, self.y])


def _empty(rms: float) -> Stars:
    return Stars(np.empty(0), np.empty(0), np.empty(0), float("nan"), rms)


def _prepared(plane: np.ndarray, finite: bool = False) -> np.ndarray:
    """float32, C-contiguous, non-finite pixels replaced by the median (``finite``: the caller
    knows there are none)."""
    data = np.ascontiguousarray(plane, dtype=np.float32)
    if (finite and data.dtype == plane.dtype) or np.isfinite(data.sum()):
        # one cheap pass for the usual case (finite sum: all finite), none when known
        return data
    mask = ~np.isfinite(data)
    if mask.any():
        data = np.where(mask, np.nanmedian(data) if (~mask).any() else 0.0, data)
        data = np.ascontiguousarray(data, dtype=np.float32)
    return data


def _extract(sub: np.ndarray, threshold_sigma: float, rms: float, min_area: int) -> np.ndarray:
    """``sep.extract``, from sep's default buffer sizes up; raises what sep raises otherwise."""
    for i, (stack, objects) in enumerate(_CAPACITY):
        pixels = (300_000 if stack == 300_000 else
                  max(300_000, sub.size // 2) if stack is None else 2 * sub.size)
        sep.set_extract_pixstack(pixels)
        sep.set_sub_object_limit(objects)
        try:
            return np.asarray(sep.extract(sub, threshold_sigma, err=rms, minarea=min_area,
                                          deblend_cont=0.005, clean=True))
        except Exception as exc:  # sep raises plain Exceptions
            full = "buffer full" in str(exc) or "overflow" in str(exc)
            if not full or i == len(_CAPACITY) - 1:
                raise
            log.debug("sep: %s; again with larger buffers", str(exc).split(":")[0])
    raise AssertionError("unreachable")  # pragma: no cover


def _point_sources(objs: np.ndarray) -> np.ndarray:
    """Which objects to keep: not elongated, not very extended (galaxy cores, big halos)."""
    a = np.asarray(objs["a"], dtype=float)
    b = np.asarray(objs["b"], dtype=float)
    npix = np.asarray(objs["npix"], dtype=float)
    ok = (b > 0.3) & (a / np.maximum(b, 1e-3) < 3.0) & np.isfinite(objs["x"])
    if ok.sum() >= 5:
        med = float(np.median(npix[ok]))
        ok &= npix < max(60.0 * med, 400.0)
    return np.asarray(ok, dtype=bool)


def _windowed(sub: np.ndarray, x: np.ndarray, y: np.ndarray, fwhm: float
              ) -> tuple[np.ndarray, np.ndarray]:
    """Windowed centroids (``sep.winpos``); a barycentre is kept where winpos fails or runs."""
    try:
        sig = np.full(len(x), max(fwhm / 2.3548, 0.5))
        wx, wy, wflag = sep.winpos(sub, x, y, sig)
        good = (wflag == 0) & np.isfinite(wx) & np.isfinite(wy) & (np.hypot(wx - x, wy - y) < 2)
        return np.where(good, wx, x), np.where(good, wy, y)
    except Exception as exc:  # pragma: no cover - winpos is robust; keep the barycentres
        log.debug("windowed centroids failed: %s", exc)
        return x, y


@dataclass(frozen=True)
class _Extraction:
    """One extraction of a plane: sep's objects and what the selections need of it."""

    plane: np.ndarray
    sub: np.ndarray  # the plane, background removed
    objs: np.ndarray  # sep's objects, sep's order (empty: none, a flat plane, sep failed)
    #: per object: the background at its pixel is below the global background + 3 rms
    smooth: np.ndarray
    rms: float
    globalback: float


#: a frame's extractions, made once and shared by the detector's users (the solver, the
#: starlist): ``(id(plane), threshold, min area, mesh) -> extraction`` (:attr:`Frame.extractions`)
Extractions = dict[tuple[int, float, int, int], _Extraction]


def _mesh(shape: tuple[int, ...], mesh_px: int | None) -> int:
    """The background mesh: given, or an eighth of the shorter side within 16-64 px."""
    return int(mesh_px) if mesh_px else int(max(16, min(64, min(shape) // 8)))


def _smooth(data: np.ndarray, sub: np.ndarray, bkg: Any, objs: np.ndarray, limit: float
            ) -> np.ndarray:
    """Per object: the background at its pixel is below ``limit`` (``back < limit``, compared
    as float32 like ``bkg.back()[y, x] < limit``).

    The background at a pixel is ``data - sub`` to within half a float32 unit of ``sub`` (it
    was ``sub = data - back``, rounded); only when a value is that close to the limit is the
    background image made again to decide exactly.
    """
    if len(objs) == 0:
        return np.empty(0, dtype=bool)
    ny, nx = data.shape
    iy = np.clip(objs["y"].astype(int), 0, ny - 1)
    ix = np.clip(objs["x"].astype(int), 0, nx - 1)
    d, s = data[iy, ix].astype(np.float64), sub[iy, ix].astype(np.float64)
    back = d - s
    lim = float(np.float32(limit))
    margin = 2.0**-22 * (np.abs(d) + np.abs(s) + abs(lim)) + 1e-30
    if np.all(np.abs(back - lim) > margin):
        return np.asarray(back < lim, dtype=bool)
    return np.asarray(bkg.back()[iy, ix] < limit, dtype=bool)  # a tie to break exactly


def _extraction(plane: np.ndarray, threshold_sigma: float, min_area: int, mesh: int,
                memo: Extractions | None, finite: bool = False) -> _Extraction:
    key = (id(plane), float(threshold_sigma), int(min_area), mesh)
    hit = memo.get(key) if memo is not None else None
    if hit is not None and hit.plane is plane:
        return hit
    reuse_freed_memory()  # sep's work buffers: reused, not page-faulted in for every frame
    data = _prepared(plane, finite)
    bkg = sep.Background(data, bw=mesh, bh=mesh, fw=3, fh=3)
    sub = bkg.back()
    np.subtract(data, sub, out=sub)  # data - back, in the background's own buffer
    rms = float(bkg.globalrms)
    objs: np.ndarray = np.empty(0)
    if not np.isfinite(rms) or rms <= 0:
        log.debug("flat frame (background rms %s): no stars", rms)
    else:
        try:
            objs = _extract(sub, threshold_sigma, rms, min_area)
        except Exception as exc:  # sep raises plain Exceptions
            log.warning("star detection failed: %s", exc)
    globalback = float(bkg.globalback)
    out = _Extraction(plane, sub, objs, _smooth(data, sub, bkg, objs, globalback + 3 * rms), rms,
                      globalback)
    if memo is not None:
        memo[key] = out
    return out


def find_stars(plane: np.ndarray, *, threshold_sigma: float = 3.0, max_stars: int | None = 300,
               min_area: int = 3, mesh_px: int | None = None, point_sources: bool = True,
               brightest_first: bool = True, windowed: bool = True,
               memo: Extractions | None = None, finite: bool = False) -> Stars:
    """Detect sources in ``plane``; by default the astrometry's: point sources, brightest first.

    An extraction (background, threshold, min area, mesh) is made once per plane and
    settings when the caller passes the frame's ``memo``; the rest selects from it.

    Parameters
    ----------
    plane : numpy.ndarray
        A 2-D image; non-finite pixels are replaced by the median.
    threshold_sigma : float
        Detection threshold in units of the global background rms.
    max_stars : int or None
        At most this many (the first in the returned order); None: all.
    min_area : int
        Fewest connected pixels of a detection.
    mesh_px : int, optional
        The background mesh (px); None: an eighth of the shorter side, within 16-64 px.
    point_sources : bool
        Drop elongated (a/b > 3) and very extended (> 60x the median area) sources.
    brightest_first : bool
        Order by sep's flux, brightest first (False: sep's order).
    windowed : bool
        Windowed centroids (``sep.winpos``) instead of the isophotal barycentres.
    memo : dict, optional
        The frame's extractions (:attr:`starnode.frame.load.Frame.extractions`): an extraction
        of this plane with the same threshold, min area and mesh is reused, a new one kept.
    finite : bool
        The plane is known to hold only finite values (a loaded frame's,
        :attr:`starnode.frame.load.Frame.plane_is_finite`): not checked again.

    Returns
    -------
    Stars
        Empty (never an error) for a flat or empty frame, or when sep fails (logged).

    Raises
    ------
    ValueError
        ``plane`` is not 2-D.
    """
    if plane.ndim != 2:
        raise ValueError(f"find_stars needs a 2-D plane, got shape {plane.shape}")
    ex = _extraction(plane, threshold_sigma, min_area, _mesh(plane.shape, mesh_px), memo,
                     finite)
    objs, smooth = ex.objs, ex.smooth
    if point_sources and len(objs):
        keep = _point_sources(objs)
        objs, smooth = objs[keep], smooth[keep]
    if len(objs) == 0:
        return _empty(ex.rms)
    order = np.argsort(-objs["flux"]) if brightest_first else np.arange(len(objs))
    order = order[:max_stars]
    objs, smooth = objs[order], smooth[order]
    fwhm = 2.3548 * np.sqrt((objs["a"] ** 2 + objs["b"] ** 2) / 2.0)
    x = np.asarray(objs["x"], dtype=float)
    y = np.asarray(objs["y"], dtype=float)
    if windowed:
        x, y = _windowed(ex.sub, x, y, float(np.median(fwhm)))
    with np.errstate(invalid="ignore", divide="ignore"):
        round_ = objs["b"] / objs["a"] > 0.6
    starlike = round_ & (objs["a"] < 4.0) & smooth & (objs["flag"] == 0)
    return Stars(x=x, y=y, flux=np.asarray(objs["flux"], dtype=float),
                 fwhm_px=float(np.median(fwhm)), background_rms=ex.rms,
                 fwhm=np.asarray(fwhm, dtype=float),
                 blended=np.asarray((objs["flag"] & sep.OBJ_MERGED) != 0, dtype=bool),
                 starlike=np.asarray(starlike, dtype=bool))


def field_stars(plane: np.ndarray, *, threshold_sigma: float = 3.0, min_area: int = 4,
                memo: Extractions | None = None, finite: bool = False) -> Stars:
    """Every source of the plane, in sep's order: what the starlists and the noise checks
    list (:func:`find_stars` with a 32 px background mesh and 4 px min area, no selection,
    no reordering, isophotal barycentres).

    Parameters
    ----------
    plane : numpy.ndarray
        A 2-D image.
    threshold_sigma : float
        Detection threshold in units of the global background rms.
    min_area : int
        Fewest connected pixels.
    memo : dict, optional
        The frame's extractions: one with the same settings is reused.
    finite : bool
        The plane is known to hold only finite values (not checked again).

    Returns
    -------
    Stars
        With ``fwhm``, ``blended`` and ``starlike`` per source.
    """
    return find_stars(plane, threshold_sigma=threshold_sigma, min_area=min_area, mesh_px=32,
                      max_stars=None, point_sources=False, brightest_first=False,
                      windowed=False, memo=memo, finite=finite)
