"""The node with a stand-in measuring function (tests/node_fakes.py): crashes, hangs,
errors, rejections, retries, rewritten files, catch-up, graceful stop. The real pipeline runs in
tests/node/test_node_e2e.py."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from node_fakes import write_fake
from starnode.config import Config
from starnode.errors import NodeBusy
from starnode.node import Node
from starnode.records import Measurement
from starnode.store import Ledger
from waiting import poll_until

FAKE = "node_fakes:measure"


def _cfg(tmp_path: Path, **top: Any) -> Config:
    raw: dict[str, Any] = {"data_dir": str(tmp_path / "data"),
                           "watch": {"path": str(tmp_path / "MyWorks"), "debounce_delay": 0.2,
                                     "poll_interval": 0.1}}
    raw.update(top)
    return Config(raw)


def _write(folder: Path, name: str, text: str) -> Path:
    """A frame (a small complete FITS file carrying ``text`` for the fake pipeline) or, for
    other names, a plain text file."""
    if name.endswith(".fit"):
        return write_fake(folder / name, text)
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text(text)
    return p


class Submissions:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, result: Measurement, config: Config) -> dict[str, Any]:
        self.calls.append(str(result.file))
        return {"status": "ok", "message": "in the outbox", "rows": 1, "accepted": 1,
                "rejected": 0, "report_path": "outbox/report.txt"}


def test_process_outcomes_crash_and_exactly_once(tmp_path: Path) -> None:
    arc = tmp_path / "archive" / "SS Cyg_sub"
    good = [_write(arc, f"Light_SS Cyg_{i}.fit", f"mag={11 + i / 10}") for i in range(4)]
    _write(arc, "Light_SS Cyg_dark.fit", "reject=not_light:IMAGETYP is 'Dark', not a light")
    _write(arc, "Light_SS Cyg_err.fit", "error")
    crash = _write(arc, "Light_SS Cyg_crash.fit", "crash")
    _write(arc, "notes.txt", "not a frame")
    subs = Submissions()
    node = Node(_cfg(tmp_path), workers=2, measure=FAKE, submit=subs)
    summary = node.process([tmp_path / "archive"])
    node.close()
    assert summary["total"] == 7
    assert sorted(subs.calls) == sorted(str(p) for p in good)  # each submitted once
    with Ledger(_cfg(tmp_path)) as led:
        c = led.counts()
        assert c == {"pending": 0, "processing": 0, "measured": 0, "reported": 4,
                     "skipped": 1, "failed": 2}
        [row] = led.find(crash)
        assert row.state == "failed" and row.category == "crashed"
        assert "worker process crashed" in (row.reason or "") and "SIGSEGV" in row.reason
        for p in good:
            [r] = led.find(p)
            assert r.measure_count == 1 and r.report_count == 1
        probs = {p["category"]: p for p in led.problems()}
        assert probs["not_light"]["reason"] == "IMAGETYP is 'Dark', not a light"
        assert "ValueError: something broke" in probs["error"]["reason"]

    # Again: nothing redone; --retry-failed redoes the two failures only; --force redoes all.
    node = Node(_cfg(tmp_path), workers=1, measure=FAKE, submit=subs)
    again = node.process([tmp_path / "archive"])
    node.close()
    assert again["already"] == 7 and again.get("measured", 0) == 0
    assert len(subs.calls) == 4
    node = Node(_cfg(tmp_path), workers=1, measure=FAKE, submit=subs)
    retried = node.process([], retry=["failed"])
    node.close()
    assert retried["total"] == 2 and retried["failed"] == 2


def test_hung_frame_times_out_and_others_continue(tmp_path: Path) -> None:
    arc = tmp_path / "archive"
    hung = _write(arc, "Light_hung.fit", "sleep=60")
    ok = _write(arc, "Light_ok.fit", "mag=11.0")
    # 5 s: the frame after it starts in a fresh worker, whose imports count in its time
    node = Node(_cfg(tmp_path, frame_timeout=5), workers=1, measure=FAKE, submit=False)
    node.process([arc])
    node.close()
    with Ledger(_cfg(tmp_path)) as led:
        [h] = led.find(hung)
        [o] = led.find(ok)
    assert h.state == "failed" and "timed out after 5 s" in (h.reason or "")
    assert o.state == "measured" and o.measure_count == 1


def test_rewritten_file_is_new_work(tmp_path: Path) -> None:
    arc = tmp_path / "archive"
    p = _write(arc, "Light_a.fit", "mag=11.0")
    cfg = _cfg(tmp_path)
    with Ledger(cfg) as led:
        fid, _ = led.add(p)
    time.sleep(0.01)
    _write(arc, "Light_a.fit", "mag=12.5")  # rewritten before it was measured
    node = Node(cfg, measure=FAKE, submit=False)
    node.process([p])
    node.close()
    with Ledger(cfg) as led:
        rows = led.find(p)
    assert [r.state for r in rows] == ["skipped", "measured"]
    assert rows[0].id == fid and rows[0].category == "rewritten"
    assert rows[1].magnitude == 12.5


def _state(cfg: Config, path: Path) -> str | None:
    with Ledger(cfg) as led:
        rows = led.find(path)
    return rows[-1].state if rows else None


def _poll(pred: Any, timeout: float = 60.0) -> bool:
    return poll_until(pred, timeout, interval=0.1)


def test_run_catches_up_watches_and_never_blocks(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, shutdown_grace=0)
    sub = tmp_path / "MyWorks" / "SS Cyg_sub"
    old = _write(sub, "Light_SS Cyg_old.fit", "mag=11.1")  # written while the node was down
    subs = Submissions()
    node = Node(cfg, workers=2, measure=FAKE, submit=subs)
    seen: dict[str, Any] = {}

    def telescope() -> None:
        try:
            slow = _write(sub, "Light_SS Cyg_slow.fit", "sleep=60")
            seen["slow_started"] = _poll(lambda: _state(cfg, slow) == "processing")
            # a new target folder appears while the slow frame is in hand
            others = [_write(tmp_path / "MyWorks" / "CH Cyg_sub", f"Light_CH Cyg_{i}.fit",
                             "mag=8.0") for i in range(3)]
            _write(sub, "Light_SS Cyg_x.jpg", "preview")  # not a frame: ignored
            seen["others_done"] = _poll(lambda: all(
                _state(cfg, p) == "reported" for p in [old, *others]))
            seen["slow_then"] = _state(cfg, slow)
            seen["slow"] = slow
        finally:
            node.stop()

    t = threading.Thread(target=telescope)
    t.start()
    counts = node.run()
    t.join()
    assert seen["slow_started"] and seen["others_done"]
    assert seen["slow_then"] == "processing"  # measured beside it, not after it
    assert counts["reported"] == 4 and sorted(subs.calls) == sorted(set(subs.calls))
    assert str(old) in subs.calls
    assert _state(cfg, seen["slow"]) == "pending"  # stopped: back in the queue
    with Ledger(cfg) as led:
        assert sum(led.counts().values()) == 5  # the .jpg was never recorded


def test_graceful_stop_requeues_frame_in_hand(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, shutdown_grace=0)
    sub = tmp_path / "MyWorks" / "SS Cyg_sub"
    slow = _write(sub, "Light_slow.fit", "sleep=30")
    node = Node(cfg, workers=1, measure=FAKE, submit=False)

    def until(n: Node) -> bool:
        if n.busy():
            n.stop()
        return False

    node.run(until=until)
    with Ledger(cfg) as led:
        [row] = led.find(slow)
    assert row.state == "pending" and row.attempts == 1  # back in the queue, not failed


def test_second_node_on_same_data_dir_refused(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    (tmp_path / "MyWorks").mkdir()
    a = Node(cfg, measure=FAKE, submit=False)
    a.lock.acquire()
    b = Node(cfg, measure=FAKE, submit=False)
    with pytest.raises(NodeBusy, match="another 'starnode run'"):
        b.run()
    a.close()
    b.close()


def test_share_drop_keeps_frames_queued(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    sub = tmp_path / "MyWorks" / "SS Cyg_sub"
    frame = _write(sub, "Light_a.fit", "mag=11.0")
    node = Node(cfg, workers=1, measure=FAKE, submit=False)
    node.offer(str(frame))
    sub.rename(tmp_path / "elsewhere")  # the share drops
    assert node.dispatch() == 0
    assert _state(cfg, frame) == "pending"  # not skipped: it waits
    assert node.dispatch() == 0  # paused, no busy loop
    (tmp_path / "elsewhere").rename(sub)  # the share is back
    node.resume_dispatch()
    assert node.dispatch() == 1
    assert _poll(lambda: node.collect(0.5) > 0 or not node.busy())
    node.close()
    assert _state(cfg, frame) == "measured"


def test_truncated_frame_is_in_status_once_it_stops_changing(tmp_path: Path) -> None:
    """Issue 16: a truncated frame (a torn copy: the header promises more bytes than the file
    has) shows in 'starnode status' with its reason once it has stopped changing for
    watch.stall_timeout, not after watch.max_wait (10 minutes)."""
    from starnode.node.status import status_data, status_lines
    from watcher_helpers import fits_bytes

    cfg = _cfg(tmp_path, shutdown_grace=0,
               watch={"path": str(tmp_path / "MyWorks"), "debounce_delay": 0.2,
                      "poll_interval": 0.1, "stall_timeout": 1, "max_wait": 600})
    sub = tmp_path / "MyWorks" / "SS Cyg_sub"
    sub.mkdir(parents=True)
    node = Node(cfg, workers=1, submit=False)
    torn = sub / "Light_SS Cyg_10.0s_IRCUT_20250914-203000.fit"
    seen: dict[str, Any] = {}

    def telescope() -> None:
        try:
            data = fits_bytes((200, 160))
            torn.write_bytes(data[: len(data) // 3])  # the copy broke off a third of the way
            seen["recorded"] = _poll(lambda: _state(cfg, torn) in ("skipped", "failed"),
                                     timeout=60.0)
        finally:
            node.stop()

    t = threading.Thread(target=telescope)
    t.start()
    node.run()
    t.join()
    assert seen["recorded"], "the truncated frame never reached the ledger"
    text = "\n".join(status_lines(status_data(cfg)))
    assert torn.name in text and "skipped" in text, text


@pytest.mark.parametrize("workers", [-1, 0, 65, 1.5, True])
def test_node_refuses_a_worker_count_the_config_would_refuse(tmp_path: Path,
                                                             workers: Any) -> None:
    """Issue 16: '--workers -1' was accepted and the node measured nothing."""
    from starnode.errors import ConfigError

    with pytest.raises(ConfigError, match="workers: must be a whole number from 1 to 64"):
        Node(_cfg(tmp_path), workers=workers, measure=FAKE, submit=False)
