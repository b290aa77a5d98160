"""Star detection for astrometry: sep source extraction with windowed centroids.

Returns the brightest point sources of a plane, brightest first, as 0-based pixel coordinates of
that plane. Extended blobs (galaxy cores, satellite trails) and elongated sources are dropped:
they are useless, even harmful, as astrometric anchors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import sep

log = logging.getLogger(__name__)

__all__ = ["Stars", "find_stars"]


@dataclass(frozen=True)
class Stars:
    """Detected stars, brightest first."""

    x: np.ndarray  # 0-based column
    y: np.ndarray  # 0-based row
    flux: np.ndarray
    fwhm_px: float  # median FWHM of the kept stars (plane pixels), nan when none
    background_rms: float

    def __len__(self) -> int:
        return len(self.x)

    @property
    def xy(self) -> np.ndarray:
        """(N, 2) array of ``(x, y)`` positions, brightest first."""
        return np.column_stack([self.x, self.y])


def find_stars(plane: np.ndarray, *, threshold_sigma: float = 3.0, max_stars: int = 300,
               min_area: int = 3) -> Stars:
    """Detect point sources in ``plane``, brightest first.

    Parameters
    ----------
    plane : numpy.ndarray
        A 2-D image; non-finite pixels are replaced by the median.
    threshold_sigma : float
        Detection threshold in units of the global background rms.
    max_stars : int
        At most this many (the brightest) are returned.
    min_area : int
        Fewest connected pixels of a detection.

    Returns
    -------
    Stars
        Empty (never an error) for a flat or empty frame.

    Raises
    ------
    ValueError
        ``plane`` is not 2-D.
    """
    if plane.ndim != 2:
        raise ValueError(f"find_stars needs a 2-D plane, got shape {plane.shape}")
    data = np.ascontiguousarray(plane, dtype=np.float32)
    mask = ~np.isfinite(data)
    if mask.any():
        data = np.where(mask, np.nanmedian(data) if (~mask).any() else 0.0, data)
        data = np.ascontiguousarray(data, dtype=np.float32)
    ny, nx = data.shape
    box = int(max(16, min(64, min(ny, nx) // 8)))
    bkg = sep.Background(data, bw=box, bh=box, fw=3, fh=3)
    sub = data - bkg.back()
    rms = float(bkg.globalrms)
    empty = Stars(np.empty(0), np.empty(0), np.empty(0), float("nan"), rms)
    if not np.isfinite(rms) or rms <= 0:
        log.debug("flat frame (background rms %s): no stars", rms)
        return empty
    sep.set_extract_pixstack(max(300_000, data.size // 2))
    sep.set_sub_object_limit(4096)
    try:
        objs = sep.extract(sub, threshold_sigma, err=rms, minarea=min_area,
                           deblend_cont=0.005, clean=True)
    except Exception as exc:  # sep raises plain Exceptions on pixel-stack overflows
        log.warning("star detection failed: %s", exc)
        return empty
    if len(objs) == 0:
        return empty
    a = np.asarray(objs["a"], dtype=float)
    b = np.asarray(objs["b"], dtype=float)
    npix = np.asarray(objs["npix"], dtype=float)
    ok = (b > 0.3) & (a / np.maximum(b, 1e-3) < 3.0) & np.isfinite(objs["x"])
    if ok.sum() >= 5:
        med = float(np.median(npix[ok]))
        ok &= npix < max(60.0 * med, 400.0)  # galaxy cores, big halos
    objs = objs[ok]
    if len(objs) == 0:
        return empty
    order = np.argsort(-objs["flux"])[:max_stars]
    objs = objs[order]
    sig_ab = np.sqrt((objs["a"] ** 2 + objs["b"] ** 2) / 2.0)
    fwhm = float(np.median(2.3548 * sig_ab))
    x = np.asarray(objs["x"], dtype=float)
    y = np.asarray(objs["y"], dtype=float)
    try:
        sig = np.full(len(objs), max(fwhm / 2.3548, 0.5))
        wx, wy, wflag = sep.winpos(sub, x, y, sig)
        good = (wflag == 0) & np.isfinite(wx) & np.isfinite(wy) & (np.hypot(wx - x, wy - y) < 2)
        x = np.where(good, wx, x)
        y = np.where(good, wy, y)
    except Exception as exc:  # pragma: no cover - winpos is robust; keep the barycentres
        log.debug("windowed centroids failed: %s", exc)
    return Stars(x=x, y=y, flux=np.asarray(objs["flux"], dtype=float), fwhm_px=fwhm,
                 background_rms=rms)
