"""ImageWatcher never reports a half-written file; reports each frame once; max_wait bounds it."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from watchdog.events import FileCreatedEvent

from starnode.frame.header import expected_size
from watcher_helpers import DEBOUNCE, TIMEOUT, Collector, fits_bytes, slow_write, writer_thread
from watcher_helpers import make_watcher as make_watcher

MODES = ["events", "poll"]


def _kw(mode: str) -> dict[str, Any]:
    return {"mode": mode, "poll_interval": 0.05}


@pytest.mark.parametrize("mode", MODES)
def test_writer_stalling_longer_than_debounce(tmp_path: Path, make_watcher: Any,
                                              mode: str) -> None:
    """A stall of 3 x debounce half-way: size/mtime are stable, but the header-implied size
    is not reached, so the file is not reported until it is complete."""
    c = Collector()
    make_watcher(tmp_path, c, **_kw(mode))
    data = fits_bytes((120, 100))
    path = tmp_path / "stalled.fits"
    done = threading.Event()

    def write() -> None:
        slow_write(path, data, chunk=8192, stall_at=0.5, stall=3 * DEBOUNCE)
        done.set()

    writer_thread(write)
    (ev,) = c.wait_for(1)
    assert done.is_set()
    assert ev["_complete_at_call"] and os.path.getsize(path) == len(data) == expected_size(path)
    assert c.quiet(3 * DEBOUNCE) == [ev]


@pytest.mark.parametrize("mode", MODES)
def test_writer_stalling_inside_the_header(tmp_path: Path, make_watcher: Any,
                                           mode: str) -> None:
    c = Collector()
    make_watcher(tmp_path, c, **_kw(mode))
    data = fits_bytes()
    path = tmp_path / "header_stall.fits"
    writer_thread(slow_write, path, data, chunk=1000, stall_at=0.0, stall=3 * DEBOUNCE)
    (ev,) = c.wait_for(1)
    assert ev["_complete_at_call"] and ev["header"]["OBJECT"] == "SS Cyg"


@pytest.mark.parametrize("mode", MODES)
def test_preallocated_file_written_later(tmp_path: Path, make_watcher: Any, mode: str) -> None:
    """Full size from the start (zeros), data written with a stall: the all-zero tail of a
    BZERO'd integer image shows it is not written yet."""
    c = Collector()
    make_watcher(tmp_path, c, **_kw(mode))
    data = fits_bytes((120, 100))
    path = tmp_path / "prealloc.fits"
    path.write_bytes(b"")
    done = threading.Event()

    def write() -> None:
        slow_write(path, data, chunk=8192, stall_at=0.4, stall=3 * DEBOUNCE, preallocate=True)
        done.set()

    writer_thread(write)
    (ev,) = c.wait_for(1)
    assert done.is_set() and ev["_complete_at_call"]
    assert path.read_bytes() == data
    assert c.quiet(3 * DEBOUNCE) == [ev]


def test_preallocated_file_whose_header_is_not_written_yet(tmp_path: Path,
                                                           make_watcher: Any) -> None:
    c = Collector()
    make_watcher(tmp_path, c)
    data = fits_bytes()
    path = tmp_path / "zeros.fits"
    with open(path, "wb") as f:
        f.truncate(len(data))
    time.sleep(4 * DEBOUNCE)
    assert c.events == []  # all zeros: still waiting
    with open(path, "r+b") as f:
        f.write(data)
    (ev,) = c.wait_for(1)
    assert ev["_complete_at_call"]


@pytest.mark.filterwarnings("ignore:File may have been truncated")
@pytest.mark.parametrize("mode", MODES)
def test_file_that_never_completes_is_reported_after_max_wait(
        tmp_path: Path, make_watcher: Any, caplog: pytest.LogCaptureFixture, mode: str) -> None:
    c = Collector()
    with caplog.at_level(logging.WARNING, logger="starnode.watcher"):
        make_watcher(tmp_path, c, max_wait=1.0, **_kw(mode))
        data = fits_bytes((120, 100))
        path = tmp_path / "truncated.fits"
        path.write_bytes(data[: len(data) // 2])  # the camera died half-way
        (ev,) = c.wait_for(1)
    assert not ev["_complete_at_call"] and ev["path"] == str(path)
    assert ev["header"]["NAXIS1"] == 100  # the header itself is complete
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING
                and "truncated.fits" in r.getMessage()]
    assert len(warnings) == 1 and "max_wait" in warnings[0].getMessage()
    assert c.quiet(3 * DEBOUNCE) == [ev]


def test_endless_modifications_cannot_postpone_forever(
        tmp_path: Path, make_watcher: Any, caplog: pytest.LogCaptureFixture) -> None:
    c = Collector()
    stop = threading.Event()
    path = tmp_path / "growing.fits"

    def grow() -> None:
        with open(path, "wb") as f:
            while not stop.is_set():
                f.write(b"SIMPLE  =" if f.tell() == 0 else b" ")
                f.flush()
                time.sleep(DEBOUNCE / 5)

    with caplog.at_level(logging.WARNING, logger="starnode.watcher"):
        make_watcher(tmp_path, c, max_wait=1.0)
        writer_thread(grow)
        try:
            (ev,) = c.wait_for(1)
        finally:
            stop.set()
    assert ev["path"] == str(path) and ev["header"] == {}
    assert any("max_wait" in r.getMessage() for r in caplog.records)
    assert c.quiet(3 * DEBOUNCE) == [ev]  # later modifications do not report it again


def test_reported_frame_not_reported_again_unless_rewritten(tmp_path: Path,
                                                            make_watcher: Any) -> None:
    c = Collector()
    w = make_watcher(tmp_path, c)
    path = tmp_path / "frame.fits"
    path.write_bytes(fits_bytes(seed=1))
    (first,) = c.wait_for(1)
    # a repeated created event for the same, unchanged file is a duplicate
    w.on_created(FileCreatedEvent(str(path)))
    assert c.quiet(3 * DEBOUNCE) == [first]
    # modifications and attribute changes never schedule a path that is not pending
    os.utime(path)
    with open(path, "r+b") as f:
        f.seek(0, 2)
        f.write(b"")
    assert c.quiet(3 * DEBOUNCE) == [first]
    # rewritten: deleted and written again (new created event, new size/mtime) -> reported
    path.unlink()
    path.write_bytes(fits_bytes((100, 40), seed=2))
    events = c.wait_for(2)
    assert len(events) == 2 and events[1]["path"] == str(path)
    assert events[1]["size_kb"] != first["size_kb"]
    # rewritten in place by a new writer (truncate + write): a created event? no - but the
    # replace-by-rename every careful writer uses is a moved event:
    tmp = tmp_path / "frame.partial"
    tmp.write_bytes(fits_bytes((70, 40), seed=3))
    os.replace(tmp, path)
    events = c.wait_for(3)
    assert len(events) == 3 and c.quiet(3 * DEBOUNCE) == events


def test_deleted_before_debounce_is_not_reported(tmp_path: Path, make_watcher: Any) -> None:
    c = Collector()
    make_watcher(tmp_path, c)
    path = tmp_path / "gone.fits"
    path.write_bytes(fits_bytes())
    path.unlink()
    (tmp_path / "kept.fits").write_bytes(fits_bytes())
    c.wait_for(1)
    assert c.quiet(3 * DEBOUNCE) and c.paths == [str(tmp_path / "kept.fits")]


@pytest.mark.parametrize("mode", MODES)
def test_callbacks_one_at_a_time_in_order_of_completion(tmp_path: Path, make_watcher: Any,
                                                        mode: str) -> None:
    """Three writers started together finish at different times; callbacks follow the
    completion order, on a single thread, never overlapping."""
    c = Collector(lambda e: time.sleep(0.05))
    make_watcher(tmp_path, c, **_kw(mode))
    finish: dict[str, float] = {}

    def write(name: str, stall: float) -> None:
        slow_write(tmp_path / name, fits_bytes((100, 100)), chunk=8192, stall_at=0.3,
                   stall=stall)
        finish[name] = time.monotonic()

    threads = [writer_thread(write, n, s) for n, s in
               (("slowest.fits", 8 * DEBOUNCE), ("middle.fits", 4 * DEBOUNCE),
                ("fastest.fits", 0.0))]
    events = c.wait_for(3, timeout=TIMEOUT)
    for t in threads:
        t.join(TIMEOUT)
    assert [os.path.basename(e["path"]) for e in events] == sorted(finish, key=finish.get)
    assert len(c.threads) == 1 and not c.overlap
    assert threading.get_ident() not in c.threads
    assert all(e["_complete_at_call"] for e in events)


def test_many_slow_writers_all_complete(tmp_path: Path, make_watcher: Any) -> None:
    c = Collector()
    make_watcher(tmp_path, c)
    data = fits_bytes((100, 80))
    threads = [writer_thread(slow_write, tmp_path / f"w{i}.fits", data, chunk=4096,
                             pause=0.01, stall_at=0.5 if i % 2 else None,
                             stall=3 * DEBOUNCE, preallocate=i % 3 == 0)
               for i in range(12)]
    events = c.wait_for(12, timeout=TIMEOUT)
    for t in threads:
        t.join(TIMEOUT)
    assert len(events) == 12 and all(e["_complete_at_call"] for e in events)
    assert len({e["path"] for e in events}) == 12
    assert c.quiet(3 * DEBOUNCE) == events
    assert TIMEOUT  # keep the import used


@pytest.mark.filterwarnings("ignore:File may have been truncated")
@pytest.mark.parametrize("mode", MODES)
def test_truncated_file_is_reported_once_it_stops_changing(
        tmp_path: Path, make_watcher: Any, caplog: pytest.LogCaptureFixture, mode: str) -> None:
    """Issue 16: a truncated frame (a torn copy) that no longer changes is reported after
    stall_timeout, not after max_wait (10 minutes), so the node records it and says why."""
    c = Collector()
    with caplog.at_level(logging.WARNING, logger="starnode.watcher"):
        make_watcher(tmp_path, c, max_wait=600.0, stall_timeout=1.0, **_kw(mode))
        data = fits_bytes((120, 100))
        path = tmp_path / "torn.fits"
        path.write_bytes(data[: len(data) // 2])
        (ev,) = c.wait_for(1, timeout=TIMEOUT)
    assert ev["path"] == str(path) and not ev["_complete_at_call"]
    warnings = [r.getMessage() for r in caplog.records if "torn.fits" in r.getMessage()]
    assert len(warnings) == 1 and "stall_timeout" in warnings[0] and "truncated" in warnings[0]


@pytest.mark.filterwarnings("ignore:File may have been truncated")
@pytest.mark.parametrize("mode", MODES)
def test_a_writer_that_paused_past_stall_timeout_loses_nothing(
        tmp_path: Path, make_watcher: Any, mode: str) -> None:
    """Reported incomplete after the stall, the file is completed later: it is reported again,
    complete."""
    c = Collector()
    make_watcher(tmp_path, c, max_wait=600.0, stall_timeout=0.5, **_kw(mode))
    data = fits_bytes((120, 100))
    path = tmp_path / "paused.fits"
    path.write_bytes(data[: len(data) // 2])
    (first,) = c.wait_for(1, timeout=TIMEOUT)
    assert not first["_complete_at_call"]
    with open(path, "ab") as f:
        f.write(data[len(data) // 2:])
    events = c.wait_for(2, timeout=TIMEOUT)
    assert [e["path"] for e in events] == [str(path)] * 2
    assert events[1]["_complete_at_call"] and events[1]["header"]["NAXIS1"] == 100
    assert c.quiet(3 * DEBOUNCE) == events
