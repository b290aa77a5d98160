"""Issue 18, item 3: the worker measures without writing anything of the node's (no check-star
row, no starlist file), hashes the frame once when asked, and the node keeps what it returns:
the night's check star stays the same from frame to frame because the node hands each worker
the night's choice. The real pipeline on synthetic SS Cyg subs, a real SQLite store."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from starnode import synthetic
from starnode.config import Config
from starnode.node.keep import keep, night_checks
from starnode.node.pool import MeasuredFrame, Task, work
from starnode.store import Store
from starnode.store.checkstars import CheckStars


def _raw(tmp_path: Path) -> dict[str, Any]:
    return {"data_dir": str(tmp_path / "data"),
            "photometry": {"sequence_file": str(synthetic.DEMO_SEQUENCE_FILE)}}


def _sub(tmp_path: Path, k: int, target_mag: float) -> Path:
    minute = 30 + 2 * k
    hdul, _ = synthetic.make_sub(seed=40 + k, date_obs=f"2026-08-20T21:{minute:02d}:00.000000",
                                 pointing_offset_arcmin=(5.0, 3.0), rotation_deg=20.0,
                                 target_mag=target_mag)
    return synthetic.write_frame(tmp_path / f"Light_SS Cyg_10.0s_IRCUT_{k:02d}.fit", hdul)


def _measured(out: Any) -> MeasuredFrame:
    assert isinstance(out, MeasuredFrame), out
    return out


def test_the_worker_writes_nothing_and_the_node_keeps_the_nights_check_star(
        tmp_path: Path) -> None:
    raw = _raw(tmp_path)
    first = _sub(tmp_path, 0, 12.4)
    late = _sub(tmp_path, 4, 10.3)  # the variable brightened: another comp is closest now
    out = _measured(work(None, Task(str(first), {}, sha256=True), raw))

    # the worker's answer: the record as a dict, the starlist as a table, the choice to keep
    assert out.sha256 == hashlib.sha256(first.read_bytes()).hexdigest()
    assert out.check is not None and out.check.night == "2026-08-20"
    assert out.result["check_star"]["label"] == out.check.label
    assert out.starlist is not None and len(out.starlist) > 10
    assert out.result["starlist"] is None
    # ...and nothing written: no starlist file, no check star in the node's database
    assert not (tmp_path / "data" / "starlists").exists()
    store = Store.open(raw)
    try:
        assert CheckStars(store).get("sscyg", "2026-08-20") is None

        # the node keeps them, in its own process
        result = keep(Config(raw), out, store)
        assert Path(result["starlist"]).is_file()
        assert result["starlist"].endswith("2026-08-20/Light_SS Cyg_10.0s_IRCUT_00.ecsv.gz")
        kept = CheckStars(store).get("sscyg", "2026-08-20")
        assert kept is not None and kept.label == out.check.label

        # a later frame of the night is given the night's choice, and keeps to it
        checks = night_checks(store, str(late))
        assert checks == {("sscyg", "2026-08-20"): out.check.label}
        later = _measured(work(None, Task(str(late), checks), raw))
        assert later.check is None  # nothing new to keep
        assert later.result["check_star"]["label"] == out.check.label
        assert later.sha256 is None  # not asked for: not computed

        # without the night's choice the worker would have chosen by itself
        alone = _measured(work(None, Task(str(late)), raw))
        assert alone.check is not None
    finally:
        store.close()
