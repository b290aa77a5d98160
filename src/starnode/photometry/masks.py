"""Exact-overlap circular aperture masks, made once and summed over several planes.

Why not ``photutils.aperture.aperture_photometry``: it builds a table and its metadata on
every call (its ``_get_meta`` imports the optional packages to record their versions, and a
failed import searches ``sys.path`` again each time), which cost more than the sums of a
frame's few dozen stars; and it remakes the masks for every plane although the two green sites
of a sub share them. The sums here are the ones ``PixelAperture.do_photometry`` makes, to the
bit (tests/photometry/test_photometry_speed_equivalence.py).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from photutils.aperture import ApertureMask, BoundingBox, CircularAperture
from photutils.geometry import circular_overlap_grid

__all__ = ["circular_masks", "masked_cutout", "masked_sum", "masked_sums", "overlap_slices"]

Slices = tuple[slice, slice]


def circular_masks(pos: np.ndarray, radius: float) -> list[Any]:
    """The exact-overlap ``ApertureMask`` of a circle of ``radius`` at each (x, y) of ``pos``:
    ``CircularAperture(pos, radius).to_mask(method="exact")``'s masks, to the bit.

    The same bounding boxes and centred pixel edges as photutils' ``PixelAperture`` (its
    ``_bbox`` / ``BoundingBox.from_float`` and ``_centered_edges`` arithmetic, on the same
    doubles), the same overlap routine (``photutils.geometry.circular_overlap_grid``, exact),
    the same ``ApertureMask`` objects; without the aperture object, its attribute validation
    and its per-position properties (about a third of the time of a frame's ~100 masks).

    Parameters
    ----------
    pos : numpy.ndarray
        (n, 2) positions (n >= 1).
    radius : float
        Radius (px), positive and finite.

    Returns
    -------
    list
        One mask per position.
    """
    pos = np.asarray(pos, float).reshape(-1, 2)
    r = float(radius)
    if not (pos.size and np.isfinite(pos).all() and math.isfinite(r) and r > 0):
        # photutils' own checks and messages (empty, non-finite, non-positive)
        masks = CircularAperture(pos, radius).to_mask(method="exact")
        return masks if isinstance(masks, list) else [masks]
    out = []
    for x, y in pos.tolist():
        ixmin, ixmax = math.floor(x - r + 0.5), math.ceil(x + r + 0.5)
        iymin, iymax = math.floor(y - r + 0.5), math.ceil(y + r + 0.5)
        overlap = circular_overlap_grid(ixmin - 0.5 - x, ixmax - 0.5 - x, iymin - 0.5 - y,
                                        iymax - 0.5 - y, ixmax - ixmin, iymax - iymin, r, 1, 1)
        out.append(ApertureMask(overlap, BoundingBox(ixmin, ixmax, iymin, iymax)))
    return out


def masked_sum(plane: np.ndarray, m: Any) -> float:
    """The exact-overlap weighted sum of ``plane`` in aperture mask ``m`` (NaN: no overlap),
    computed as ``PixelAperture.do_photometry`` does.

    Parameters
    ----------
    plane : numpy.ndarray
        2-D data.
    m : photutils.aperture.ApertureMask
        The mask.

    Returns
    -------
    float
    """
    with np.errstate(invalid="ignore"):
        return _sum(plane, m)


def _sum(plane: np.ndarray, m: Any) -> float:
    big, small = overlap_slices(m, plane.shape)
    if big is None or small is None:
        return math.nan
    w = m.data[small]
    return float(np.add.reduce((plane[big] * w)[w > 0]))  # ``.sum()``


def masked_sums(plane: np.ndarray, masks: list[Any]) -> np.ndarray:
    """:func:`masked_sum` of ``plane`` for every mask (``aperture_photometry``'s
    ``aperture_sum`` column, as float).

    Parameters
    ----------
    plane : numpy.ndarray
        2-D data.
    masks : list
        Aperture masks (:func:`circular_masks`).

    Returns
    -------
    numpy.ndarray
    """
    with np.errstate(invalid="ignore"):  # NaN pixels: a NaN sum, silently
        return np.array([_sum(plane, m) for m in masks], dtype=float)


def overlap_slices(m: Any, shape: tuple[int, ...]) -> tuple[Slices | None, Slices | None]:
    """``m.get_overlap_slices(shape)`` (photutils' ``BoundingBox.get_overlap_slices``, the same
    slices) without its per-call overhead: (slices of the large array, slices of the mask), or
    (None, None) when they do not overlap.

    Parameters
    ----------
    m : photutils.aperture.ApertureMask
        The mask.
    shape : (int, int)
        The large array's shape.

    Returns
    -------
    (tuple, tuple) or (None, None)
    """
    b = m.bbox
    xmin, xmax, ymin, ymax = b.ixmin, b.ixmax, b.iymin, b.iymax
    if xmin >= 0 and ymin >= 0 and xmax <= shape[1] and ymax <= shape[0]:
        # the usual case, the whole mask inside: the slices the general case below gives
        return ((slice(ymin, ymax), slice(xmin, xmax)),
                (slice(0, ymax - ymin), slice(0, xmax - xmin)))
    if xmin >= shape[1] or ymin >= shape[0] or xmax <= 0 or ymax <= 0:
        return None, None
    return ((slice(max(ymin, 0), min(ymax, shape[0])), slice(max(xmin, 0), min(xmax, shape[1]))),
            (slice(max(-ymin, 0), min(ymax - ymin, shape[0] - ymin)),
             slice(max(-xmin, 0), min(xmax - xmin, shape[1] - xmin))))


def masked_cutout(m: Any, data: np.ndarray) -> np.ndarray | None:
    """``m.cutout(data, fill_value=numpy.nan)``: the data over the mask's box (a view when the
    box lies inside, else a float copy with NaN outside the data); None without overlap.

    Parameters
    ----------
    m : photutils.aperture.ApertureMask
        The mask.
    data : numpy.ndarray
        2-D data.

    Returns
    -------
    numpy.ndarray or None
    """
    big, small = overlap_slices(m, data.shape)
    if big is None or small is None:
        return None
    if (small[0].stop - small[0].start, small[1].stop - small[1].start) == m.shape:
        return data[big]
    cut = np.full(m.shape, np.nan)
    cut[small] = data[big]
    return cut
