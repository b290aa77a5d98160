"""What the catalogues know about one frame's field: its target, sequence and usable comps,
and the reference stars the solver gets from them.

Why here: ``measure()`` (photometry), ``starnode solve`` (astrometry) and the starlists of
frames without a measurable variable must give the solver exactly the same references, so the
lookup is written once, in the package that owns targets and sequences.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from starnode.config import resolve
from starnode.errors import CatalogError
from starnode.instruments import profile

from .resolve import get_sequence, resolve_target
from .types import CompStar, Sequence, Target

__all__ = ["fov_arcmin", "frame_sequence", "solver_references", "stars_for_solver"]


def fov_arcmin(frame: Any) -> float:
    """The diagonal of the frame's measured plane in arcmin (the sequence's field of view); a
    frame whose scale is unknown gets the scale of the model its header names."""
    ny, nx = frame.plane.shape
    pscale = frame.plane_scale_arcsec or \
        profile(header=frame.header).pixel_scale_arcsec * frame.binning
    return float(math.hypot(nx, ny) * pscale / 60.0)


def frame_sequence(frame: Any, config: Any
                   ) -> tuple[tuple[Target, Sequence, list[CompStar]] | None, str | None]:
    """The frame's target, comparison sequence and usable comps, as ``measure()`` finds them
    (cached VSP, the configured or bundled chart, a cached Gaia sequence, online when allowed),
    or why there are none.

    Parameters
    ----------
    frame : starnode.frame.load.Frame
    config : Any
        Anything :func:`starnode.config.resolve` accepts.

    Returns
    -------
    ((Target, Sequence, list of CompStar) or None, str or None)
    """
    cfg = resolve(config)
    try:
        target = resolve_target(cfg, frame.object, frame.ra_deg, frame.dec_deg)
        seq = get_sequence(cfg, target, fov_arcmin=fov_arcmin(frame), band=frame.band)
    except CatalogError as exc:
        return None, f"{frame.path.name}: {exc}"
    comps = seq.usable(frame.band)
    if not comps:
        return None, (f"{frame.path.name}: the {seq.source} sequence has no usable "
                      f"{frame.band} comparison stars")
    return (target, seq, comps), None


def stars_for_solver(frame: Any, comps: list[CompStar], target: Target
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(RA, Dec, magnitude) of the comps and the target (last, magnitude NaN)."""
    ra = np.array([c.ra_deg for c in comps] + [target.ra_deg])
    dec = np.array([c.dec_deg for c in comps] + [target.dec_deg])
    mags = []
    for c in comps:
        m = c.mag("V") or c.mag(frame.band)
        mags.append(m[0] if m else np.nan)
    mags.append(np.nan)
    return ra, dec, np.array(mags)


def solver_references(frame: Any, config: Any
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str | None]:
    """The reference stars ``measure()`` gives the solver for this frame, or empty arrays and
    why there are none.

    Parameters
    ----------
    frame : starnode.frame.load.Frame
    config : Any
        Anything :func:`starnode.config.resolve` accepts.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray, numpy.ndarray, str or None)
    """
    found, why = frame_sequence(frame, config)
    if found is None:
        return np.empty(0), np.empty(0), np.empty(0), why
    target, _, comps = found
    return (*stars_for_solver(frame, comps, target), None)
