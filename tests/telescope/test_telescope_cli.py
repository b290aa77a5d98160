"""``starnode observe`` (dry run, refusals) and ``starnode park`` (the emergency command) from
the command line; ``starnode status`` shows the telescope and its alarm."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from starnode.cli import main
from starnode.store.telescope import TelescopeJournal
from starnode.telescope.clock import SystemClock
from starnode.telescope.fake import FakeAlpaca
from telescope_helpers import CHI_CYG, R_CRB, U_GEM, item, plan, utc


def _write(tmp_path: Path, telescope: str, site: bool = True) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"data_dir: {tmp_path / 'data'}\n"
                   + ("site: {latitude: 52.0, longitude: 5.0}\n" if site else "")
                   + f"telescope: {telescope}\n")
    p = plan(item("R CrB", R_CRB, utc(19, 15), utc(19, 45), 60, 5),
             item("U Gem", U_GEM, utc(20, 0), utc(20, 30), 60, 5),
             item("Chi Cyg", CHI_CYG, utc(20, 30), utc(21, 0), 30, 4))
    (tmp_path / "plan.json").write_text(json.dumps(p.to_dict()))
    return cfg


def test_dry_run_prints_the_command_sequence(tmp_path: Path, capsys) -> None:
    cfg = _write(tmp_path, "{}")  # driver none, motion false: a dry run still shows the night
    rc = main(["--config", str(cfg), "observe", "--dry-run", "--plan",
               str(tmp_path / "plan.json"), "--start", "2025-09-14T17:00:00Z"])
    out = capsys.readouterr().out
    assert rc == 0, out
    lines = [ln for ln in out.splitlines() if ln.startswith("2025-")]
    names = [ln.split()[2] for ln in lines]
    # R CrB, then a 70-minute wait (parked: longer than 30 min), then Chi Cyg, then park
    assert names == ["connect", "unpark", "slewtocoordinatesasync", "startexposure", "park",
                     "unpark", "slewtocoordinatesasync", "startexposure", "park"], out
    assert "target=R CrB" in lines[2] and "system=topocentric" in lines[2]
    assert "x5" in lines[3] and "x4" in lines[7]
    assert "skipped U Gem" in out and "below the floor" in out
    assert "nothing is sent to a telescope" in out and "telescope.motion is false" in out
    assert not (tmp_path / "data" / "starnode.sqlite3").exists()  # the journal is untouched


def test_dry_run_without_a_site_says_why(tmp_path: Path, capsys) -> None:
    cfg = _write(tmp_path, "{}", site=False)
    rc = main(["--config", str(cfg), "observe", "--dry-run", "--plan",
               str(tmp_path / "plan.json"), "--start", "2025-09-14T17:00:00Z"])
    out = capsys.readouterr().out
    assert rc == 1 and "no site is configured" not in out.splitlines()[0]
    assert "slewtocoordinatesasync" not in out


@pytest.mark.parametrize(("telescope", "said"), [
    ("{}", "telescope.driver is 'none'"),
    ("{driver: alpaca}", "telescope.motion is false"),
])
def test_observe_says_why_it_does_not_move(tmp_path: Path, capsys, telescope: str,
                                           said: str) -> None:
    cfg = _write(tmp_path, telescope)
    rc = main(["--config", str(cfg), "observe", "--plan", str(tmp_path / "plan.json")])
    assert rc == 1 and said in capsys.readouterr().out


def test_park_parks_and_verifies(tmp_path: Path, capsys) -> None:
    clock = SystemClock()
    with FakeAlpaca(clock, park_s=0.5) as fake:
        fake.st.parked = False
        cfg = _write(tmp_path, f"{{driver: alpaca, address: '{fake.address}'}}")
        rc = main(["--config", str(cfg), "park"])
        out = capsys.readouterr().out
        assert rc == 0 and "PARKED: the telescope reports AtPark" in out
        assert fake.st.parked
        assert [r.method for r in fake.received if r.method != "connected"] == ["park"]
    with TelescopeJournal(tmp_path / "data" / "starnode.sqlite3") as j:
        assert j.state()["parked"]["value"] == "yes"


def test_park_asks_the_observer_to_stop_first(tmp_path: Path, capsys) -> None:
    """One owner: an observing process holds the mount lock; 'starnode park' sends it SIGTERM
    (it parks and releases), then takes the lock and parks itself."""
    clock = SystemClock()
    data = tmp_path / "data"
    data.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import signal, sys, time
        from starnode.telescope.lock import MountLock
        lock = MountLock({str(data)!r}); lock.acquire()
        def bye(*a):
            lock.release(); sys.exit(0)
        signal.signal(signal.SIGTERM, bye)
        print("holding", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        with FakeAlpaca(clock, park_s=0.2) as fake:
            fake.st.parked = False
            cfg = _write(tmp_path, f"{{driver: alpaca, address: '{fake.address}'}}")
            t = time.monotonic()
            rc = main(["--config", str(cfg), "park"])
            out = capsys.readouterr().out
        assert rc == 0 and f"asking the observing process {holder.pid}" in out
        assert holder.wait(10) == 0 and time.monotonic() - t < 30
    finally:
        if holder.poll() is None:
            holder.kill()


def test_status_shows_the_alarm(tmp_path: Path, capsys) -> None:
    cfg = _write(tmp_path, "{driver: alpaca}")
    (tmp_path / "data").mkdir()
    with TelescopeJournal(tmp_path / "data" / "starnode.sqlite3") as j:
        j.record(utc(4), "park_failed", "PARK FAILED after 4 attempts (AtPark still false)")
        j.set_state(utc(4), parked="no", alarm="PARK FAILED after 4 attempts")
    assert main(["--config", str(cfg), "status"]) == 0
    out = capsys.readouterr().out
    assert "TELESCOPE ALARM: PARK FAILED" in out and "parked no" in out
    assert main(["--config", str(cfg), "status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["telescope"]["alarm"].startswith("PARK FAILED")


def test_local_page_shows_the_telescope_read_only(tmp_path: Path) -> None:
    """The page shows the state and the alarm; it offers no way to move the telescope."""
    from fastapi.testclient import TestClient

    from starnode.cli import load_config
    from starnode.morning.web import create_app

    cfg_path = _write(tmp_path, "{driver: alpaca}")
    (tmp_path / "data").mkdir()
    with TelescopeJournal(tmp_path / "data" / "starnode.sqlite3") as j:
        j.set_state(utc(4), parked="no", alarm="PARK FAILED after 4 attempts")
    app = create_app(load_config(str(cfg_path)))
    # the page answers only to loopback names without a token (DNS rebinding guard)
    with TestClient(app, base_url="http://127.0.0.1") as http:
        page = http.get("/").text
        assert "Alarm:</strong> PARK FAILED" in page and "parked: no" in page
        for path in ("/park", "/api/telescope/park", "/telescope/park"):
            assert http.post(path).status_code in (404, 405)


def test_hub_heartbeat_carries_the_alarm(tmp_path: Path, monkeypatch) -> None:
    from starnode.cli import load_config
    from starnode.hub.wire import Heartbeat
    from starnode.node.forwarder import Forwarder

    cfg_path = _write(tmp_path, "{driver: alpaca}")
    cfg_path.write_text(cfg_path.read_text() + "hub: {url: 'http://127.0.0.1:9', token: t}\n")
    (tmp_path / "data").mkdir()
    with TelescopeJournal(tmp_path / "data" / "starnode.sqlite3") as j:
        j.set_state(utc(4), parked="no", alarm="PARK FAILED after 4 attempts")
    fw = Forwarder(load_config(str(cfg_path)))
    fw.node = "n1"
    hb = fw.heartbeat()
    assert hb["recent_errors"][0] == "TELESCOPE ALARM: PARK FAILED after 4 attempts"
    Heartbeat.model_validate(hb)  # the hub accepts it as it is


def test_run_starts_the_observer_only_when_asked(tmp_path: Path) -> None:
    """``starnode run``: no telescope thread with driver none or motion off; with both set a
    thread that stops (parking) when the node stops."""
    from starnode.cli import load_config
    from starnode.cli.observe import start_observer

    assert start_observer(load_config(str(_write(tmp_path, "{}")))) is None
    assert start_observer(load_config(str(_write(tmp_path, "{driver: alpaca}")))) is None
    with FakeAlpaca(SystemClock()) as fake:
        cfg = load_config(str(_write(
            tmp_path, f"{{driver: alpaca, motion: true, address: '{fake.address}'}}")))
        started = start_observer(cfg)
        assert started is not None
        thread, stop = started
        stop.set()
        thread.join(60)
        assert not thread.is_alive()
        assert not [r for r in fake.received if r.method in ("unpark",
                                                               "slewtocoordinatesasync")]
