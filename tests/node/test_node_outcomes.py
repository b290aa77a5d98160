"""starnode.node.outcomes: write faults that end heal without a restart; a database deleted under
a running node stops it loudly (issue 10, items 6 and 10).

The faults are real: a full tmpfs (disk full), a read-only bind mount or a read-only remount.
They need root and ``mount``; the tests skip, with the reason, where mounting is impossible.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aavso_helpers import at
from node_fakes import write_fake
from starnode.config import Config, resolve
from starnode.errors import FrameState, StoreError
from starnode.node import Node
from starnode.node.outcomes import Outcomes
from starnode.node.pool import MeasuredFrame
from starnode.records import Measurement
from starnode.store import Ledger, make_owner

FAKE = "node_fakes:measure"


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, timeout=30)


@contextlib.contextmanager
def _tmpfs(where: Path, size: str = "4m") -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    try:
        _mount("-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where))
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here (needs root and mount): {exc}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)


@contextlib.contextmanager
def _read_only(folder: Path) -> Iterator[None]:
    """``folder`` read-only (a bind mount of itself, remounted ro) until the block ends."""
    try:
        _mount("--bind", str(folder), str(folder))
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot bind-mount here (needs root and mount): {exc}")
    try:
        _mount("-o", "remount,bind,ro", str(folder))
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)


def _fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` to the last byte."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as fh:
        chunk = b"\0" * 65536
        try:
            while True:
                fh.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        with contextlib.suppress(OSError):
            while True:
                fh.write(b"\0")
    return filler


def _cfg(data: Path, watch: Path) -> Config:
    return resolve({"data_dir": str(data), "site": {"longitude": 10.0},
                    "aavso": {"observer_code": "ZZA"},
                    "watch": {"path": str(watch), "debounce_delay": 0.2, "poll_interval": 0.1}})


def _claimed(ledger: Ledger, frames: Path, name: str) -> Any:
    p = frames / name
    p.write_bytes(b"x")
    ledger.add(p)
    (frame,) = ledger.claim("owner", ids=[ledger.find(p)[0].id])
    return frame


def test_a_result_commit_that_failed_is_retried_once_the_disk_has_room(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    with _tmpfs(tmp_path / "disk") as disk:
        cfg = _cfg(disk / "data", frames)
        ledger = Ledger(cfg)
        outcomes = Outcomes(cfg, ledger, "owner", submit=True)
        outcomes.resubmit_every = 0.0
        frame = _claimed(ledger, frames, "a.fit")
        ledger.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        filler = _fill(disk)
        outcomes.record(frame, MeasuredFrame(at(0)))   # must not raise
        assert ledger.get(frame.id).state == FrameState.PROCESSING     # not written yet
        filler.unlink()
        outcomes.heal()
        got = ledger.get(frame.id)
        assert got.state == FrameState.REPORTED, got
        ledger.close()


def test_a_failed_submit_is_resubmitted_while_running(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    data = tmp_path / "data"
    cfg = _cfg(data, frames)
    outbox = data / "outbox"
    outbox.mkdir(parents=True)
    with Ledger(cfg) as ledger:
        outcomes = Outcomes(cfg, ledger, "owner", submit=True)
        outcomes.resubmit_every = 0.0
        frame = _claimed(ledger, frames, "a.fit")
        with _read_only(outbox):
            outcomes.record(frame, MeasuredFrame(at(0)))
            got = ledger.get(frame.id)
            assert got.state == FrameState.MEASURED and got.submission["status"] == "error"
        outcomes.heal()                                   # no restart
        assert ledger.get(frame.id).state == FrameState.REPORTED


def _write_config(tmp_path: Path, data: Path) -> Path:
    cfg = tmp_path / "starnode.yaml"
    cfg.write_text(f"data_dir: {data}\nwatch:\n  path: {tmp_path / 'frames'}\n"
                   "aavso:\n  observer_code: ZZA\n")
    (tmp_path / "frames").mkdir(exist_ok=True)
    return cfg


@pytest.mark.parametrize("with_ledger", [False, True])
def test_read_only_data_dir_at_start_is_a_clear_error(tmp_path: Path, with_ledger: bool) -> None:
    with _tmpfs(tmp_path / "disk") as disk:
        data = disk / "data"
        data.mkdir()
        if with_ledger:
            Ledger(resolve({"data_dir": str(data)})).close()
        cfg = _write_config(tmp_path, data)
        _mount("-o", "remount,ro", str(disk))
        proc = subprocess.run([sys.executable, "-m", "starnode", "--config", str(cfg), "run"],
                              capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "read-only" in proc.stderr.lower() or "not writable" in proc.stderr.lower(), \
        proc.stderr


class _Subs:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, result: Measurement, config: Config) -> dict[str, Any]:
        self.calls += 1
        return {"status": "queued", "message": "in the outbox"}


def test_database_deleted_under_a_running_node_stops_it_loudly(tmp_path: Path) -> None:
    watch = tmp_path / "MyWorks"
    watch.mkdir()
    cfg = _cfg(tmp_path / "data", watch)
    node = Node(cfg, workers=1, measure=FAKE, submit=_Subs())
    errors: list[BaseException] = []

    def run() -> None:
        try:
            node.run()
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        write_fake(watch / "Light_1.fit", "mag=11.0")
        deadline = time.monotonic() + 60
        while node.counts.get("measured", 0) < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert node.counts.get("measured", 0) == 1
        for p in (tmp_path / "data").glob("starnode.sqlite3*"):
            p.unlink()
        write_fake(watch / "Light_2.fit", "mag=11.1")
        t.join(60)
    finally:
        if t.is_alive():
            node.stop()
            t.join(30)
    assert errors and isinstance(errors[0], StoreError), errors
    assert "deleted" in str(errors[0])
    assert not (tmp_path / "data" / "starnode.sqlite3").exists()   # no fresh empty ledger


def test_owner_only_data_dir(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path / "data", tmp_path)
    os.umask(0o022)
    with Ledger(cfg) as ledger:
        Outcomes(cfg, ledger, make_owner(), submit=True).start()
    assert (tmp_path / "data").stat().st_mode & 0o077 == 0
