"""``starnode observe``: a plan executed as a journaled state machine, one item at a time.

Per item: **gate** (sun, distance from the sun, the altitude envelope over the item's remaining
window) → **unpark** → **slew** → **settle** → capture, with the gates re-checked before every
frame, until the item's end or its frame count → next item. The first frame of an item is
solved with starnode's own solver to **verify** the pointing, and the pointing is corrected
once when it is off. An item whose window has passed is skipped, never run late. Every step is
journaled (:class:`starnode.store.telescope.TelescopeJournal`), so a restart resumes an item
(with the frames already taken) or parks.

The night ends with a **verified park** (``AtPark`` read back, retried with backoff, an alarm
when it fails): at the end of the plan, at the dawn crossing, on a stop request (SIGTERM/
SIGINT), on a lost connection that does not come back, and on any unhandled error.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from ..planning.model import Plan, PlanItem
from ..store.telescope import ItemProgress, TelescopeJournal
from .clock import Clock
from .driver import ConnectionLost, Driver, DriverError
from .fitsout import write_light
from .safety import Refusal, SafetyManager
from .settings import TelescopeSettings
from .sky import Track

log = logging.getLogger(__name__)

__all__ = ["NightResult", "Runner", "RunnerOptions", "verified_park"]

#: ``verify(path) -> (ra_deg, dec_deg)`` of the frame centre, or None when not solved.
Verifier = Callable[[Path], "tuple[float, float] | None"]


@dataclass(frozen=True)
class RunnerOptions:
    """Timings (seconds, on the runner's clock) and tolerances."""

    settle_s: float = 8.0
    slew_timeout_s: float = 180.0
    image_timeout_s: float = 60.0
    reconnect_s: float = 300.0
    reconnect_every_s: float = 15.0
    park_timeout_s: float = 120.0
    park_attempts: int = 4
    park_backoff_s: float = 10.0
    poll_s: float = 2.0
    wait_chunk_s: float = 60.0
    park_between_s: float = 1800.0  # park while waiting longer than this for the next item
    pointing_tolerance_deg: float = 0.15


@dataclass
class NightResult:
    """What a night did."""

    frames: int = 0
    items_done: list[str] = field(default_factory=list)
    items_skipped: list[tuple[str, str]] = field(default_factory=list)
    refused: str | None = None
    parked: bool | None = None  # None: no park was attempted (nothing moved)
    alarm: str | None = None
    ended: str = ""
    paths: list[Path] = field(default_factory=list)


class _Stopped(Exception):
    """A stop request (SIGTERM/SIGINT) interrupted a step."""


class _NightOver(Exception):
    """Dawn (or a clock step) ends the night."""


class Runner:
    """Observe one plan.

    Parameters
    ----------
    plan : Plan
        Tonight's plan (refused when expired).
    driver : Driver
        The telescope and camera.
    safety : SafetyManager
        Gates (it computes the sky itself).
    journal : TelescopeJournal
        Where every step is recorded.
    clock : Clock
        The clock (a :class:`~starnode.telescope.clock.SimClock` in tests and benches).
    settings : TelescopeSettings
        Site, instrument and the watched folder.
    folder : path
        Where frames are written (the watched folder).
    verify : callable, optional
        Pointing verification; None skips it.
    stop : threading.Event, optional
        Set it (SIGTERM) to park and end.
    """

    def __init__(self, plan: Plan, driver: Driver, safety: SafetyManager,
                 journal: TelescopeJournal, clock: Clock, settings: TelescopeSettings,
                 folder: str | Path, *, verify: Verifier | None = None,
                 options: RunnerOptions | None = None, stop: threading.Event | None = None
                 ) -> None:
        self.plan, self.driver, self.safety, self.journal = plan, driver, safety, journal
        self.clock, self.settings, self.folder = clock, settings, Path(folder)
        self.verify = verify
        self.o = options or RunnerOptions()
        self.stop = stop or threading.Event()
        self.result = NightResult()
        self._moved = False  # an unpark or slew was sent: the night must end parked
        self._frames_now = 0  # frames of the current item (journaled with each)

    # journal ---------------------------------------------------------------------
    def _j(self, step: str, detail: str = "", *, i: int | None = None,
           item: PlanItem | None = None, frames: int | None = None) -> None:
        self.journal.record(self.clock.now(), step, detail, night=self.plan.night,
                            plan_hash=self.plan.hash, item=i,
                            target=item.target if item else None, frames=frames)

    # the night -----------------------------------------------------------------------
    def run(self) -> NightResult:
        """Observe the plan; always returns (an unhandled error parks, then is logged)."""
        try:
            self._night()
        except Exception as exc:  # S5: any unhandled error parks
            log.exception("observe: unexpected error; parking")
            self._j("error", f"{type(exc).__name__}: {exc}")
            self.result.ended = f"error: {exc}"
            self.park(f"unexpected error: {exc}")
        return self.result

    def _refuse(self, r: Refusal) -> None:
        log.warning("not moving: %s", r.reason)
        self._j("refused", f"{r.code}: {r.reason}")
        self.result.refused = r.reason
        self.result.ended = f"refused: {r.reason}"

    def _night(self) -> None:
        now = self.clock.now()
        if self.plan.expired(now):
            self._refuse(Refusal("plan", f"the plan for {self.plan.night} expired at "
                                 f"{self.plan.expires:%Y-%m-%d %H:%M} UTC"))
            return
        try:
            self.safety.check_motion_enabled()
        except Refusal as r:
            self._refuse(r)
            return
        if not self._connect():
            return
        try:
            events = self.safety.preflight(self.plan.night)
        except Refusal as r:
            self._refuse(r)
            self._park_if_unparked("the safety checks refuse")
            return
        self._j("night", f"dusk {events.dusk and f'{events.dusk:%H:%M:%S}'} dawn "
                f"{events.dawn and f'{events.dawn:%H:%M:%S}'} UTC, sun limit "
                f"{self.settings.sun_limit:g}")
        self.result.ended = self._items()
        self.park(self.result.ended)

    def _connect(self) -> bool:
        try:
            self.driver.connect()
            return True
        except ConnectionLost as exc:
            if self._reconnect(str(exc)):
                return True
        except DriverError as exc:
            self._refuse(Refusal("driver", str(exc)))
            return False
        self._refuse(Refusal("connection", "the telescope does not answer"))
        return False

    def _park_if_unparked(self, why: str) -> None:
        try:
            parked = self.driver.is_parked()
        except DriverError:
            parked = False
        if not parked:
            self.park(why)

    def _items(self) -> str:
        """Run the items in time order; returns why the night ended."""
        progress = self.journal.progress(self.plan.hash)
        order = sorted(range(len(self.plan.items)), key=lambda k: self.plan.items[k].start)
        for k in order:
            item = self.plan.items[k]
            prog = progress.get(k, ItemProgress(0, False, ""))
            if prog.finished:
                continue
            try:
                self._item_with_reconnect(k, item, prog.frames)
            except _Stopped:
                return "stop requested"
            except _NightOver as exc:
                return str(exc)
            except Refusal as r:  # the clock, between items
                self._j("refused", f"{r.code}: {r.reason}")
                return f"refused: {r.reason}"
            except ConnectionLost as exc:
                return f"connection lost: {exc}"
        return "end of the plan"

    def _item_with_reconnect(self, k: int, item: PlanItem, frames: int) -> None:
        while True:
            try:
                self._item(k, item, frames)
                return
            except ConnectionLost as exc:
                log.warning("connection lost during %s: %s", item.target, exc)
                self._j("connection_lost", str(exc), i=k, item=item)
                if not self._reconnect(str(exc)):
                    raise
                frames = self.journal.progress(self.plan.hash).get(
                    k, ItemProgress(frames, False, "")).frames

    def _reconnect(self, why: str) -> bool:
        deadline = self.clock.now() + timedelta(seconds=self.o.reconnect_s)
        while self.clock.now() < deadline:
            if not self.clock.sleep(self.o.reconnect_every_s, self.stop):
                raise _Stopped()
            try:
                self.driver.connect()
                self.driver.state()
            except DriverError:
                continue
            self._j("reconnected", why)
            return True
        self._j("connection_lost", f"no answer for {self.o.reconnect_s:.0f} s: {why}")
        return False

    # waiting ---------------------------------------------------------------------------
    def _check_night(self) -> None:
        if self.stop.is_set():
            raise _Stopped()
        self.safety.check_clock()
        dawn = self.safety.dawn()
        if dawn is not None and self.clock.now() >= dawn:
            raise _NightOver("dawn")

    def _wait_until(self, t: datetime, k: int, item: PlanItem) -> None:
        wait = (t - self.clock.now()).total_seconds()
        if wait <= 0:
            return
        self._j("wait", f"until {t:%H:%M:%S} UTC", i=k, item=item)
        if wait > self.o.park_between_s and self._moved:
            self._park_if_unparked("a long wait for the next item")
        while (left := (t - self.clock.now()).total_seconds()) > 0:
            self._check_night()
            if not self.clock.sleep(min(left, self.o.wait_chunk_s), self.stop):
                raise _Stopped()

    def _wait_slew(self, what: str) -> None:
        deadline = self.clock.now() + timedelta(seconds=self.o.slew_timeout_s)
        while self.driver.is_slewing():
            if self.clock.now() >= deadline:
                self.driver.stop()
                raise DriverError(f"the {what} did not end within {self.o.slew_timeout_s:.0f} "
                                  "s (slew aborted)")
            if not self.clock.sleep(self.o.poll_s, self.stop):
                self.driver.stop()
                raise _Stopped()

    # one item --------------------------------------------------------------------------
    def _item(self, k: int, item: PlanItem, frames: int) -> None:
        self._frames_now = 0
        self._check_night()
        exp = timedelta(seconds=item.exposure_s)
        self._wait_until(item.start, k, item)  # returns at once when the start has passed
        self._check_night()
        if self.clock.now() + exp > item.end:
            self._skip(k, item, "its window has passed (never run late)")
            return
        dusk = self.safety.dusk()
        if dusk is not None and self.clock.now() < dusk < item.end:
            self._wait_until(dusk + timedelta(seconds=1), k, item)  # the sun, not a skip
        try:
            track = self.safety.track(item.ra_deg, item.dec_deg, self.clock.now(), item.end)
            self._j("gate", "", i=k, item=item)
            self.safety.gate_slew(track, item.end)
            self._point(k, item, track)
            self._capture(k, item, track, frames)
        except Refusal as r:
            if r.code == "dawn":
                if self._frames_now:
                    self._j("done", f"{self._frames_now} frames; ended at dawn", i=k, item=item,
                            frames=self._frames_now)
                    self.result.items_done.append(item.target)
                raise _NightOver("dawn") from None
            if r.code in ("clock", "motion", "preflight", "site"):
                raise _NightOver(f"refused: {r.reason}") from None
            self._skip(k, item, r.reason)
        except ConnectionLost:
            raise
        except DriverError as exc:
            self.driver.stop()
            self._skip(k, item, f"the telescope failed: {exc}")

    def _skip(self, k: int, item: PlanItem, why: str) -> None:
        log.info("%s skipped: %s", item.target, why)
        self._j("skip", why, i=k, item=item)
        self.result.items_skipped.append((item.target, why))

    def _point(self, k: int, item: PlanItem, track: Track) -> None:
        if self.driver.is_parked():
            self.safety.gate_unpark()
            self._moved = True
            self.driver.unpark()
            self._j("unpark", "", i=k, item=item)
        self._moved = True
        self.driver.goto(item.ra_deg, item.dec_deg, item.target)
        self._j("slew", f"RA {item.ra_deg:.4f} Dec {item.dec_deg:+.4f} (ICRS)", i=k, item=item)
        self._wait_slew("slew")
        if not self.clock.sleep(self.o.settle_s, self.stop):
            raise _Stopped()
        self._j("settle", f"{self.o.settle_s:g} s", i=k, item=item)

    def _capture(self, k: int, item: PlanItem, track: Track, frames: int) -> None:
        verified = self.verify is None
        while frames < item.frames:
            self._check_night()
            if self.clock.now() + timedelta(seconds=item.exposure_s) > item.end:
                break
            self.safety.gate_frame(track, item.exposure_s)
            exp = self.driver.capture(item.exposure_s, timeout_s=self.o.image_timeout_s,
                                      stop=self.stop, tick=self.safety.check_clock)
            if exp is None:
                raise _Stopped()
            path = write_light(self.folder, exp, target=item.target, ra_deg=item.ra_deg,
                               dec_deg=item.dec_deg, settings=self.settings,
                               plan_hash=self.plan.hash)
            frames += 1
            self._frames_now = frames
            self.result.frames += 1
            self.result.paths.append(path)
            self._j("frame", path.name, i=k, item=item, frames=frames)
            if not verified:
                verified = True
                self._verify(k, item, track, path)
        self._j("done", f"{frames} frames", i=k, item=item, frames=frames)
        self.result.items_done.append(item.target)

    def _verify(self, k: int, item: PlanItem, track: Track, path: Path) -> None:
        assert self.verify is not None
        try:
            centre = self.verify(path)
        except Exception as exc:  # a solver failure never stops the night
            centre = None
            log.warning("pointing check of %s failed: %s", path.name, exc)
        if centre is None:
            self._j("verify", "not solved: pointing not verified", i=k, item=item)
            return
        ra, dec = centre
        d_ra = ((item.ra_deg - ra + 180.0) % 360.0) - 180.0
        d_dec = item.dec_deg - dec
        off = math.hypot(d_ra * math.cos(math.radians(item.dec_deg)), d_dec)
        if off <= self.o.pointing_tolerance_deg:
            self._j("verify", f"on target ({off * 60:.1f}')", i=k, item=item)
            return
        self._j("verify", f"off by {off * 60:.1f}': correcting once", i=k, item=item)
        self.safety.gate_slew(track, item.end)
        self.driver.goto((item.ra_deg + d_ra) % 360.0, item.dec_deg + d_dec, item.target)
        self._wait_slew("corrective slew")
        if not self.clock.sleep(self.o.settle_s, self.stop):
            raise _Stopped()

    # parking ---------------------------------------------------------------------------
    def park(self, why: str) -> bool:
        """A verified park (:func:`verified_park`), recorded in the result."""
        ok, alarm = verified_park(self.driver, self.clock, self.journal, self.o, why,
                                  night=self.plan.night, plan_hash=self.plan.hash)
        self.result.parked = ok
        self.result.alarm = alarm
        return ok


def _park_once(driver: Driver, clock: Clock, o: RunnerOptions) -> bool:
    if driver.is_parked():
        return True
    driver.stop()
    driver.park()
    deadline = clock.now() + timedelta(seconds=o.park_timeout_s)
    while clock.now() < deadline:
        if driver.is_parked():
            return True
        clock.sleep(o.poll_s)
    return driver.is_parked()


def verified_park(driver: Driver, clock: Clock, journal: TelescopeJournal,
                  o: RunnerOptions, why: str, *, night: str | None = None,
                  plan_hash: str | None = None) -> tuple[bool, str | None]:
    """Park and read ``AtPark`` back (S5), retrying with backoff; on failure an alarm: an ERROR
    log line, ``park_failed`` in the journal and ``alarm`` in the telescope state (shown by
    ``starnode status``). Never recorded as parked unless the mount said so. Not interruptible:
    a stop request is what asked for the park.

    Returns
    -------
    (bool, str or None)
        Parked, and the alarm text when not.
    """
    def j(step: str, detail: str) -> None:
        journal.record(clock.now(), step, detail, night=night, plan_hash=plan_hash)

    j("park", why)
    err = ""
    for attempt in range(o.park_attempts):
        try:
            if _park_once(driver, clock, o):
                j("parked", f"AtPark true ({why})")
                journal.set_state(clock.now(), parked="yes", alarm=None)
                log.info("telescope parked (%s)", why)
                return True, None
            err = f"AtPark still false {o.park_timeout_s:.0f} s after park"
        except ConnectionLost as exc:
            err = f"no connection: {exc}"
            with contextlib.suppress(DriverError):
                driver.connect()
        except DriverError as exc:
            err = str(exc)
        j("park_retry", f"attempt {attempt + 1}: {err}")
        if attempt + 1 < o.park_attempts:
            clock.sleep(o.park_backoff_s * 2 ** attempt)
    alarm = (f"PARK FAILED after {o.park_attempts} attempts ({err}): the telescope may be "
             "pointing at the sky; park it by hand or run 'starnode park'")
    log.error(alarm)
    j("park_failed", alarm)
    journal.set_state(clock.now(), parked="no", alarm=alarm)
    return False, alarm
