"""starnode.node.intake: which files are frames, the one folder walker, the catch-up scan
(unknown, settled and complete frames only), explicit paths for ``starnode process``."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from node_fakes import write_fake
from starnode.config import Config
from starnode.node.intake import Intake, matches_include, walk
from starnode.store import Ledger


def test_include_patterns() -> None:
    inc, ext = ["Light_*", "*Stacked_*"], [".fit", ".fits"]
    assert matches_include("/a/SS Cyg_sub/Light_SS Cyg_10.0s_IRCUT_20250601-023412.fit", inc,
                           ext)
    assert matches_include("/a/SS Cyg/DSO_Stacked_20_SS Cyg_10.0s_20250601_023412.FIT", inc,
                           ext)
    assert not matches_include("/a/SS Cyg/Stacked_20_SS Cyg.jpg", inc, ext)
    assert not matches_include("/a/Dark_10s.fit", inc, ext)
    assert matches_include("/a/Dark_10s.fit", [], ext)


def test_walk_sorted_hidden_folders_skipped(tmp_path: Path) -> None:
    for rel in ("b/2.fit", "b/1.fit", "a/x.fit", ".hidden/h.fit", "top.fit"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    got = [os.path.relpath(p, tmp_path) for p in walk(tmp_path, True)]
    assert got == ["top.fit", "a/x.fit", "b/1.fit", "b/2.fit"]
    assert [os.path.basename(p) for p in walk(tmp_path, False)] == ["top.fit"]
    assert list(walk(tmp_path / "missing", False)) == []


def _intake(tmp_path: Path) -> tuple[Intake, Ledger, threading.Event]:
    cfg = Config({"data_dir": str(tmp_path / "data"),
                  "watch": {"path": str(tmp_path / "w"), "debounce_delay": 0.0}})
    led = Ledger(cfg)
    wake = threading.Event()
    return Intake(cfg, led, wake), led, wake


def test_scan_records_complete_unknown_frames_once(tmp_path: Path) -> None:
    intake, led, wake = _intake(tmp_path)
    w = tmp_path / "w" / "SS Cyg_sub"
    good = write_fake(w / "Light_a.fit", "mag=11")
    full = write_fake(w / "Light_b.fit", "mag=11").read_bytes()
    (w / "Light_b.fit").write_bytes(full[:3000])  # header announces more: still being written
    (w / "notes.txt").write_text("not a frame")
    try:
        assert intake.scan(tmp_path / "w") == 1 and wake.is_set()
        assert [r.path for r in led.frames()] == [str(good)]
        wake.clear()
        assert intake.scan(tmp_path / "w") == 0 and not wake.is_set()  # known: not again
        young = write_fake(w / "Light_c.fit", "mag=11")
        assert intake.scan(tmp_path / "w", min_age=3600) == 0  # too fresh: the watcher's
        os.utime(young, (time.time() - 7200, time.time() - 7200))
        assert intake.scan(tmp_path / "w", min_age=3600) == 1
    finally:
        led.close()


def test_add_paths_and_events(tmp_path: Path) -> None:
    intake, led, wake = _intake(tmp_path)
    arc = tmp_path / "arc"
    a = write_fake(arc / "x" / "Light_a.fit", "mag=11")
    b = write_fake(arc / "Dark_b.fit", "mag=11")  # not a Light_: only when named
    try:
        ids = intake.add_paths([arc, b, tmp_path / "nope"])
        assert [led.get(i).path for i in ids] == [str(a), str(b)]  # type: ignore[union-attr]
        intake.ids = set()
        c = write_fake(tmp_path / "w" / "Light_c.fit", "mag=11")
        intake.on_event({"path": str(c)})
        intake.on_event({"path": str(tmp_path / "w" / "preview.jpg")})
        assert wake.is_set() and len(intake.ids) == 1 and len(led.frames()) == 3
    finally:
        led.close()
