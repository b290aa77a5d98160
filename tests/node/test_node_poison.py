"""Poison in the watch folder (issue 10, items 1, 2, 3, 14): a name that is not UTF-8, a FIFO,
a folder or a device named like a frame, a frame announcing gigabytes, a newline in a name.
Each is recorded with its reason, none stops, hangs or floods the node, none reaches a worker,
and no log line can be forged by a file name."""

from __future__ import annotations

import io
import logging
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from astropy.io import fits

from node_fakes import write_fake
from starnode.config import Config
from starnode.node import Node
from starnode.node.lines import frame_line
from starnode.store import Ledger

FAKE = "node_fakes:measure"


def _cfg(tmp_path: Path) -> Config:
    return Config({"data_dir": str(tmp_path / "data"), "shutdown_grace": 0,
                   "watch": {"path": str(tmp_path / "MyWorks"), "debounce_delay": 0,
                             "include": []}})


def _rows(cfg: Config) -> dict[str, Any]:
    with Ledger(cfg) as led:
        return {os.path.basename(r.path): r for r in led.frames()}


def _drain(node: Node) -> None:
    for _ in range(200):
        node.dispatch()
        if not node.busy():
            break
        node.collect(0.5)


def _bad_name(root: Path) -> bytes:
    path = os.fsencode(root) + b"/Light_caf\xe9.fit"  # Latin-1, not UTF-8
    write_fake(Path(os.fsdecode(path)), "mag=11.0")
    return path


def test_a_name_that_is_not_utf8_is_skipped_with_its_reason(tmp_path: Path,
                                                           capsys: Any) -> None:
    root = tmp_path / "MyWorks"
    _bad_name(root)
    good = write_fake(root / "Light_good.fit", "mag=11.5")
    strict = logging.StreamHandler(io.TextIOWrapper(io.BytesIO(), encoding="utf-8"))
    logging.getLogger().addHandler(strict)
    try:
        cfg = _cfg(tmp_path)
        node = Node(cfg, workers=1, measure=FAKE, submit=False)
        assert node.scan(root) == 2
        node.on_event({"path": os.fsdecode(os.fsencode(root) + b"/Light_caf\xe9.fit")})
        assert not node.intake._retry  # recorded once, never retried
        _drain(node)
        node.close()
    finally:
        logging.getLogger().removeHandler(strict)
    assert "Logging error" not in capsys.readouterr().err
    rows = _rows(cfg)
    assert rows[good.name].state == "measured"
    [bad] = [r for name, r in rows.items() if name != good.name]
    assert bad.state == "skipped" and bad.category == "bad_name"
    assert "\\xe9" in bad.path and "UTF-8" in (bad.reason or "")
    assert "\\xe9" in frame_line(bad)


def test_fifo_folder_and_device_named_like_frames_never_hang(tmp_path: Path) -> None:
    root = tmp_path / "MyWorks"
    sub = root / "SS Cyg_sub"
    sub.mkdir(parents=True)
    os.mkfifo(sub / "Light_fifo.fit")
    (sub / "Light_folder.fit").mkdir()
    (sub / "Light_zero.fit").symlink_to("/dev/zero")
    good = write_fake(sub / "Light_good.fit", "mag=11.5")
    cfg = _cfg(tmp_path)
    node = Node(cfg, workers=1, measure=FAKE, submit=False)
    t = threading.Thread(target=node.scan, args=(root,), daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "the scan hangs on a FIFO"
    _drain(node)
    node.close()
    rows = _rows(cfg)
    assert rows[good.name].state == "measured"
    for name, what in (("Light_fifo.fit", "FIFO"), ("Light_folder.fit", "folder"),
                       ("Light_zero.fit", "device")):
        row = rows[name]
        assert row.state == "skipped" and row.category == "not_a_file", name
        assert what in (row.reason or ""), row.reason


def test_frames_announcing_gigabytes_are_refused_before_a_worker_reads_them(
        tmp_path: Path) -> None:
    root = tmp_path / "MyWorks"
    root.mkdir()
    sparse = root / "Light_sparse.fit"
    hdr = fits.Header([("SIMPLE", True), ("BITPIX", 16), ("NAXIS", 2), ("NAXIS1", 20000),
                       ("NAXIS2", 20000), ("FAKE", "crash")])  # a worker reading it would die
    sparse.write_bytes(hdr.tostring().encode())
    os.truncate(sparse, 2880 * (1 + -(-20000 * 20000 * 2 // 2880)))  # padded: complete
    os.utime(sparse, (1e9, 1e9))  # settled long ago
    cfg = _cfg(tmp_path)
    node = Node(cfg, workers=1, measure=FAKE, submit=False)
    node.scan(root)
    _drain(node)
    node.close()
    row = _rows(cfg)["Light_sparse.fit"]
    assert row.state == "skipped" and row.category == "too_large"
    assert "max_frame_bytes" in (row.reason or "")


@pytest.mark.parametrize("name", ["Light_a\n12:00:00 INFO    reported Light_forged.fit",
                                  "Light_b\r\x1b[2KERROR x.fit"])
def test_a_control_character_in_a_name_cannot_forge_a_log_line(
        tmp_path: Path, caplog: Any, name: str) -> None:
    root = tmp_path / "MyWorks"
    frame = write_fake(root / name, "reject=edge:too close to the edge")
    cfg = _cfg(tmp_path)
    caplog.set_level(logging.DEBUG)
    node = Node(cfg, workers=1, measure=FAKE, submit=False)
    node.scan(root)
    node.on_event({"path": str(frame)})
    _drain(node)
    node.close()
    [row] = _rows(cfg).values()
    assert row.state == "skipped"
    line = frame_line(row)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert repr(frame.name)[1:-1] in line  # quoted, still readable
    mentioned = [r.getMessage() for r in caplog.records if "Light_" in r.getMessage()]
    assert mentioned
    for msg in mentioned:
        assert "\n" not in msg and "\r" not in msg and "\x1b" not in msg, msg
