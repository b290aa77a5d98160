"""End to end: a plan for a night, "observed" against the fake Alpaca camera that renders
synthetic Seestar subs of the planned star (SS Cyg), pointing verified with starnode's own
solver, and the node (``starnode process`` on the folder, twice) measuring and reporting each
frame exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from starnode.synthetic import DEMO_SEQUENCE_FILE, make_sub
from telescope_helpers import SS_CYG, item, night, plan, settings, utc

pytestmark = pytest.mark.slow


def _config(tmp_path: Path, folder: Path) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"""data_dir: {tmp_path / 'data'}
site: {{latitude: 52.0, longitude: 5.0, elevation: 10}}
watch: {{path: {folder}}}
photometry: {{sequence_file: {DEMO_SEQUENCE_FILE}, offline: true}}
aavso: {{observer_code: DEMO, mode: outbox}}
telescope: {{driver: alpaca, motion: true}}
""")
    return cfg


def test_plan_observe_measure_report_once(tmp_path: Path) -> None:
    from starnode.cli import load_config
    from starnode.cli.observe import _verifier

    folder = tmp_path / "MyWorks"
    cfg_path = _config(tmp_path, folder)
    cfg = load_config(str(cfg_path))
    seeds = iter(range(100, 200))

    def image(ra: float, dec: float, exposure_s: float, start: datetime) -> np.ndarray:
        hdul, _truth = make_sub(target_mag=11.4, seed=next(seeds), exptime=exposure_s,
                                date_obs=start.strftime("%Y-%m-%dT%H:%M:%S"),
                                site=(52.0, 5.0))
        return np.asarray(hdul[0].data, dtype=np.uint16)

    p = plan(item("SS Cyg", SS_CYG, utc(20, 0), utc(20, 10), 10.0, 3))
    (tmp_path / "data").mkdir()
    with night(tmp_path / "data", start=utc(19, 50), image=image) as n:  # the node's database
        n.folder = folder
        res = n.runner(p, settings(watch_path=str(folder)), verify=_verifier(cfg)).run()
        assert res.frames == 3 and res.parked is True, res
        verify = [s["detail"] for s in n.journal.steps() if s["step"] == "verify"]
        assert len(verify) == 1 and ("on target" in verify[0] or "correcting" in verify[0]), \
            verify
    frames = sorted(folder.rglob("Light_*.fit"))
    assert len(frames) == 3 and all(f.parent.name == "SS Cyg_sub" for f in frames)

    def process() -> dict:
        run = subprocess.run([sys.executable, "-m", "starnode", "--config", str(cfg_path),
                              "process", "--quiet", str(folder)], capture_output=True,
                             text=True, timeout=600)
        assert run.returncode == 0, run.stdout + run.stderr
        st = subprocess.run([sys.executable, "-m", "starnode", "--config", str(cfg_path),
                             "status", "--json"], capture_output=True, text=True, check=True)
        return json.loads(st.stdout)

    first = process()
    assert first["counts"].get("reported") == 3, first["counts"]
    assert sum(o["rows"] for o in first["outbox"]) == 3
    second = process()  # the same folder again: nothing is measured or reported twice
    assert sum(o["rows"] for o in second["outbox"]) == 3
    lines = [ln for o in second["outbox"] for ln in Path(o["path"]).read_text().splitlines()
             if ln.upper().startswith("SS CYG")]
    assert len(lines) == 3
    # the telescope's journal is part of the node's status
    assert second["telescope"]["parked"] == "yes" and second["telescope"]["alarm"] is None
