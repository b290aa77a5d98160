"""Ensemble zero point from the comparison stars, and the check star kept out of it.

Why an ensemble and not one comp: with a 50 mm telescope every comp is noisy (scintillation),
and a weighted mean with outlier rejection over up to ``max_comps`` comps gives both a better
zero point and an honest error (chi-square inflated when the comps disagree). Method:
docs/photometry.md, Methods 8-9.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from ..catalogs import CompStar
from ..config import Config
from ..errors import FrameRejected, RejectCategory
from ..records import CheckStar, CompResult
from .apertures import StarMeasurement

log = logging.getLogger("starnode.photometry")

__all__ = ["CompRow", "EnsembleFit", "choose_check", "ensemble", "fit_ensemble", "rounded"]

_NAN_CATALOG_ERROR = 0.03  # mag assumed when the sequence gives no (or a zero) error


def rounded(x: float | None, nd: int = 4) -> float | None:
    """``round(x, nd)``, None for None or a non-finite value."""
    if x is None or not math.isfinite(x):
        return None
    return round(float(x), nd)


def _cat_err(e: float | None) -> float:
    return e if (e is not None and math.isfinite(e) and e > 0) else _NAN_CATALOG_ERROR


@dataclass(eq=False)
class CompRow:
    """A sequence comp inside the frame: its index in the measured stars and its catalogue
    magnitude and error (as used) in the frame's band. Compared by identity."""

    i: int
    comp: CompStar
    cat: float
    cat_err: float


def comp_rows(comps: list[CompStar], idx: np.ndarray, band: str) -> list[CompRow]:
    """One :class:`CompRow` per in-frame comp (``idx`` into ``comps``; star index from 1)."""
    rows = []
    for j, ci in enumerate(idx, start=1):
        c = comps[ci]
        m, e = c.mag(band)  # type: ignore[misc]
        rows.append(CompRow(j, c, float(m), _cat_err(e)))
    return rows


def unmeasurable(sm: StarMeasurement, j: int) -> str:
    """Why star ``j`` cannot be a comp (``edge``, ``saturated``, ``low snr``), or ''."""
    if sm.edge[j]:
        return "edge"
    if sm.saturated[j]:
        return "saturated"
    if not (np.isfinite(sm.snr[j]) and sm.snr[j] >= 10.0):
        return "low snr"
    return ""


def ensemble(cat: np.ndarray, cat_err: np.ndarray, inst: np.ndarray, inst_err: np.ndarray,
             clip_sigma: float, min_keep: int) -> tuple[float, float, float, np.ndarray]:
    """Weighted zero point with iterative clipping.

    Parameters
    ----------
    cat, cat_err : numpy.ndarray
        Catalogue magnitudes and errors of the comps.
    inst, inst_err : numpy.ndarray
        Their instrumental magnitudes and errors.
    clip_sigma : float
        The worst comp is dropped while its |residual| exceeds this many max(error, MAD).
    min_keep : int
        Never fewer comps (nor fewer than 2).

    Returns
    -------
    (float, float, float, numpy.ndarray)
        Zero point, its error (chi2-inflated), weighted rms scatter, mask of the comps used.
    """
    zp_i = cat - inst
    e2 = cat_err**2 + inst_err**2
    used = np.isfinite(zp_i) & np.isfinite(e2) & (e2 > 0)
    while True:
        w = 1.0 / e2[used]
        zp = float(np.sum(w * zp_i[used]) / np.sum(w))
        r = zp_i - zp
        k = int(used.sum())
        if k <= max(min_keep, 2):
            break
        mad = 1.4826 * float(np.median(np.abs(r[used] - np.median(r[used]))))
        scale = np.maximum(np.sqrt(e2), mad)
        z = np.where(used, np.abs(r) / scale, 0.0)
        worst = int(np.argmax(z))
        if z[worst] <= clip_sigma:
            break
        used[worst] = False
    w = 1.0 / e2[used]
    zp = float(np.sum(w * zp_i[used]) / np.sum(w))
    r = zp_i[used] - zp
    err = math.sqrt(1.0 / float(np.sum(w)))
    k = int(used.sum())
    if k > 1:
        chi2 = float(np.sum(w * r * r)) / (k - 1)
        if chi2 > 1.0:
            err *= math.sqrt(chi2)
    scatter = math.sqrt(float(np.sum(w * r * r) / np.sum(w))) if k > 1 else 0.0
    return zp, err, scatter, used


def choose_check(cfg: Config, good: list[CompRow], rows: list[CompRow], t_inst: float,
                 sm: StarMeasurement, name: str) -> CompRow | None:
    """The check star: ``photometry.check_star`` (label or AUID) when set, else the measurable
    comp closest in magnitude to the target, only when ``min_comps`` others remain.

    Parameters
    ----------
    cfg : Config
    good : list of CompRow
        Measurable comps.
    rows : list of CompRow
        All in-frame comps.
    t_inst : float
        Target instrumental magnitude.
    sm : StarMeasurement
    name : str
        File name, for warnings.

    Returns
    -------
    CompRow or None
    """
    want = cfg.photometry.check_star
    if want:
        for row in rows:
            c = row.comp
            if want.strip().lower() in (c.label.lower(), (c.auid or "").lower()):
                if any(row is g for g in good):
                    return row
                log.warning("%s: check star %s not measurable here", name, want)
                return None
        log.warning("%s: check star %s not in the sequence / frame", name, want)
        return None
    if len(good) < cfg.photometry.min_comps + 1 or not math.isfinite(t_inst):
        return None
    zp_guess = float(np.median([row.cat - sm.mag[row.i] for row in good]))
    t_std = t_inst + zp_guess
    # close in magnitude to the target, with a trustworthy catalogue value
    return min(good, key=lambda row: (abs(row.cat - t_std) + (0.5 if row.cat_err > 0.05 else 0.0),
                                      row.comp.label))


@dataclass
class EnsembleFit:
    """The zero point and which comps made it."""

    zp: float
    zp_err: float
    scatter: float
    n_used: int
    rows: list[CompRow]
    pool: list[CompRow]
    used: set[int]  # id() of the rows in the ensemble
    check: CompRow | None


def _pool(cfg: Config, good: list[CompRow], check: CompRow | None,
          sm: StarMeasurement) -> list[CompRow]:
    pool = [row for row in good if row is not check]
    if len(pool) > cfg.photometry.max_comps:
        zp_guess = float(np.median([row.cat - sm.mag[row.i] for row in pool]))
        t_std = float(sm.mag[0]) + zp_guess
        pool.sort(key=lambda row: abs(row.cat - t_std))
        pool = pool[:cfg.photometry.max_comps]
    return pool


def fit_ensemble(cfg: Config, rows: list[CompRow], sm: StarMeasurement,
                 name: str) -> EnsembleFit:
    """Check star, comp selection and zero point for the target (star 0 of ``sm``).

    Parameters
    ----------
    cfg : Config
    rows : list of CompRow
        The in-frame comps.
    sm : StarMeasurement
        Target first, then the comps.
    name : str
        The file's name, for messages.

    Returns
    -------
    EnsembleFit

    Raises
    ------
    FrameRejected
        ``too_few_comps`` before or after clipping.
    """
    good = [row for row in rows if not unmeasurable(sm, row.i)]
    check = choose_check(cfg, good, rows, float(sm.mag[0]), sm, name)
    pool = _pool(cfg, good, check, sm)
    ph = cfg.photometry
    if len(pool) < ph.min_comps:
        raise FrameRejected(f"{name}: {len(pool)} usable comparison stars, "
                            f"{ph.min_comps} needed", RejectCategory.TOO_FEW_COMPS)
    zp, zp_err, scatter, used = ensemble(
        np.array([row.cat for row in pool]), np.array([row.cat_err for row in pool]),
        np.array([sm.mag[row.i] for row in pool]), np.array([sm.mag_err[row.i] for row in pool]),
        ph.comp_clip_sigma, ph.min_comps)
    n_used = int(used.sum())
    if n_used < ph.min_comps:
        raise FrameRejected(f"{name}: {n_used} comparison stars left after clipping",
                            RejectCategory.TOO_FEW_COMPS)
    used_ids = {id(row) for row, u_ in zip(pool, used, strict=True) if u_}
    return EnsembleFit(zp, zp_err, scatter, n_used, rows, pool, used_ids, check)


def _excluded(fit: EnsembleFit, row: CompRow, sm: StarMeasurement) -> str | None:
    if id(row) in fit.used:
        return None
    if row is fit.check:
        return "check star"
    return unmeasurable(sm, row.i) or ("clipped" if any(row is p for p in fit.pool)
                                       else "not needed")


def comp_results(fit: EnsembleFit, sm: StarMeasurement) -> tuple[CompResult, ...]:
    """Every in-frame comp as reported (``comps`` of the result)."""
    out = []
    for row in fit.rows:
        c, j = row.comp, row.i
        inst_j = rounded(float(sm.mag[j]))
        out.append(CompResult(
            name=c.name, auid=c.auid, label=c.label, catalog_mag=row.cat,
            catalog_err=rounded(row.cat_err), instrumental_mag=inst_j,
            residual=(rounded(row.cat - (float(sm.mag[j]) + fit.zp)) if inst_j is not None
                      else None),
            used=id(row) in fit.used, excluded=_excluded(fit, row, sm),
            error=rounded(float(sm.mag_err[j])), x=rounded(float(sm.x[j]), 2),
            y=rounded(float(sm.y[j]), 2)))
    return tuple(out)


def check_result(fit: EnsembleFit, sm: StarMeasurement) -> CheckStar | None:
    """The check star measured with the ensemble's zero point (None without one)."""
    if fit.check is None:
        return None
    j = fit.check.i
    k_mag = float(sm.mag[j]) + fit.zp
    c = fit.check.comp
    return CheckStar(name=c.name, label=c.label, auid=c.auid, mag=rounded(k_mag),
                     catalog_mag=fit.check.cat, instrumental_mag=rounded(float(sm.mag[j])),
                     deviation=rounded(k_mag - fit.check.cat),
                     error=rounded(math.hypot(float(sm.mag_err[j]), fit.zp_err)))
