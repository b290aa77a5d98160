"""A verified WCS for every frame. (Interface stub: replaced by the full solver.)"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.wcs import WCS

from .config import Config

log = logging.getLogger(__name__)

__all__ = ["AstrometryError", "Solution", "solve_frame"]


class AstrometryError(RuntimeError):
    """No WCS could be found or verified for the frame; the message says why."""


@dataclass(frozen=True)
class Solution:
    """A WCS for the measured plane (0-based pixel coordinates of ``plane``)."""

    wcs: WCS
    n_matched: int
    rms_px: float
    scale_arcsec: float  # per native sensor pixel (plane scale / binning)
    mirrored: bool  # determinant of the CD matrix > 0 (Seestar images are mirrored)
    method: str  # header | catalog-match | tetra3rs | astap | solve-field | cache


def solve_frame(
    plane: np.ndarray,
    header: Mapping[str, Any],
    config: Config,
    *,
    ref_ra: np.ndarray,
    ref_dec: np.ndarray,
    ref_mag: np.ndarray | None = None,
    binning: int = 1,
    cache_key: str | None = None,
    hint: WCS | None = None,
) -> Solution:
    """Return a verified WCS for ``plane`` or raise :class:`AstrometryError`."""
    raise AstrometryError("astrometry not implemented yet")
