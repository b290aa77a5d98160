"""ImageWatcher at scale: bursts, bounded threads, lost kernel events, subfolders, catch-up."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from starnode.watcher import ImageWatcher
from watcher_helpers import DEBOUNCE, TIMEOUT, Collector, fits_bytes, slow_write, writer_thread
from watcher_helpers import make_watcher as make_watcher

BURST = 500


def _watcher_threads() -> int:
    return sum(1 for t in threading.enumerate() if t is not threading.main_thread())


def _starnode_threads() -> list[str]:
    """The threads starnode itself starts (all named ``starnode-...``), plus the watchdog
    observer it starts; the threads watchdog starts inside its observer (emitters, inotify
    readers, dispatchers) are the library's private business and vary between releases."""
    from watchdog.observers.api import BaseObserver

    return sorted("observer" if isinstance(t, BaseObserver) else t.name
                  for t in threading.enumerate()
                  if t.name.startswith("starnode-") or isinstance(t, BaseObserver))


@pytest.mark.parametrize("mode", ["events", "poll"])
def test_burst_reported_exactly_once_with_a_fixed_number_of_threads(
        tmp_path: Path, make_watcher: Any, mode: str) -> None:
    peak = [0]
    timers: list[threading.Thread] = []

    def sample(event: dict) -> None:
        peak[0] = max(peak[0], _watcher_threads())
        timers.extend(t for t in threading.enumerate() if isinstance(t, threading.Timer))

    c = Collector(sample)
    before = _watcher_threads()
    ours_before = _starnode_threads()
    w = make_watcher(tmp_path, c, mode=mode, poll_interval=0.05)
    started = _watcher_threads() - before
    ours = [n for n in _starnode_threads() if n not in ours_before]
    data = fits_bytes((8, 8))
    for i in range(BURST):
        (tmp_path / f"Light_{i:05d}.fit").write_bytes(data)
    events = c.wait_for(BURST, timeout=TIMEOUT * 2)
    events = c.quiet(3 * DEBOUNCE)
    assert len(events) == BURST and len({e["path"] for e in events}) == BURST
    # what starnode starts: the scheduler and the callback worker, plus in events mode the
    # watchdog observer and the root guard that re-watches a folder deleted and recreated, in
    # poll mode the poller - never one per file. The observer's own helper threads (emitter,
    # inotify reader, and since watchdog 7.1 a dispatcher) are watchdog's: only bounded here.
    assert ours == (["observer", "starnode-watcher-callbacks", "starnode-watcher-root",
                     "starnode-watcher-scheduler"] if mode == "events" else
                    ["starnode-watcher-callbacks", "starnode-watcher-poll",
                     "starnode-watcher-scheduler"])
    assert started >= len(ours)
    assert peak[0] - before == started  # no thread more during the burst of 500 files
    assert len(c.threads) == 1 and not c.overlap
    assert timers == []  # no threading.Timer per file: one scheduler thread and a heap
    # nothing left behind once drained
    status = w.status()
    assert status["pending"] == 0 and status["timers"] == 0
    assert w.debouncer.next_deadline() is None  # no stale heap entry left
    assert status["reported"] == BURST and status["callbacks"] == BURST


def test_burst_with_slow_callback_is_delivered_in_order(tmp_path: Path,
                                                        make_watcher: Any) -> None:
    c = Collector(lambda e: time.sleep(0.001))
    make_watcher(tmp_path, c, debounce=0.05)
    data = fits_bytes((8, 8))
    names = [f"f{i:04d}.fits" for i in range(200)]
    for n in names:
        (tmp_path / n).write_bytes(data)
        time.sleep(0.002)  # completion order = write order
    events = c.wait_for(200, timeout=TIMEOUT * 2)
    assert len(events) == 200
    # files whose writes are >= 2 ms apart complete (and are reported) in write order
    assert [os.path.basename(e["path"]) for e in events] == names


def _overflow_capable() -> str | None:
    if sys.platform != "linux":
        return "inotify is Linux only"
    knob = "/proc/sys/fs/inotify/max_queued_events"
    if not os.access(knob, os.W_OK):
        return f"{knob} is not writable (needs root)"
    return None


def _stall_this_process_while(write: list[str], seconds: float = 2.0) -> None:
    """Run ``write`` (a command) in another process while no other thread of this one runs.

    A stalled reader is how events are lost on a busy machine: the kernel queues events until
    the program reads them, and drops the rest past ``max_queued_events``. watchdog 7 reads the
    inotify descriptor in a thread of its own that drains bursts quickly, so a burst alone does
    not reliably overflow. Here the main thread keeps the GIL (a long switch interval and a
    busy loop with no system call), so watchdog's reader cannot run while the other process
    writes: the kernel's queue overflows for certain.
    """
    import subprocess

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(30.0)
    try:
        proc = subprocess.Popen(write)
        while True:
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:  # no system call: the GIL is never released
                pass
            if proc.poll() is not None:
                break
    finally:
        sys.setswitchinterval(old_interval)
    assert proc.wait() == 0


def test_real_inotify_queue_overflow_triggers_a_rescan(
        tmp_path: Path, make_watcher: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A tiny kernel queue (max_queued_events=16, read when the inotify instance is created)
    overflows while the reader is stalled: the lost events are recovered by a rescan, each
    file reported exactly once."""
    reason = _overflow_capable()
    if reason:
        pytest.skip(reason)
    knob = Path("/proc/sys/fs/inotify/max_queued_events")
    old = knob.read_text().strip()
    c = Collector()
    with caplog.at_level(logging.WARNING):
        data = fits_bytes((8, 8))
        try:
            knob.write_text("16")
            make_watcher(tmp_path, c)
            # the observer creates its inotify instance (reading the knob) when it schedules the
            # folder: a first file reported proves it exists before the knob is put back
            (tmp_path / "probe.fits").write_bytes(data)
            c.wait_for(1, timeout=TIMEOUT)
        finally:
            knob.write_text(old)
        writer = ("import shutil, sys\n"
                  "for i in range(300):\n"
                  "    shutil.copyfile(sys.argv[1], f'{sys.argv[2]}/o{i:03d}.fits')\n")
        staging = tmp_path.parent / (tmp_path.name + "-payload.fits")  # outside the folder
        staging.write_bytes(data)
        _stall_this_process_while([sys.executable, "-c", writer, str(staging), str(tmp_path)])
        events = c.wait_for(301, timeout=TIMEOUT * 2)
        events = c.quiet(3 * DEBOUNCE)
    msgs = [r.getMessage() for r in caplog.records]
    assert any("overflow" in m and "rescanning" in m for m in msgs), msgs[-5:]
    assert len(events) == 301 and len({e["path"] for e in events}) == 301


def test_injected_overflow_reports_files_whose_events_were_lost(
        tmp_path: Path, make_watcher: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deterministic variant: created events are dropped, then watchdog's own inotify reader
    handles an IN_Q_OVERFLOW event - the watcher rescans and finds the files."""
    if sys.platform != "linux":
        pytest.skip("inotify is Linux only")
    from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent

    c = Collector()
    (tmp_path / "before_start.fits").write_bytes(fits_bytes())
    w = make_watcher(tmp_path, c)
    monkeypatch.setattr(w, "on_created", lambda event: None)  # the kernel "lost" them
    for i in range(20):
        (tmp_path / f"lost{i:02d}.fits").write_bytes(fits_bytes((8, 8)))
    assert c.quiet(3 * DEBOUNCE) == []
    inotify_fd = w._observer._inotify_fd
    inotify_fd.handle_event(InotifyEvent(-1, InotifyConstants.IN_Q_OVERFLOW, 0, b""))
    events = c.wait_for(20)
    events = c.quiet(3 * DEBOUNCE)
    assert sorted(os.path.basename(e["path"]) for e in events) == [
        f"lost{i:02d}.fits" for i in range(20)]


# ----------------------------------------------------------------------------- recursive
# watchdog's own recursive watch setup may race with mkdir -p and warn; harmless
@pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")
def test_recursive_catches_files_in_new_subfolders(tmp_path: Path, make_watcher: Any) -> None:
    works = tmp_path / "MyWorks"
    (works / "M 94").mkdir(parents=True)
    (works / "M 94" / "old.fit").write_bytes(fits_bytes())
    c = Collector()
    make_watcher(works, c, recursive=True)
    expected = []
    # a new <Target>_sub folder, files written the instant it appears
    sub = works / "SS Cyg_sub"
    sub.mkdir()
    for i in range(20):
        p = sub / f"Light_SS Cyg_10.0s_IRCUT_20250601-0100{i:02d}.fit"
        p.write_bytes(fits_bytes((8, 8)))
        expected.append(p)
    # a folder tree built elsewhere (before any watch on it) and moved in
    outside = tmp_path / "outside" / "Unknown_sub" / "deeper"
    outside.mkdir(parents=True)
    (outside / "a.fits").write_bytes(fits_bytes())
    (outside.parent / "b.fits").write_bytes(fits_bytes())
    shutil.move(str(outside.parent), str(works / "Unknown_sub"))
    expected += [works / "Unknown_sub" / "deeper" / "a.fits", works / "Unknown_sub" / "b.fits"]
    # mkdir -p with a file at the bottom
    deep = works / "x" / "y" / "z"
    deep.mkdir(parents=True)
    (deep / "c.fits").write_bytes(fits_bytes())
    expected.append(deep / "c.fits")
    # a slow writer in a brand-new folder
    slow_dir = works / "RR Lyr_sub"
    slow_dir.mkdir()
    t = writer_thread(slow_write, slow_dir / "slow.fit", fits_bytes((100, 80)), chunk=4096,
                      stall_at=0.5, stall=3 * DEBOUNCE)
    expected.append(slow_dir / "slow.fit")
    c.wait_for(len(expected))
    t.join(TIMEOUT)
    events = c.quiet(3 * DEBOUNCE)
    assert sorted(e["path"] for e in events) == sorted(str(p) for p in expected)
    assert all(e["_complete_at_call"] for e in events)


@pytest.mark.parametrize("mode", ["events", "poll"])
def test_catch_up_reports_files_already_present(tmp_path: Path, make_watcher: Any,
                                                mode: str) -> None:
    (tmp_path / "sub").mkdir()
    present = [tmp_path / "a.fits", tmp_path / "b.FIT", tmp_path / "sub" / "c.fits"]
    for p in present:
        p.write_bytes(fits_bytes())
    (tmp_path / "notes.txt").write_text("x")
    c = Collector()
    make_watcher(tmp_path, c, catch_up=True, recursive=True, mode=mode, poll_interval=0.05)
    c.wait_for(3)
    (tmp_path / "d.fits").write_bytes(fits_bytes())
    c.wait_for(4)
    events = c.quiet(3 * DEBOUNCE)
    assert sorted(e["path"] for e in events) == sorted(
        [str(p) for p in present] + [str(tmp_path / "d.fits")])


def test_catch_up_waits_for_a_file_being_written_at_start(tmp_path: Path,
                                                          make_watcher: Any) -> None:
    data = fits_bytes((120, 100))
    path = tmp_path / "in_progress.fits"
    path.write_bytes(data[:4000])

    def finish() -> None:
        time.sleep(4 * DEBOUNCE)
        with open(path, "ab") as f:
            f.write(data[4000:])

    c = Collector()
    make_watcher(tmp_path, c, catch_up=True)
    writer_thread(finish)
    (ev,) = c.wait_for(1)
    assert ev["_complete_at_call"] and ev["size_kb"] * 1024 == len(data)


def test_watcher_is_reusable_as_context_manager(tmp_path: Path) -> None:
    c = Collector()
    with ImageWatcher(str(tmp_path), c, DEBOUNCE, mode="events") as w:
        assert w.running
        (tmp_path / "a.fits").write_bytes(fits_bytes())
        c.wait_for(1)
    assert not w.running and len(c.events) == 1
