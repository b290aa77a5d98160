"""End to end, real processes: a hub (``starnode hub serve``, on PostgreSQL when a server can
start here, else SQLite) and three ``starnode process`` nodes measuring synthetic subs of SS Cyg
on the same night, one of them with its comparison magnitudes shifted by +0.3 mag. The hub is
SIGKILLed while the nodes push and restarted; every measurement arrives exactly once, the
shifted node's points and offset are flagged and it is held, the other members' reports
validate."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the hub extra is not installed")
sa = pytest.importorskip("sqlalchemy", reason="the hub extra is not installed")

from hub_helpers import free_port  # noqa: E402
from pgcluster import PgCluster, PgUnavailable  # noqa: E402
from starnode.aavso.validator import validate_file  # noqa: E402
from starnode.synthetic import DEMO_SEQUENCE_FILE, make_sub, write_frame  # noqa: E402
from waiting import stop_process, wait_for  # noqa: E402

pytestmark = pytest.mark.slow

SITE = (48.85, 2.35)
FRAMES = 4
NODES = [("scope-a", "HKA", 0.0), ("scope-b", "WDB", 0.0), ("scope-c", "SNX", 0.3)]
NIGHT = "2025-09-14"


def _shifted_sequence(dest: Path, shift: float) -> Path:
    chart = json.loads(Path(DEMO_SEQUENCE_FILE).read_text())
    for star in chart["comparison_stars"]:
        for band in star["bands"]:
            band["mag"] = round(band["mag"] + shift, 3)
    dest.write_text(json.dumps(chart))
    return dest


def _frames(folder: Path, node: int) -> None:
    folder.mkdir(parents=True)
    for k in range(FRAMES):
        # the same 15-min windows for every node (20 min apart), a few seconds between nodes
        date_obs = f"2025-09-14T{21 + (k * 20) // 60:02d}:{(k * 20) % 60 + 2:02d}:{10 * node:02d}"
        hdul, _ = make_sub(target_mag=11.8 - 0.1 * k, seed=100 * node + k, date_obs=date_obs,
                           site=SITE, exptime=10.0)
        stamp = date_obs.replace("-", "").replace(":", "").replace("T", "-")
        write_frame(folder / f"Light_SS Cyg_10.0s_IRCUT_{stamp}.fit", hdul)


def _cli(capsys: pytest.CaptureFixture[str], cfg: Path, *args: str) -> Any:
    """``starnode --config CFG ARGS`` in this process (the nodes and the hub are processes)."""
    from types import SimpleNamespace

    from starnode.cli import main

    capsys.readouterr()
    code = main(["--config", str(cfg), *args])
    out = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)


def _count(url: str) -> int:
    from starnode.hub.db import engine_for

    eng = engine_for(url)
    try:
        with eng.connect() as conn:
            return int(conn.execute(sa.text("SELECT COUNT(*) FROM measurements")).scalar())
    except sa.exc.DBAPIError:
        return 0
    finally:
        eng.dispose()


def _start_hub(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "starnode", "--config", str(cfg), "hub",
                             "serve"], stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _wait(pred: Any, timeout: float, what: str, log: Path) -> None:
    wait_for(pred, timeout, what, interval=0.1, detail=lambda: log.read_text()[-3000:])


@pytest.fixture
def database(tmp_path: Path) -> Any:
    try:
        cluster = PgCluster().start()
    except PgUnavailable as exc:  # the same test on the embedded engine, said loudly
        print(f"PostgreSQL unavailable ({exc}); the end-to-end test runs on SQLite")
        yield f"sqlite:///{tmp_path / 'hub.sqlite3'}"
        return
    try:
        yield cluster.create_database("e2e")
    finally:
        cluster.stop()


def test_three_nodes_one_shifted_hub_killed(tmp_path: Path, database: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    hub_cfg = tmp_path / "hub.yaml"
    hub_cfg.write_text(json.dumps({"data_dir": str(tmp_path / "hub"), "hub": {
        "database_url": database, "listen": f"127.0.0.1:{port}"}}))
    hub_log = tmp_path / "hub.log"
    tokens = {}
    for name, code, _shift in NODES:
        out = _cli(capsys, hub_cfg, "hub", "add-node", name, "--observer-code", code)
        assert out.returncode == 0, out.stderr
        tokens[name] = out.stdout.strip()

    procs: list[tuple[str, subprocess.Popen[bytes], Path]] = []
    hub = _start_hub(hub_cfg, hub_log)
    try:
        for i, (name, _code, shift) in enumerate(NODES):
            root = tmp_path / name
            _frames(root / "MyWorks", i)
            seq = (_shifted_sequence(root / "chart.json", shift) if shift
                   else Path(DEMO_SEQUENCE_FILE))
            cfg = root / "config.yaml"
            cfg.write_text(json.dumps({
                "data_dir": str(root / "data"), "workers": 1,
                "photometry": {"sequence_file": str(seq), "offline": True},
                "aavso": {"observer_code": _code, "mode": "dry_run"},
                "hub": {"url": f"http://127.0.0.1:{port}", "batch_size": 1,
                        "retry_backoff": 0.2, "max_backoff": 1.0, "flush_timeout": 120,
                        "heartbeat_interval": 2}}))
            env = {**os.environ, "STARNODE_HUB_TOKEN": tokens[name]}
            log = root / "node.log"
            procs.append((name, subprocess.Popen(
                [sys.executable, "-m", "starnode", "--config", str(cfg), "process",
                 str(root / "MyWorks"), "-q"], stdout=log.open("ab"),
                stderr=subprocess.STDOUT, env=env), log))

        total = FRAMES * len(NODES)
        _wait(lambda: _count(database) >= 1, 120, "a first measurement at the hub", hub_log)
        hub.send_signal(signal.SIGKILL)
        hub.wait(10)
        at_kill = _count(database)
        assert at_kill < total  # killed while the nodes were still pushing
        time.sleep(1.5)  # the nodes go on measuring and queueing meanwhile
        hub = _start_hub(hub_cfg, hub_log)
        for name, proc, log in procs:
            assert proc.wait(180) == 0, f"{name}:\n{log.read_text()[-3000:]}"
        for _name, _proc, log in procs:
            assert "still queued" not in log.read_text()
    finally:
        for _name, proc, _log in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if hub.poll() is None:
            stop_process(hub, 20)

    # every measurement exactly once
    from starnode.hub.db import engine_for

    eng = engine_for(database)
    with eng.connect() as conn:
        per_node = dict(conn.execute(sa.text(
            "SELECT n.name, COUNT(*) FROM measurements m JOIN nodes n ON n.id = m.node_id "
            "GROUP BY n.name")).all())
        distinct = conn.execute(sa.text(
            "SELECT COUNT(DISTINCT idem_key) FROM measurements")).scalar()
    eng.dispose()
    assert per_node == {name: FRAMES for name, _c, _s in NODES}
    assert distinct == total

    out = _cli(capsys, hub_cfg, "hub", "crosscheck", "--night", NIGHT, "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    offsets = {o["node"]: o for o in summary["offsets"]}
    assert summary["held"] == ["scope-c"], summary
    assert offsets["scope-c"]["significant"]
    assert offsets["scope-c"]["mag_offset"] == pytest.approx(0.3, abs=0.1)
    assert summary["outliers"] == FRAMES  # exactly the shifted node's points

    for code in ("HKA", "WDB"):
        out = _cli(capsys, hub_cfg, "hub", "report", "--member", code, "--night", NIGHT)
        assert out.returncode == 0, out.stderr
        path = Path(out.stdout.strip())
        assert validate_file(path).ok
        text = path.read_text()
        assert f"#OBSCODE={code}" in text and text.count("\nSS Cyg,") == FRAMES
    out = _cli(capsys, hub_cfg, "hub", "report", "--member", "SNX", "--night", NIGHT)
    assert out.returncode == 1 and "flagged by the cross-check" in out.stderr
    # each node's status shows its queue, all sent
    out = _cli(capsys, tmp_path / "scope-a" / "config.yaml", "status")
    assert out.returncode == 0
    assert f"hub queue (http://127.0.0.1:{port}): {FRAMES} sent" in out.stdout
    out = _cli(capsys, tmp_path / "scope-c" / "config.yaml", "status", "--json")
    assert out.returncode == 0
    assert json.loads(out.stdout)["hub"]["counts"] == {"sent": FRAMES}
    out = _cli(capsys, hub_cfg, "hub", "nodes")
    assert out.returncode == 0
    line = next(x for x in out.stdout.splitlines() if x.startswith("scope-c"))
    assert "held" in line and "HELD" in line
