"""V from a one-shot-colour camera (issue 11 item 7): colour planes, the colour-term fit, the
transformation and its AAVSO rows, on synthetic frames rendered with a known colour term."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from starnode import photometry, synthetic
from starnode.aavso import submit, validate_file
from starnode.aavso.entries import entry_from_measurement
from starnode.aavso.spec import FIELDS
from starnode.config import Config
from starnode.errors import FieldError
from starnode.frame.load import load_frame
from starnode.photometry.colour import colour_plane, fit_line
from starnode.records import Measurement
from starnode.synthetic.colour import true_tv_bv, write_colour_chart

COLOUR_TERM = 0.15  # the generator's: g = V + 0.15 ((B-V) - 0.6), so Tv_bv = -0.15
#: 60 s subs: a 10 s sub's scintillation (1.5 x Young) gives each comp ~0.03 mag of noise, and
#: a single frame's Tv_bv an error above 0.02 (then it honestly stays TG).
EXPOSURE = 60.0


def _cfg(tmp_path: Path, chart: Path, **ph: Any) -> Config:
    section: dict[str, Any] = {"sequence_file": str(chart), "offline": True}
    section.update(ph)
    return Config({"data_dir": str(tmp_path / "data"), "photometry": section})


@pytest.fixture(scope="module")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_colour_chart(tmp_path_factory.mktemp("chart") / "colour_chart.json")


# ------------------------------------------------------------------ the colour planes


def test_blue_and_red_sites_of_a_raw_sub_and_a_stack(tmp_path: Path) -> None:
    for bayer, b_site, r_site in (("GRBG", (1, 0), (0, 1)), ("RGGB", (1, 1), (0, 0))):
        hdul, _ = synthetic.make_sub(seed=3, bayer=bayer, shape=(64, 48), noise=False)
        frame = load_frame(synthetic.write_frame(tmp_path / f"{bayer}.fit", hdul))
        raw = np.asarray(hdul[0].data, dtype=np.float32)
        for colour, (r, c) in (("B", b_site), ("R", r_site)):
            found = colour_plane(frame, colour)
            assert found is not None
            plane, dx, dy = found
            assert np.array_equal(plane, raw[r::2, c::2])
            # green plane pixel (i, j) is centred on native (2i + .5, 2j + .5)
            assert (dx, dy) == ((0.5 - c) / 2, (0.5 - r) / 2)
    hdul, _ = synthetic.make_stack(seed=3, shape=(64, 48), stackcnt=2)
    frame = load_frame(synthetic.write_frame(tmp_path / "stack.fit", hdul))
    found = colour_plane(frame, "B")
    assert found is not None and np.array_equal(found[0], hdul[0].data[2]) and found[1:] == (0, 0)
    hdul, _ = synthetic.make_mono(seed=3, shape=(64, 48))
    assert colour_plane(load_frame(synthetic.write_frame(tmp_path / "mono.fit", hdul)),
                        "B") is None


def test_line_fit_recovers_the_slope_clips_an_outlier_and_refuses_one_colour() -> None:
    rng = np.random.default_rng(5)
    x = np.linspace(0.2, 1.6, 12)
    sig = np.full(12, 0.01)
    y = 20.0 - 0.15 * x + rng.normal(0, 0.01, 12)
    y[4] += 0.3  # a variable comp
    fit = fit_line(x, y, sig)
    assert fit is not None and not fit.used[4] and fit.n == 11
    assert abs(fit.slope + 0.15) < 3 * fit.slope_err and fit.slope_err < 0.02
    assert fit_line(np.full(12, 0.6), y, sig) is None  # no colour lever
    assert fit_line(x[:3], y[:3], sig[:3]) is None


# ------------------------------------------------------------------ the colour test


@pytest.mark.parametrize(("target_bv", "seeds"), [(0.2, (101, 103)), (1.6, (101, 103))])
def test_red_and_blue_targets_recover_v_where_tg_is_off(tmp_path: Path, chart: Path,
                                                        target_bv: float,
                                                        seeds: tuple[int, ...]) -> None:
    cfg = _cfg(tmp_path, chart, transform=True)
    v_err, tg_err = [], []
    for seed in seeds:
        hdul, truth = synthetic.make_sub(chart, seed=seed, target_mag=11.0, target_bv=target_bv,
                                         colour_term=COLOUR_TERM, exptime=EXPOSURE)
        m = photometry.measure(synthetic.write_frame(tmp_path / f"{seed}.fit", hdul), cfg)
        t = m.transformation
        assert t is not None and t.applied, t
        assert (m.filter, m.band, m.transformed, t.untransformed_filter) == ("V", "V", True,
                                                                            "TG")
        assert t.coefficient is not None and t.coefficient_err is not None
        assert t.coefficient_err <= 0.02
        assert abs(t.coefficient - true_tv_bv(COLOUR_TERM)) < 3 * t.coefficient_err
        assert t.colour_index is not None and abs(t.colour_index - target_bv) < 0.15
        assert t.untransformed_mag is not None
        v_err.append(m.magnitude - truth.target_mag)
        tg_err.append(t.untransformed_mag - truth.target_mag)
        assert abs(v_err[-1]) < 3 * m.uncertainty  # the error is honest
        k = m.check_star
        assert k is not None and k.deviation is not None and abs(k.deviation) < 3 * (k.error or 0)
    assert abs(float(np.mean(v_err))) < 0.02, v_err
    assert abs(float(np.mean(tg_err))) > 0.05, tg_err
    assert abs(float(np.mean(v_err))) < abs(float(np.mean(tg_err)))


def test_off_by_default_and_refused_when_the_coefficient_is_too_uncertain(
        tmp_path: Path, chart: Path) -> None:
    hdul, _ = synthetic.make_sub(chart, seed=101, target_bv=1.6, colour_term=COLOUR_TERM,
                                 exptime=EXPOSURE)
    path = synthetic.write_frame(tmp_path / "sub.fit", hdul)
    m = photometry.measure(path, _cfg(tmp_path, chart))
    assert m.transformation is None and (m.filter, m.transformed) == ("TG", False)
    # the bundled SS Cyg chart's comps carry 0.03-0.08 mag catalogue errors: not good enough
    hdul, _ = synthetic.make_sub(seed=101, colour_term=COLOUR_TERM, exptime=EXPOSURE)
    path = synthetic.write_frame(tmp_path / "sscyg.fit", hdul)
    m = photometry.measure(path, _cfg(tmp_path, synthetic.DEMO_SEQUENCE_FILE, transform=True))
    t = m.transformation
    assert t is not None and not t.applied and t.reason and "transform_max_error" in t.reason
    assert (m.filter, m.transformed) == ("TG", False)
    assert t.coefficient is not None  # still recorded, for review
    assert any(r.startswith("not transformed") for r in m.quality_reasons)


def test_a_mono_frame_is_not_transformed_and_says_why(tmp_path: Path, chart: Path) -> None:
    hdul, _ = synthetic.make_mono(chart, seed=4, filter_name="CLEAR")
    m = photometry.measure(synthetic.write_frame(tmp_path / "mono.fit", hdul),
                           _cfg(tmp_path, chart, transform=True))
    assert m.filter == "CV" and m.transformation is not None
    assert not m.transformation.applied and "green Bayer plane" in str(m.transformation.reason)


# ------------------------------------------------------------------ the AAVSO row


@pytest.fixture(scope="module")
def transformed(tmp_path_factory: pytest.TempPathFactory, chart: Path) -> Measurement:
    tmp = tmp_path_factory.mktemp("transformed")
    hdul, _ = synthetic.make_sub(chart, seed=103, target_bv=1.6, colour_term=COLOUR_TERM,
                                 exptime=EXPOSURE)
    m = photometry.measure(synthetic.write_frame(tmp / "sub.fit", hdul),
                           _cfg(tmp, chart, transform=True))
    assert m.transformed
    return m


def test_transformed_row_is_v_trans_yes_with_the_coefficient(tmp_path: Path,
                                                               transformed: Measurement,
                                                               shared: Path) -> None:
    cfg = {"data_dir": str(tmp_path / "data"), "aavso": {"observer_code": "ZZA",
                                                         "submit_poor_quality": True}}
    answer = submit(transformed.replace(synthetic=False, telescope="Seestar S50"), cfg)
    assert answer["status"] == "queued", answer
    (row,) = answer["rows"]
    f = dict(zip(FIELDS, row.split(","), strict=True))
    t = transformed.transformation
    assert t is not None and t.coefficient is not None
    assert (f["FILTER"], f["TRANSFORMED"]) == ("V", "YES")
    assert f"|TV_BV={t.coefficient:.3f}" in f["NOTES"] and "transformed to V" in f["NOTES"]
    assert float(f["MAGNITUDE"]) == pytest.approx(transformed.magnitude, abs=5e-4)
    report = validate_file(answer["report_path"])
    assert report.ok and not [x for x in report if x.rule in ("X02", "X03")]
    proc = subprocess.run([sys.executable, str(shared / "aavso" / "aavso_validate.py"),
                           "--strict", answer["report_path"]], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stdout
    assert "X02" not in proc.stdout and "X03" not in proc.stdout


def test_transformed_tg_or_without_coefficient_is_an_error(transformed: Measurement) -> None:
    with pytest.raises(FieldError, match="transformed"):
        entry_from_measurement(transformed.replace(filter="TG"))
    with pytest.raises(FieldError, match="transformed"):
        entry_from_measurement(transformed.replace(transformation=None))
    e = entry_from_measurement(transformed)
    assert e.transformed and e.tv_bv is not None and math.isfinite(e.tv_bv)
