"""starnode doctor: each concern's checks collected, on real folders and a real config file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from starnode import doctor
from starnode.cli import main
from starnode.config import Config
from starnode.doctor import Check, Level, run_checks
from starnode.node import DataDirLock
from starnode.synthetic import DEMO_SEQUENCE_FILE


def test_doctor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    watch = tmp_path / "MyWorks" / "SS Cyg_sub"
    watch.mkdir(parents=True)
    (watch / "Light_SS Cyg_10.0s_IRCUT_20250914-210000.fit").write_bytes(b"x")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data_dir: {tmp_path / 'data'}\nwatch:\n  path: {tmp_path / 'MyWorks'}\n"
                   f"photometry:\n  offline: true\n  sequence_file: {DEMO_SEQUENCE_FILE}\n"
                   "aavso:\n  observer_code: ABC1\n")
    assert main(["--config", str(cfg), "doctor"]) == 0
    out = capsys.readouterr().out
    assert "[ok  ] watch mode: events" in out and "1 frame(s) match" in out
    assert "chart X41941HP" in out and "FAIL" not in out
    cfg.write_text(f"data_dir: {tmp_path / 'data'}\nwatch:\n  path: {tmp_path / 'nope'}\n"
                   "photometry:\n  offline: true\n")
    assert main(["--config", str(cfg), "doctor"]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] observer code" in out and "[FAIL] watch.path" in out
    assert "mount the telescope share" in out


def test_running_node_and_empty_cache_are_reported(tmp_path: Path) -> None:
    cfg = Config({"data_dir": str(tmp_path / "data"), "photometry": {"offline": True}})
    cfg.data_dir.mkdir(parents=True)
    lock = DataDirLock(cfg.data_dir)
    lock.acquire()
    try:
        from starnode.store import Ledger

        Ledger(cfg).close()  # the database exists: the cache can be described
        topics = {c.topic: c for c in run_checks(cfg)}
    finally:
        lock.release()
    assert f"pid {os.getpid()}" in topics["node"].message
    assert topics["catalogue cache"].message.startswith("empty")
    assert topics["watch.path"].level == Level.WARN  # not set
    assert "node" not in {c.topic for c in run_checks(cfg)}  # released


def test_a_module_health_function_is_collected(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = Config({"data_dir": str(tmp_path / "data")})

    def broken(_cfg: Config) -> list[Check]:
        raise OSError("disk on fire")

    monkeypatch.setattr(doctor, "PROVIDERS", (
        ("starnode.config", None),  # its own health()
        ("starnode.no_such_module", lambda c: [Check(Level.OK, "fallback", str(c.data_dir))]),
        ("starnode.also_missing", broken),
    ))
    checks = run_checks(cfg)
    assert [c.topic for c in checks] == ["config", "observer code", "fallback", "also_missing"]
    assert checks[2].message == str(cfg.data_dir)
    assert checks[3].level == Level.FAIL and "disk on fire" in checks[3].message


# ---------------------------------------------------------------- issue 10, item 21
def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_doctor_is_read_only(tmp_path: Path) -> None:
    """Checking creates nothing: no data_dir, no ledger, no probe, no -wal/-shm file."""
    missing = Config({"data_dir": str(tmp_path / "data"), "photometry": {"offline": True}})
    levels = {c.topic: c.level for c in run_checks(missing)}
    assert not (tmp_path / "data").exists()
    assert levels["data_dir"] == Level.OK  # its parent is writable: the node will create it
    from starnode.store import Ledger

    with Ledger(missing) as ledger:  # a real ledger, closed
        ledger.counts()
    before = _tree(tmp_path)
    run_checks(missing)
    assert _tree(tmp_path) == before


def test_doctor_says_when_the_data_dir_cannot_be_created(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        cfg = Config({"data_dir": str(ro / "data"), "photometry": {"offline": True}})
        lines = [c for c in run_checks(cfg) if c.topic == "data_dir"]
        assert lines[0].level == Level.FAIL and "cannot" in lines[0].message
    finally:
        ro.chmod(0o700)
