"""Per-frame starlists (issue 11, item 5): written by every measurement, and on demand by
``starnode stars``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from scipy.spatial import cKDTree

from starnode import synthetic
from starnode.config import Config
from starnode.photometry import measure
from starnode.photometry.starlist import COLUMNS


def _frame(tmp_path: Path) -> tuple[Path, synthetic.Truth]:
    hdul, truth = synthetic.make_sub(seed=11, extra_stars=200, pointing_offset_arcmin=(5.0, 3.0))
    return synthetic.write_frame(tmp_path / "Light_SS Cyg_10.0s_IRCUT_x.fit", hdul), truth


def _config(tmp_path: Path) -> dict:
    return {"data_dir": str(tmp_path / "data"),
            "photometry": {"sequence_file": str(synthetic.DEMO_SEQUENCE_FILE)}}


def test_measure_writes_the_frames_starlist(tmp_path: Path) -> None:
    path, truth = _frame(tmp_path)
    m = measure(path, Config(_config(tmp_path)))
    assert m.starlist == str(tmp_path / "data" / "starlists" / m.night /
                             f"{path.stem}.ecsv.gz")
    t = Table.read(m.starlist, format="ascii.ecsv")
    assert list(t.colnames) == list(COLUMNS)
    assert not list(Path(m.starlist).parent.glob(".starlist-*"))  # atomic: no leftovers
    assert int(np.sum(t["target"])) == 1 and t["name"][0] == m.target_name
    assert int(np.sum(t["check"])) == 1 and int(np.sum(t["comp"])) == m.comparison_stars
    assert t["mag"][0] == pytest.approx(m.magnitude, abs=1e-3)
    # field stars: detected beyond the catalogue, calibrated on the frame's zero point
    field = t[t["name"] == "field"]
    assert len(field) >= 10
    fs = [s for s in truth.stars if s.in_frame and s.label.startswith("field")]
    dist, idx = cKDTree([[s.plane_x, s.plane_y] for s in fs]).query(
        np.column_stack([field["x"], field["y"]]))
    diffs = [row["mag"] - fs[i].v_mag for row, d, i in zip(field, dist, idx, strict=True)
             if d < 1.0 and row["mag_err"] < 0.1 and not row["saturated"]]
    assert len(diffs) >= 5 and abs(float(np.median(diffs))) < 0.05
    # positions are sky positions from the verified WCS
    tgt = t[t["target"]][0]
    assert tgt["ra"] == pytest.approx(truth.target_ra_deg, abs=5 / 3600)
    assert tgt["dec"] == pytest.approx(truth.target_dec_deg, abs=5 / 3600)
    assert np.any(t["saturated"])  # the bright chart stars


def test_stars_command_json_csv_and_out(tmp_path: Path) -> None:
    path, _ = _frame(tmp_path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps(_config(tmp_path)))
    cmd = [sys.executable, "-m", "starnode", "--config", str(cfg), "stars"]
    out = subprocess.run([*cmd, str(path), "--json"], capture_output=True, text=True, check=True)
    rows = json.loads(out.stdout)
    assert rows and rows[0]["target"] is True and rows[0]["file"] == str(path)
    csv = tmp_path / "s.csv"
    subprocess.run([*cmd, str(path), "--csv", "--out", str(csv)], check=True,
                   capture_output=True)
    assert csv.read_text().splitlines()[0].startswith("file,name,ra,dec,x,y,flux")
    bad = tmp_path / "not.fit"
    bad.write_text("not a fits file")
    r = subprocess.run([*cmd, str(bad)], capture_output=True, text=True)
    assert r.returncode == 1 and "not.fit" in r.stderr


def test_starlists_are_compressed_paused_when_space_is_low_and_pruned(tmp_path: Path) -> None:
    """Issue 17: compressed files, a pause (recorded) when free space runs low, keep_days."""
    import datetime as dt
    import gzip
    import shutil

    from starnode.photometry.starlist import StarlistSkipped, prune, write_starlist

    table = Table({"name": ["SS Cyg", "field"], "mag": [11.2, 12.3]})
    path = tmp_path / "starlists" / "2025-05-01" / "a.ecsv.gz"
    write_starlist(table, path)
    assert gzip.decompress(path.read_bytes()).startswith(b"# %ECSV")
    assert list(Table.read(path, format="ascii.ecsv")["name"]) == ["SS Cyg", "field"]
    free = shutil.disk_usage(tmp_path).free // 2**20
    later = tmp_path / "starlists" / "2025-05-01" / "b.ecsv.gz"
    with pytest.raises(StarlistSkipped):
        write_starlist(table, later, min_free_mb=free + 10_000)
    assert not later.exists()
    assert "b.ecsv.gz" in (tmp_path / "starlists" / "skipped.txt").read_text()
    (tmp_path / "starlists" / "2025-06-01").mkdir()
    assert prune(tmp_path, 0) == 0
    assert prune(tmp_path, 10, today=dt.date(2025, 6, 5)) == 1
    assert not path.parent.exists() and (tmp_path / "starlists" / "2025-06-01").exists()
