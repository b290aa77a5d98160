"""``starnode observe`` (drive the telescope through tonight's plan) and ``starnode park`` (the
emergency command). docs/telescope.md."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..config import Config

log = logging.getLogger("starnode")

__all__ = ["add_parsers", "cmd_observe", "cmd_park", "observe_forever", "start_observer"]


def add_parsers(add: Any) -> None:
    """Register ``observe`` and ``park`` (``add(name, help, description)`` from cli)."""
    from .args import night_arg
    sp = add("observe", "drive the telescope through tonight's plan (docs/telescope.md)",
             "Observe tonight's plan with the configured telescope: for each item gate (sun, "
             "altitude, distance from the sun) -> unpark -> slew -> settle -> capture until "
             "the item's end or count, the first frame solved to verify the pointing; frames "
             "go into watch.path as Light_ files. Waits for the night when started by day, "
             "parks (verified) at the end of the plan, at dawn, on SIGTERM/SIGINT and on any "
             "error. Nothing moves unless telescope.motion is true.")
    sp.add_argument("--plan", metavar="FILE", help="a plan from 'starnode plan --format json' "
                    "(default: plan tonight now)")
    sp.add_argument("--night", metavar="DATE", type=night_arg,
                    help="the night to plan (YYYY-MM-DD, the evening's date)")
    sp.add_argument("--dry-run", action="store_true", help="print the exact command sequence "
                    "the night would send, on a simulated clock, and move nothing")
    sp.add_argument("--start", metavar="UTC", help="with --dry-run: the simulated clock's "
                    "start (ISO 8601, default now)")
    sp.add_argument("--once", action="store_true", help="observe one night, then exit")
    sp.set_defaults(func=cmd_observe)

    sp = add("park", "park the telescope now and verify it (the emergency command)",
             "Park the telescope and read AtPark back, retrying with backoff. A running "
             "'starnode observe' is asked to stop first (it parks too). Exit 0 only when the "
             "mount reports it is parked.")
    sp.set_defaults(func=cmd_park)


# ----------------------------------------------------------------------------- helpers
def _settings(cfg: Config) -> Any:
    from ..telescope.settings import TelescopeSettings

    return TelescopeSettings.from_config(cfg)


def _load_plan(args: argparse.Namespace, cfg: Config, now: datetime) -> Any:
    """The plan from ``--plan``, else from the planner (imported lazily)."""
    from ..planning.model import Plan

    if getattr(args, "plan", None):
        try:
            return Plan.from_dict(json.loads(Path(args.plan).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SystemExit(f"error: {args.plan}: not a usable plan ({exc})") from None
    try:
        from ..planning.planner import plan_night  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise SystemExit("error: this starnode has no planner; give a plan with --plan FILE "
                         "('starnode plan --format json --out FILE')") from None
    return plan_night(cfg, getattr(args, "night", None), now=now)


def _verifier(cfg: Config) -> Any:
    from ..astrometry.report import solve_file

    def verify(path: Path) -> tuple[float, float] | None:
        res = solve_file(path, cfg)
        return (float(res["ra_deg"]), float(res["dec_deg"])) if res.get("ok") else None

    return verify


def _driver(settings: Any, clock: Any) -> Any:
    from ..telescope.alpaca import AlpacaDriver
    from ..telescope.driver import NoneDriver

    if settings.driver == "alpaca":
        return AlpacaDriver(settings.address, settings.telescope_device,
                            settings.camera_device, settings.site, clock)
    return NoneDriver(settings.site, clock)


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """SIGTERM/SIGINT set the event (the runner parks and ends); handlers restored after."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        log.warning("signal %d: parking and stopping", signum)
        stop.set()

    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# ----------------------------------------------------------------------------- observe
def _dry_run(args: argparse.Namespace, cfg: Config, settings: Any) -> int:
    from ..store.telescope import TelescopeJournal
    from ..telescope.clock import SimClock
    from ..telescope.driver import SimDriver
    from ..telescope.runner import Runner
    from ..telescope.safety import SafetyManager

    start = datetime.now(UTC)
    if args.start:
        try:
            start = datetime.fromisoformat(args.start.replace("Z", "+00:00"))
        except ValueError:
            print(f"error: --start {args.start!r}: expected ISO 8601 UTC, e.g. "
                  "2025-09-14T17:00:00Z", file=sys.stderr)
            return 2
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
    logging.getLogger("starnode.store.migrations").setLevel(logging.WARNING)  # a scratch db
    clock = SimClock(start)
    if cfg.hub.url and not args.plan:  # what the hub's assignment would make of the night
        from ..node.nightwork import network_plan

        plan, held = network_plan(cfg, getattr(args, "night", None), now=start)
        if held:
            print(f"planned from the hub's assignment {held}")
    else:
        plan = _load_plan(args, cfg, start)
    sim = dataclasses.replace(settings, motion=True)  # nothing real moves in a dry run
    driver = SimDriver(settings.site, clock)
    print(f"DRY RUN: the night of {plan.night} (plan {plan.hash}, {len(plan.items)} items) on a "
          f"simulated clock from {start:%Y-%m-%d %H:%M} UTC; nothing is sent to a telescope")
    if not settings.motion:
        print("note: telescope.motion is false, so a real 'starnode observe' would refuse to "
              "move; this shows what it would send once it is true")
    with tempfile.TemporaryDirectory() as tmp, TelescopeJournal(Path(tmp) / "dry.sqlite3") as j:
        runner = Runner(plan, driver, SafetyManager(sim, clock), j, clock, sim,
                        Path(tmp) / "frames")
        res = runner.run()
        frames = _print_commands(driver.commands)
        for target, why in res.items_skipped:
            print(f"skipped {target}: {why}")
    print(f"{frames} exposures in {len(res.items_done)} items; ended: {res.ended}; "
          f"parked: {res.parked}")
    return 0 if res.refused is None else 1


def _print_commands(commands: list[Any]) -> int:
    """Each command, with a run of exposures as one line (first, count, last); returns the
    number of exposures."""
    frames, run = 0, []
    for c in [*commands, None]:
        if c is not None and c.name in ("startexposure", "imagearray"):
            if c.name == "startexposure":
                run.append(c)
                frames += 1
            continue
        if run:
            print(f"{run[0]}  x{len(run)} (last at {run[-1].t:%H:%M:%S}Z; each followed by "
                  "imageready polls and imagearray)")
            run = []
        if c is not None:
            print(str(c))
    return frames


def _observe_night(cfg: Config, settings: Any, args: argparse.Namespace,
                   stop: threading.Event) -> Any:
    from ..store.telescope import TelescopeJournal
    from ..telescope.clock import SystemClock
    from ..telescope.runner import Runner
    from ..telescope.safety import SafetyManager

    clock = SystemClock()
    network, weather, assignment = None, None, None
    if cfg.hub.url:  # the hub's assignment and alerts, from the forwarder's files
        from ..node.nightwork import NodeNetwork, network_plan

        network = NodeNetwork(cfg)
        if not getattr(args, "plan", None):
            try:
                plan, assignment = network_plan(cfg, getattr(args, "night", None),
                                                now=clock.now())
            except ImportError:
                plan = _load_plan(args, cfg, clock.now())
        else:
            plan = _load_plan(args, cfg, clock.now())
    else:
        plan = _load_plan(args, cfg, clock.now())
    from ..telescope.weather import weather_from_config

    weather = weather_from_config(cfg)
    folder = settings.watch_path or str(Path(cfg.data_dir) / "frames")
    log.info("observing the night of %s: plan %s, %d items", plan.night, plan.hash,
             len(plan.items))
    with TelescopeJournal(cfg) as journal:
        driver = _driver(settings, clock)
        runner = Runner(plan, driver, SafetyManager(settings, clock), journal, clock, settings,
                        folder, verify=_verifier(cfg), stop=stop, network=network,
                        weather=weather, assignment=assignment)
        try:
            return runner.run()
        finally:
            driver.disconnect()


def observe_forever(cfg: Config, args: argparse.Namespace, stop: threading.Event) -> int:
    """Night after night until ``stop`` (or one night with ``--once``); holds the mount lock."""
    from ..telescope.lock import MountBusy, MountLock

    settings = _settings(cfg)
    lock = MountLock(cfg.data_dir)
    try:
        lock.acquire()
    except MountBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        while not stop.is_set():
            res = _observe_night(cfg, settings, args, stop)
            print(f"night ended ({res.ended}): {res.frames} frames, items done "
                  f"{', '.join(res.items_done) or 'none'}; parked: {res.parked}"
                  + (f"; ALARM: {res.alarm}" if res.alarm else ""))
            if res.refused:
                print(f"not moving: {res.refused}")
            if getattr(args, "once", False) or res.alarm:
                return 1 if (res.alarm or res.refused) else 0
            # the next plan: after local noon, when tomorrow's night can be planned
            stop.wait(_until_next_noon(settings))
        return 0
    finally:
        lock.release()


def _until_next_noon(settings: Any) -> float:
    lon = settings.site.lon_deg if settings.site else 0.0
    now = datetime.now(UTC)
    noon = now.replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(hours=lon / 15)
    while noon <= now:
        noon += timedelta(days=1)
    return (noon - now).total_seconds()


def cmd_observe(args: argparse.Namespace, cfg: Config) -> int:
    """``starnode observe``."""
    settings = _settings(cfg)
    if args.dry_run:
        return _dry_run(args, cfg, settings)
    if args.start:
        print("error: --start is for --dry-run only (a real night runs on the real clock)",
              file=sys.stderr)
        return 2
    if settings.driver == "none":
        print("not moving: telescope.driver is 'none' (the default: nothing moves). Set "
              "telescope.driver: alpaca and telescope.motion: true; try 'starnode observe "
              "--dry-run' first")
        return 1
    if not settings.motion:
        print("not moving: telescope.motion is false (nothing moves until you set it to "
              "true); 'starnode observe --dry-run' shows what would be sent")
        return 1
    with _stop_on_signals() as stop:
        return observe_forever(cfg, args, stop)


# ----------------------------------------------------------------------------- park
def _take_lock(lock: Any) -> bool:
    """Take the mount lock, asking a running observer to stop first (it parks)."""
    from ..telescope.lock import MountBusy

    try:
        lock.acquire()
        return True
    except MountBusy as exc:
        if exc.pid and exc.pid != os.getpid():
            print(f"asking the observing process {exc.pid} to stop and park (SIGTERM)")
            try:
                os.kill(exc.pid, signal.SIGTERM)
            except OSError as e:
                print(f"cannot signal it: {e}")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        time.sleep(1.0)
        try:
            lock.acquire()
            return True
        except MountBusy:
            continue
    print("warning: the other process still holds the telescope; parking anyway")
    return False


def cmd_park(args: argparse.Namespace, cfg: Config) -> int:
    """``starnode park``: exit 0 only when the mount reports AtPark."""
    from ..store.telescope import TelescopeJournal
    from ..telescope.clock import SystemClock
    from ..telescope.driver import DriverError
    from ..telescope.lock import MountLock
    from ..telescope.runner import RunnerOptions, verified_park

    settings = _settings(cfg)
    if settings.driver == "none":
        print("telescope.driver is 'none': starnode drives no telescope, nothing to park")
        return 0
    lock = MountLock(cfg.data_dir)
    held = _take_lock(lock)
    clock = SystemClock()
    driver = _driver(settings, clock)
    try:
        with TelescopeJournal(cfg) as journal:
            try:
                driver.connect()
            except DriverError as exc:
                print(f"connecting to {settings.address}: {exc}; trying to park anyway")
            ok, alarm = verified_park(driver, clock, journal, RunnerOptions(),
                                      "starnode park (emergency command)")
    finally:
        driver.disconnect()
        if held:
            lock.release()
    if ok:
        print("PARKED: the telescope reports AtPark")
        return 0
    print(f"NOT PARKED: {alarm}", file=sys.stderr)
    return 1


def start_observer(cfg: Config) -> tuple[threading.Thread, threading.Event] | None:
    """``starnode run`` with ``telescope.driver`` set: observe in a thread beside the node.
    The caller sets the event when the node stops, then joins the thread (it parks first).
    None when there is no telescope to drive (the reason is logged)."""
    settings = _settings(cfg)
    if settings.driver == "none":
        return None
    if not settings.motion:
        log.warning("telescope: not moving: telescope.motion is false (nothing moves until "
                    "you set it to true; 'starnode observe --dry-run' shows what would be sent)")
        return None
    stop = threading.Event()
    args = argparse.Namespace(plan=None, night=None, once=False)

    def run() -> None:
        try:
            observe_forever(cfg, args, stop)
        except SystemExit as exc:  # no planner, bad plan: said, the node goes on
            log.error("telescope: %s", exc)
        except Exception:
            log.exception("telescope: the observer stopped")

    thread = threading.Thread(target=run, name="starnode-observe", daemon=False)
    thread.start()
    return thread, stop
