"""Differential photometry on synthetic Seestar frames with a known truth (issue 3).

The frames go through the real astrometry solver (``starnode.astrometry.solve_frame``), except
where a test says otherwise: the tests on small cut-out fields (noise realisations, clipping,
float frames: too few stars for the solver's ``min_matches``) and the edge / outside-the-frame
geometry (a frame centred 21-45' from the header RA/DEC, where a failed solve would hide the
category under test) use the ``truth_wcs`` fixture, which hands the synthetic truth WCS to the
pipeline.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import AltAz, EarthLocation, SkyCoord
from astropy.io import fits
from astropy.stats import sigma_clipped_stats
from astropy.time import Time
from astropy.utils import iers

from starnode import photometry, synthetic
from starnode.astrometry import Solution
from starnode.config import Config
from starnode.photometry import last_rejection, robust_sky, run_pipeline
from starnode.records import Measurement

CONTRACT_KEYS = {
    "magnitude", "uncertainty", "quality_flag", "quality_reasons", "target_name", "auid",
    "target_ra", "target_dec", "filter", "band", "transformed", "jd", "hjd",
    "time_uncertainty_s", "exptime", "airmass", "fwhm", "fwhm_arcsec", "snr", "instrumental_mag",
    "comparison_stars", "comps", "zero_point", "zp_error", "zp_scatter", "check_star", "chart_id",
    "sequence_source", "frame_kind", "file", "object", "telescope", "astrometry", "aperture",
}


def measure(path: Path, config: Config) -> dict[str, Any]:
    """``photometry.measure`` as the documented result dict (most assertions read keys)."""
    m = photometry.measure(path, config)
    assert isinstance(m, Measurement)
    return m.to_dict()


def _cfg(tmp_path: Path, seq: Path | None = None, **ph: Any) -> Config:
    photometry_cfg: dict[str, Any] = {"sequence_file": str(seq or synthetic.DEMO_SEQUENCE_FILE),
                                      "offline": True}
    photometry_cfg.update(ph)
    return Config({"data_dir": str(tmp_path / "data"), "photometry": photometry_cfg})


def _write(tmp_path: Path, name: str, made: tuple[fits.HDUList, synthetic.Truth]
           ) -> tuple[Path, synthetic.Truth]:
    hdul, truth = made
    return synthetic.write_frame(tmp_path / name, hdul), truth


@pytest.fixture
def truth_wcs(monkeypatch: pytest.MonkeyPatch) -> Callable[[synthetic.Truth], None]:
    """Make the pipeline use the synthetic truth WCS instead of solving."""
    holder: dict[str, synthetic.Truth] = {}

    def solve(frame: Any, config: Any, **kw: Any) -> Solution:
        t = holder["truth"]
        return Solution(t.plane_wcs, 99, 0.0, 2.374, True, "truth")

    monkeypatch.setattr(photometry.astrometry, "solve_frame", solve)
    return lambda truth: holder.__setitem__("truth", truth)


# ------------------------------------------------------------------ accuracy, bands, kinds


@pytest.mark.parametrize("target_mag", [10.0, 11.5])
def test_sub_recovers_injected_magnitude_through_the_real_solver(tmp_path: Path,
                                                                 target_mag: float) -> None:
    # noise-free expectation (rounded to ADU): the systematic part of the method must be < 5 mmag
    path, truth = _write(tmp_path, "sub.fit", synthetic.make_sub(
        seed=11, target_mag=target_mag, noise=False, colour_term=0.0, target_bv=1.4))
    r = measure(path, _cfg(tmp_path))
    assert r["astrometry"]["method"] not in (None, "truth")
    assert abs(r["magnitude"] - target_mag) < 0.005, r["magnitude"]
    assert (r["filter"], r["band"], r["frame_kind"], r["transformed"]) == ("TG", "V", "sub",
                                                                          False)
    assert r["chart_id"] == "X41941HP" and r["sequence_source"] == "vsp"
    assert r["target_name"] == "SS Cyg" and r["auid"] == "000-BCP-220"
    assert abs(r["check_star"]["deviation"]) < 0.005
    used = [c for c in r["comps"] if c["used"]]
    assert len(used) == r["comparison_stars"] >= 5
    assert all(abs(c["residual"]) < 0.005 for c in used)
    t = truth.target
    assert t is not None
    assert math.hypot(r["target_x"] - t.plane_x, r["target_y"] - t.plane_y) < 0.3


def test_result_contract_and_json(tmp_path: Path) -> None:
    path, _ = _write(tmp_path, "sub.fit", synthetic.make_sub(seed=12))
    r = run_pipeline(path, _cfg(tmp_path))
    assert r is not None and last_rejection() is None
    assert set(r) >= CONTRACT_KEYS
    json.dumps(r)  # plain types only
    assert r["quality_flag"] in ("good", "acceptable", "poor")
    assert set(r["aperture"]) == {"radius_px", "annulus_in_px", "annulus_out_px"}
    assert set(r["astrometry"]) == {"method", "n_matched", "rms_px", "scale_arcsec"}
    for c in r["comps"]:
        assert {"name", "auid", "label", "catalog_mag", "catalog_err", "instrumental_mag",
                "residual", "used"} <= set(c)
    assert {"name", "label", "auid", "mag", "catalog_mag", "instrumental_mag", "deviation",
            "error"} <= set(r["check_star"])
    # one geometry for all stars, sized from the measured FWHM
    ap = r["aperture"]
    assert ap["radius_px"] == pytest.approx(1.5 * r["fwhm"], rel=1e-3)
    assert r["fwhm"] == pytest.approx(9.0 / 2.374 / 2, rel=0.25)
    assert r["time_uncertainty_s"] == 0.0 and r["exptime"] == 10.0


def test_stack_is_measured_on_the_g_plane(tmp_path: Path) -> None:
    # a very red variable: measured in R it would come out ~1 mag off
    path, truth = _write(tmp_path, "stack.fit", synthetic.make_stack(
        seed=13, stackcnt=8, target_mag=11.0, colour_term=0.0, target_bv=1.6))
    r = measure(path, _cfg(tmp_path))
    assert r["frame_kind"] == "stack" and r["filter"] == "TG"
    assert abs(r["magnitude"] - 11.0) < max(3 * r["uncertainty"], 0.01)
    assert r["time_uncertainty_s"] == pytest.approx(8 * 10.0 / 2)
    assert any("time uncertain" in q for q in r["quality_reasons"])
    # the stack's time is DATE-OBS + half its span, and the true midpoint lies within the flag
    assert abs(r["jd"] - truth.mid_time.jd) * 86400 <= r["time_uncertainty_s"]


def test_mono_frame_uses_filter_map(tmp_path: Path) -> None:
    path, _ = _write(tmp_path, "mono.fit", synthetic.make_mono(
        seed=14, filter_name="V", target_mag=11.0, noise=False, colour_term=0.0))
    r = measure(path, _cfg(tmp_path))
    assert (r["frame_kind"], r["filter"], r["band"]) == ("mono", "V", "V")
    assert abs(r["magnitude"] - 11.0) < 0.005
    path, _ = _write(tmp_path, "clear.fit", synthetic.make_mono(
        seed=14, filter_name="", target_mag=11.0, noise=False, colour_term=0.0))
    r = measure(path, _cfg(tmp_path))
    assert (r["filter"], r["band"]) == ("CV", "V")


# ------------------------------------------------------------------ honest uncertainties


def _tight_sequence(tmp_path: Path) -> Path:
    """The SS Cyg chart with (almost) error-free comparison magnitudes: the synthetic stars are
    exactly at them, so any scatter is noise and the reported error must match it."""
    data = json.loads(synthetic.DEMO_SEQUENCE_FILE.read_text())
    for star in data["comparison_stars"]:
        for band in star["bands"]:
            band["error"] = 0.0001
    p = tmp_path / "tight.json"
    p.write_text(json.dumps(data))
    return p


def test_errors_match_the_scatter_of_noise_realisations(
        tmp_path: Path, truth_wcs: Callable[[synthetic.Truth], None]) -> None:
    cfg = _cfg(tmp_path, _tight_sequence(tmp_path), check_star="119")
    mags, errs, kmags, kerrs = [], [], [], []
    for seed in range(40):
        path, truth = _write(tmp_path, f"r{seed}.fit", synthetic.make_sub(
            seed=seed, shape=(640, 640), pointing_offset_arcmin=(-1.0, 1.0), rotation_deg=30.0,
            target_mag=11.0, colour_term=0.0))
        truth_wcs(truth)
        r = measure(path, cfg)
        mags.append(r["magnitude"])
        errs.append(r["uncertainty"])
        kmags.append(r["check_star"]["mag"])
        kerrs.append(r["check_star"]["error"])
        path.unlink()
    for m, e, true in ((mags, errs, 11.0), (kmags, kerrs, 11.866)):
        m, e = np.array(m), np.array(e)
        observed = float(np.std(m, ddof=1))
        reported = float(np.sqrt(np.mean(e**2)))
        assert 0.8 < observed / reported < 1.2, (observed, reported)
        # and no bias: averaged over the realisations, within 5 mmag and 3 standard errors
        bias = float(np.mean(m) - true)
        assert abs(bias) < 0.005 and abs(bias) < 3 * observed / math.sqrt(len(m)) + 0.001, bias


def test_zero_clipped_sky_is_unbiased() -> None:
    rng = np.random.default_rng(42)
    # (a) normal sky at 1.55 sigma (~6 % clipped) and at 0.84 sigma (~20 % clipped)
    for mu in (1.55, 0.84):
        ours, naive = [], []
        for _ in range(300):
            v = np.clip(rng.normal(mu, 1.0, 500), 0.0, None)
            ours.append(robust_sky(v).mean)
            naive.append(sigma_clipped_stats(v)[0])
        frac0 = float(np.mean(v == 0))
        assert abs(np.mean(ours) - mu) < 0.01, (mu, np.mean(ours))
        assert np.mean(naive) - mu > 0.015 if frac0 > 0.04 else True
    assert np.mean(naive) - 0.84 > 0.05  # the naive estimate is biased high
    # (b) a realistic S50 raw sky: Poisson 3.9 e- + 1.5 e- read noise, 0.065 e-/ADU, integer ADU
    g, lam = 0.065, 3.9
    sd = math.sqrt(lam / g**2 + (1.5 / g) ** 2)
    ours = [robust_sky(np.clip(np.rint((rng.poisson(lam, 600) + rng.normal(0, 1.5, 600)) / g),
                               0, None)).mean for _ in range(300)]
    assert abs(np.mean(ours) - lam / g) < 0.01 * sd
    # (c) crowding: 3 % of the annulus on a neighbour's wings is clipped away
    v = rng.normal(100.0, 10.0, 2000)
    v[:60] += rng.uniform(50, 500, 60)
    assert abs(robust_sky(v).mean - 100.0) < 0.8


def test_zero_clipped_frame_measures_like_an_unclipped_one(
        tmp_path: Path, truth_wcs: Callable[[synthetic.Truth], None]) -> None:
    """Same stars, same noise realisation; dark-subtracted and clipped at 0 (~12 % of the raw
    sky pixels here) or kept above a 500 ADU pedestal: the same sky and the same answer."""
    res = {}
    for clip in (True, False):
        path, truth = _write(tmp_path, f"c{clip}.fit", synthetic.make_sub(
            seed=5, shape=(640, 640), pointing_offset_arcmin=(-1.0, 1.0), rotation_deg=30.0,
            target_mag=12.5, colour_term=0.0, zero_clip=clip, sky_adu=40.0,
            pedestal_adu=0.0 if clip else 500.0))
        truth_wcs(truth)
        if clip:
            assert 0.08 < float(np.mean(fits.getdata(path) == 0)) < 0.2
        res[clip] = measure(path, _cfg(tmp_path))
    # plane = two green sites: 2 x 500 ADU of pedestal
    assert res[False]["sky_adu"] - res[True]["sky_adu"] == pytest.approx(1000.0, abs=1.0)
    assert abs(res[True]["magnitude"] - res[False]["magnitude"]) < 0.2 * res[True]["uncertainty"]
    assert res[True]["uncertainty"] == pytest.approx(res[False]["uncertainty"], rel=0.05)


def test_calibrated_float_frame_with_negative_sky(
        tmp_path: Path, truth_wcs: Callable[[synthetic.Truth], None]) -> None:
    """A sky-subtracted float32 mono frame (negative noise, no clipping) measures like the
    original: its negative pixels are noise, not firmware clipping."""
    hdul, truth = synthetic.make_mono(seed=9, shape=(640, 640), pointing_offset_arcmin=(-1, 1),
                                      rotation_deg=30.0, target_mag=12.0, colour_term=0.0,
                                      zero_clip=False, pedestal_adu=500.0)
    truth_wcs(truth)
    a = synthetic.write_frame(tmp_path / "int.fit", hdul)
    data = hdul[0].data.astype(np.float32) - np.float32(500.0 + 60.0)
    assert (data < 0).mean() > 0.3
    hdul[0] = fits.PrimaryHDU(data=data, header=hdul[0].header)
    b = synthetic.write_frame(tmp_path / "float.fit", hdul)
    ra, rb = measure(a, _cfg(tmp_path)), measure(b, _cfg(tmp_path))
    assert rb["sky_adu"] == pytest.approx(ra["sky_adu"] - 560.0, abs=0.5)
    assert abs(ra["magnitude"] - rb["magnitude"]) < 0.1 * ra["uncertainty"]


# ------------------------------------------------------------------ saturation, check, edges


def test_saturated_comps_never_enter_the_ensemble(tmp_path: Path) -> None:
    path, _ = _write(tmp_path, "sub.fit", synthetic.make_sub(seed=15))
    r = measure(path, _cfg(tmp_path))
    sat = [c for c in r["comps"] if c["excluded"] == "saturated"]
    assert {c["label"] for c in sat} >= {"86"}  # V 8.56 saturates an S50 in 10 s
    assert not any(c["used"] for c in sat)


def test_saturated_target_rejects_the_frame(tmp_path: Path) -> None:
    path, _ = _write(tmp_path, "bright.fit", synthetic.make_sub(seed=16, target_mag=7.5))
    assert run_pipeline(path, _cfg(tmp_path)) is None
    rej = last_rejection()
    assert rej is not None and rej.category == "saturated"


def test_saturation_checks_every_cfa_site_not_the_green_sum(tmp_path: Path) -> None:
    # a very red star: its red sites clip at full scale while its green sites do not
    path, truth = _write(tmp_path, "red.fit", synthetic.make_sub(
        seed=17, target_mag=9.0, target_bv=3.0, colour_term=0.0))
    raw = fits.getdata(path)
    t = truth.target
    assert t is not None
    x, y = round(t.x), round(t.y)
    box = raw[y - 6:y + 8, x - 6:x + 8]
    gy, gx = np.indices(box.shape)
    green = ((gy + y - 6) % 2) == ((gx + x - 6) % 2)
    assert box[green].max() < 60000 <= box[~green].max()
    with pytest.raises(photometry.FrameRejected) as exc:
        measure(path, _cfg(tmp_path))
    assert exc.value.category == "saturated"


def test_check_star_reported_and_configurable(tmp_path: Path) -> None:
    path, _ = _write(tmp_path, "sub.fit", synthetic.make_sub(seed=18, colour_term=0.0))
    r = measure(path, _cfg(tmp_path))
    k = r["check_star"]
    assert k is not None and abs(k["deviation"]) < 3 * k["error"] + 0.01
    assert not next(c for c in r["comps"] if c["label"] == k["label"])["used"]
    assert abs(k["catalog_mag"] - r["magnitude"]) < 1.0  # close in magnitude to the target
    r = measure(path, _cfg(tmp_path, check_star="000-BCP-202"))
    assert r["check_star"]["label"] == "109"
    comp = next(c for c in r["comps"] if c["label"] == "109")
    assert not comp["used"] and comp["excluded"] == "check star"


def test_edge_target_and_target_outside_are_rejected(
        tmp_path: Path, truth_wcs: Callable[[synthetic.Truth], None]) -> None:
    # rotation 0, mirrored: +x is east. Put the frame centre 21.2' west of the target.
    path, truth = _write(tmp_path, "edge.fit", synthetic.make_sub(
        seed=19, rotation_deg=0.0, pointing_offset_arcmin=(-21.2, 0.0)))
    truth_wcs(truth)
    assert truth.target is not None and truth.target.plane_x > 530
    assert run_pipeline(path, _cfg(tmp_path)) is None
    assert last_rejection().category == "edge"  # type: ignore[union-attr]
    path, truth = _write(tmp_path, "away.fit", synthetic.make_sub(
        seed=19, pointing_offset_arcmin=(45.0, 0.0)))
    truth_wcs(truth)
    assert run_pipeline(path, _cfg(tmp_path)) is None
    rej = last_rejection()
    assert rej is not None and rej.category == "no_target" and "outside" in rej.reason


def test_rejections_carry_a_reason(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = _cfg(tmp_path)
    path, _ = _write(tmp_path, "dark.fit", synthetic.make_sub(seed=20, imagetyp="Dark"))
    with caplog.at_level("INFO", logger="starnode.photometry"):
        assert run_pipeline(path, cfg) is None
    assert last_rejection().category == "not_light"  # type: ignore[union-attr]
    assert "not_light" in caplog.text and "dark.fit" in caplog.text
    bad = tmp_path / "corrupt.fit"
    bad.write_bytes(b"SIMPLE  =                    T" + b"\0" * 5000)
    assert run_pipeline(bad, cfg) is None
    assert last_rejection().category == "unreadable"  # type: ignore[union-attr]
    path, _ = _write(tmp_path, "few.fit", synthetic.make_sub(seed=21))
    assert run_pipeline(path, _cfg(tmp_path, min_comps=20)) is None
    assert last_rejection().category == "too_few_comps"  # type: ignore[union-attr]
    # a successful call clears the last rejection
    assert run_pipeline(path, cfg) is not None and last_rejection() is None


def test_unsolvable_frame_is_an_astrometry_rejection(tmp_path: Path) -> None:
    path, _ = _write(tmp_path, "blank.fit", synthetic.make_sub(
        seed=22, shape=(400, 400), pointing_offset_arcmin=(0, 0), include_target=False,
        mag_overrides={c: 20.0 for c in ("134", "128", "123", "119", "109", "98", "86", "114",
                                          "96", "108", "103", "121", "104", "107", "118",
                                          "92", "116", "131", "133", "137", "140", "142",
                                          "146", "148", "151", "154", "91", "94", "77", "51")}))
    cfg = Config({"data_dir": str(tmp_path / "data"), "astrometry": {"blind": False},
                  "photometry": {"sequence_file": str(synthetic.DEMO_SEQUENCE_FILE),
                                 "offline": True, "min_snr": 0.0}})
    assert run_pipeline(path, cfg) is None
    assert last_rejection().category == "astrometry"  # type: ignore[union-attr]


# ------------------------------------------------------------------ time, airmass, quality


def test_hjd_jd_and_airmass_against_astropy(tmp_path: Path) -> None:
    path, truth = _write(tmp_path, "sub.fit", synthetic.make_sub(
        seed=23, date_obs="2026-09-01T22:10:00.250000"))
    r = measure(path, _cfg(tmp_path))
    hdr = fits.getheader(path)
    loc = EarthLocation.from_geodetic(lon=hdr["SITELONG"], lat=hdr["SITELAT"], height=0.0)
    star = SkyCoord(truth.target_ra_deg, truth.target_dec_deg, unit="deg")
    with iers.conf.set_temp("auto_download", False), iers.conf.set_temp("auto_max_age", None):
        mid = Time(hdr["DATE-OBS"], scale="utc", location=loc) + hdr["EXPTIME"] / 2 * u.s
        hjd = (mid + mid.light_travel_time(star, "heliocentric")).jd
        alt = star.transform_to(AltAz(obstime=mid, location=loc)).alt.deg
    assert r["jd"] == pytest.approx(mid.jd, abs=2e-6)  # 0.2 s
    assert r["hjd"] == pytest.approx(hjd, abs=2e-6)
    assert abs(r["hjd"] - r["jd"]) * 86400 > 100  # the correction was applied (~8 min max)
    assert r["airmass"] == pytest.approx(1.0 / math.sin(math.radians(alt)), rel=0.01)


def test_no_site_no_airmass(tmp_path: Path) -> None:
    path, _ = _write(tmp_path, "nosite.fit", synthetic.make_sub(seed=24, site=None))
    r = measure(path, _cfg(tmp_path))
    assert r["airmass"] is None
    assert "airmass unknown (no site)" in r["quality_reasons"]
    assert r["quality_flag"] != "good"
    r = measure(path, Config({"data_dir": str(tmp_path / "data"),
                              "site": {"latitude": 44.74, "longitude": -0.62},
                              "photometry": {"sequence_file": str(synthetic.DEMO_SEQUENCE_FILE),
                                             "offline": True}}))
    assert r["airmass"] is not None and r["airmass"] >= 1.0


def test_quality_flags_follow_the_thresholds(tmp_path: Path) -> None:
    path, _ = _write(tmp_path, "faint.fit", synthetic.make_sub(seed=25, target_mag=13.8))
    r = measure(path, _cfg(tmp_path))
    assert r["quality_flag"] == "poor"
    assert any(q.startswith("SNR") for q in r["quality_reasons"])
    path, _ = _write(tmp_path, "bright.fit", synthetic.make_stack(seed=26, target_mag=10.5,
                                                                   colour_term=0.0))
    r = measure(path, _cfg(tmp_path))
    assert r["snr"] > 100 and r["uncertainty"] < 0.03
    assert r["quality_flag"] == "good", r["quality_reasons"]


# ------------------------------------------------------------------ the typed record


def test_measure_returns_a_measurement_carrying_site_and_night(tmp_path: Path) -> None:
    path, truth = _write(tmp_path, "Light_SS Cyg_10.0s_IRCUT_20250915-033000.fit",
                         synthetic.make_sub(seed=5, target_mag=11.0, noise=False,
                                            date_obs="2025-09-15T03:30:00.000",
                                            site=(40.7, -74.0)))
    cfg = _cfg(tmp_path)
    m = photometry.measure(path, cfg)
    assert isinstance(m, Measurement)
    assert abs(m.magnitude - truth.target_mag) < 0.01
    assert m.site_longitude == pytest.approx(-74.0) and m.site_latitude == pytest.approx(40.7)
    # 03:30 UTC is 22:30 local mean time at 74 W: the night of the 14th (in UTC it is the 15th)
    assert m.night == "2025-09-14"
    assert m.check_star is not None and m.check_star.mag is not None
    assert sum(c.used for c in m.comps) == m.comparison_stars
    d = run_pipeline(path, cfg)  # the second time the WCS comes from the solution cache
    assert d is not None and d["astrometry"]["method"] == "cache"
    assert {**d, "astrometry": None} == {**m.to_dict(), "astrometry": None}
    assert set(d) >= CONTRACT_KEYS and json.loads(json.dumps(d)) == d
    assert Measurement.from_dict(d).to_dict() == d
