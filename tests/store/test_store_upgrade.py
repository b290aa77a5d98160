"""A data_dir written by starnode 0.1.0 keeps working under this version.

tests/data/datadir-0.1.0 was written by 0.1.0's own ``starnode process`` (commit 0a44280; see
tests/data/make_datadir_010.py): three SS Cyg frames of the night of 2025-08-01 reported to the
outbox, one dark frame skipped, its audit trail, its catalogue and astrometry caches. Here the
current ``starnode process`` adds a fourth frame of the same night to a copy of it: the schema
is migrated on the way, the night's report gains exactly one row, none is lost or repeated, and
``starnode status`` still lists the old frames.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from starnode.aavso import validate_text
from starnode.store import SCHEMA_VERSION
from starnode.synthetic import DEMO_SEQUENCE_FILE, make_sub

pytestmark = pytest.mark.slow

DATADIR_010 = Path(__file__).parents[1] / "data" / "datadir-0.1.0"
REPORT = Path("outbox") / "2025-08-01" / "2025-08-01_SS_Cyg_DEMO.txt"
AUDIT = Path("outbox") / "audit" / "2025-08-01" / "2025-08-01_SS_Cyg_DEMO.jsonl"
OLD_FRAMES = [f"Light_SS Cyg_10.0s_IRCUT_20250801-{t}.fit"
              for t in ("210000", "210500", "211000", "211500")]
NEW_FRAME = "Light_SS Cyg_10.0s_IRCUT_20250801-212000.fit"


def _data_lines(path: Path) -> list[str]:
    return [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]


def _table(db: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return [tuple(r) for r in conn.execute(sql).fetchall()]
    finally:
        conn.close()


def _starnode(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    return subprocess.run([sys.executable, "-m", "starnode", "--config", str(cfg), *args],
                          capture_output=True, text=True, timeout=300, env=env, check=False)


def test_010_data_dir_upgrades_and_keeps_reporting(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(DATADIR_010, data)
    db = data / "starnode.sqlite3"
    old_lines = _data_lines(data / REPORT)
    old_audit = (data / AUDIT).read_text()
    old_keys = _table(db, "SELECT space, mkey FROM aavso_measurements ORDER BY mkey")
    old_frames = _table(db, "SELECT * FROM frames ORDER BY id")
    assert len(old_lines) == 3 and len(old_keys) == 3
    assert _table(db, "PRAGMA user_version") == [(0,)]

    frames = tmp_path / "frames"
    frames.mkdir()
    hdul, _ = make_sub(target_mag=11.5, seed=4, date_obs="2025-08-01T21:20:00",
                       site=(48.85, 2.35), exptime=10.0)
    buf = io.BytesIO()
    hdul.writeto(buf)
    (frames / NEW_FRAME).write_bytes(buf.getvalue())
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"data_dir: {data}\nworkers: 1\n"
                   f"photometry:\n  sequence_file: {DEMO_SEQUENCE_FILE}\n  offline: true\n"
                   "aavso:\n  observer_code: DEMO\n  mode: outbox\n")

    run = _starnode(cfg, "process", str(frames))
    assert run.returncode == 0, run.stdout + run.stderr
    assert _table(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]

    # one more row in the night's report; the old rows unchanged, each once
    lines = _data_lines(data / REPORT)
    assert len(lines) == 4
    assert [ln for ln in lines if ln in old_lines] == old_lines
    assert len(set(lines)) == 4
    assert validate_text((data / REPORT).read_text(), REPORT.name).ok
    keys = _table(db, "SELECT space, mkey FROM aavso_measurements ORDER BY mkey")
    assert len(keys) == 4 and set(old_keys) < set(keys)
    assert len(_table(db, "SELECT row_key FROM aavso_rows")) == 4
    # the audit trail grew by one record; nothing before it rewritten
    audit = (data / AUDIT).read_text()
    assert audit.startswith(old_audit)
    added = [json.loads(ln) for ln in audit[len(old_audit):].splitlines()]
    assert [a["event"] for a in added] == ["measurement"]
    # the new frame went through the ledger; the old rows are exactly as 0.1.0 left them
    states = dict(_table(db, "SELECT path, state FROM frames"))
    assert states[str(frames / NEW_FRAME)] == "reported"
    assert sorted(os.path.basename(str(p)) for p in states) == sorted([*OLD_FRAMES, NEW_FRAME])
    assert _table(db, f"SELECT * FROM frames WHERE id <= {len(old_frames)} ORDER BY id") == \
        old_frames

    # processing the same frame again reports nothing twice
    again = _starnode(cfg, "process", str(frames))
    assert again.returncode == 0, again.stdout + again.stderr
    assert _data_lines(data / REPORT) == lines

    status = _starnode(cfg, "status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    info = json.loads(status.stdout)
    assert info["counts"]["reported"] == 4 and info["counts"]["skipped"] == 1
    shown = json.dumps(info)
    for name in OLD_FRAMES:
        assert name in shown
    text = _starnode(cfg, "status")
    assert text.returncode == 0, text.stdout + text.stderr
    assert "4 reported" in text.stdout and "1 skipped" in text.stdout
    for name in OLD_FRAMES:
        assert name in text.stdout
