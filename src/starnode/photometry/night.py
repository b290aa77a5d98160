"""What a measurement keeps beyond the frame: the night's check star, the starlist, the
error and illumination models in the record.

Why a step of its own: the check star is a property of the night, not of one frame (its K - C
over a night is only useful when the star is the same on every row), so it is chosen once, at
the night's first good frame, and read back for every later frame, a restart included
(:class:`~starnode.store.checkstars.CheckStars` in the node's database).

The measuring itself does no I/O for either: it is given the night's choices (``kept``, a
lookup ``(target key, night) -> label``), and returns the choice to keep (a
:class:`NightCheck`) and the starlist (its columns). :func:`keep_night` records both, in the
process that owns the node's files (the node, after the worker returned; or
:func:`~starnode.photometry.pipeline.measure` for the seed API).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import QualityFlag
from ..frame.load import Frame
from ..records import Illumination, Measurement
from ..util.values import name_key
from .apertures import StarMeasurement
from .ensemble import EnsembleFit, rounded

log = logging.getLogger("starnode.photometry")

__all__ = ["CheckLookup", "NightCheck", "finish_measurement", "keep_night", "night_check_star",
           "no_checks", "stored_checks"]

#: ``(normalised target, night) -> label`` of the check star already kept (None: none yet).
CheckLookup = Callable[[str, str], "str | None"]


@dataclass(frozen=True)
class NightCheck:
    """A check star to keep as the night's (chosen on this frame, the night's first good one).

    ``target`` is the normalised name (:func:`starnode.util.values.name_key`).
    """

    target: str
    night: str
    label: str
    auid: str | None
    file: str | None


def no_checks(_target: str, _night: str) -> str | None:
    """A :data:`CheckLookup` that knows no choice (a night not seen yet)."""
    return None


def stored_checks(cfg: Config) -> CheckLookup:
    """A :data:`CheckLookup` that reads the node's database (the seed API's ``measure``).

    Parameters
    ----------
    cfg : Config

    Returns
    -------
    callable
    """
    from ..store.checkstars import CheckStars

    store = CheckStars(cfg)

    def lookup(target: str, night: str) -> str | None:
        kept = store.get(target, night)
        return kept.label if kept else None

    return lookup


def night_check_star(cfg: Config, target: str, night: str | None,
                     kept: CheckLookup = no_checks) -> str | None:
    """The label of the check star already chosen for ``target`` on ``night`` (None: none yet,
    or pinned by ``photometry.check_star``, which wins).

    Parameters
    ----------
    cfg : Config
    target : str
    night : str or None
    kept : callable
        The night's choices (:data:`CheckLookup`).

    Returns
    -------
    str or None
    """
    if cfg.photometry.check_star or not night:
        return None
    return kept(name_key(target), night)


def keep_night(cfg: Config, check: NightCheck | None, starlist: Any, night: str | None,
               frame_path: str | Path, *, store: Any = None) -> str | None:
    """Record what a measurement chose for the night and write its starlist.

    Parameters
    ----------
    cfg : Config
    check : NightCheck or None
        The check star to keep (:class:`~starnode.store.checkstars.CheckStars`: the first
        choice of a night wins, a later one is ignored).
    starlist : Starlist, astropy.table.Table or None
        The frame's starlist, written gzip-compressed under ``data_dir/starlists/<night>/``
        (paused below ``starlists.min_free_mb``).
    night : str or None
        The measurement's observing night.
    frame_path : str or Path
        The frame.
    store : Store, optional
        The node's open database (default: the one of ``cfg``).

    Returns
    -------
    str or None
        The starlist's path (None: no starlist, or not written: logged).
    """
    if check is not None:
        from ..store.checkstars import CheckStars

        CheckStars(store if store is not None else cfg).choose(
            check.target, check.night, check.label, check.auid, check.file)
    if starlist is None:
        return None
    from .starlist import starlist_path, write_starlist

    frame = Path(frame_path)
    try:
        path = starlist_path(cfg.data_dir, night, frame)
        return str(write_starlist(starlist, path, min_free_mb=int(cfg.starlists.min_free_mb)))
    except (OSError, ValueError) as exc:
        log.warning("%s: starlist not written: %s", frame.name, exc)
        return None


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
                       night_choice: str | None) -> tuple[Measurement, NightCheck | None, Any]:
    """Record the excess noise, illumination model and check-star note; say which check star
    to keep for the night (first good frame) and build the starlist (nothing is written).

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
    (Measurement, NightCheck or None, Starlist or None)
        The record, the check star to keep, the starlist (``photometry.starlists``).
    """
    check = None
    if (fit.check is not None and night_choice is None and not cfg.photometry.check_star
            and m.night and m.quality_flag != QualityFlag.POOR):
        c = fit.check.comp
        check = NightCheck(name_key(target), m.night, c.label, c.auid, str(frame.path))
    starlist = None
    if cfg.photometry.starlists:
        from .starlist import build_starlist

        try:
            starlist = build_starlist(frame, wcs, cfg, sm, fit, target,
                                      m.sequence_source or "none")
        except (OSError, ValueError) as exc:
            log.warning("%s: starlist not built: %s", frame.path.name, exc)
    reasons = m.quality_reasons + ((fit.check_note,) if fit.check_note else ())
    m = m.replace(excess_noise_mag=round(sm.excess_mag, 4),
                  excess_noise_stars=sm.excess_stars, illumination=_illumination(fit),
                  check_star_note=fit.check_note, quality_reasons=reasons)
    return m, check, starlist
