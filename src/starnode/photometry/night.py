"""What a measurement keeps beyond the frame: the night's check star, the starlist, the
error and illumination models in the record.

Why a step of its own: the check star is a property of the night, not of one frame (its K - C
over a night is only useful when the star is the same on every row), so it is chosen once, at
the night's first good frame, and read back from the node's database
(:class:`~starnode.store.checkstars.CheckStars`) for every later frame, a restart included.
"""

from __future__ import annotations

import logging
from typing import Any

from ..config import Config
from ..errors import QualityFlag
from ..frame.load import Frame
from ..records import Illumination, Measurement
from ..util.values import name_key
from .apertures import StarMeasurement
from .ensemble import EnsembleFit, rounded

log = logging.getLogger("starnode.photometry")

__all__ = ["finish_measurement", "night_check_star"]


def night_check_star(cfg: Config, target: str, night: str | None) -> str | None:
    """The label of the check star already chosen for ``target`` on ``night`` (None: none yet,
    or pinned by ``photometry.check_star``, which wins).

    Parameters
    ----------
    cfg : Config
    target : str
    night : str or None

    Returns
    -------
    str or None
    """
    if cfg.photometry.check_star or not night:
        return None
    from ..store.checkstars import CheckStars

    kept = CheckStars(cfg).get(name_key(target), night)
    return kept.label if kept else None


def _illumination(fit: EnsembleFit) -> Illumination:
    r = fit.radial
    if r is None:
        return Illumination(model="constant", reason="too few or too clustered comps for a "
                            "radial term" if fit.shape is not None else "not fitted")
    if not r.keep:
        return Illumination(model="constant", p_value=rounded(r.p_value, 6), n_comps=r.n,
                            reason=r.reason)
    return Illumination(model="radial", coefficient=rounded(r.b),
                        coefficient_err=rounded(float(r.cov[1, 1]) ** 0.5),
                        p_value=rounded(r.p_value, 6), n_comps=r.n)


def finish_measurement(m: Measurement, frame: Frame, cfg: Config, wcs: Any,
                       sm: StarMeasurement, fit: EnsembleFit, target: str,
                       night_choice: str | None) -> Measurement:
    """Keep the night's check star (first good frame), write the starlist, and record the
    excess noise, illumination model and check-star note.

    Parameters
    ----------
    m : Measurement
        The record as the pipeline made it.
    frame, cfg, wcs, sm, fit :
        The pipeline's steps.
    target : str
        The target's name.
    night_choice : str or None
        The check star already kept for the night (None: none yet).

    Returns
    -------
    Measurement
    """
    if (fit.check is not None and night_choice is None and not cfg.photometry.check_star
            and m.night and m.quality_flag != QualityFlag.POOR):
        from ..store.checkstars import CheckStars

        c = fit.check.comp
        CheckStars(cfg).choose(name_key(target), m.night, c.label, c.auid, str(frame.path))
    starlist = None
    if cfg.photometry.starlists:
        from .starlist import build_starlist, starlist_path, write_starlist

        try:
            path = starlist_path(cfg.data_dir, m.night, frame.path)
            starlist = str(write_starlist(build_starlist(frame, wcs, cfg, sm, fit, target,
                                                         m.sequence_source or "none"),
                                          path, min_free_mb=int(cfg.starlists.min_free_mb)))
        except (OSError, ValueError) as exc:
            log.warning("%s: starlist not written: %s", frame.path.name, exc)
    reasons = m.quality_reasons + ((fit.check_note,) if fit.check_note else ())
    return m.replace(excess_noise_mag=round(sm.excess_mag, 4),
                     excess_noise_stars=sm.excess_stars, illumination=_illumination(fit),
                     check_star_note=fit.check_note, starlist=starlist,
                     quality_reasons=reasons)
