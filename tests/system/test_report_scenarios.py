"""Issue 17, "The report is the record": every scenario of "What we saw", with real processes
(``starnode process``/``run`` through the real node, the real CLI for ``status``, ``doctor``
and ``repair``) and real files.

The frames are tiny FITS files measured by ``node_fakes:measure`` (its JD follows the
file's mtime), so the tests are about the report file and its index, not photometry.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from node_fakes import write_fake
from starnode.aavso import validate_file

TESTS = Path(__file__).resolve().parents[1]
BASE = 1_700_000_000  # a multiple of 1000: frame i has JD 2460000.5 + 30 i s


def _config(tmp: Path, **aavso: Any) -> dict[str, Any]:
    section = {"observer_code": "ZZA", **aavso}
    return {"data_dir": str(tmp / "data"), "site": {"longitude": 10.0}, "aavso": section,
            "watch": {"path": str(tmp / "frames")}}


def _frames(tmp: Path, first: int, n: int, mag: str = "mag=12.0") -> list[Path]:
    out = []
    for i in range(first, first + n):
        p = write_fake(tmp / "frames" / f"Light_SS Cyg_10.0s_IRCUT_{i:03d}.fit", mag)
        os.utime(p, (BASE + 30 * i, BASE + 30 * i))
        out.append(p)
    return out


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(TESTS), os.environ.get("PYTHONPATH", "")])}


_PROCESS = textwrap.dedent("""
    import json, sys
    from starnode.logs import setup_logging
    from starnode.node import Node
    cfg, folder, noflush = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
    setup_logging("INFO", cfg["data_dir"])
    node = Node(cfg, workers=1, measure="scenario_fakes:measure")
    if noflush:
        node.flush = lambda: None   # stopped with a time bin still open
    try:
        summary = node.process([folder])
    finally:
        node.close()
    print(json.dumps(summary, default=str))
""")


def _process(cfg: dict[str, Any], tmp: Path, *, noflush: bool = False) -> dict[str, Any]:
    """``starnode process`` of the frames folder, in a real child process."""
    proc = subprocess.run([sys.executable, "-c", _PROCESS, json.dumps(cfg), str(tmp / "frames"),
                           "1" if noflush else "0"], capture_output=True, text=True,
                          timeout=180, env=_env(), check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _cli(tmp: Path, cfg: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    cfg_file = tmp / "config.yaml"
    cfg_file.write_text(json.dumps(cfg))  # JSON is YAML
    code = "import sys; from starnode.cli import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, "--config", str(cfg_file), *args],
                          capture_output=True, text=True, timeout=120, env=_env(), check=False)


def _report(tmp: Path) -> Path:
    [path] = [p for p in (tmp / "data" / "outbox").glob("*/*.txt")
              if not p.parent.name.startswith(("audit", "dry_run")) and ".damaged-" not in p.name]
    return path


def _rows(path: Path) -> list[str]:
    return [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]


def _drop_ledger(tmp: Path) -> None:
    for p in (tmp / "data").glob("starnode.sqlite3*"):
        p.unlink()


def _nbin(rows: list[str]) -> int:
    return sum(int(r.split("NBIN=")[1].split("|")[0]) if "NBIN=" in r else 1 for r in rows)


# --------------------------------------------------------------------------- the ledger
def test_ledger_deleted_then_five_new_frames(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    old = _frames(tmp_path, 0, 15)
    _process(cfg, tmp_path)
    report = _report(tmp_path)
    before = _rows(report)
    assert len(before) == 15
    for p in old:               # the night's frames are no longer on the share
        p.unlink()
    _drop_ledger(tmp_path)
    _frames(tmp_path, 15, 5)
    summary = _process(cfg, tmp_path)
    assert summary.get("reported") == 5, summary
    after = _rows(report)
    assert set(before) <= set(after), "a row of the report was lost"
    assert len(after) == 20 and len(set(after)) == 20
    assert validate_file(report).ok


def test_ledger_restored_from_a_cold_backup(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    first = _frames(tmp_path, 0, 10)
    _process(cfg, tmp_path)
    backup = tmp_path / "backup"
    backup.mkdir()
    for p in (tmp_path / "data").glob("starnode.sqlite3*"):
        shutil.copy2(p, backup / p.name)
    later = _frames(tmp_path, 10, 5)
    _process(cfg, tmp_path)
    report = _report(tmp_path)
    before = _rows(report)
    assert len(before) == 15
    _drop_ledger(tmp_path)      # the advice of the "damaged database" message: a backup
    for p in backup.iterdir():
        shutil.copy2(p, tmp_path / "data" / p.name)
    for p in first + later:
        p.unlink()
    _frames(tmp_path, 15, 1)
    _process(cfg, tmp_path)
    after = _rows(report)
    assert set(before) <= set(after), "committed rows were cut as an 'uncommitted tail'"
    assert len(after) == 16 and validate_file(report).ok
    status = _cli(tmp_path, cfg, "status")
    assert status.returncode == 0 and "needing attention" not in status.stdout, status.stdout


def test_ledger_moved_aside_with_three_of_ten_frames_gone(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    frames = _frames(tmp_path, 0, 10)
    _process(cfg, tmp_path)
    report = _report(tmp_path)
    before = _rows(report)
    db = tmp_path / "data" / "starnode.sqlite3"
    os.replace(db, tmp_path / "aside.sqlite3")
    for p in (tmp_path / "data").glob("starnode.sqlite3-*"):
        p.unlink()
    for p in frames[:3]:
        p.unlink()
    summary = _process(cfg, tmp_path)     # 'starnode process' rebuilds the ledger
    after = _rows(report)
    assert after == before, "rows lost or repeated after the ledger was rebuilt"
    assert summary.get("reported") == 7, summary  # the 7 re-measured frames: duplicates


def test_time_bins_ledger_lost_with_a_bin_open(tmp_path: Path) -> None:
    cfg = _config(tmp_path, bin_minutes=10)
    old = _frames(tmp_path, 0, 7)
    _process(cfg, tmp_path, noflush=True)
    report = _report(tmp_path)
    assert _nbin(_rows(report)) == 7
    for p in old:
        p.unlink()
    _drop_ledger(tmp_path)
    _frames(tmp_path, 7, 6)
    _process(cfg, tmp_path)
    rows = _rows(report)
    assert _nbin(rows) == 13, rows     # every frame's measurement is still in a row
    assert validate_file(report).ok


# --------------------------------------------------------------------------- the report
def _damage(report: Path, kind: str) -> None:
    if kind == "deleted":
        report.unlink()
    elif kind == "truncated":
        raw = report.read_bytes()
        report.write_bytes(raw[:len(raw) // 2])
    elif kind == "altered":
        text = report.read_text()
        row = _rows(report)[3]
        fields = row.split(",")
        fields[2] = "12.500"
        report.write_text(text.replace(row, ",".join(fields)))
    else:  # invalid: a row loses a field
        text = report.read_text()
        row = _rows(report)[3]
        fields = row.split(",")
        del fields[11]
        report.write_text(text.replace(row, ",".join(fields)))


@pytest.mark.parametrize("kind", ["deleted", "truncated", "altered", "invalid"])
def test_a_damaged_report_is_named_and_never_appended_to(tmp_path: Path, kind: str) -> None:
    cfg = _config(tmp_path)
    _frames(tmp_path, 0, 10)
    _process(cfg, tmp_path)
    report = _report(tmp_path)
    good = _rows(report)
    _damage(report, kind)
    damaged = report.read_bytes() if report.exists() else None

    status = _cli(tmp_path, cfg, "status")
    assert status.returncode == 0, status.stderr
    assert f"{report}: {kind.upper()}" in status.stdout, status.stdout
    assert "what to do:" in status.stdout
    doctor = _cli(tmp_path, cfg, "doctor")
    assert f"{report} is {kind}" in doctor.stdout, doctor.stdout

    _frames(tmp_path, 10, 1)
    _process(cfg, tmp_path)
    if kind == "deleted":      # the index has every row: rebuilt, and the new one added
        assert sorted(_rows(report)) == sorted([*good, *_rows(report)[10:]])
        assert len(_rows(report)) == 11 and validate_file(report).ok
        return
    assert report.read_bytes() == damaged, "a damaged report was written to"

    repair = _cli(tmp_path, cfg, "repair")
    assert repair.returncode == 0, repair.stdout + repair.stderr
    assert f"{report}: {kind}" in repair.stdout, repair.stdout
    assert list(report.parent.glob("*.damaged-*.txt")), "the damaged file was not kept"
    _process(cfg, tmp_path)    # the waiting frame is submitted again
    rows = _rows(report)
    assert set(good) <= set(rows) and len(rows) == 11, rows
    assert validate_file(report).ok
    status = _cli(tmp_path, cfg, "status")
    assert "needing attention" not in status.stdout, status.stdout


def test_repair_rebuilds_the_index_after_a_lost_ledger_and_says_so(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    _frames(tmp_path, 0, 4)
    _process(cfg, tmp_path)
    report = _report(tmp_path)
    before = report.read_bytes()
    _drop_ledger(tmp_path)
    repair = _cli(tmp_path, cfg, "repair")
    assert repair.returncode == 0, repair.stderr
    assert "4 measurement(s) back in the index from the audit" in repair.stdout, repair.stdout
    assert _rows(report) == [ln for ln in before.decode().splitlines()
                             if not ln.startswith("#")]
    # the frames are still there: measured again, they are duplicates, nothing is added
    _process(cfg, tmp_path)
    assert len(_rows(report)) == 4


def test_the_damaged_database_advice_names_repair(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    _frames(tmp_path, 0, 2)
    _process(cfg, tmp_path)
    db = tmp_path / "data" / "starnode.sqlite3"
    for p in (tmp_path / "data").glob("starnode.sqlite3-*"):
        p.unlink()
    raw = bytearray(db.read_bytes())
    raw[100:4096] = b"\xff" * (4096 - 100)
    raw[4096 * 2:4096 * 3] = b"\x00garbage" * 512
    db.write_bytes(bytes(raw))
    status = _cli(tmp_path, cfg, "status")
    assert "starnode repair" in status.stderr + status.stdout, status.stderr
    repair = _cli(tmp_path, cfg, "repair")
    assert "moved aside" in repair.stdout, repair.stdout + repair.stderr
    assert "2 measurement(s) back in the index" in repair.stdout, repair.stdout
    assert len(_rows(_report(tmp_path))) == 2
    _process(cfg, tmp_path)
    assert len(_rows(_report(tmp_path))) == 2


# --------------------------------------------------------------------------- the disk
_RUN = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from starnode.logs import setup_logging
    from starnode.node import Node
    cfg, want = json.loads(sys.argv[1]), int(sys.argv[2])
    setup_logging("INFO", cfg["data_dir"])
    node = Node(cfg, workers=1, measure="scenario_fakes:measure")
    node.outcomes.resubmit_every = 1.0
    deadline = time.monotonic() + 45
    def done(n):
        return n.ledger.counts().get("reported", 0) >= want or time.monotonic() > deadline
    node.run(until=done)
""")


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                           str(where)], capture_output=True, check=False)
    return proc.returncode == 0


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (65536, 512, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * chunk):
                    pass
    finally:
        os.close(fd)
    return filler


@pytest.mark.slow
def test_disk_full_during_submit_heals_without_a_restart(tmp_path: Path) -> None:
    """The whole data folder (ledger, outbox, log) on a real 4 MB tmpfs that fills up while
    the node runs: the frames that arrive meanwhile are reported once space returns, without
    a restart, and the log never prints a traceback storm."""
    data = tmp_path / "data"
    if not _mount_tmpfs(data, "4m"):
        pytest.skip("needs root and tmpfs to make a real full disk")
    try:
        from starnode.store import Ledger

        cfg = _config(tmp_path)
        _frames(tmp_path, 0, 2)
        proc = subprocess.Popen([sys.executable, "-c", _RUN, json.dumps(cfg), "5"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=_env())

        def reported() -> int:
            if not (data / "starnode.sqlite3").exists():
                return 0
            with Ledger(cfg) as ledger:
                return int(ledger.counts().get("reported", 0))

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and reported() < 2 and proc.poll() is None:
            time.sleep(0.3)
        assert reported() == 2
        filler = _fill(data)               # the disk fills up under the running node
        _frames(tmp_path, 2, 3)
        time.sleep(4)
        filler.unlink()                    # space returns: no restart
        _, err = proc.communicate(timeout=150)
        assert proc.returncode == 0, err[-3000:]
        assert reported() == 5, "the frames of the full-disk minutes were not reported"
        rows = _rows(_report(tmp_path))
        assert len(rows) == 5 and len(set(rows)) == 5
        assert validate_file(_report(tmp_path)).ok
        assert "--- Logging error ---" not in err, err[-3000:]
        assert "Traceback" not in err, err[-3000:]
    finally:
        subprocess.run(["umount", "-l", str(data)], check=False)


# --------------------------------------------------------------------------- bad OBJECT
def test_a_bad_object_is_a_recorded_skip_not_an_error_at_every_start(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    _frames(tmp_path, 0, 2)
    bad = ["SS Cyg, run 3", "SS Cyg|VMAGINS=1", "V" * 31, "SS Cyg [31m"]
    for i, name in enumerate(bad):
        _frames(tmp_path, 2 + i, 1, mag=f"mag=12.0;target={name}")
    _process(cfg, tmp_path)
    log = tmp_path / "data" / "logs" / "starnode.log"
    first = log.read_text()
    _process(cfg, tmp_path)             # the next start
    again = log.read_text()[len(first):]
    assert " ERROR " not in again, again
    reports = list((tmp_path / "data" / "outbox").glob("*/*.txt"))
    assert [p.name for p in reports if "audit" not in p.parts] == [_report(tmp_path).name]
    assert len(_rows(_report(tmp_path))) == 2
    events = [json.loads(x) for x in
              (tmp_path / "data" / "outbox" / "audit" / "events.jsonl").read_text().splitlines()]
    skipped = [e for e in events if e["event"] == "skipped"]
    assert len(skipped) == len(bad), events   # recorded once each, with the reason
    assert all(e["reason"] for e in skipped)
    status = _cli(tmp_path, cfg, "status")
    assert status.stdout.count("skipped: cannot be reported") == len(bad), status.stdout


# --------------------------------------------------------------------------- WebObs login
@pytest.mark.slow
def test_process_exits_non_zero_when_webobs_rejected_the_login(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from loopback import LoopbackServer
    from starnode.cli import main
    from subs_helpers import _write_subs, config_file
    from webobs_fake import USER, FakeWebObs

    monkeypatch.setenv("STARNODE_AAVSO_USERNAME", USER)
    monkeypatch.setenv("STARNODE_AAVSO_PASSWORD", "not-the-password")
    _write_subs(tmp_path / "MyWorks", "2025-09-14T21:00:30", 1, 60.0, 11.2, synthetic=False)
    fake = FakeWebObs()
    with LoopbackServer() as srv:
        srv.route("POST", "/webobs/file", handler=fake)
        cfg_file = config_file(tmp_path, "observer_code: XYZ\nmode: webobs\nretry_backoff: 0\n"
                                f"webobs_url: {srv.url('/webobs/file')}")
        code = main(["--config", str(cfg_file), "process", "--quiet",
                     str(tmp_path / "MyWorks")])
    assert fake.hits >= 1 and fake.accepted_rows == []
    assert code == 1


# --------------------------------------------------------------------------- link loop
def test_a_symlink_loop_named_like_a_frame_appears_in_status(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    _frames(tmp_path, 0, 1)
    loop = tmp_path / "frames" / "Light_SS Cyg_10.0s_IRCUT_loop.fit"
    loop.symlink_to(loop)
    _process(cfg, tmp_path)
    status = _cli(tmp_path, cfg, "status")
    assert status.returncode == 0, status.stderr
    assert "symbolic link loop" in status.stdout, status.stdout
    assert "Light_SS Cyg_10.0s_IRCUT_loop.fit" in status.stdout
    assert len(_rows(_report(tmp_path))) == 1


@pytest.mark.parametrize(("workers", "budget", "each"), [(2, 1536, 512), (1, 1536, 1024)])
def test_one_memory_budget_is_shared_by_the_workers(tmp_path: Path, workers: int, budget: int,
                                                    each: int) -> None:
    from starnode.node import Node
    from starnode.store import Ledger

    cfg = {**_config(tmp_path), "limits": {"memory_mb": budget}}
    _frames(tmp_path, 0, 2 * workers)
    node = Node(cfg, workers=workers, measure="scenario_fakes:rlimit_measure",
                submit=False)
    try:
        node.process([tmp_path / "frames"])
    finally:
        node.close()
    with Ledger(cfg) as ledger:
        reasons = {f.reason for f in ledger.frames()}
    assert reasons == {f"rlimit_as={each * 2**20}"}, reasons
