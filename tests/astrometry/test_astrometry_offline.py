"""Real fields solved offline (issue 11): per-field Gaia stars cached and reused offline,
solve-field with Debian's Tycho-2 index files, lost in space, honest refusals, the Tycho-2
tetra3rs catalogue, and ``starnode solve``."""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from astrometry_helpers import _check, _real_subs, _render_field, _s50_header
from loopback import LoopbackServer, Request, Response
from starnode import astrometry
from starnode.astrometry import AstrometryError, PlaneFrame, gaia_bright_stars, solve_frame
from starnode.astrometry.blind import solve_field_command
from starnode.catalogs.gaiafield import FIELD_KIND, gaia_field_stars
from starnode.cli import main
from starnode.config import Config

TAP = "/tap/sync"
#: a sparse field near the north galactic pole: 5 Gaia G<10 stars within the half diagonal
NGP = (192.86, 27.13)
INDEXES = [Path("/usr/share/astrometry") / f"index-tycho2-{n}.littleendian.fits"
           for n in ("07", "08", "09")]


@pytest.fixture(autouse=True)
def _fresh_memo():
    astrometry.clear_memo()
    yield
    astrometry.clear_memo()


def _cfg(tmp_path: Path, srv: LoopbackServer | None = None, **astro) -> Config:
    ph = {"http_backoff": 0, "http_timeout": 5, "http_retries": 1, "http_quiet_minutes": 0,
          "gaia_tap_url": srv.url(TAP) if srv else "http://127.0.0.1:9/tap",
          "offline": srv is None}
    return Config({"data_dir": str(tmp_path / "data"), "photometry": ph,
                   "astrometry": {"blind": False, "cache": False, **astro}})


def _faint_stars(seed: int = 3, n: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """'Gaia' stars G 10.5-13.5 scattered over the NGP field (what the sky shows there)."""
    rng = np.random.default_rng(seed)
    dec = NGP[1] + rng.uniform(-0.75, 0.75, n)
    ra = NGP[0] + rng.uniform(-0.75, 0.75, n) / math.cos(math.radians(NGP[1]))
    return ra, dec, rng.uniform(10.5, 13.5, n)


def _tap_csv(ra, dec, g) -> str:
    lines = ["ra,dec,phot_g_mean_mag,pmra,pmdec"]
    lines += [f"{a:.7f},{d:.7f},{m:.3f},," for a, d, m in zip(ra, dec, g, strict=True)]
    return "\n".join(lines) + "\n"


def _tap_handler(csv_text: str):
    def handler(req: Request) -> Response:
        assert b"gaiadr3.gaia_source" in req.body
        return 200, {"Content-Type": "text/csv"}, csv_text.encode()
    return handler


# ------------------------------------------------------------------ 3a deeper reference stars

def test_sparse_field_uses_deep_gaia_stars_cached_and_reused_offline(tmp_path):
    faint = _faint_stars()
    bright = gaia_bright_stars(*NGP, 1.0, epoch=2016.0)
    plane, truth = _render_field(*NGP, rot_deg=33.0, mirrored=True, extra=faint, seed=2)
    hdr = _s50_header(NGP[0] + 0.1, NGP[1] - 0.08)
    # offline with nothing cached: refused, and the message says why
    with pytest.raises(AstrometryError, match="no deeper Gaia stars: no Gaia stars to G 14 cached"):
        solve_frame(PlaneFrame(plane, hdr, 2), _cfg(tmp_path), ref_ra=[], ref_dec=[])
    csv_text = _tap_csv(*(np.concatenate([a, b]) for a, b in zip(bright, faint, strict=True)))
    with LoopbackServer() as srv:
        route = srv.route("POST", TAP, handler=_tap_handler(csv_text))
        online = _cfg(tmp_path, srv)
        sol = solve_frame(PlaneFrame(plane, hdr, 2), online, ref_ra=[], ref_dec=[])
        assert route.hits == 1
        assert sol.method == "catalog-match"
        _check(sol, truth, plane.shape, online)
        # the next frame of the field asks nobody: the cached cone covers it
        astrometry.clear_memo()
        solve_frame(PlaneFrame(plane, hdr, 2), online, ref_ra=[], ref_dec=[], use_memo=False)
        assert route.hits == 1
    with sqlite3.connect(online.db_path) as conn:
        kinds = [r[0] for r in conn.execute("SELECT kind FROM catalog_cache")]
    assert kinds == [FIELD_KIND]
    # the server is gone and the node is offline: the cache still solves the field
    astrometry.clear_memo()
    sol = solve_frame(PlaneFrame(plane, hdr, 2), _cfg(tmp_path), ref_ra=[], ref_dec=[])
    _check(sol, truth, plane.shape, online)


def test_field_stars_cache_covers_nearby_cones_only(tmp_path):
    ra, dec, g = _faint_stars(n=10)
    with LoopbackServer() as srv:
        route = srv.route("POST", TAP, handler=_tap_handler(_tap_csv(ra, dec, g)))
        cfg = _cfg(tmp_path, srv)
        got = gaia_field_stars(cfg, *NGP, 0.7, g_limit=14.0)
        assert got.origin == "network" and len(got.ra) == 10
        assert np.all(np.diff(got.g) >= 0)  # brightest first
        # inside the cached cone (0.7 + 0.25 deg): from the cache
        assert gaia_field_stars(cfg, NGP[0] + 0.1, NGP[1], 0.7).origin == "cache"
        # deeper than cached, or elsewhere: asked again
        gaia_field_stars(cfg, *NGP, 0.7, g_limit=15.0)
        gaia_field_stars(cfg, NGP[0] + 3.0, NGP[1], 0.7)
        assert route.hits == 3
        srv.route("POST", TAP, body="<html>maintenance</html>")
        with pytest.raises(Exception, match="XML/HTML"):
            gaia_field_stars(cfg, 10.0, 10.0, 0.7)


def test_doctor_names_sparse_target_fields_not_cached(tmp_path):
    from starnode.doctor import Level
    from starnode.store import CatalogCache

    cfg = _cfg(tmp_path)
    vsx = {"VSXObject": {"Name": "NGP Var", "RA2000": str(NGP[0]), "Declination2000":
                         str(NGP[1]), "AUID": "000-XXX-001", "VariabilityType": "M",
                         "MaxMag": "10 V", "MinMag": "12 V", "Category": "Variable",
                         "OID": "1", "Constellation": "Com"}}
    cache = CatalogCache(cfg.db_path)
    cache.put("vsx", "ngp var", "http://x", vsx)
    line = [c for c in astrometry.health(cfg) if "deep Gaia" in c.message]
    assert line and line[0].level == Level.WARN and "NGP Var" in line[0].message
    ra, dec, g = _faint_stars(n=10)
    with LoopbackServer() as srv:
        srv.route("POST", TAP, handler=_tap_handler(_tap_csv(ra, dec, g)))
        gaia_field_stars(_cfg(tmp_path, srv), *NGP, 0.71, g_limit=14.0)
    line = [c for c in astrometry.health(cfg) if "deep Gaia" in c.message]
    assert line[0].level == Level.OK and "1 sparse" in line[0].message


# ------------------------------------------------------------------ 3e refusals count right

def test_refusal_counts_the_reference_stars_of_the_field_not_of_a_candidate(tmp_path):
    plane, truth = _render_field(*NGP, rot_deg=10.0, mirrored=True)
    with pytest.raises(AstrometryError) as err:
        solve_frame(PlaneFrame(plane, _s50_header(*NGP), 2), _cfg(tmp_path), ref_ra=[], ref_dec=[])
    msg = str(err.value)
    ra, dec, _ = gaia_bright_stars(*NGP, 1.0, epoch=2025.6)
    x, y = truth.all_world2pix(ra, dec, 0)
    true_n = int(np.sum((x >= 0) & (x < 540) & (y >= 0) & (y < 960)))
    lo, hi = map(int, msg.split("holds ")[1].split(" reference")[0].split("-"))
    assert lo <= true_n <= hi
    assert "reference stars in the field)" not in msg  # a candidate's count is not reported


# ------------------------------------------------------------------ 3b/3c solve-field, no pointing

def _need_solve_field() -> None:
    if shutil.which("solve-field") is None:
        pytest.skip("astrometry.net solve-field is not installed (apt-get install "
                    "astrometry.net astrometry-data-tycho2-08-littleendian)")
    if not any(p.is_file() for p in INDEXES):
        pytest.skip("no Tycho-2 index files 07-09 in /usr/share/astrometry")


def test_solve_field_command_uses_the_scale_range_and_optional_cone(tmp_path):
    xy = tmp_path / "s.xyls"
    with_pos = solve_field_command("solve-field", xy, (960, 540), 4.748, 0.05,
                                   (10.0, 20.0, 1.6), 30)
    blind = solve_field_command("solve-field", xy, (960, 540), 4.748, 0.05, None, 30)
    arg = dict(zip(with_pos, [*with_pos[1:], ""], strict=True))
    assert float(arg["--scale-low"]) == pytest.approx(4.748 * 0.95, abs=1e-3)
    assert float(arg["--scale-high"]) == pytest.approx(4.748 * 1.05, abs=1e-3)
    assert arg["--width"] == "540" and arg["--height"] == "960" and arg["--radius"] == "1.600"
    assert "--ra" not in blind and "--radius" not in blind


@pytest.mark.parametrize("where", ["3 deg off", "no RA/DEC"])
def test_solve_field_solves_a_synthetic_field_pointing_off_or_missing(tmp_path, where):
    _need_solve_field()
    ra_c, dec_c = 305.0, 40.0  # a Cygnus field: its G<10 stars are Tycho-2 stars
    plane, truth = _render_field(ra_c, dec_c, rot_deg=123.0, mirrored=True)
    hdr = _s50_header(ra_c, dec_c + 3.0)
    if where == "no RA/DEC":
        del hdr["RA"], hdr["DEC"]
    cfg = _cfg(tmp_path, blind=True, tetra3rs=False, astap_path=str(tmp_path / "no-astap"))
    sol = solve_frame(PlaneFrame(plane, hdr, 2), cfg, ref_ra=[], ref_dec=[])
    assert sol.method == "solve-field"
    _check(sol, truth, plane.shape, cfg)


def test_lost_in_space_without_a_blind_solver_says_what_to_install(tmp_path):
    plane, _ = _render_field(305.0, 40.0, rot_deg=10.0, mirrored=True)
    hdr = _s50_header(305.0, 40.0)
    del hdr["RA"], hdr["DEC"]
    cfg = _cfg(tmp_path, blind=True, tetra3rs=False, astap_path=str(tmp_path / "no-astap"),
               solve_field_path=str(tmp_path / "no-solve-field"))
    with pytest.raises(AstrometryError, match=r"lost in space.*no blind solver installed"):
        solve_frame(PlaneFrame(plane, hdr, 2), cfg, ref_ra=[], ref_dec=[])


@pytest.mark.shared
def test_real_m94_subs_blind_with_solve_field(shared, tmp_path):
    _need_solve_field()
    from starnode.frame.load import load_frame

    cfg = _cfg(tmp_path, blind=True, tetra3rs=False, astap_path=str(tmp_path / "no-astap"))
    for path in _real_subs(shared)[::2]:
        fr = load_frame(path, cfg)
        hdr = dict(fr.header)
        del hdr["RA"], hdr["DEC"]
        sol = solve_frame(PlaneFrame(fr.plane, hdr, fr.binning), cfg, ref_ra=[], ref_dec=[],
                          use_memo=False)
        assert sol.method == "solve-field" and sol.n_matched >= 10 and sol.rms_px < 0.5
        assert sol.scale_arcsec == pytest.approx(2.37, rel=0.01) and sol.mirrored
        ra, dec = sol.wcs.all_pix2world([[269.5, 479.5]], 0)[0]
        off = astrometry.geometry.sep_deg(fr.header["RA"], fr.header["DEC"], ra, dec)[()]
        assert 0.1 < off < 0.4  # the real field, 15' from the requested target


# ------------------------------------------------------------------ 3d the tetra3rs catalogue

def test_tycho2_gaia_catalogue_and_database_for_a_small_cap(tmp_path):
    """The solver-db recipe on a 2-degree cap (the whole sky takes 1-3 minutes)."""
    pytest.importorskip("tetra3rs")
    if shutil.which("query-starkd") is None:
        pytest.skip("query-starkd (astrometry.net) is not installed")
    files = [p for p in INDEXES if p.is_file()]
    if not files:
        pytest.skip("no Tycho-2 index files 07-09 in /usr/share/astrometry")
    from starnode.astrometry.tycho import tycho_gaia_catalog, tycho_index_files

    assert tycho_index_files() == files
    ra_c, dec_c = 305.0, 40.0
    cat = tmp_path / "cap.gdr3"
    n = tycho_gaia_catalog(cat, files, cone=(ra_c, dec_c, 2.0))
    rec = np.fromfile(cat, dtype=astrometry.reference._GAIA_DTYPE, offset=16)
    assert len(rec) == n and cat.read_bytes()[:4] == b"GDR3"
    n_gaia = len(gaia_bright_stars(ra_c, dec_c, 2.0)[0])
    assert n > n_gaia  # Tycho-2 is deeper than G < 10
    tyc = rec["id"] < 10**9  # Tycho-2 stars are numbered from 1, Gaia ids are > 4e9
    # what Tycho-2 adds is mostly fainter than the bundled Gaia stars (the 08/09 index files
    # hold a thinned-out Tycho-2: 78 stars in this cap, 71 of them at 10-11 mag)
    assert tyc.sum() > 0 and np.sum(rec["mag"][tyc] >= 10.0) > tyc.sum() / 2
    # no duplicates: each Tycho-2 star alone within 1", none within 2" of a Gaia star
    from scipy.spatial import cKDTree

    xyz = astrometry.tycho._xyz(rec["ra"], rec["dec"])
    assert not cKDTree(xyz[tyc]).query_pairs(np.radians(1.0 / 3600))
    d, _ = cKDTree(xyz[~tyc]).query(xyz[tyc])
    assert np.all(d > np.radians(2.0 / 3600))
    cfg = _cfg(tmp_path, blind=True, astap_path=str(tmp_path / "no-astap"),
               solve_field_path=str(tmp_path / "no-solve-field"))
    path = astrometry.build_tetra3rs_database(cfg, catalog_path=str(cat),
                                              lattice_field_oversampling=20)
    plane, truth = _render_field(ra_c, dec_c, rot_deg=200.0, mirrored=True)
    hdr = _s50_header(ra_c, dec_c)
    del hdr["RA"], hdr["DEC"]
    sol = solve_frame(PlaneFrame(plane, hdr, 2), cfg, ref_ra=[], ref_dec=[])
    assert path.is_file() and sol.method == "tetra3rs"
    _check(sol, truth, plane.shape, cfg)


def test_tycho2_catalogue_without_astrometry_net_says_what_to_install(tmp_path):
    from starnode.astrometry.tycho import tycho_gaia_catalog

    with pytest.raises(RuntimeError, match="astrometry-data-tycho2"):
        tycho_gaia_catalog(tmp_path / "x.gdr3", [], query_starkd="query-starkd")


# ------------------------------------------------------------------ 4 starnode solve

def _field_file(tmp_path: Path, name: str) -> tuple[Path, object]:
    """The NGP-like Cygnus field as a mono FITS frame (4.75"/px native), RA/DEC on target."""
    from astropy.io import fits

    plane, truth = _render_field(305.0, 40.0, rot_deg=70.0, mirrored=True)
    hdr = fits.Header({**_s50_header(305.05, 40.03), "XPIXSZ": 5.8, "EXPTIME": 10.0,
                       "OBJECT": "Cyg field"})
    path = tmp_path / name
    fits.PrimaryHDU(plane.astype(np.float32), hdr).writeto(path)
    return path, truth


def test_starnode_solve_prints_the_verified_solution_and_leaves_the_file(tmp_path, capsys):
    from astropy.io import fits
    from astropy.wcs import WCS

    path, truth = _field_file(tmp_path, "field.fit")
    before = path.read_bytes()
    bad = tmp_path / "bad.fit"
    bad.write_text("not a frame")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("astrometry:\n  blind: false\nphotometry:\n  offline: true\n")
    rc = main(["solve", str(path), str(bad), "--json", "--config", str(cfg), "--data-dir",
               str(tmp_path / "data")])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1  # one file was not solved
    good, worse = out
    assert good["ok"], good
    assert not worse["ok"] and "bad.fit" in worse["file"] and worse["error"]
    assert good["method"] == "catalog-match" and good["parity"] == "mirrored"
    assert good["n_matched"] >= 6 and good["rms_px"] < 1.0
    assert good["scale_arcsec"] == pytest.approx(2 * 2.374, rel=0.005)
    ra, dec = truth.all_pix2world([[269.5, 479.5]], 0)[0]
    assert astrometry.geometry.sep_deg(ra, dec, good["ra_deg"], good["dec_deg"]) < 3 / 3600
    # the cards are a WCS of the file's pixels
    w = WCS(fits.Header(good["wcs"]))
    cra, cdec = w.all_pix2world([[269.5, 479.5]], 0)[0]
    assert astrometry.geometry.sep_deg(ra, dec, cra, cdec) < 3 / 3600
    assert path.read_bytes() == before
    rc = main(["solve", str(path), "--config", str(cfg), "--data-dir", str(tmp_path / "data")])
    text = capsys.readouterr().out
    assert rc == 0 and "RA 20:" in text and "mirrored" in text and "CTYPE1" in text
