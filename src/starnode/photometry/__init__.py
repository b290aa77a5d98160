"""Differential aperture photometry of a variable star against the AAVSO comparison sequence.

``measure(path, config) -> Measurement`` (raises :class:`FrameRejected`) and
``run_pipeline(path, config) -> dict | None`` (``None`` on rejection; the reason in
:func:`last_rejection` for the calling thread). The method is in docs/photometry.md; the
modules follow it:

- :mod:`.sky` - the sky per star, unbiased by the firmware's clipping at 0;
- :mod:`.apertures` - centring, FWHM, aperture flux and its CCD-equation error;
- :mod:`.ensemble` - zero point from the comps, the check star;
- :mod:`.quality` - the quality flag and its reasons;
- :mod:`.pipeline` - ``measure()`` as a list of named steps, ``run_pipeline()``.
"""

from __future__ import annotations

from .. import astrometry
from ..errors import FrameRejected
from ..frame.timesite import times as _times
from .apertures import StarMeasurement, geometry, measure_fwhm, measure_stars, scintillation
from .ensemble import ensemble
from .pipeline import last_rejection, measure, run_pipeline
from .sky import SkyEstimate, robust_sky

__all__ = [
    "FrameRejected",
    "SkyEstimate",
    "StarMeasurement",
    "astrometry",
    "ensemble",
    "geometry",
    "last_rejection",
    "measure",
    "measure_fwhm",
    "measure_stars",
    "robust_sky",
    "run_pipeline",
    "scintillation",
    "times",
]


def times(frame: object, ra_deg: float, dec_deg: float) -> tuple[float, float, float | None,
                                                                  float | None]:
    """(JD, HJD, airmass, altitude_deg) of a frame's mid-exposure for a target (0.1.0 API).

    Parameters
    ----------
    frame : starnode.frame.load.Frame
        Its ``mid`` and ``site`` are used.
    ra_deg, dec_deg : float
        The target (ICRS).

    Returns
    -------
    tuple
        See :func:`starnode.frame.timesite.times`.
    """
    t = _times(frame.mid, frame.site, ra_deg, dec_deg)  # type: ignore[attr-defined]
    return t.jd, t.hjd, t.airmass, t.altitude_deg
