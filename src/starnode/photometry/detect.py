"""Every star of a frame's plane: sep source extraction with a flag for what is not a star.

Why it is here: starlists list every detected star, not only the catalogued ones, and the
per-frame excess-noise and consistency checks (:mod:`.noise`) need field stars. One detector,
used by all of them, with the cuts written once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..frame.load import Frame
from ..util.memory import reuse_freed_memory

__all__ = ["Detections", "detect_stars", "register"]


@dataclass
class Detections:
    """Detected sources on a plane (arrays, one entry per source)."""

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray  # sep's isophotal flux, background removed (ordering only)
    blended: np.ndarray  # sep flagged the object as deblended / merged
    starlike: np.ndarray  # round and compact, on a smooth background
    fwhm: np.ndarray  # from the second moments, 2.3548 sqrt((a^2 + b^2) / 2)

    @property
    def xy(self) -> np.ndarray:
        """(n, 2) positions."""
        return np.column_stack([self.x, self.y])


def detect_stars(frame: Frame, thresh: float = 3.0, minarea: int = 4) -> Detections:
    """Sources on the frame's plane above ``thresh`` x the background rms.

    Parameters
    ----------
    frame : Frame
        The loaded frame (its ``plane``).
    thresh : float
        Detection threshold, in units of the global background rms.
    minarea : int
        Fewest connected pixels.

    Returns
    -------
    Detections
        ``starlike`` excludes elongated or extended sources and those sitting on a bright,
        structured background (a galaxy); ``blended`` is sep's merge/deblend flag.
    """
    import sep

    reuse_freed_memory()  # sep's work buffers: reused, not page-faulted in for every frame
    data = np.ascontiguousarray(frame.plane, dtype=np.float32)
    bkg = sep.Background(data, bw=32, bh=32)
    back = bkg.back()
    objs = sep.extract(data - back, thresh, err=bkg.globalrms, minarea=minarea)
    ny, nx = data.shape
    ix = np.clip(objs["x"].astype(int), 0, nx - 1)
    iy = np.clip(objs["y"].astype(int), 0, ny - 1)
    bx = back[iy, ix]
    with np.errstate(invalid="ignore", divide="ignore"):
        round_ = objs["b"] / objs["a"] > 0.6
    starlike = round_ & (objs["a"] < 4.0) & (bx < bkg.globalback + 3 * bkg.globalrms)
    blended = (objs["flag"] & sep.OBJ_MERGED) != 0
    return Detections(np.asarray(objs["x"], float), np.asarray(objs["y"], float),
                      np.asarray(objs["flux"], float), np.asarray(blended, bool),
                      np.asarray(starlike & (objs["flag"] == 0), bool),
                      2.3548 * np.sqrt((objs["a"] ** 2 + objs["b"] ** 2) / 2.0))


def register(ref: np.ndarray, ref_flux: np.ndarray, pos: np.ndarray, flux: np.ndarray
             ) -> np.ndarray:
    """Reference positions mapped into another sub of the same field.

    A translation vote between the 60 brightest stars of each, then an affine fit on the
    matches within 3 px.

    Parameters
    ----------
    ref, ref_flux : numpy.ndarray
        (n, 2) positions and fluxes in the reference sub.
    pos, flux : numpy.ndarray
        (m, 2) positions and fluxes detected in the other sub.

    Returns
    -------
    numpy.ndarray
        (n, 2) the reference positions in the other sub.

    Raises
    ------
    ValueError
        Fewer than 3 stars matched.
    """
    from scipy.spatial import cKDTree

    b1 = ref[np.argsort(-ref_flux)[:60]]
    b2 = pos[np.argsort(-flux)[:60]]
    d = (b2[None, :, :] - b1[:, None, :]).reshape(-1, 2)
    h, xe, ye = np.histogram2d(d[:, 0], d[:, 1], bins=100, range=[[-50, 50], [-50, 50]])
    i, j = np.unravel_index(np.argmax(h), h.shape)
    off = np.array([(xe[i] + xe[i + 1]) / 2, (ye[j] + ye[j + 1]) / 2])
    dist, idx = cKDTree(pos).query(ref + off)
    m = dist < 3.0
    if int(m.sum()) < 3:
        raise ValueError(f"only {int(m.sum())} stars matched between the subs")
    a = np.column_stack([ref[m], np.ones(m.sum())])
    coef, *_ = np.linalg.lstsq(a, pos[idx[m]], rcond=None)
    return np.asarray(np.column_stack([ref, np.ones(len(ref))]) @ coef)
