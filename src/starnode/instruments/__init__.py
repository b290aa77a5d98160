"""Telescope models: sensor, optics, exposure options and planning limits, one profile each.

Self-contained (no imports from higher layers) so that frames, photometry, the planner and the
telescope drivers can all read the same numbers::

    from starnode.instruments import profile
    s50 = profile("s50")
    s50.pixel_scale_arcsec, s50.saturation_mag(10.0), s50.faint_limit(10.0, min_snr=10)
"""

from .profiles import MODELS, PROFILES, Instrument, model_from_header, profile

__all__ = ["MODELS", "PROFILES", "Instrument", "model_from_header", "profile"]
