"""Astrometry: a verified WCS for synthetic and real Seestar frames (issue 4)."""

from __future__ import annotations

import math
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from astrometry_helpers import (
    _check,
    _max_error_px,
    _real_subs,
    _render_field,
    _s50_header,
)
from starnode import astrometry, synthetic
from starnode.astrometry import (
    AstrometryError,
    PlaneFrame,
    Solution,
    gaia_bright_stars,
    geometry,
    solve_frame,
)
from starnode.catalogs import load_sequence_file
from starnode.config import Config
from starnode.frame.load import load_frame

DATA = Path(__file__).parents[1] / "data"


@pytest.fixture(autouse=True)
def _fresh_memo():
    astrometry.clear_memo()
    yield
    astrometry.clear_memo()


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    # blind solvers off unless a test asks: the result must not depend on what is on PATH
    # offline: no per-field Gaia query (test_astrometry_offline.py serves one on loopback)
    return Config({"data_dir": str(tmp_path / "data"), "photometry": {"offline": True},
                   "astrometry": {"blind": False, "cache": False}})


@pytest.fixture(scope="module")
def seq_refs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    seq = load_sequence_file(synthetic.DEMO_SEQUENCE_FILE)
    ra = np.array([c.ra_deg for c in seq.comps])
    dec = np.array([c.dec_deg for c in seq.comps])
    mag = np.array([(c.mag("V") or (np.nan, 0))[0] for c in seq.comps])
    return ra, dec, mag


def _frame(tmp_path: Path, hdul: fits.HDUList, name: str, cfg: Config):
    path = synthetic.write_frame(tmp_path / name, hdul)
    return load_frame(path, cfg)


def _solve(fr, cfg, refs, **kw) -> Solution:
    ra, dec, mag = refs
    return solve_frame(fr, cfg, ref_ra=ra, ref_dec=dec, ref_mag=mag, **kw)


# ------------------------------------------------------------------ synthetic Seestar frames

@pytest.mark.parametrize("rotation", [0.0, 137.0, 251.5])
def test_raw_sub_any_rotation_mirrored(tmp_path, cfg, seq_refs, rotation):
    hdul, truth = synthetic.make_sub(seed=3, rotation_deg=rotation)
    fr = _frame(tmp_path, hdul, "sub.fit", cfg)
    assert fr.binning == 2 and fr.plane.shape == (960, 540)
    assert "CTYPE1" not in fr.header  # a sub has no WCS: solved from the stars
    sol = _solve(fr, cfg, seq_refs)
    assert sol.method == "catalog-match"
    _check(sol, truth.plane_wcs, fr.plane.shape, cfg)
    assert sol.as_dict()["method"] == "catalog-match"


def test_raw_sub_not_mirrored(tmp_path, cfg, seq_refs):
    hdul, truth = synthetic.make_sub(seed=4, mirrored=False, rotation_deg=75.0)
    fr = _frame(tmp_path, hdul, "sub.fit", cfg)
    sol = _solve(fr, cfg, seq_refs)
    _check(sol, truth.plane_wcs, fr.plane.shape, cfg, mirrored=False)


def test_stack_header_wcs_is_verified_and_corrected(tmp_path, cfg, seq_refs):
    hdul, truth = synthetic.make_stack(seed=5, stackcnt=5)
    fr = _frame(tmp_path, hdul, "stack.fit", cfg)
    assert fr.binning == 1
    header_wcs = WCS(hdul[0].header, naxis=2)
    # the on-board WCS is ~1' off: tens of pixels
    assert _max_error_px(Solution(header_wcs, 0, 0, 0, True, "x"), truth.plane_wcs,
                         fr.plane.shape) > 5
    sol = _solve(fr, cfg, seq_refs)
    assert sol.method == "header"
    _check(sol, truth.plane_wcs, fr.plane.shape, cfg)


def test_wrong_hint_is_not_trusted(tmp_path, cfg, seq_refs):
    hdul, truth = synthetic.make_sub(seed=6)
    fr = _frame(tmp_path, hdul, "sub.fit", cfg)
    bad = truth.plane_wcs.deepcopy()
    bad.wcs.crval = [bad.wcs.crval[0] + 0.8, bad.wcs.crval[1] - 0.5]  # a wrong field
    sol = _solve(fr, cfg, seq_refs, hint=bad)
    assert sol.method == "catalog-match"
    assert any(n.startswith("hint:") for n in sol.notes)
    _check(sol, truth.plane_wcs, fr.plane.shape, cfg)


def test_consecutive_subs_reuse_previous_solution(tmp_path, cfg, seq_refs):
    h1, _t1 = synthetic.make_sub(seed=7, rotation_deg=40.0, pointing_offset_arcmin=(5.0, 4.0))
    h2, t2 = synthetic.make_sub(seed=8, rotation_deg=40.05, pointing_offset_arcmin=(5.1, 4.05),
                                date_obs="2025-08-01T22:00:11")
    f1 = _frame(tmp_path, h1, "a.fit", cfg)
    f2 = _frame(tmp_path, h2, "b.fit", cfg)
    assert f1.header["OBJECT"] == f2.header["OBJECT"]
    s1 = _solve(f1, cfg, seq_refs)
    s2 = _solve(f2, cfg, seq_refs)
    assert s1.method == "catalog-match"
    assert s2.method == "previous"
    _check(s2, t2.plane_wcs, f2.plane.shape, cfg)
    # use_memo=False forces a full solve again
    assert _solve(f2, cfg, seq_refs, use_memo=False).method == "catalog-match"


def test_cache_in_sqlite_second_run_does_not_solve(tmp_path, seq_refs):
    cfg = Config({"data_dir": str(tmp_path / "data"), "astrometry": {"blind": False}})
    hdul, truth = synthetic.make_sub(seed=9)
    path = synthetic.write_frame(tmp_path / "sub.fit", hdul)
    before = path.read_bytes()
    fr = load_frame(path, cfg)
    first = _solve(fr, cfg, seq_refs)
    astrometry.clear_memo()
    again = _solve(fr, cfg, seq_refs)
    assert again.method == "cache" and again.solved_by == first.method
    assert again.n_matched == first.n_matched
    assert again.rms_px == pytest.approx(first.rms_px)
    assert _max_error_px(again, truth.plane_wcs, fr.plane.shape) < 0.5
    assert path.read_bytes() == before  # the telescope's file is never touched
    with sqlite3.connect(cfg.db_path) as conn:
        rows = conn.execute("SELECT cache_key, method FROM astrometry_solutions").fetchall()
    assert rows == [(f"{fr.sha1}|960x540|bin2", first.method)]
    # another plane shape of the same file is another entry, not a wrong hit
    with pytest.raises(AstrometryError):
        solve_frame(PlaneFrame(np.zeros((100, 100)), fr.header, sha1=fr.sha1), cfg,
                    ref_ra=seq_refs[0], ref_dec=seq_refs[1])
    # a bare plane with the file's content key finds the same entry
    ra, dec, mag = seq_refs
    loose = solve_frame(PlaneFrame(fr.plane, fr.header, fr.binning, sha1=fr.sha1), cfg, ref_ra=ra,
                        ref_dec=dec, ref_mag=mag)
    assert loose.method == "cache"
    # cache disabled: solved again
    off = Config({"data_dir": str(tmp_path / "data"),
                  "astrometry": {"blind": False, "cache": False}})
    astrometry.clear_memo()
    assert _solve(fr, off, seq_refs).method == "catalog-match"


def test_a_stored_solution_read_again_is_the_callers_own_wcs(tmp_path, seq_refs):
    """A cached solution read again (issue 18: copied, not parsed again) is a new WCS equal to
    the stored one: changing one caller's never changes the next."""
    cfg = Config({"data_dir": str(tmp_path / "data"), "astrometry": {"blind": False}})
    hdul, _ = synthetic.make_sub(seed=9)
    fr = load_frame(synthetic.write_frame(tmp_path / "sub.fit", hdul), cfg)
    _solve(fr, cfg, seq_refs)
    first = _solve(fr, cfg, seq_refs)
    stored = first.wcs.to_header_string(relax=True)
    first.wcs.wcs.crval = [1.0, 2.0]
    again = _solve(fr, cfg, seq_refs)
    assert first.method == again.method == "cache" and again.wcs is not first.wcs
    assert again.wcs.to_header_string(relax=True) == stored


def test_header_hint_is_read_only_when_the_frame_is_solved(tmp_path, seq_refs):
    """``hint=HEADER_HINT`` (issue 18): a cached solution never reads the frame's header WCS
    (the warm path); a frame solved afresh is solved exactly as with the WCS itself."""
    cfg = Config({"data_dir": str(tmp_path / "data"), "astrometry": {"blind": False}})
    hdul, _ = synthetic.make_stack(seed=2, stackcnt=4)  # the on-board WCS in its header
    path = synthetic.write_frame(tmp_path / "stack.fit", hdul)
    fr = load_frame(path, cfg)
    first = _solve(fr, cfg, seq_refs, hint=astrometry.HEADER_HINT)
    assert fr._header_wcs is not None  # solved: the hint was read
    astrometry.clear_memo()
    fresh = load_frame(path, cfg)
    assert _solve(fresh, cfg, seq_refs, hint=astrometry.HEADER_HINT).method == "cache"
    assert fresh._header_wcs is None  # never read
    assert fresh.header_wcs is not None
    off = Config({"data_dir": str(tmp_path / "data"),
                  "astrometry": {"blind": False, "cache": False}})
    astrometry.clear_memo()
    lazy = _solve(load_frame(path, off), off, seq_refs, hint=astrometry.HEADER_HINT)
    astrometry.clear_memo()
    eager_frame = load_frame(path, off)
    eager = _solve(eager_frame, off, seq_refs, hint=eager_frame.header_wcs)
    assert lazy.method == eager.method == first.method == "header"
    assert lazy.wcs.to_header_string() == eager.wcs.to_header_string()


# ------------------------------------------------------------------ own renderings of Gaia fields

def test_pointing_40_arcmin_off_s30pro_like(cfg):
    # a rich Cygnus field; the header RA/DEC (the requested target) is 40' from the centre
    ra_c, dec_c = 305.0, 40.0
    plane, truth = _render_field(ra_c, dec_c, rot_deg=212.0, mirrored=True)
    hdr = _s50_header(ra_c + 30.0 / 60.0 / math.cos(math.radians(dec_c)), dec_c + 26.5 / 60.0)
    sol = solve_frame(PlaneFrame(plane, hdr, 2), cfg, ref_ra=[], ref_dec=[])
    assert sol.method == "catalog-match"
    _check(sol, truth, plane.shape, cfg)


def test_sparse_field_solves_with_the_sequence(cfg):
    # near the north galactic pole: only a few Gaia G<10 stars in the field
    ra_c, dec_c = 192.86, 27.13
    rng = np.random.default_rng(1)
    n_gaia = int(np.sum(np.abs(gaia_bright_stars(ra_c, dec_c, 0.35)[0] - ra_c) >= 0))
    assert n_gaia < 6
    seq = (ra_c + rng.uniform(-0.15, 0.15, 6) / math.cos(math.radians(dec_c)),
           dec_c + rng.uniform(-0.3, 0.3, 6), rng.uniform(10.5, 12.0, 6))
    plane, truth = _render_field(ra_c, dec_c, rot_deg=33.0, mirrored=True, extra=seq, seed=2)
    hdr = _s50_header(ra_c + 0.1, dec_c - 0.08)
    sol = solve_frame(PlaneFrame(plane, hdr, 2), cfg, ref_ra=seq[0], ref_dec=seq[1], ref_mag=seq[2])
    _check(sol, truth, plane.shape, cfg)
    # without the sequence there are too few catalogue stars: a clear refusal, no guess
    astrometry.clear_memo()
    with pytest.raises(AstrometryError, match="min_matches"):
        solve_frame(PlaneFrame(plane, hdr, 2), cfg, ref_ra=[], ref_dec=[])


def test_unsolvable_frames_raise_with_reason(cfg):
    rng = np.random.default_rng(0)
    hdr = _s50_header(100.0, 20.0)
    with pytest.raises(AstrometryError, match="stars detected"):
        solve_frame(PlaneFrame(rng.normal(1000, 10, (960, 540)), hdr, 2), cfg, ref_ra=[],
                    ref_dec=[])
    plane, _ = _render_field(305.0, 40.0, rot_deg=10.0, mirrored=True)
    with pytest.raises(AstrometryError, match="pixel scale unknown"):
        solve_frame(PlaneFrame(plane, {"RA": 305.0, "DEC": 40.0}), cfg, ref_ra=[], ref_dec=[])
    # the wrong sky: RA/DEC 5 deg away from the stars
    with pytest.raises(AstrometryError, match="catalog-match"):
        solve_frame(PlaneFrame(plane, _s50_header(310.0, 44.0), 2), cfg, ref_ra=[], ref_dec=[])


def test_blind_solver_reason_is_reported(tmp_path):
    cfg = Config({"data_dir": str(tmp_path), "astrometry": {
        "cache": False, "tetra3rs_generate": False, "astap_path": str(tmp_path / "no-astap"),
        "solve_field_path": str(tmp_path / "no-solve-field")}})
    plane, _ = _render_field(192.86, 27.13, rot_deg=10.0, mirrored=True)
    with pytest.raises(AstrometryError, match="tetra3rs"):
        solve_frame(PlaneFrame(plane, _s50_header(192.86, 27.13), 2), cfg, ref_ra=[], ref_dec=[])


# ------------------------------------------------------------------ the real M 94 subs

def _tycho2_m94() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = np.loadtxt(DATA / "astrometry_m94_tycho2.csv", delimiter=",", skiprows=1)
    return t[:, 0], t[:, 1], t[:, 2]


@pytest.mark.shared
def test_real_m94_subs_solve_against_tycho2(shared, cfg):
    refs = _tycho2_m94()
    methods = []
    for path in _real_subs(shared):
        fr = load_frame(path, cfg)
        assert fr.binning == 2
        sol = solve_frame(fr, cfg, ref_ra=refs[0], ref_dec=refs[1], ref_mag=refs[2])
        methods.append(sol.method)
        assert sol.n_matched >= 10
        assert sol.rms_px < 0.5
        assert sol.scale_arcsec == pytest.approx(2.37, rel=0.01)
        assert sol.mirrored
        # the frame centre is well away from the requested RA/DEC (the scope's pointing)
        ra, dec = sol.wcs.all_pix2world([[269.5, 479.5]], 0)[0]
        off = geometry.sep_deg(fr.header["RA"], fr.header["DEC"], ra, dec)[()]
        assert 0.1 < off < 0.4
    # two units; the 5 consecutive subs of one run reuse the previous solution
    assert methods.count("catalog-match") == 2 and methods.count("previous") == 4


@pytest.mark.shared
def test_real_m94_with_bundled_gaia_only_is_refused(shared, cfg):
    fr = load_frame(_real_subs(shared)[0], cfg)
    # the true field holds 5 G<10 stars; the count is of the field, not of a candidate's
    with pytest.raises(AstrometryError, match=r"min_matches=6\).*holds [2-5]-[4-6] reference"):
        solve_frame(fr, cfg, ref_ra=[], ref_dec=[])


@pytest.mark.shared
def test_real_m94_solve_field_when_installed(shared, tmp_path):
    import shutil

    if shutil.which("solve-field") is None:
        pytest.skip("astrometry.net solve-field is not installed (optional blind solver)")
    cfg = Config({"data_dir": str(tmp_path), "astrometry": {"cache": False,
                                                             "tetra3rs": False}})
    fr = load_frame(_real_subs(shared)[1], cfg)
    try:
        sol = solve_frame(fr, cfg, ref_ra=[], ref_dec=[])
    except AstrometryError as exc:
        if "index" in str(exc).lower() or "no solution" in str(exc):
            pytest.skip(f"solve-field has no usable index files here: {exc}")
        raise
    assert sol.method == "solve-field"
    assert sol.rms_px < 0.5 and sol.scale_arcsec == pytest.approx(2.37, rel=0.01)


def test_tetra3rs_database_is_never_built_inside_a_frame_solve(tmp_path):
    # another process is generating the database: this frame skips tetra3rs, with the reason
    opts = {"cache": False, "astap_path": str(tmp_path / "no-astap"),
            "solve_field_path": str(tmp_path / "no-solve-field")}
    plane, _ = _render_field(192.86, 27.13, rot_deg=10.0, mirrored=True)
    # by default nothing is built behind the user's back: 'starnode solver-db' does it
    default = Config({"data_dir": str(tmp_path), "astrometry": opts})
    with pytest.raises(AstrometryError, match="tetra3rs_generate is false"):
        solve_frame(PlaneFrame(plane, _s50_header(192.86, 27.13), 2), default, ref_ra=[],
                    ref_dec=[])
    cfg = Config({"data_dir": str(tmp_path),
                  "astrometry": {**opts, "tetra3rs_generate": True}})
    db = astrometry.tetra3rs_database_path(cfg)
    db.parent.mkdir(parents=True)
    lock = db.with_name(db.name + ".lock")
    lock.write_text(str(os.getpid()))  # a live owner
    with pytest.raises(AstrometryError, match="tetra3rs database is being generated"):
        solve_frame(PlaneFrame(plane, _s50_header(192.86, 27.13), 2), cfg, ref_ra=[], ref_dec=[])
    assert not db.exists()
    # a lock left by a dead process is stale
    lock.write_text("999999999")
    assert not astrometry.lock_owner_alive(lock)


def test_tetra3rs_blind_solve_with_a_small_database(tmp_path):
    """A truly blind solve (header RA/DEC 20 deg wrong) with tetra3rs. The real database (all
    482k bundled Gaia stars) takes ~15 min to build, so this one holds a 1.6 deg cap only."""
    pytest.importorskip("tetra3rs")
    ra_c, dec_c = 305.0, 40.0
    cfg = Config({"data_dir": str(tmp_path), "astrometry": {
        "cache": False, "astap_path": str(tmp_path / "no-astap"),
        "solve_field_path": str(tmp_path / "no-solve-field")}})
    ra, dec, mag = gaia_bright_stars(ra_c, dec_c, 1.6, epoch=2016.0)
    cat = np.zeros(len(ra), dtype=[("id", "<i8"), ("ra", "<f8"), ("dec", "<f8"),
                                   ("mag", "<f4"), ("pmra", "<f4"), ("pmdec", "<f4")])
    cat["id"], cat["ra"], cat["dec"], cat["mag"] = np.arange(1, len(ra) + 1), ra, dec, mag
    small = tmp_path / "cap.bin"
    small.write_bytes(b"GDR3" + np.uint32(1).tobytes() + np.uint64(len(cat)).tobytes()
                      + cat.tobytes())
    path = astrometry.build_tetra3rs_database(cfg, catalog_path=str(small),
                                              lattice_field_oversampling=20)
    assert path == astrometry.tetra3rs_database_path(cfg) and path.is_file()
    plane, truth = _render_field(ra_c, dec_c, rot_deg=77.0, mirrored=True)
    sol = solve_frame(PlaneFrame(plane, _s50_header(ra_c + 20.0, dec_c - 5.0), 2), cfg, ref_ra=[],
                      ref_dec=[])
    assert sol.method == "tetra3rs"
    _check(sol, truth, plane.shape, cfg)


def test_stack_header_wcs_passed_as_hint_is_still_called_header(tmp_path, cfg, seq_refs):
    hdul, truth = synthetic.make_stack(seed=11, stackcnt=3)
    fr = _frame(tmp_path, hdul, "stack.fit", cfg)
    sol = _solve(fr, cfg, seq_refs, hint=fr.header_wcs)
    assert sol.method == "header"
    _check(sol, truth.plane_wcs, fr.plane.shape, cfg)


def test_a_sub_solution_guides_the_next_stack_of_the_target(tmp_path, cfg, seq_refs):
    # the memo is kept per TELESCOP+OBJECT in native pixels: a sub (binning 2) guides a stack
    h1, _ = synthetic.make_sub(seed=12, rotation_deg=20.0, pointing_offset_arcmin=(6.0, 2.0))
    h2, t2 = synthetic.make_stack(seed=12, stackcnt=3, rotation_deg=20.02,
                                  pointing_offset_arcmin=(6.05, 2.0),
                                  header_extra={"CTYPE1": None, "CTYPE2": None})
    f1 = _frame(tmp_path, h1, "a.fit", cfg)
    f2 = _frame(tmp_path, h2, "b.fit", cfg)
    assert _solve(f1, cfg, seq_refs).method == "catalog-match"
    sol = _solve(f2, cfg, seq_refs)
    assert sol.method == "previous"
    _check(sol, t2.plane_wcs, f2.plane.shape, cfg)


@pytest.mark.shared
def test_real_m94_fit_agrees_with_astropy_fit_wcs_from_points(shared, cfg):
    """Our linear TAN fit against astropy's fitter on the same matched pairs."""
    from astropy.coordinates import SkyCoord
    from astropy.wcs.utils import fit_wcs_from_points
    from scipy.spatial import cKDTree

    from starnode.frame.detect import find_stars

    ra, dec, mag = _tycho2_m94()
    fr = load_frame(_real_subs(shared)[1], cfg)
    sol = solve_frame(fr, cfg, ref_ra=ra, ref_dec=dec, ref_mag=mag)
    stars = find_stars(fr.plane)
    px, py = sol.wcs.all_world2pix(ra, dec, 0)
    d, i = cKDTree(stars.xy).query(np.column_stack([px, py]), distance_upper_bound=2.0)
    ok = np.isfinite(d)
    assert ok.sum() >= 10
    theirs = fit_wcs_from_points((stars.x[i[ok]], stars.y[i[ok]]),
                                 SkyCoord(ra[ok], dec[ok], unit="deg"), projection="TAN")
    sol_theirs = Solution(theirs, int(ok.sum()), 0.0, 0.0, True, "astropy")
    assert _max_error_px(sol_theirs, sol.wcs, fr.plane.shape) < 0.05


def test_doctor_health_names_reference_stars_and_blind_solvers(tmp_path):
    from starnode.doctor import Level

    off = Config({"data_dir": str(tmp_path), "astrometry": {"blind": False}})
    checks = astrometry.health(off)
    assert checks[0].level == Level.OK and "Gaia" in checks[0].message
    assert "disabled" in checks[-1].message
    none = Config({"data_dir": str(tmp_path), "astrometry": {
        "tetra3rs": False, "astap_path": str(tmp_path / "no-astap"),
        "solve_field_path": str(tmp_path / "no-solve-field")}})
    last = astrometry.health(none)[-1]
    assert last.level == Level.WARN and "none" in last.message
