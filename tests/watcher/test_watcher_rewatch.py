"""The watcher recovers by itself (issue 10, items 9 and 2): a watched folder deleted and
created again is watched again in events mode; a FIFO or a folder named like a frame is handed
to ``on_irregular``, never opened; names are quoted in log lines."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from starnode.watcher import ImageWatcher
from waiting import poll_until


def _frame(path: Path) -> Path:
    fits.PrimaryHDU(np.zeros((8, 8), dtype=np.uint16)).writeto(path)
    return path


def _until(pred: Any, timeout: float = 30.0) -> bool:
    return poll_until(pred, timeout) or bool(pred())


def test_events_mode_watches_a_deleted_and_recreated_folder_again(tmp_path: Path) -> None:
    root = tmp_path / "MyWorks"
    root.mkdir()
    got: list[str] = []
    w = ImageWatcher(str(root), lambda e: got.append(e["path"]), debounce_delay=0.1,
                     mode="events", poll_interval=0.2)
    w.start()
    try:
        assert w.active_mode == "events"
        first = _frame(root / "Light_1.fit")
        assert _until(lambda: str(first) in got)
        shutil.rmtree(root)
        time.sleep(1.5)  # the share is away for a while
        root.mkdir()
        second = _frame(root / "Light_2.fit")
        assert _until(lambda: str(second) in got), "the recreated folder is not watched"
        third = _frame(root / "Light_3.fit")  # and new files keep coming
        assert _until(lambda: str(third) in got)
    finally:
        w.stop()


def test_fifo_and_folder_named_like_frames_go_to_on_irregular(tmp_path: Path,
                                                             caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    for mode in ("events", "poll"):
        root = tmp_path / mode
        root.mkdir()
        got: list[str] = []
        odd: list[str] = []
        w = ImageWatcher(str(root), lambda e, got=got: got.append(e["path"]),
                         debounce_delay=0.1, mode=mode, poll_interval=0.1,
                         on_irregular=odd.append)
        t = threading.Thread(target=w.start, daemon=True)
        t.start()
        t.join(30)
        assert not t.is_alive()
        try:
            os.mkfifo(root / "Light_fifo.fit")
            (root / "Light_dir.fit").mkdir()
            good = _frame(root / "Light_a\nERROR forged.fit")
            assert _until(lambda g=got, o=odd, f=good: str(f) in g and len(o) == 2), (mode, odd)
            assert sorted(odd) == [str(root / "Light_dir.fit"), str(root / "Light_fifo.fit")]
        finally:
            w.stop()
    for r in caplog.records:
        assert "\n" not in r.getMessage(), r.getMessage()
