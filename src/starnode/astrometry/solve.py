"""The solver's orchestrator: :func:`solve_frame` as a list of named steps.

1. :func:`_frame_facts` - the plane, header, binning, content key and header WCS of the frame;
2. :meth:`_Job.from_cache` - a solution stored for the same file content;
3. :meth:`_Job.prepare` - nominal scale, pointing, detected stars, reference stars;
4. :meth:`_Job.try_guesses` - the caller's hint, the previous frame's solution, the header WCS;
5. :meth:`_Job.try_asterisms` - triangle matching around the pointing (and the guesses);
6. :meth:`_Job.try_blind` - tetra3rs, ASTAP, solve-field;

each verified by :func:`.match.refine` / :func:`.match.accept`; the first verified answer wins
and :meth:`_Job.finish` checks its scale, remembers and stores it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
from astropy.time import Time
from astropy.wcs import WCS

from starnode.config import Config
from starnode.errors import AstrometryError, CatalogError
from starnode.frame.detect import Extractions, Stars, find_stars
from starnode.frame.wcs import header_wcs, pixel_scale, wcs_scale_arcsec
from starnode.util.values import finite_float

from .asterism import triangle_match
from .blind import Pointing, blind_solvers
from .geometry import Shape, center_world, gnomonic, is_mirrored, rotation_deg, same_wcs, sep_deg
from .match import Fit, Reject, accept, guided_start, refine
from .reference import Cone, Refs, merge_refs, reference_stars
from .solution import MEMO, Solution, SolvedFrames
from .tetra import Blind

log = logging.getLogger("starnode.astrometry")

__all__ = ["HEADER_HINT", "PlaneFrame", "how_to_fix", "nominal_scale_arcsec",
           "refs_in_footprint", "solve_frame"]


class _HeaderHint:
    """The type of :data:`HEADER_HINT`."""

    def __repr__(self) -> str:
        return "HEADER_HINT"


#: ``solve_frame(hint=HEADER_HINT)``: the frame's own header WCS is the hint, read only when
#: the frame is solved (never for a cached solution)
HEADER_HINT = _HeaderHint()

#: Match radii (plane pixels) of the re-match/fit loop, widest first.
RADII = (4.0, 3.0, 2.0)


def refs_in_footprint(ra: np.ndarray, dec: np.ndarray, pointing: tuple[float, float],
                      shape: Shape, plane_scale: float, wcs: WCS | None = None) -> int:
    """Reference stars inside the frame's footprint (not the circle around it).

    With a WCS guess (the header's or the caller's hint) the stars that fall on the plane;
    without one (rotation unknown) the stars in the inscribed circle, scaled by the frame's
    area over the circle's (a real EQ field held 5 bright stars in its footprint and 18 in
    the circumscribed circle: counting the circle kept the sparse-field step from asking for
    deeper stars).

    Parameters
    ----------
    ra, dec : numpy.ndarray
        Reference stars (deg).
    pointing : (float, float)
        The frame centre's RA, Dec (deg).
    shape : (int, int)
        The plane's shape.
    plane_scale : float
        Arcsec per plane pixel.
    wcs : astropy.wcs.WCS, optional
        A WCS guess for the plane.

    Returns
    -------
    int
    """
    ny, nx = shape
    ra, dec = np.asarray(ra, float), np.asarray(dec, float)
    if len(ra) == 0:
        return 0
    if wcs is not None:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                x, y = wcs.all_world2pix(ra, dec, 0)
            except Exception:  # a guess that cannot be inverted: use the circle
                x = None
        if x is not None:
            return int(np.sum((x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5)))
    xi, eta = gnomonic(ra, dec, *pointing)
    r = np.hypot(np.nan_to_num(xi, nan=1e3), np.nan_to_num(eta, nan=1e3))
    r_in = 0.5 * min(nx, ny) * plane_scale / 3600.0
    area = nx * ny * (plane_scale / 3600.0) ** 2
    return round(int(np.sum(r <= r_in)) * area / (math.pi * r_in * r_in))


def how_to_fix(notes: list[str] | tuple[str, ...]) -> str:
    """The command(s) that would let a refused frame be solved, from the attempts' notes.

    Parameters
    ----------
    notes : list of str
        The reasons the attempts failed.

    Returns
    -------
    str
        "to solve it: ..." or "" when nothing is known to help.
    """
    text = " ".join(notes)
    fixes = []
    if "no deeper Gaia stars" in text:
        fixes.append("go online once (catalogs.offline: false) so that the field's deeper "
                     "Gaia stars are cached, then it solves offline")
    if "no tetra3rs database" in text or "no blind solver installed" in text:
        fixes.append("build the blind solver's database once: 'starnode solver-db' (needs "
                     "pip install 'starnode[solve]' and Debian's astrometry.net + "
                     "astrometry-data-tycho2-07-littleendian for sparse fields)")
    if "no blind solver installed" in text or "solve-field" not in text:
        fixes.append("install astrometry.net's solve-field: apt-get install astrometry.net "
                     "astrometry-data-tycho2-08-littleendian "
                     "astrometry-data-tycho2-09-littleendian")
    return ("to solve it: " + "; or ".join(fixes)) if fixes else ""


@dataclass(frozen=True)
class _Facts:
    """What the solver needs of a frame."""

    plane: np.ndarray
    header: Mapping[str, Any]
    binning: int
    cache_key: str | None
    #: the frame (its ``header_wcs``: read when first needed, never for a cached solution)
    source: Any
    ra_deg: float | None
    dec_deg: float | None
    #: the frame's extractions (:attr:`starnode.frame.load.Frame.extractions`), shared with the
    #: starlist; None for a bare plane
    extractions: Extractions | None = None

    @property
    def shape(self) -> Shape:
        return int(self.plane.shape[0]), int(self.plane.shape[1])

    @cached_property
    def header_wcs(self) -> WCS | None:
        """The frame's header WCS in plane pixels, or None."""
        return self.source.header_wcs  # type: ignore[no-any-return]


def nominal_scale_arcsec(header: Mapping[str, Any], config: Config) -> float | None:
    """Arcseconds per native sensor pixel, before any solve.

    Parameters
    ----------
    header : Mapping
        FITS cards (FOCALLEN in mm, XPIXSZ in micron).
    config : Config
        ``camera.pixel_scale_arcsec`` wins when set.

    Returns
    -------
    float or None
        None when neither tells (see :func:`starnode.frame.wcs.pixel_scale`).
    """
    return pixel_scale(header, config.camera.pixel_scale_arcsec)


def _epoch(header: Mapping[str, Any]) -> float:
    """Julian year of DATE-OBS (2025.0 when absent or unreadable): for proper motions."""
    try:
        return float(Time(str(header.get("DATE-OBS") or "").replace("Z", "")[:26]).jyear)
    except ValueError:
        return 2025.0


@dataclass(frozen=True)
class PlaneFrame:
    """A bare image plane and its header, for callers without a :class:`starnode.frame.load.Frame`
    (benchmarks, tests, other tools): what :func:`solve_frame` reads of a frame.

    Parameters
    ----------
    plane : numpy.ndarray
        The 2-D image the WCS is for.
    header : Mapping
        FITS cards (RA, DEC, FOCALLEN, XPIXSZ, a WCS, TELESCOP, OBJECT, DATE-OBS...).
    binning : int
        Native sensor pixels per plane pixel.
    sha1 : str, optional
        A content key for the solution cache.
    """

    plane: np.ndarray
    header: Mapping[str, Any]
    binning: int = 1
    sha1: str | None = None

    def __post_init__(self) -> None:
        if int(self.binning) < 1:
            raise AstrometryError(f"binning must be >= 1, got {self.binning}")

    @property
    def header_wcs(self) -> WCS | None:
        """The header's WCS in plane pixels, or None."""
        return header_wcs(self.header, int(self.binning))

    @property
    def ra_deg(self) -> float | None:
        """The RA card (degrees), or None."""
        return finite_float(self.header.get("RA"))

    @property
    def dec_deg(self) -> float | None:
        """The DEC card (degrees), or None."""
        return finite_float(self.header.get("DEC"))


def _frame_facts(frame: Any, config: Config) -> tuple[_Facts, Config]:
    """The solver's view of a :class:`starnode.frame.load.Frame` or a :class:`PlaneFrame`."""
    if isinstance(frame, np.ndarray):
        raise TypeError("solve_frame takes a Frame or a PlaneFrame(plane, header, binning), "
                        "not a bare array (the 0.1.0 loose-argument form is gone)")
    facts = _Facts(np.asarray(frame.plane), frame.header, int(frame.binning), frame.sha1,
                   frame, frame.ra_deg, frame.dec_deg,
                   getattr(frame, "extractions", None))
    cfg = config
    if facts.plane.ndim != 2 or min(facts.plane.shape) < 16:
        raise AstrometryError(f"need a 2-D image plane, got shape {facts.plane.shape}")
    return facts, cfg


@dataclass
class _Job:
    """One frame's solve: what is known, what was tried, why it failed."""

    facts: _Facts
    cfg: Config
    caller_refs: tuple[Any, Any, Any]
    t0: float
    key: str | None = None
    native: float = 0.0
    pointing: Pointing = None
    stars: Stars | None = None
    refs: Refs | None = None
    guesses: list[tuple[str, WCS]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    hint: WCS | None = None

    # ---------------------------------------------------------------- steps

    def from_cache(self) -> Solution | None:
        """Step 2: a solution stored earlier for the same file content and plane."""
        f = self.facts
        if not (f.cache_key and self.cfg.astrometry.cache):
            return None
        self.key = SolvedFrames.key(f.cache_key, f.shape, f.binning)
        hit = SolvedFrames(self.cfg.db_path).get(self.key)
        if hit is None:
            return None
        log.debug("astrometry cache hit for %s (solved by %s)", f.cache_key, hit.solved_by)
        MEMO.remember(f.header, hit.wcs, f.shape, f.binning)
        return replace(hit, elapsed_s=time.monotonic() - self.t0)

    def prepare(self, hint: WCS | None) -> None:
        """Step 3: nominal scale, pointing, detected stars and reference stars."""
        f, ac = self.facts, self.cfg.astrometry
        self.native = self._nominal_scale()
        self.hint = hint
        self.pointing = self._pointing(hint)
        self.stars = find_stars(f.plane, memo=f.extractions,
                                finite=bool(getattr(f.source, "plane_is_finite", False)))
        if len(self.stars) < min(ac.min_matches, 3):
            raise AstrometryError(f"only {len(self.stars)} stars detected (need "
                                  f"astrometry.min_matches={ac.min_matches})")
        if self.pointing is None:
            self.notes.append("no RA/DEC cards and no WCS: lost in space, blind solvers only")
            self.refs = Refs(np.empty(0), np.empty(0), np.empty(0), 0, 0)
            return
        self.refs = self._references(*self.pointing,
                                     ac.search_radius_deg + self.half_diag_deg + 0.05)
        log.debug("%d stars detected, %d reference stars (%d caller, %d Gaia G<10)",
                  len(self.stars), len(self.refs.ra), self.refs.n_caller, self.refs.n_gaia)

    def try_guesses(self, hint: WCS | None, use_memo: bool) -> Solution | None:
        """Step 4: the hint, the previous solution and the header WCS, each verified."""
        if self.pointing is None:
            return None
        self.guesses = self._guesses(hint, use_memo)
        max_shift = self.cfg.astrometry.guess_tolerance_arcmin * 60.0 / self.plane_scale
        for name, g in self.guesses:
            try:
                start = guided_start(g, self.stars_, self.refs_, self.facts.shape, max_shift)
                if start is None:
                    self.notes.append(f"{name}: no consistent offset between guess and stars")
                    continue
                sol = self._verify(refine(start, self.stars_, self.refs_, self.facts.shape,
                                          RADII), name)
                if sol is not None:
                    return sol
            except Exception as exc:  # a bad guess must never stop the blind attempts
                log.debug("guess %s failed", name, exc_info=True)
                self.notes.append(f"{name}: {exc}")
        return None

    def try_asterisms(self) -> Solution | None:
        """Step 5: asterism matching around the pointing and around the guesses' centres."""
        if self.pointing is None:
            return None
        centres = [self.pointing]
        for _, g in self.guesses:
            c = center_world(g, self.facts.shape)
            if all(sep_deg(c[0], c[1], p[0], p[1]) > 0.2 for p in centres):
                centres.append(c)
        for cra, cdec in centres:
            sol = self._asterisms_at(cra, cdec)
            if sol is not None:
                return sol
        return None

    def try_blind(self) -> Solution | None:
        """Step 6: the blind solvers, each answer verified."""
        if not self.cfg.astrometry.blind:
            self.notes.append("blind solvers disabled (astrometry.blind: false)")
            return None
        solvers = blind_solvers(self.cfg, self.facts.plane, self.stars_, self.facts.shape,
                                self.pointing, self.plane_scale)
        if not solvers:
            self.notes.append("no blind solver installed (astrometry.net solve-field with "
                              "astrometry-data-tycho2-08/-09, ASTAP, or tetra3rs and "
                              "'starnode solver-db')")
        for name, run in solvers:
            sol = self._blind(name, run)
            if sol is not None:
                return sol
        return None

    def census(self) -> str:
        """How many reference stars a field centred on the pointing holds, for refusals.

        Rotation is unknown, so the count is given between the field's inscribed circle and its
        circumscribed one; a rejected candidate's own count would describe the wrong sky.
        """
        if self.pointing is None or self.refs is None:
            return ""
        xi, eta = gnomonic(self.refs.ra, self.refs.dec, *self.pointing)
        r = np.hypot(np.nan_to_num(xi, nan=1e3), np.nan_to_num(eta, nan=1e3))
        ny, nx = self.facts.shape
        r_in = 0.5 * min(nx, ny) * self.plane_scale / 3600.0
        lo, hi = int(np.sum(r <= r_in)), int(np.sum(r <= self.half_diag_deg))
        depth = "G<10" + (" and deeper Gaia" if self.refs_.n_deep else "")
        seq = " and the sequence" if self.refs_.n_caller else ""
        return (f"a field centred on the header RA/DEC holds {lo}-{hi} reference stars "
                f"({depth}{seq})")

    def finish(self, fit: Fit, method: str, extra: Refs | None = None) -> Solution:
        """The verified solution: scale checked against the nominal one, remembered, stored.

        Raises
        ------
        Reject
            The fitted scale is off the nominal one by more than ``astrometry.scale_tolerance``.
        """
        f, w = self.facts, fit.wcs
        sol = Solution(wcs=w, n_matched=len(fit.ref_idx), rms_px=fit.rms,
                       scale_arcsec=wcs_scale_arcsec(w) / f.binning, mirrored=is_mirrored(w),
                       method=method, n_detected=len(self.stars_), n_reference=fit.n_in_field,
                       rotation_deg=rotation_deg(w), elapsed_s=time.monotonic() - self.t0,
                       notes=tuple(self.notes))
        ratio = sol.scale_arcsec / self.native
        if abs(ratio - 1.0) > self.cfg.astrometry.scale_tolerance:
            raise Reject(f"scale {sol.scale_arcsec:.3f}\"/px is {ratio:.3f} x the nominal "
                         f"{self.native:.3f}\"/px")
        log.info("astrometry %s: %d stars matched, rms %.2f px, %.4f\"/px, rot %.1f deg%s "
                 "(%.2f s)", method, sol.n_matched, sol.rms_px, sol.scale_arcsec,
                 sol.rotation_deg, ", mirrored" if sol.mirrored else "", sol.elapsed_s)
        MEMO.remember(f.header, w, f.shape, f.binning, extra)
        if self.key:
            SolvedFrames(self.cfg.db_path).put(self.key, sol, f.shape)
        return sol

    # ---------------------------------------------------------------- helpers

    @property
    def stars_(self) -> Stars:
        assert self.stars is not None, "prepare() first"
        return self.stars

    @property
    def refs_(self) -> Refs:
        assert self.refs is not None, "prepare() first"
        return self.refs

    @property
    def plane_scale(self) -> float:
        return self.native * self.facts.binning

    @property
    def half_diag_deg(self) -> float:
        return 0.5 * math.hypot(*self.facts.shape) * self.plane_scale / 3600.0

    def _nominal_scale(self) -> float:
        f = self.facts
        native = nominal_scale_arcsec(f.header, self.cfg)
        if native is None and f.header_wcs is not None:
            native = wcs_scale_arcsec(f.header_wcs) / f.binning
        if native is None:
            raise AstrometryError("pixel scale unknown: no FOCALLEN/XPIXSZ cards, no header "
                                  "WCS; set camera.pixel_scale_arcsec")
        return native

    def _pointing(self, hint: WCS | None) -> Pointing:
        f = self.facts
        if f.ra_deg is not None and f.dec_deg is not None:
            return f.ra_deg, f.dec_deg
        for w in (f.header_wcs, hint):
            if w is not None:
                return center_world(w, f.shape)
        return None

    def _references(self, ra: float, dec: float, radius: float) -> Refs:
        r_ra, r_dec, r_mag = self.caller_refs
        epoch = _epoch(self.facts.header)
        refs = reference_stars(r_ra, r_dec, r_mag, ra, dec, radius, epoch)
        deep = self._deeper(refs, ra, dec, epoch)
        if deep is None:
            return refs
        out = reference_stars(r_ra, r_dec, r_mag, ra, dec, radius, epoch, deeper=deep)
        out.n_deep = int(np.sum(deep[2] >= 10.0))
        return out

    def _deeper(self, refs: Refs, ra: float, dec: float, epoch: float) -> Cone | None:
        """Gaia stars to ``astrometry.deep_gaia_g`` when the field is sparse (cache first)."""
        ac = self.cfg.astrometry
        if not ac.deep_gaia_g or ac.deep_gaia_g <= 10.0:
            return None
        n = refs_in_footprint(refs.ra, refs.dec, (ra, dec), self.facts.shape,
                              self.plane_scale, self.hint or self.facts.header_wcs)
        if n >= 3 * ac.min_matches:
            return None
        from starnode.catalogs.gaiafield import gaia_field_stars

        try:
            stars = gaia_field_stars(self.cfg, ra, dec, self.half_diag_deg + 0.1,
                                     g_limit=float(ac.deep_gaia_g))
        except CatalogError as exc:
            self.notes.append(f"only {n} G<10 reference stars in the field and no deeper "
                              f"Gaia stars: {exc}")
            return None
        return stars.at_epoch(epoch)

    def _guesses(self, hint: WCS | None, use_memo: bool) -> list[tuple[str, WCS]]:
        f = self.facts
        out: list[tuple[str, WCS]] = []
        hw = f.header_wcs
        hint_is_header = hint is not None and hw is not None and same_wcs(hint, hw, f.shape)
        if hint is not None:  # the header WCS passed back as a hint is "header"
            out.append(("header" if hint_is_header else "hint", hint))
        prev = MEMO.recall(f.header, f.shape, f.binning) if use_memo else None
        if prev is not None:
            out.append(("previous", prev[0]))
            if prev[1] is not None and len(prev[1].ra):
                # catalogue stars a blind solver matched in the previous frame
                self.refs = merge_refs(self.refs_, prev[1])
        if hw is not None and not hint_is_header:
            out.append(("header", hw))
        return out

    def _verify(self, fit: Fit | None, method: str, extra: Refs | None = None
                ) -> Solution | None:
        """The solution when ``fit`` is accepted, else None with the reason noted."""
        why = accept(fit, self.cfg.astrometry.min_matches, self.cfg.astrometry.max_rms_px)
        if fit is not None and not why:
            try:
                return self.finish(fit, method, extra)
            except Reject as exc:
                why = str(exc)
        self.notes.append(f"{method}: {why}")
        return None

    def _asterisms_at(self, cra: float, cdec: float) -> Solution | None:
        ac, f = self.cfg.astrometry, self.facts
        reasons: list[str] = []
        best_n, best_why = -1, ""
        for start in triangle_match(self.stars_, self.refs_, cra, cdec, self.plane_scale,
                                    f.shape, ac.scale_tolerance, ac.min_matches,
                                    ac.search_radius_deg, reasons):
            fit = refine(start, self.stars_, self.refs_, f.shape, (6.0, *RADII))
            why = accept(fit, ac.min_matches, ac.max_rms_px)
            if fit is not None and not why:
                try:
                    return self.finish(fit, "catalog-match")
                except Reject as exc:
                    why, fit = str(exc), None
            n = len(fit.ref_idx) if fit is not None else 0
            if n > best_n:
                best_n, best_why = n, why
        if best_why:
            self.notes.append(f"catalog-match: best candidate: {best_why}")
        self.notes.extend(f"catalog-match: {r}" for r in reasons)
        return None

    def _blind(self, name: str, run: Callable[[], Blind]) -> Solution | None:
        t1 = time.monotonic()
        try:
            w, why, own_refs = run()
        except Exception as exc:
            log.warning("%s failed: %s", name, exc)
            w, why, own_refs = None, f"{name}: {exc}", None
        if w is None:
            self.notes.append(why)
            log.info("blind solver %s: %s (%.1f s)", name, why, time.monotonic() - t1)
            return None
        try:
            return self._verify_blind(name, w, own_refs)
        except Reject as exc:
            self.notes.append(f"{name}: {exc}")
            return None

    def _verify_blind(self, name: str, w: WCS, own_refs: Refs | None) -> Solution | None:
        ac, f = self.cfg.astrometry, self.facts
        bra, bdec = center_world(w, f.shape)
        refs = self.refs_
        if self.pointing is None:
            refs = self._references(bra, bdec, self.half_diag_deg + 0.1)
        else:
            off = float(sep_deg(*self.pointing, bra, bdec))
            if off > ac.search_radius_deg:  # truly blind: references around the answer
                self.notes.append(f"{name}: field found {off:.1f} deg from the header RA/DEC")
                refs = self._references(bra, bdec, self.half_diag_deg + 0.1)
        fit = refine(w, self.stars_, refs, f.shape, RADII)
        why = accept(fit, ac.min_matches, ac.max_rms_px)
        if fit is not None and not why:
            return self.finish(fit, name)
        if own_refs is not None and len(own_refs.ra) >= ac.min_matches:
            own = refine(w, self.stars_, own_refs, f.shape, (3.0, 2.0))
            own_why = accept(own, ac.min_matches, ac.max_rms_px)
            if own is not None and not own_why:
                self.notes.append(f"{name}: {why} against our reference stars; verified "
                                  "against the solver's own catalogue stars")
                return self.finish(own, name, own_refs)
            why += f"; against its own catalogue stars: {own_why}"
        self.notes.append(f"{name}: solution not verified: {why}")
        return None


def solve_frame(frame: Any, config: Config, /, *, ref_ra: Any, ref_dec: Any, ref_mag: Any = None,
                hint: WCS | _HeaderHint | None = None, use_memo: bool = True) -> Solution:
    """Return a verified WCS for the frame's measured plane.

    Parameters
    ----------
    frame : starnode.frame.load.Frame or PlaneFrame
        The frame (its plane, header, binning, ``sha1`` as the cache key and header WCS).
    config : Config
        ``astrometry.*``, ``camera.pixel_scale_arcsec``, ``db_path`` for the cache.
    ref_ra, ref_dec : array-like
        The comparison sequence (degrees; may be empty); the bundled Gaia DR3 G < 10 stars are
        added.
    ref_mag : array-like, optional
        Their magnitudes (brightest are matched first).
    hint : astropy.wcs.WCS or HEADER_HINT, optional
        A WCS guess for this plane (verified like any other); :data:`HEADER_HINT`: the
        frame's ``header_wcs``.
    use_memo : bool
        False ignores (but still updates) the previous solution of the same TELESCOP+OBJECT.

    Returns
    -------
    Solution
        ``method`` names the attempt that was verified.

    Raises
    ------
    AstrometryError
        No verified WCS; the message gives each attempt's reason.
    """
    t0 = time.monotonic()
    facts, cfg = _frame_facts(frame, config)
    job = _Job(facts, cfg, (ref_ra, ref_dec, ref_mag), t0)
    sol = job.from_cache()
    if sol is not None:
        return sol
    guess = facts.header_wcs if isinstance(hint, _HeaderHint) else hint
    job.prepare(guess)
    sol = job.try_guesses(guess, use_memo) or job.try_asterisms() or job.try_blind()
    if sol is None:
        census = job.census()
        fix = how_to_fix(job.notes)
        raise AstrometryError("no verified WCS: " + "; ".join(job.notes)
                              + (f" ({census})" if census else "") + (f". {fix}" if fix else ""))
    return sol
