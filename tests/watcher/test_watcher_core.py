"""ImageWatcher: every sentence of the seed contract (shared/seed/image-watcher.md).

Helpers shared by the other ``test_watcher_*.py`` files live here too. Real files on a real
filesystem, a small debounce (0.2 s); waits have generous timeouts and nothing is timed.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from astropy.io import fits

import image_watcher
from starnode import watcher as watcher_mod
from starnode.frame.header import read_header
from starnode.watcher import ImageWatcher
from watcher_helpers import (
    DEBOUNCE,
    TIMEOUT,
    Collector,
    fits_bytes,
    slow_write,
    writer_thread,
)
from watcher_helpers import make_watcher as make_watcher


# ----------------------------------------------------------------------------- constructor
def test_constructor_signature_and_defaults() -> None:
    assert image_watcher.ImageWatcher is ImageWatcher
    sig = inspect.signature(ImageWatcher)
    params = list(sig.parameters.values())
    assert [p.name for p in params[:3]] == ["watch_path", "callback", "debounce_delay"]
    assert params[2].default == 2.0
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[3:])
    assert {p.name: p.default for p in params[3:]} == {
        "mode": "auto", "poll_interval": 2.0, "recursive": False, "catch_up": False,
        "extensions": (".fits", ".fit"), "max_wait": 600.0,
        "on_irregular": None, "stall_timeout": 30.0}
    with pytest.raises(TypeError):
        ImageWatcher("/tmp", print, 2.0, "poll")  # type: ignore[misc]


def test_constructor_does_not_start(tmp_path: Path) -> None:
    before = threading.active_count()
    w = ImageWatcher(str(tmp_path), print)
    assert not w.running and w.status()["mode"] is None
    assert threading.active_count() == before


@pytest.mark.parametrize("kw", [{"mode": "inotify"}, {"debounce_delay": -1},
                                {"poll_interval": 0}, {"max_wait": 0}, {"extensions": ()},
                                {"stall_timeout": 0}])
def test_bad_options_raise(tmp_path: Path, kw: dict) -> None:
    with pytest.raises(ValueError):
        ImageWatcher(str(tmp_path), print, **kw)


# ----------------------------------------------------------------------------- start()
def test_start_on_missing_directory_logs_error_and_stays_stopped(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    before = threading.active_count()
    w = ImageWatcher(str(tmp_path / "nope"), print)
    (tmp_path / "a_file").write_text("x")
    w2 = ImageWatcher(str(tmp_path / "a_file"), print)  # exists, but not a directory
    with caplog.at_level(logging.ERROR, logger="starnode.watcher"):
        w.start()
        w2.start()
    assert not w.running and not w2.running
    assert threading.active_count() == before
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2 and "nope" in errors[0].getMessage()
    w.stop()  # safe on a watcher that never started


def test_observer_thread_is_a_daemon(tmp_path: Path, make_watcher: Any) -> None:
    w = make_watcher(tmp_path, Collector())
    assert w.active_mode == "events"
    assert w._observer.daemon and w._observer.is_alive()  # the seed names the observer
    own = [t for t in threading.enumerate() if t.name.startswith("starnode-watcher")]
    assert len(own) == 3 and all(t.daemon for t in own)  # + the root guard


def test_relative_path_reports_absolute_paths(tmp_path: Path, make_watcher: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    c = Collector()
    make_watcher("out", c)
    (tmp_path / "out" / "frame.fits").write_bytes(fits_bytes())
    (ev,) = c.wait_for(1)
    assert os.path.isabs(ev["path"])
    assert ev["path"] == str(tmp_path / "out" / "frame.fits")


# ----------------------------------------------------------------------------- event dict
def test_event_dict_exactly(tmp_path: Path, make_watcher: Any) -> None:
    c = Collector()
    make_watcher(tmp_path, c)
    data = fits_bytes(obj="  RR Lyr  ")
    path = tmp_path / "image_20250601_023412.fits"
    path.write_bytes(data)
    (ev,) = c.wait_for(1)
    assert set(ev) == {"path", "header", "size_kb", "_complete_at_call"}
    assert ev["path"] == str(path)
    assert ev["size_kb"] == os.path.getsize(path) / 1024.0 and isinstance(ev["size_kb"], float)
    header = ev["header"]
    assert type(header) is dict
    assert header == read_header(path)
    assert header["OBJECT"] == "RR Lyr"  # whitespace-stripped
    assert header["EXPTIME"] == 10.0 and header["IMAGETYP"] == "Light"
    assert "COMMENT" not in header and "HISTORY" not in header
    with fits.open(path) as hl:
        ref = {k: v for k, v in dict(hl[0].header).items() if k not in ("COMMENT", "HISTORY")}
    assert header == {k: v.strip() if isinstance(v, str) else v for k, v in ref.items()}


def test_unreadable_header_gives_empty_dict(tmp_path: Path, make_watcher: Any) -> None:
    c = Collector()
    make_watcher(tmp_path, c)
    path = tmp_path / "corrupt.fits"
    path.write_bytes(b"this is not FITS at all " * 200)
    (ev,) = c.wait_for(1)
    assert ev["header"] == {} and ev["path"] == str(path)
    assert ev["size_kb"] == os.path.getsize(path) / 1024.0


# ----------------------------------------------------------------------------- file types
def test_only_fits_and_fit_case_insensitive(tmp_path: Path, make_watcher: Any) -> None:
    c = Collector()
    make_watcher(tmp_path, c)
    data = fits_bytes()
    good = ["a.fits", "b.fit", "C.FITS", "d.Fit", "e.FiTs"]
    bad = ["f.jpg", "g_thn.jpg", "h.fits.gz", "i.txt", "j.fts", "fits", "k.fitsx"]
    for name in bad + good:
        (tmp_path / name).write_bytes(data)
    events = c.wait_for(len(good))
    assert sorted(os.path.basename(p) for p in c.paths) == sorted(good)
    assert c.quiet(3 * DEBOUNCE) == events  # nothing else arrives


def test_extensions_option(tmp_path: Path, make_watcher: Any) -> None:
    c = Collector()
    make_watcher(tmp_path, c, extensions=[".fts", "FZ"])
    data = fits_bytes()
    for name in ("a.fits", "b.FTS", "c.fz"):
        (tmp_path / name).write_bytes(data)
    c.wait_for(2)
    assert sorted(os.path.basename(p) for p in c.quiet(3 * DEBOUNCE) and c.paths) == [
        "b.FTS", "c.fz"]


# ----------------------------------------------------------------------------- debounce
def test_created_and_moved_call_schedule_then_fire(tmp_path: Path, make_watcher: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    scheduled: list[str] = []
    fired: list[str] = []
    orig_schedule, orig_fire = ImageWatcher._schedule, ImageWatcher._fire

    def spy_schedule(self: ImageWatcher, path: str, *a: Any, **k: Any) -> None:
        scheduled.append(path)
        orig_schedule(self, path, *a, **k)

    def spy_fire(self: ImageWatcher, path: str) -> None:
        fired.append(path)
        orig_fire(self, path)

    monkeypatch.setattr(ImageWatcher, "_schedule", spy_schedule)
    monkeypatch.setattr(ImageWatcher, "_fire", spy_fire)
    c = Collector()
    make_watcher(tmp_path, c)
    data = fits_bytes()
    (tmp_path / "created.fits").write_bytes(data)
    tmp = tmp_path / ".partial.tmp"
    tmp.write_bytes(data)
    os.rename(tmp, tmp_path / "moved.fits")  # atomic rename(tmp, final.fits)
    c.wait_for(2)
    assert sorted(os.path.basename(p) for p in c.paths) == ["created.fits", "moved.fits"]
    assert str(tmp_path / "created.fits") in scheduled
    assert str(tmp_path / "moved.fits") in scheduled
    assert str(tmp_path / "moved.fits") in fired and str(tmp_path / "created.fits") in fired
    assert c.quiet(3 * DEBOUNCE) == c.events  # reported once each


def test_rename_from_fits_temp_name_reports_only_final(tmp_path: Path,
                                                       make_watcher: Any) -> None:
    c = Collector()
    make_watcher(tmp_path, c)
    tmp = tmp_path / "frame.tmp.fits"
    tmp.write_bytes(fits_bytes())
    os.rename(tmp, tmp_path / "frame.fits")
    c.wait_for(1)
    assert c.quiet(3 * DEBOUNCE) and c.paths == [str(tmp_path / "frame.fits")]


def test_move_into_place_from_outside(tmp_path: Path, make_watcher: Any) -> None:
    watched, outside = tmp_path / "w", tmp_path / "o"
    watched.mkdir()
    outside.mkdir()
    (outside / "x.fits").write_bytes(fits_bytes())
    c = Collector()
    make_watcher(watched, c)
    os.rename(outside / "x.fits", watched / "x.fits")
    c.wait_for(1)
    assert c.paths == [str(watched / "x.fits")]


def test_new_event_for_pending_path_resets_its_timer(tmp_path: Path,
                                                     make_watcher: Any) -> None:
    """Writes spaced less than the debounce apart keep the file pending until the last one."""
    c = Collector()
    make_watcher(tmp_path, c)
    data = fits_bytes((96, 80))
    path = tmp_path / "slow.fits"
    done = threading.Event()

    def write() -> None:
        slow_write(path, data, chunk=2880, pause=DEBOUNCE / 4)  # ~1 s in total, > debounce
        done.set()

    writer_thread(write)
    (ev,) = c.wait_for(1)
    assert done.is_set()  # not reported while the writer was still writing
    assert ev["_complete_at_call"] and ev["size_kb"] * 1024 == len(data)


# ----------------------------------------------------------------------------- callbacks
def test_callback_exception_is_logged_and_watching_continues(
        tmp_path: Path, make_watcher: Any, caplog: pytest.LogCaptureFixture) -> None:
    def boom(event: dict) -> None:
        if event["path"].endswith("first.fits"):
            raise RuntimeError("pipeline exploded")

    c = Collector(boom)
    with caplog.at_level(logging.ERROR, logger="starnode.watcher"):
        make_watcher(tmp_path, c)
        (tmp_path / "first.fits").write_bytes(fits_bytes())
        c.wait_for(1)
        (tmp_path / "second.fits").write_bytes(fits_bytes(seed=1))
        c.wait_for(2)
    assert [os.path.basename(p) for p in c.paths] == ["first.fits", "second.fits"]
    errs = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errs and "first.fits" in errs[0].getMessage() and errs[0].exc_info


# ----------------------------------------------------------------------------- stop()
def test_stop_is_ordered_and_idempotent(tmp_path: Path, make_watcher: Any,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    c = Collector()
    w = make_watcher(tmp_path, c, debounce=30.0)
    (tmp_path / "pending.fits").write_bytes(fits_bytes())
    deadline = time.monotonic() + TIMEOUT
    while not w.debouncer.pending() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert w.debouncer.pending()  # a pending debounce timer
    observer = w._observer
    steps: list[tuple[str, bool, int]] = []
    orig_stop, orig_join = observer.stop, observer.join

    def obs_stop() -> None:
        steps.append(("observer.stop", w.running, len(w.debouncer.pending())))
        orig_stop()

    def obs_join(*a: Any) -> None:
        steps.append(("observer.join", w.running, len(w.debouncer.pending())))
        orig_join(*a)

    monkeypatch.setattr(observer, "stop", obs_stop)
    monkeypatch.setattr(observer, "join", obs_join)
    w.stop()
    # 1. _running False and 2. timers cleared before 3. observer.stop() and 4. join()
    assert steps == [("observer.stop", False, 0), ("observer.join", False, 0)]
    assert not observer.is_alive() and w.debouncer.pending() == {}
    assert not any(t.name.startswith("starnode-watcher") for t in threading.enumerate())
    w.stop()
    w.stop()
    assert c.quiet(0.1) == []


def test_no_callback_after_stop_returns(tmp_path: Path, make_watcher: Any) -> None:
    """Many files pending or queued at stop(): none is delivered once stop() has returned."""
    after: list[dict] = []
    stopped = threading.Event()

    def cb(event: dict) -> None:
        if stopped.is_set():
            after.append(event)
        time.sleep(0.002)

    w = make_watcher(tmp_path, cb, debounce=0.05)
    data = fits_bytes((8, 8))
    for i in range(300):
        (tmp_path / f"f{i:04d}.fits").write_bytes(data)
    time.sleep(0.15)  # some fired and in the worker queue, some pending
    w.stop()
    stopped.set()
    time.sleep(0.5)
    assert after == []
    assert not any(t.name.startswith("starnode-watcher") for t in threading.enumerate())


def test_stop_from_inside_the_callback(tmp_path: Path, make_watcher: Any) -> None:
    box: dict[str, Any] = {}

    def cb(event: dict) -> None:
        box["w"].stop()
        box["done"] = True

    box["w"] = make_watcher(tmp_path, cb)
    (tmp_path / "a.fits").write_bytes(fits_bytes())
    deadline = time.monotonic() + TIMEOUT
    while "done" not in box and time.monotonic() < deadline:
        time.sleep(0.02)
    assert box.get("done") and not box["w"].running


def test_stop_from_callback_while_another_thread_stops(tmp_path: Path,
                                                       make_watcher: Any) -> None:
    """No deadlock when stop() runs in the main thread and inside the callback at once."""
    in_callback = threading.Event()
    box: dict[str, Any] = {}

    def cb(event: dict) -> None:
        in_callback.set()
        time.sleep(0.2)  # the other thread is now inside stop(), waiting for us
        box["w"].stop()

    box["w"] = make_watcher(tmp_path, cb)
    (tmp_path / "a.fits").write_bytes(fits_bytes())
    assert in_callback.wait(TIMEOUT)
    stopper = threading.Thread(target=box["w"].stop, daemon=True)
    stopper.start()
    stopper.join(TIMEOUT)
    assert not stopper.is_alive() and not box["w"].running


def test_restart_after_stop(tmp_path: Path, make_watcher: Any) -> None:
    c = Collector()
    w = make_watcher(tmp_path, c)
    (tmp_path / "a.fits").write_bytes(fits_bytes())
    c.wait_for(1)
    w.stop()
    w.start()
    (tmp_path / "b.fits").write_bytes(fits_bytes(seed=2))
    c.wait_for(2)
    assert [os.path.basename(p) for p in c.paths] == ["a.fits", "b.fits"]


# ----------------------------------------------------------------------------- defaults
def test_non_recursive_by_default(tmp_path: Path, make_watcher: Any) -> None:
    sub = tmp_path / "M 94_sub"
    sub.mkdir()
    c = Collector()
    make_watcher(tmp_path, c)
    (sub / "deep.fits").write_bytes(fits_bytes())
    (tmp_path / "new_sub").mkdir()
    (tmp_path / "new_sub" / "deeper.fits").write_bytes(fits_bytes())
    (tmp_path / "top.fits").write_bytes(fits_bytes())
    c.wait_for(1)
    assert c.quiet(3 * DEBOUNCE) and c.paths == [str(tmp_path / "top.fits")]


def test_files_present_before_start_are_not_reported(tmp_path: Path,
                                                     make_watcher: Any) -> None:
    old = tmp_path / "old.fits"
    old.write_bytes(fits_bytes())
    c = Collector()
    make_watcher(tmp_path, c)
    with open(old, "ab") as f:  # a modification never makes a path pending
        f.write(b"\0" * 2880)
    os.utime(old)
    (tmp_path / "new.fits").write_bytes(fits_bytes())
    c.wait_for(1)
    assert c.quiet(3 * DEBOUNCE) and c.paths == [str(tmp_path / "new.fits")]


def test_seed_module_names(tmp_path: Path) -> None:
    w = ImageWatcher(str(tmp_path), print)
    assert callable(w._schedule) and callable(w._fire)  # the seed's method names
    assert w.debouncer.pending() == {} and w.running is False
    assert watcher_mod.ImageWatcher is ImageWatcher
