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
from .illumination import RadialFit, fit_radial, rho2
from .noise import excess_variance

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
    # the comps' excess variance (what their errors do not explain) enters every weight
    s2 = excess_variance(zp_i[used] - zp, e2[used])
    w = 1.0 / (e2[used] + s2)
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


def _colour(row: CompRow) -> float | None:
    b, v = row.comp.mag("B"), row.comp.mag("V")
    return (b[0] - v[0]) if (b is not None and v is not None) else None


def choose_check(cfg: Config, good: list[CompRow], rows: list[CompRow], t_inst: float,
                 sm: StarMeasurement, name: str, night_choice: str | None = None,
                 target_bv: float | None = None) -> tuple[CompRow | None, str | None]:
    """The check star: ``photometry.check_star`` (label or AUID) when set, else the night's
    choice (``night_choice``), else the measurable comp closest in magnitude and colour to the
    target, only when ``min_comps`` others remain.

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
    night_choice : str, optional
        Label of the check star already chosen for this target and night: kept, or none at all
        in a frame where it is not measurable (never a different one).
    target_bv : float, optional
        The target's B-V, for the colour part of the choice (0.6 when unknown).

    Returns
    -------
    (CompRow or None, str or None)
        The check star, and why there is none when a pinned / chosen one is unusable.
    """
    want = cfg.photometry.check_star or night_choice
    if want:
        for row in rows:
            c = row.comp
            if want.strip().lower() in (c.label.lower(), (c.auid or "").lower()):
                why = unmeasurable(sm, row.i)
                if not why:
                    return row, None
                note = f"check star {c.label} {why} in this frame: no check star"
                log.warning("%s: %s", name, note)
                return None, note
        note = f"check star {want} not in the sequence / frame: no check star"
        log.warning("%s: %s", name, note)
        return None, note
    if len(good) < cfg.photometry.min_comps + 1 or not math.isfinite(t_inst):
        return None, None
    zp_guess = float(np.median([row.cat - sm.mag[row.i] for row in good]))
    t_std = t_inst + zp_guess
    t_bv = 0.6 if target_bv is None else target_bv

    def distance(row: CompRow) -> tuple[float, str]:
        bv = _colour(row)
        d_col = 0.5 * abs(bv - t_bv) if bv is not None else 0.25
        # close in magnitude and colour, with a trustworthy catalogue value
        return (abs(row.cat - t_std) + d_col + (0.5 if row.cat_err > 0.05 else 0.0),
                row.comp.label)

    return min(good, key=distance), None


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
    check_note: str | None = None
    #: the radial zero point (None: constant), and why constant
    radial: RadialFit | None = None
    shape: tuple[int, int] | None = None

    def zp_for(self, sm: StarMeasurement, j: int) -> tuple[float, float]:
        """Zero point and its error at star ``j``'s position (the target is star 0)."""
        if self.radial is None or not self.radial.keep or self.shape is None:
            return self.zp, self.zp_err
        r2 = float(rho2(np.array([sm.x[j]]), np.array([sm.y[j]]), self.shape)[0])
        return self.radial.zp_at(r2)


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
                 name: str, *, shape: tuple[int, int] | None = None,
                 night_choice: str | None = None,
                 target_bv: float | None = None) -> EnsembleFit:
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
    shape : (int, int), optional
        The plane's shape: with it, a radial zero point is fitted when the comps allow
        (``photometry.illumination``), and ``zp`` is the zero point at the target.
    night_choice, target_bv :
        See :func:`choose_check`.

    Returns
    -------
    EnsembleFit

    Raises
    ------
    FrameRejected
        ``too_few_comps`` before or after clipping.
    """
    good = [row for row in rows if not unmeasurable(sm, row.i)]
    check, note = choose_check(cfg, good, rows, float(sm.mag[0]), sm, name, night_choice,
                               target_bv)
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
    fit = EnsembleFit(zp, zp_err, scatter, n_used, rows, pool, used_ids, check, note)
    if shape is not None and ph.illumination != "constant":
        _illumination(fit, sm, shape, ph.illumination == "radial")
    return fit


def _illumination(fit: EnsembleFit, sm: StarMeasurement, shape: tuple[int, int],
                  force: bool) -> None:
    """Fit the radial zero point on the ensemble's comps; when kept, ``fit.zp`` / ``zp_err``
    become the target's."""
    used = [row for row in fit.pool if id(row) in fit.used]
    idx = np.array([row.i for row in used])
    zp_i = np.array([row.cat - sm.mag[row.i] for row in used])
    var = np.array([row.cat_err**2 + sm.mag_err[row.i] ** 2 for row in used])
    radial = fit_radial(zp_i, var, rho2(sm.x[idx], sm.y[idx], shape), force)
    fit.shape = shape
    fit.radial = radial
    if radial is not None and radial.keep:
        fit.zp, fit.zp_err = fit.zp_for(sm, 0)
        fit.scatter = float(np.sqrt(np.mean((zp_i - (radial.a + radial.b * rho2(
            sm.x[idx], sm.y[idx], shape))) ** 2)))


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
            residual=(rounded(row.cat - (float(sm.mag[j]) + fit.zp_for(sm, j)[0]))
                      if inst_j is not None else None),
            used=id(row) in fit.used, excluded=_excluded(fit, row, sm),
            error=rounded(float(sm.mag_err[j])), x=rounded(float(sm.x[j]), 2),
            y=rounded(float(sm.y[j]), 2)))
    return tuple(out)


def check_result(fit: EnsembleFit, sm: StarMeasurement) -> CheckStar | None:
    """The check star measured with the ensemble's zero point (None without one)."""
    if fit.check is None:
        return None
    j = fit.check.i
    zp, zp_err = fit.zp_for(sm, j)
    k_mag = float(sm.mag[j]) + zp
    c = fit.check.comp
    return CheckStar(name=c.name, label=c.label, auid=c.auid, mag=rounded(k_mag),
                     catalog_mag=fit.check.cat, instrumental_mag=rounded(float(sm.mag[j])),
                     deviation=rounded(k_mag - fit.check.cat),
                     error=rounded(math.hypot(float(sm.mag_err[j]), zp_err)))
