"""``starnode observe`` as a real process on the real clock: SIGTERM mid-item parks (verified)
and exits; the journal and ``starnode status`` say so. The night is made real by choosing a site
where it is local midnight now; the mount and camera are the fake Alpaca server in this test
process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from starnode.frame.timesite import offline_iers
from starnode.planning.model import Plan, PlanItem
from starnode.store.telescope import TelescopeJournal
from starnode.telescope.clock import SystemClock
from starnode.telescope.fake import FakeAlpaca

pytestmark = pytest.mark.slow


def _midnight(now: datetime) -> tuple[float, str]:
    hours = now.hour + now.minute / 60
    lon = ((24 - hours) * 15 + 180) % 360 - 180
    local = now + timedelta(hours=lon / 15)
    return lon, (local - timedelta(hours=12)).date().isoformat()


def test_sigterm_parks_a_running_observer_and_a_restart_resumes(tmp_path: Path) -> None:
    from astropy.coordinates import EarthLocation
    from astropy.time import Time

    now = datetime.now(UTC)
    lon, night = _midnight(now)
    with offline_iers():
        ra = float(Time(now).sidereal_time("apparent", longitude=EarthLocation.from_geodetic(
            lon, 30.0).lon).deg)
    start = now + timedelta(seconds=3)
    plan = Plan(night, now - timedelta(hours=1), now + timedelta(hours=6),
                (PlanItem("Meridian star", ra, 50.0, start, start + timedelta(minutes=20), 1.0,
                          8),))
    (tmp_path / "plan.json").write_text(json.dumps(plan.to_dict()))
    with FakeAlpaca(SystemClock(), slew_s=1.0, park_s=1.0) as fake:
        cfg = tmp_path / "config.yaml"
        cfg.write_text(f"data_dir: {tmp_path / 'data'}\n"
                       f"site: {{latitude: 30.0, longitude: {lon}}}\n"
                       f"watch: {{path: {tmp_path / 'frames'}}}\n"
                       f"astrometry: {{blind: false}}\n"
                       f"telescope: {{driver: alpaca, address: '{fake.address}', motion: true}}\n")
        proc = subprocess.Popen([sys.executable, "-m", "starnode", "--config", str(cfg),
                                 "observe", "--once", "--plan", str(tmp_path / "plan.json")],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 120
            while len(list((tmp_path / "frames").rglob("Light_*.fit"))) < 3:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "no frames"
                time.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert "parked: True" in out, out
        assert fake.st.parked
        methods = [r.method for r in fake.received if r.device == "telescope"]
        assert methods.index("park") > methods.index("slewtocoordinatesasync")
        with TelescopeJournal(tmp_path / "data" / "starnode.sqlite3") as j:
            steps = [s["step"] for s in j.steps()]
            assert steps[-2:] == ["park", "parked"]
            assert "stop requested" in j.steps()[-1]["detail"]
            assert j.state()["parked"]["value"] == "yes"
        taken = len(list((tmp_path / "frames").rglob("Light_*.fit")))
        assert 3 <= taken < 8
        # the restart resumes the item with the frames it has: 8 in all, then parks
        again = subprocess.run([sys.executable, "-m", "starnode", "--config", str(cfg),
                                "observe", "--once", "--plan", str(tmp_path / "plan.json")],
                               capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stdout + again.stderr
        assert len(list((tmp_path / "frames").rglob("Light_*.fit"))) == 8
        assert "parked: True" in again.stdout and fake.st.parked
