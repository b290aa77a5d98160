"""Registration of two subs of the same field: reference positions mapped into another sub.

Why: the consistency checks of the error model (tests/photometry/test_photometry_real.py,
tests/photometry/test_photometry_cfa.py, bench/errors*.py) measure the same stars in several
subs; the stars are detected by :func:`starnode.frame.detect.field_stars` in each sub and
matched here.
"""

from __future__ import annotations

import numpy as np

__all__ = ["register"]


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
