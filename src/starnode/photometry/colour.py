"""V from a one-shot-colour camera: the blue and red planes, the night's colour term, the
transformation (opt-in: ``photometry.transform``).

Why: the green Bayer plane (TG) is not Johnson V. Its difference from V depends on the star's
colour, so a red variable measured against bluer comps is off by ``Tv_bv x ((B-V)_var -
(B-V)_comps)`` - a tenth of a magnitude for a Mira against solar-type comps with the S50. A raw
sub also holds the blue and red CFA sites, and the VSP sequence gives every comp's B and V, so
each frame can measure its own colour term (AAVSO DSLR Observing Manual, "transformation"):

1. the blue (TB) and red (TR) planes are measured with the *same* aperture, gap and annulus
   as the green one, at the green positions shifted to each site's pixel grid
   (:func:`colour_plane`, :func:`measure_colour`);
2. two weighted, clipped straight-line fits over the comps (the check star stays out):
   ``V - g = ZP + Tv_bv (B - V)`` and ``B - V = C + Tbv (b - g)`` (:func:`fit_line`,
   :func:`solve`), each error inflated by the fit's chi-square when the comps disagree;
3. the target's colour from its measured ``b - g``, then its V with the full propagated error
   (photon noise of g and b, both fits' covariances) (:func:`ColourSolution.apply`).

The coefficient is fitted **per frame**, and every frame's fit is kept per telescope and
observing night (:class:`starnode.store.colourterms.ColourTerms`, migration 7): when a frame's
own Tv_bv is too uncertain but the night's combination so far (inverse-variance weighted mean,
error inflated by the frames' chi-square) is good enough, the frame is transformed with the
night's coefficient, its zero point refitted on its own comps (``scope`` ``night``). The
transformation is *applied* - the record
becomes ``V``, ``transformed`` True, AAVSO ``TRANS=YES`` with the coefficient in NOTES - only
when the error of ``Tv_bv`` is at most ``photometry.transform_max_error``, at least
:data:`MIN_COMPS` comps took part in both fits, the target and check star are measurable in
TB and the target's colour lies within the comps' B-V range (no extrapolation). Otherwise the
record stays ``TG`` / ``TRANS=NO`` and ``transformation.reason`` says why.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass

import numpy as np
from astropy.stats import sigma_clip

from ..config import Config
from ..frame.load import Frame
from ..records import CheckStar, Measurement, Transformation
from .apertures import StarMeasurement, measure_stars
from .ensemble import EnsembleFit, rounded, unmeasurable
from .quality import grade_quality

log = logging.getLogger("starnode.photometry")

__all__ = [
    "MIN_COMPS",
    "ColourSolution",
    "LineFit",
    "colour_plane",
    "fit_line",
    "measure_colour",
    "solve",
    "transform_measurement",
]

#: Fewest comps in each of the two colour fits.
MIN_COMPS = 5
#: How far (mag of B-V) beyond the comps' colour range a target may lie and still be
#: transformed.
COLOUR_MARGIN = 0.3
#: Catalogue error assumed for a comp whose sequence gives none (or zero).
_DEFAULT_CAT_ERR = 0.03
#: Lowest SNR of a star in the blue plane for its colour to be used.
_MIN_SNR = 10.0


def colour_plane(frame: Frame, colour: str) -> tuple[np.ndarray, float, float] | None:
    """The blue or red plane of a frame, on the measured (green) plane's grid.

    Parameters
    ----------
    frame : Frame
        A raw sub (its ``raw`` CFA mosaic and ``bayer`` pattern) or a native stack (``cube``
        in R, G, B order).
    colour : {"B", "R"}
        Which plane.

    Returns
    -------
    (numpy.ndarray, float, float) or None
        The plane (float32 ADU) and the (dx, dy) to add to a measured-plane position to get
        the same sky point in it: a sub's green plane pixel (i, j) is centred on native
        (2i + 0.5, 2j + 0.5), a blue or red site (r, c) of the cell on (2i + r, 2j + c).
        None for a mono frame (no colour) or a pattern without that colour.
    """
    if colour not in ("B", "R"):
        raise ValueError(f"colour must be 'B' or 'R', got {colour!r}")
    if frame.kind == "sub" and frame.raw is not None and frame.bayer:
        pattern = frame.bayer.upper()
        if pattern.count(colour) != 1:
            return None
        k = pattern.index(colour)
        r, c = divmod(k, 2)
        plane = frame.raw[r::2, c::2].astype(np.float32)
        return plane, (0.5 - c) / 2.0, (0.5 - r) / 2.0
    if frame.kind == "stack" and frame.cube is not None:
        return frame.cube[0 if colour == "R" else 2].astype(np.float32), 0.0, 0.0
    return None


def measure_colour(frame: Frame, sm: StarMeasurement, cfg: Config, colour: str,
                   airmass: float | None = None) -> StarMeasurement | None:
    """Photometry of the green measurement's stars in the blue or red plane.

    Same positions (no re-centring: the green centroids, shifted to the site grid), same FWHM
    and so the same aperture, gap and annulus as ``sm``.

    Parameters
    ----------
    frame : Frame
    sm : StarMeasurement
        The green plane's photometry of the same stars.
    cfg : Config
    colour : {"B", "R"}
    airmass : float, optional
        For the scintillation term.

    Returns
    -------
    StarMeasurement or None
        None when the frame has no such plane (mono).
    """
    found = colour_plane(frame, colour)
    if found is None:
        return None
    plane, dx, dy = found
    # one CFA site per cell instead of two green ones: the read noise of one pixel
    read_noise = frame.read_noise_e / math.sqrt(2.0) if frame.kind == "sub" else \
        frame.read_noise_e
    cframe = dataclasses.replace(frame, plane=plane, green=None, read_noise_e=read_noise)
    xy = np.column_stack([sm.x + dx, sm.y + dy])
    out = measure_stars(cframe, xy, cfg, fwhm=sm.fwhm, recentre=False, airmass=airmass)
    if not math.isclose(out.radius, sm.radius, rel_tol=1e-6):
        log.warning("%s: %s aperture %.2f px differs from the green %.2f px", frame.path.name,
                    colour, out.radius, sm.radius)
    return out


@dataclass(frozen=True)
class LineFit:
    """``y = intercept + slope x``, weighted, clipped, chi-square-inflated covariance."""

    intercept: float
    slope: float
    cov: np.ndarray  # 2x2 over (intercept, slope)
    n: int
    chi2: float  # reduced, before inflation
    used: np.ndarray  # bool mask over the input points
    x_min: float
    x_max: float

    def value(self, x: float) -> tuple[float, float]:
        """The line at ``x`` and its error from the fit's covariance."""
        j = np.array([1.0, x])
        return self.intercept + self.slope * x, math.sqrt(max(float(j @ self.cov @ j), 0.0))

    @property
    def slope_err(self) -> float:
        """Error of the slope."""
        return math.sqrt(max(float(self.cov[1, 1]), 0.0))


def _wls(x: np.ndarray, y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, cov = np.polyfit(x, y, 1, w=1.0 / s, cov="unscaled")
    return p, cov


def fit_line(x: np.ndarray, y: np.ndarray, sigma: np.ndarray, clip_sigma: float = 3.0,
             min_keep: int = MIN_COMPS) -> LineFit | None:
    """Weighted straight-line fit with iterative sigma clipping of the normalised residuals.

    Parameters
    ----------
    x, y, sigma : numpy.ndarray
        Points and the 1-sigma error of each ``y``.
    clip_sigma : float
        Clipping threshold (astropy ``sigma_clip`` on residual / error, median and MAD).
    min_keep : int
        Never fit fewer points; None when fewer are usable.

    Returns
    -------
    LineFit or None
    """
    x, y, s = (np.asarray(a, dtype=float) for a in (x, y, sigma))
    used = np.isfinite(x) & np.isfinite(y) & np.isfinite(s) & (s > 0)
    if used.sum() < max(min_keep, 3) or np.ptp(x[used]) <= 0:
        return None
    p, cov = _wls(x[used], y[used], s[used])
    for _ in range(5):
        z = (y - np.polyval(p, x)) / s
        clipped = sigma_clip(np.ma.masked_array(z, mask=~used), sigma=clip_sigma, maxiters=1,
                             stdfunc="mad_std", masked=True)
        keep = used & ~np.ma.getmaskarray(clipped)
        if keep.sum() < max(min_keep, 3) or np.array_equal(keep, used):
            break
        used = keep
        p, cov = _wls(x[used], y[used], s[used])
    n = int(used.sum())
    r = (y[used] - np.polyval(p, x[used])) / s[used]
    chi2 = float(np.sum(r * r)) / (n - 2) if n > 2 else 1.0
    cov_ab = np.array([[cov[1, 1], cov[1, 0]], [cov[0, 1], cov[0, 0]]]) * max(chi2, 1.0)
    return LineFit(float(p[1]), float(p[0]), cov_ab, n, chi2, used, float(x[used].min()),
                   float(x[used].max()))


@dataclass(frozen=True)
class ColourSolution:
    """One frame's transformation: ``V - g = zp + Tv_bv (B-V)``, ``B-V = c + Tbv (b-g)``."""

    v_fit: LineFit  # x = catalogue B-V, y = V - g
    bv_fit: LineFit  # x = b - g, y = catalogue B-V
    #: the V fit's points (x, y, sigma), for refitting its zero point with a fixed slope
    v_points: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    #: ``frame`` (Tv_bv fitted on this frame) or ``night`` (the night's combined Tv_bv)
    scope: str = "frame"

    def with_slope(self, slope: float, slope_err: float) -> ColourSolution:
        """The same frame with Tv_bv fixed (the night's): the zero point refitted on this
        frame's comps (the V fit's points it kept), its error from their scatter
        (chi2-inflated) and the slope's error at their mean colour."""
        assert self.v_points is not None
        x, y, sig = self.v_points
        used = self.v_fit.used
        x, y, sig = x[used], y[used], sig[used]
        w = 1.0 / sig**2
        a = float(np.sum(w * (y - slope * x)) / np.sum(w))
        n = len(x)
        chi2 = float(np.sum(w * (y - a - slope * x) ** 2)) / max(n - 1, 1)
        xbar = float(np.sum(w * x) / np.sum(w))
        var_mean = max(chi2, 1.0) / float(np.sum(w))
        cov = np.array([[var_mean + xbar**2 * slope_err**2, -xbar * slope_err**2],
                        [-xbar * slope_err**2, slope_err**2]])
        fit = dataclasses.replace(self.v_fit, intercept=a, slope=slope, cov=cov, chi2=chi2)
        return dataclasses.replace(self, v_fit=fit, scope="night")

    @property
    def tv_bv(self) -> float:
        """The colour term Tv_bv."""
        return self.v_fit.slope

    def apply(self, g: float, g_err: float, b: float, b_err: float
              ) -> tuple[float, float, float, float]:
        """V of a star from its instrumental green and blue magnitudes.

        Parameters
        ----------
        g, g_err, b, b_err : float
            Instrumental TG and TB magnitudes and their errors.

        Returns
        -------
        (float, float, float, float)
            V, its error, the star's B-V and its error. The errors hold the photon noise of g
            and b (g enters both terms) and both fits' covariances.
        """
        t, s = self.v_fit.slope, self.bv_fit.slope
        bv, bv_fit_err = self.bv_fit.value(b - g)
        zp_bv, v_fit_err = self.v_fit.value(bv)
        v = g + zp_bv
        var = ((1.0 - t * s) * g_err) ** 2 + (t * s * b_err) ** 2 + v_fit_err**2 \
            + (t * bv_fit_err) ** 2
        bv_err = math.hypot(bv_fit_err, s * math.hypot(g_err, b_err))
        return v, math.sqrt(var), bv, bv_err


def _cat(comp: object, band: str) -> tuple[float, float] | None:
    m = comp.mag(band)  # type: ignore[attr-defined]
    if m is None or not math.isfinite(m[0]):
        return None
    e = m[1] if (m[1] is not None and math.isfinite(m[1]) and m[1] > 0) else _DEFAULT_CAT_ERR
    return float(m[0]), float(e)


def _blue_ok(sb: StarMeasurement, j: int) -> bool:
    return bool(np.isfinite(sb.mag[j]) and np.isfinite(sb.snr[j]) and sb.snr[j] >= _MIN_SNR
                and not sb.edge[j] and not sb.saturated[j])


def solve(fit: EnsembleFit, sm: StarMeasurement, sb: StarMeasurement,
          clip_sigma: float = 3.0) -> ColourSolution | str:
    """The frame's two colour fits over its comps (never the check star).

    Parameters
    ----------
    fit : EnsembleFit
        The green ensemble (its ``rows``: the in-frame comps; its ``check``).
    sm, sb : StarMeasurement
        Green and blue photometry of the same stars (target first).
    clip_sigma : float
        Outlier clipping of both fits.

    Returns
    -------
    ColourSolution or str
        The solution, or why there is none.
    """
    pts = []
    for row in fit.rows:
        if row is fit.check or unmeasurable(sm, row.i) or not _blue_ok(sb, row.i):
            continue
        v, b = _cat(row.comp, "V"), _cat(row.comp, "B")
        if v is None or b is None:
            continue
        pts.append((v[0], v[1], b[0], b[1], float(sm.mag[row.i]), float(sm.mag_err[row.i]),
                    float(sb.mag[row.i]), float(sb.mag_err[row.i])))
    if len(pts) < MIN_COMPS:
        return f"{len(pts)} comps with B and V measurable in TG and TB, {MIN_COMPS} needed"
    a = np.array(pts)
    cv, ecv, cb, ecb, g, eg, b, eb = a.T
    v_fit = fit_line(cb - cv, cv - g, np.hypot(ecv, eg), clip_sigma)
    bv_fit = fit_line(b - g, cb - cv, np.sqrt(ecb**2 + ecv**2 + eg**2 + eb**2), clip_sigma)
    if v_fit is None or bv_fit is None:
        return "the comps' colours do not allow a fit (too few, or all of one colour)"
    return ColourSolution(v_fit, bv_fit, (cb - cv, cv - g, np.hypot(ecv, eg)))


def _check(fit: EnsembleFit, sm: StarMeasurement, sb: StarMeasurement, sol: ColourSolution,
           old: CheckStar | None) -> CheckStar | str | None:
    """The check star transformed like the target (its own measured colour)."""
    if fit.check is None or old is None:
        return None
    j = fit.check.i
    if not _blue_ok(sb, j):
        return f"check star {old.name} not measurable in TB"
    k, k_err, _, _ = sol.apply(float(sm.mag[j]), float(sm.mag_err[j]), float(sb.mag[j]),
                               float(sb.mag_err[j]))
    cat = _cat(fit.check.comp, "V")
    ref = cat[0] if cat else None
    return dataclasses.replace(old, mag=rounded(k), catalog_mag=ref, error=rounded(k_err),
                               deviation=rounded(k - ref) if ref is not None else None)


def _why_not(cfg: Config, sol: ColourSolution, sb: StarMeasurement, bv: float) -> str | None:
    limit = cfg.photometry.transform_max_error
    if not sol.v_fit.slope_err <= limit:
        return (f"Tv_bv error {sol.v_fit.slope_err:.3f} above "
                f"photometry.transform_max_error={limit:g}")
    if not _blue_ok(sb, 0):
        return "target not measurable in TB"
    lo, hi = sol.v_fit.x_min - COLOUR_MARGIN, sol.v_fit.x_max + COLOUR_MARGIN
    if not lo <= bv <= hi:
        return f"target B-V {bv:.2f} outside the comps' range {lo:.2f}..{hi:.2f}"
    return None


def _not_applied(m: Measurement, reason: str, sol: ColourSolution | None = None,
                 bv: float | None = None) -> Measurement:
    log.info("%s: not transformed to V: %s", m.file and m.file.rsplit("/", 1)[-1], reason)
    tr = Transformation(applied=False, reason=reason)
    if sol is not None:
        tr = _describe(sol, bv, None, applied=False, reason=reason)
    return m.replace(transformation=tr,
                     quality_reasons=(*m.quality_reasons, f"not transformed: {reason}"))


def _describe(sol: ColourSolution, bv: float | None, bv_err: float | None, *, applied: bool,
              reason: str | None, m: Measurement | None = None) -> Transformation:
    return Transformation(
        applied=applied, reason=reason, coefficient=rounded(sol.tv_bv),
        coefficient_err=rounded(sol.v_fit.slope_err), zero_point=rounded(sol.v_fit.intercept),
        colour_coefficient=rounded(sol.bv_fit.slope),
        colour_coefficient_err=rounded(sol.bv_fit.slope_err), colour_index=rounded(bv),
        colour_index_err=rounded(bv_err), n_comps=sol.v_fit.n, scope=sol.scope,
        untransformed_mag=m.magnitude if m else None,
        untransformed_err=m.uncertainty if m else None,
        untransformed_filter=m.filter if m else None)


def _night_solution(m: Measurement, frame: Frame, cfg: Config, sol: ColourSolution
                    ) -> ColourSolution:
    """Keep this frame's Tv_bv for the night; the night's combined coefficient instead of the
    frame's own when the frame's is too uncertain and the night's (with this frame) is not."""
    from ..store.colourterms import ColourTerms

    if not m.night:
        return sol
    terms = ColourTerms(cfg)
    telescope = m.telescope or ""
    terms.add(telescope, m.night, frame.sha1, sol.tv_bv, sol.v_fit.slope_err, sol.v_fit.n,
              m.jd)
    limit = cfg.photometry.transform_max_error
    if sol.v_fit.slope_err <= limit:
        return sol
    night = terms.night(telescope, m.night)
    if night is None or night.n_frames < 2 or not night.error <= limit:
        return sol
    log.info("%s: Tv_bv of the frame %.3f +/- %.3f; the night's %.3f +/- %.3f (%d frames)",
             frame.path.name, sol.tv_bv, sol.v_fit.slope_err, night.value, night.error,
             night.n_frames)
    return sol.with_slope(night.value, night.error)


def transform_measurement(m: Measurement, frame: Frame, cfg: Config, sm: StarMeasurement,
                          fit: EnsembleFit) -> Measurement:
    """The pipeline step: ``m`` transformed to V when the frame's colour term allows.

    Parameters
    ----------
    m : Measurement
        The green (TG) measurement of the frame.
    frame : Frame
    cfg : Config
        ``photometry.transform`` must be on (checked by the caller),
        ``photometry.transform_max_error``.
    sm : StarMeasurement
        The green photometry (target first, then the comps).
    fit : EnsembleFit
        The green ensemble.

    Returns
    -------
    Measurement
        Transformed (``filter`` V, ``transformed`` True, ``transformation.applied``), or ``m``
        with ``transformation.applied`` False and the reason.
    """
    if m.filter != "TG":
        return _not_applied(m, f"filter {m.filter} is not the green Bayer plane")
    sb = measure_colour(frame, sm, cfg, "B", m.airmass)
    if sb is None:
        return _not_applied(m, f"a {frame.kind} frame has no blue plane")
    sol = solve(fit, sm, sb, cfg.photometry.comp_clip_sigma)
    if isinstance(sol, str):
        return _not_applied(m, sol)
    sol = _night_solution(m, frame, cfg, sol)
    g, g_err = float(sm.mag[0]), float(sm.mag_err[0])
    v, v_err, bv, bv_err = sol.apply(g, g_err, float(sb.mag[0]), float(sb.mag_err[0]))
    why = _why_not(cfg, sol, sb, bv)
    check = None if why else _check(fit, sm, sb, sol, m.check_star)
    if isinstance(check, str):
        why = check
    if why:
        return _not_applied(m, why, sol, bv if math.isfinite(bv) else None)
    # keep what the pipeline added to the TG magnitude and error beyond g + ensemble zero point
    # (e.g. a spatial zero point): the transformation changes only the colour part
    offset = m.magnitude - (g + fit.zp)
    extra2 = max(m.uncertainty**2 - g_err**2 - fit.zp_err**2, 0.0)
    mag, err = v + offset, math.sqrt(v_err**2 + extra2)
    k = check if isinstance(check, CheckStar) else None
    flag, reasons = grade_quality(cfg, m.snr or 0.0, err, m.comparison_stars, k, m.airmass,
                                  frame)
    tr = _describe(sol, bv, bv_err, applied=True, reason=None, m=m)
    source = (f"{sol.v_fit.n} comps" if sol.scope == "frame"
              else f"the night's frames (zero point from {sol.v_fit.n} comps)")
    note = (f"transformed to V: Tv_bv={sol.tv_bv:.3f}+/-{sol.v_fit.slope_err:.3f} from "
            f"{source}, B-V={bv:.2f}")
    log.info("%s: %s V = %.3f +/- %.3f (TG %.3f; %s)", frame.path.name, m.target_name, mag, err,
             m.magnitude, note)
    return m.replace(magnitude=round(mag, 4), uncertainty=round(err, 4), filter="V", band="V",
                     transformed=True, check_star=k, transformation=tr, quality_flag=flag,
                     quality_reasons=(*reasons, note))
