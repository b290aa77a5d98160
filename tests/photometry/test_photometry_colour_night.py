"""The night's colour coefficient (issue 20, item 5): each frame's Tv_bv kept per telescope and
night in the node's database (migration 7), combined, and used for frames whose own fit is too
uncertain."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest

from starnode import photometry, synthetic
from starnode.config import Config
from starnode.store import Store
from starnode.store.colourterms import ColourTerms, combine
from starnode.synthetic.colour import true_tv_bv, write_colour_chart


def test_combine_weights_and_inflates() -> None:
    c = combine([-0.10, -0.20], [0.02, 0.02])
    assert c is not None and c.value == pytest.approx(-0.15) and c.n_frames == 2
    # the two disagree by 3.5 sigma: the error grows by sqrt(chi2/dof)
    assert c.chi2 == pytest.approx(12.5) and c.error == pytest.approx(0.02 / math.sqrt(2)
                                                                        * math.sqrt(12.5))
    one = combine([-0.1, math.nan], [0.01, 0.01])
    assert one is not None and one.n_frames == 1 and one.error == pytest.approx(0.01)
    assert combine([], []) is None


def test_colour_terms_are_kept_per_telescope_and_night(tmp_path: Path) -> None:
    cfg = Config({"data_dir": str(tmp_path / "data")})
    terms = ColourTerms(cfg)
    assert terms.add("S50_a", "2026-08-20", "sha1", -0.14, 0.03, 7)
    assert terms.add("S50_a", "2026-08-20", "sha1", -0.15, 0.03, 7)  # the same frame again
    assert terms.add("S50_a", "2026-08-20", "sha2", -0.16, 0.03, 7)
    assert terms.add("S50_b", "2026-08-20", "sha3", +0.50, 0.01, 7)
    assert terms.add("S50_a", "2026-08-21", "sha4", +0.50, 0.01, 7)
    night = ColourTerms(Config({"data_dir": str(tmp_path / "data")})).night("S50_a",
                                                                            "2026-08-20")
    assert night is not None and night.n_frames == 2
    assert night.value == pytest.approx(-0.155) and night.error == pytest.approx(0.03 / 2**0.5)
    assert ColourTerms(cfg).night("S50_c", "2026-08-20") is None
    store = Store.open(tmp_path / "data" / "starnode.sqlite3")
    assert store.version() >= 7  # the colour_terms migration
    conn = sqlite3.connect(tmp_path / "data" / "starnode.sqlite3")
    assert conn.execute("SELECT COUNT(*) FROM colour_terms").fetchone()[0] == 4
    conn.close()


@pytest.mark.slow
def test_ten_second_subs_are_transformed_with_the_nights_coefficient(tmp_path: Path) -> None:
    """10 s subs whose own Tv_bv error is above 0.02: once the night's combination is good to
    0.02 they are transformed with it (scope 'night'), and the night's coefficient is right."""
    chart = write_colour_chart(tmp_path / "chart.json")
    cfg = Config({"data_dir": str(tmp_path / "data"), "photometry": {
        "sequence_file": str(chart), "offline": True, "transform": True}})
    scopes, errs, night_v = [], [], []
    for seed in range(100, 106):
        hdul, truth = synthetic.make_sub(chart, seed=seed, target_mag=11.0, target_bv=1.6,
                                         colour_term=0.15, exptime=10.0)
        m = photometry.measure(synthetic.write_frame(tmp_path / f"s{seed}.fit", hdul), cfg)
        t = m.transformation
        assert t is not None
        scopes.append(t.scope if t.applied else None)
        if t.applied and t.scope == "night":
            errs.append(t.coefficient_err)
            night_v.append(m.magnitude - truth.target_mag)
    assert "night" in scopes, scopes
    assert all(e <= 0.02 for e in errs)
    night = ColourTerms(cfg).night(m.telescope or "", m.night or "")
    assert night is not None and night.n_frames == 6
    assert abs(night.value - true_tv_bv(0.15)) < 3 * night.error + 0.01
    assert all(abs(d) < 0.15 for d in night_v)
