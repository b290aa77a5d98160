"""Starlists carry each frame's own error terms (issue 20): field stars get the frame's excess
and airmass, every row says its frame's zero point, excess, airmass and reference, and several
frames in one output keep their own values."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from starnode import synthetic
from starnode.config import Config
from starnode.photometry import measure


def _config(tmp_path: Path) -> dict:
    return {"data_dir": str(tmp_path / "data"),
            "photometry": {"sequence_file": str(synthetic.DEMO_SEQUENCE_FILE)}}


def _frame(tmp_path: Path, seed: int, airmass_hour: str = "21:30") -> Path:
    hdul, _ = synthetic.make_sub(seed=seed, extra_stars=200, pointing_offset_arcmin=(5.0, 3.0),
                                 date_obs=f"2026-08-20T{airmass_hour}:00.000000")
    return synthetic.write_frame(tmp_path / f"Light_SS Cyg_10.0s_IRCUT_{seed}.fit", hdul)


def test_field_stars_get_the_frames_terms_and_airmass(tmp_path: Path) -> None:
    path = _frame(tmp_path, 11, "03:30")  # low in the west: airmass well above 1
    m = measure(path, Config(_config(tmp_path)))
    assert m.airmass is not None and m.airmass > 1.2
    t = Table.read(m.starlist, format="ascii.ecsv")
    field = t[t["name"] == "field"]
    assert len(field) >= 10
    # one frame: the same per-frame values on every row, equal to the record's
    assert np.allclose(t["airmass"], m.airmass, atol=1e-3)
    assert np.allclose(t["scintillation"], m.scintillation_mag, atol=1e-4)
    assert np.allclose(t["frame_excess"], m.excess_noise_mag, atol=1e-4)
    assert np.allclose(t["zero_point"], m.zero_point, atol=1e-4)
    assert set(t["reference"]) == {"vsp"}
    # field stars' errors include scintillation at the frame's airmass, not at airmass 1:
    # a bright field star's error is at least the frame's scintillation
    bright = field[(field["flux"] > 0) & ~field["saturated"]]
    rel = np.asarray(bright["flux_err"] / bright["flux"])
    assert float(np.min(rel * 1.0857)) >= m.scintillation_mag * 0.999
    assert t.meta["airmass"] == pytest.approx(m.airmass, abs=1e-3)


def test_several_frames_keep_their_own_values(tmp_path: Path) -> None:
    a, b = _frame(tmp_path, 11, "21:30"), _frame(tmp_path, 12, "03:30")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps(_config(tmp_path)))
    cmd = [sys.executable, "-m", "starnode", "--config", str(cfg), "stars", str(a), str(b)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    t = Table.read(out.stdout, format="ascii.ecsv")
    frames = t.meta["frames"]
    assert [f["file"] for f in frames] == [str(a), str(b)]
    assert frames[0]["airmass"] != frames[1]["airmass"]
    for f in frames:  # each frame's rows carry that frame's own values
        rows = t[t["file"] == f["file"]]
        assert np.allclose(rows["airmass"], f["airmass"], atol=1e-3)
        assert np.allclose(rows["zero_point"], f["zero_point"], atol=1e-4)
        assert np.allclose(rows["frame_excess"], f["excess_noise_mag"], atol=1e-4)
    js = subprocess.run([*cmd, "--json"], capture_output=True, text=True, check=True)
    rows = json.loads(js.stdout)
    assert {r["file"] for r in rows} == {str(a), str(b)}
    assert all("excess" in r and "airmass" in r and "zero_point" in r for r in rows)
    csv = subprocess.run([*cmd, "--csv"], capture_output=True, text=True, check=True)
    head = csv.stdout.splitlines()[0].split(",")
    assert {"excess", "frame_excess", "airmass", "zero_point", "reference"} <= set(head)


def test_a_frame_without_a_measurable_target_is_listed_from_its_chart(tmp_path: Path) -> None:
    """The variable is outside the frame (``measure`` refuses it): the stars are listed anyway,
    calibrated on the chart's comps (reference vsp), and the magnitudes hold."""
    from scipy.spatial import cKDTree

    from starnode.cli.stars import frame_starlist

    hdul, truth = synthetic.make_sub(seed=901, extra_stars=300, pointing_offset_arcmin=(0.0, 45.0))
    path = synthetic.write_frame(tmp_path / "Light_SS Cyg_10.0s_IRCUT_y.fit", hdul)
    cfg = Config({**_config(tmp_path), "photometry": {
        "sequence_file": str(synthetic.DEMO_SEQUENCE_FILE), "offline": True}})
    with pytest.raises(Exception, match="outside the frame"):
        measure(path, cfg)
    t = frame_starlist(path, cfg)
    assert "outside the frame" in t.meta["not_measured"]
    assert set(t["reference"]) == {"vsp"} and not np.any(t["target"])
    assert np.all(np.isfinite(t["inst_mag"][t["flux"] > 0]))
    fs = [s for s in truth.stars if s.in_frame and not s.is_target]
    dist, idx = cKDTree([[s.plane_x, s.plane_y] for s in fs]).query(
        np.column_stack([t["x"], t["y"]]))
    diffs = [row["mag"] - fs[i].v_mag for row, d, i in zip(t, dist, idx, strict=True)
             if d < 1.0 and row["mag_err"] < 0.15 and not row["saturated"]]
    assert len(diffs) >= 5 and abs(float(np.median(diffs))) < 0.05
    assert t.meta["zp_stars"] >= 3


def test_stars_offline_without_a_chart_real_older_firmware_pair(shared: Path,
                                                                tmp_path: Path) -> None:
    """NGC 7023 has no AAVSO chart and nothing is cached: every star is still listed, with
    instrumental magnitudes, the frame's airmass and excess, and the reference named."""
    folder = shared / "data" / "seestar-s50" / "S50_NGC7023_2024-07-30_altaz"
    files = sorted(folder.glob("*.fit"))
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"data_dir": str(tmp_path / "d"), "photometry": {"offline": True}}))
    r = subprocess.run([sys.executable, "-m", "starnode", "--config", str(cfg), "stars",
                        *map(str, files), "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    for f in files:
        mine = [x for x in rows if x["file"] == str(f)]
        assert len(mine) > 100
        assert {x["reference"] for x in mine} <= {"gaia-dr3-g", "none"}
        assert sum(np.isfinite(x["inst_mag"]) for x in mine) > 100
        assert all(abs(x["airmass"] - 1.378) < 0.01 for x in mine)
        assert all(x["frame_excess"] >= 0 for x in mine)
