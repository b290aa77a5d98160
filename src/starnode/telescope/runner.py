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
from .network import Alert, NetworkLink, NewPlan, WeatherSource
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
    weather_every_s: float = 120.0  # how often a vetoed night asks the weather again


#: Journal item numbers of inserted alerts: ``ALERT_ITEM + alert id`` (plan items count from 0).
ALERT_ITEM = 100000


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
    assignments: list[str] = field(default_factory=list)  # hub assignments applied
    alerts: list[tuple[int, str]] = field(default_factory=list)  # (id, scheduled at / refused)
    weather: list[str] = field(default_factory=list)  # vetoes met


class _Stopped(Exception):
    """A stop request (SIGTERM/SIGINT) interrupted a step."""


class _NightOver(Exception):
    """Dawn (or a clock step) ends the night."""


class _Replan(Exception):
    """A new assignment of the hub was applied: go on with :attr:`Runner.plan`."""


class _Insert(Exception):
    """An alert is inserted at a safe boundary: observe ``item`` now, then go on."""

    def __init__(self, k: int, item: PlanItem) -> None:
        super().__init__(item.target)
        self.k, self.item = k, item


class _Veto(Exception):
    """The weather source vetoes: no new item, park, wait until it clears."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
    network : NetworkLink, optional
        The hub's assignment and alerts, asked at every safe boundary.
    weather : WeatherSource, optional
        A veto stops new items and parks until it clears.
    assignment : str, optional
        The hash of the hub assignment ``plan`` was made from (marked applied once the
        journal has it).
    """

    def __init__(self, plan: Plan, driver: Driver, safety: SafetyManager,
                 journal: TelescopeJournal, clock: Clock, settings: TelescopeSettings,
                 folder: str | Path, *, verify: Verifier | None = None,
                 options: RunnerOptions | None = None, stop: threading.Event | None = None,
                 network: NetworkLink | None = None, weather: WeatherSource | None = None,
                 assignment: str | None = None) -> None:
        self.plan, self.driver, self.safety, self.journal = plan, driver, safety, journal
        self.clock, self.settings, self.folder = clock, settings, Path(folder)
        self.verify = verify
        self.o = options or RunnerOptions()
        self.stop = stop or threading.Event()
        self.result = NightResult()
        self._moved = False  # an unpark or slew was sent: the night must end parked
        self._frames_now = 0  # frames of the current item (journaled with each)
        self.network, self.weather = network, weather
        self._applied = assignment  # the hub assignment the current plan was made from
        self._answered: set[int] = set()
        self._deferred: dict[int, datetime] = {}  # alert id -> observable from
        self._current: tuple[int, PlanItem] | None = None  # the item being observed

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
        if self._applied and self.network is not None:
            self._applied_now(NewPlan(self.plan, self._applied, self.plan.night))
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
        """Run the items in time order (the plan may be replaced at a safe boundary by a new
        assignment of the hub); with a network or a weather source, wait for alerts until
        dawn once the plan is done. Returns why the night ended."""
        while True:
            try:
                self._plan_items()
                if self.network is None and self.weather is None:
                    return "end of the plan"
                self._idle_until_dawn()
                return "end of the plan"
            except _Replan:
                continue
            except _Stopped:
                return "stop requested"
            except _NightOver as exc:
                return str(exc)
            except Refusal as r:  # the clock, between items
                self._j("refused", f"{r.code}: {r.reason}")
                return f"refused: {r.reason}"
            except ConnectionLost as exc:
                return f"connection lost: {exc}"

    def _plan_items(self) -> None:
        order = sorted(range(len(self.plan.items)), key=lambda k: self.plan.items[k].start)
        for k in order:
            item = self.plan.items[k]
            while True:
                prog = self.journal.progress(self.plan.hash).get(k, ItemProgress(0, False, ""))
                if prog.finished:
                    break
                try:
                    self._item_with_reconnect(k, item, prog.frames)
                    break
                except (_Insert, _Veto) as event:  # then the item goes on (if still open)
                    self._interlude(event)

    def _interlude(self, event: _Insert | _Veto | None) -> None:
        """An inserted alert, or a weather veto, at a safe boundary."""
        while event is not None:
            try:
                if isinstance(event, _Veto):
                    self._weather_wait(event.reason)
                else:
                    frames = self.journal.progress(self.plan.hash).get(
                        event.k, ItemProgress(0, False, "")).frames
                    self._item_with_reconnect(event.k, event.item, frames)
                event = None
            except (_Insert, _Veto) as nxt:
                event = nxt

    def _idle_until_dawn(self) -> None:
        """The plan is done: parked, wait for alerts or a new assignment until dawn."""
        dawn = self.safety.dawn()
        if dawn is None:
            return
        if self._moved:
            self._park_if_unparked("end of the plan; waiting for alerts until dawn")
        self._j("wait", f"for alerts or a new assignment until dawn ({dawn:%H:%M:%S} UTC)")
        while self.clock.now() < dawn:
            self._check_night()
            try:
                self._boundary()
            except (_Insert, _Veto) as event:
                self._interlude(event)
                continue
            if not self.clock.sleep(min(self.o.wait_chunk_s, max(
                    1.0, (dawn - self.clock.now()).total_seconds())), self.stop):
                raise _Stopped()
        raise _NightOver("dawn")

    # the network and the weather, at safe boundaries -------------------------------------
    def _boundary(self) -> None:
        """A safe boundary (between items, between frames, while waiting; never during an
        exposure): a weather veto, a new assignment of the hub, an alert."""
        if self.weather is not None:
            veto, why = self.weather.veto()
            if veto:
                raise _Veto(why or "the weather source says unsafe")
        if self.network is None:
            return
        now = self.clock.now()
        try:
            new = self.network.new_plan(now, self.plan.night, self._applied)
        except Exception as exc:  # the hub's wishes never stop the night
            log.error("observe: the hub's assignment cannot be planned: %s", exc)
            new = None
        if new is not None:
            self._apply(new)
        for alert in self.network.alerts():
            if alert.id in self._answered or now < self._deferred.get(alert.id, now):
                continue  # answered, or not observable before a later time
            self._alert(alert)

    def _applied_now(self, new: NewPlan) -> None:
        self._j("assignment", f"hub assignment {new.assignment} for {new.night}: plan "
                f"{new.plan.hash}, {len(new.plan.items)} items")
        self._applied = new.assignment
        self.network.applied(new.night, new.assignment)  # type: ignore[union-attr]
        self.result.assignments.append(new.assignment)

    def _apply(self, new: NewPlan) -> None:
        """Switch to the plan made from a new assignment (journaled, then acknowledged)."""
        same = new.plan.hash == self.plan.hash
        if not same and self._frames_now and self._current is not None:
            k, item = self._current  # the frames taken count; the item ends here
            self._j("done", f"{self._frames_now} frames; a new assignment of the hub", i=k,
                    item=item, frames=self._frames_now)
            self.result.items_done.append(item.target)
            self._frames_now = 0
        self._applied_now(new)
        log.info("observe: hub assignment %s applied: %s", new.assignment,
                 "the plan is unchanged" if same else f"plan {new.plan.hash}")
        if same:
            return
        self.plan = new.plan
        self._j("plan", f"{len(new.plan.items)} items from hub assignment {new.assignment}")
        raise _Replan()

    def _alert(self, alert: Alert) -> None:
        """Insert the alert now if the gates allow, else refuse it with the reason; the
        answer is recorded after the journal has it."""
        assert self.network is not None
        k = ALERT_ITEM + alert.id
        try:
            item = self._alert_item(alert)
        except Refusal as r:
            later = None if r.code in ("alert", "dawn") else self._observable_from(alert)
            if later is not None:  # not now, but later tonight: asked again then
                if alert.id not in self._deferred:
                    self._j("alert", f"alert {alert.id} {alert.target}: not now ({r.reason}); "
                            f"observable from {later:%H:%M} UTC")
                self._deferred[alert.id] = later
                return
            self._answered.add(alert.id)
            self._j("alert", f"alert {alert.id} {alert.target} refused: {r.reason}")
            self._answer(alert.id, refused=r.reason)
            return
        self._answered.add(alert.id)
        now = self.clock.now()
        self._j("alert", f"alert {alert.id} {alert.target}: scheduled at {now:%H:%M:%S} UTC "
                f"until {item.end:%H:%M:%S} UTC", i=k, item=item)
        self._answer(alert.id, scheduled_at=now)
        raise _Insert(k, item)

    def _answer(self, alert_id: int, *, scheduled_at: datetime | None = None,
                refused: str | None = None) -> None:
        assert self.network is not None
        self.result.alerts.append((alert_id, f"scheduled at {scheduled_at:%Y-%m-%dT%H:%M:%SZ}"
                                   if scheduled_at else f"refused: {refused}"))
        try:
            self.network.answer(alert_id, scheduled_at=scheduled_at, refused=refused)
        except Exception as exc:  # the journal has it; the answer is lost, not the night
            log.error("observe: the answer to alert %d was not recorded: %s", alert_id, exc)

    def _alert_item(self, alert: Alert) -> PlanItem:
        """The alert as an item from now, if observable for the minimum window.

        Raises
        ------
        Refusal
            With the reason (the sun, dawn, below the floor or horizon, above the ceiling, too
            close to the sun, its window ends too soon).
        """
        assert self.network is not None
        now = self.safety.check_clock()
        minutes = float(self.network.min_alert_minutes)
        min_end = now + timedelta(minutes=minutes)
        end = now + timedelta(minutes=float(self.network.alert_slot_minutes))
        if alert.end is not None:
            if alert.end < min_end:
                raise Refusal("alert", f"its window ends at {alert.end:%H:%M} UTC, less than "
                              f"{minutes:g} minutes from now")
            end = min(end, alert.end)
        dawn = self.safety.dawn()
        if dawn is not None:
            if min_end > dawn:
                raise Refusal("dawn", f"dawn ({dawn:%H:%M} UTC) is less than {minutes:g} "
                              "minutes away")
            end = min(end, dawn)
        track = self.safety.track(alert.ra_deg, alert.dec_deg, now, max(end, min_end))
        self.safety.check_observable(track, now, min_end)
        for t, alt, az in track.between(min_end, end):  # cut where it leaves the envelope
            if not self.safety.floor(az) <= alt <= self.settings.max_altitude:
                end = t
                break
        frames = max(1, int((end - now).total_seconds() // (alert.exposure_s + 2.0)))
        return PlanItem(alert.target, alert.ra_deg, alert.dec_deg, now, end, alert.exposure_s,
                        frames, reason=f"hub alert {alert.id}")

    def _observable_from(self, alert: Alert) -> datetime | None:
        """The start of the first later stretch of ``min_alert_minutes`` in which the target
        is inside the envelope with the sun down, before dawn and the alert's end (minute
        by minute); None when there is none (the refusal is then final)."""
        assert self.network is not None
        now = self.clock.now()
        until = self.safety.dawn() or now + timedelta(hours=12)
        if alert.end is not None:
            until = min(until, alert.end)
        need = timedelta(minutes=float(self.network.min_alert_minutes))
        if until - now < need:
            return None
        track = self.safety.track(alert.ra_deg, alert.dec_deg, now, until)
        run: datetime | None = None
        for t, alt, az in track.between(now, until, 60.0):
            ok = (self.safety.floor(az) <= alt <= self.settings.max_altitude
                  and self.safety.sun_alt(t) <= self.settings.sun_limit)
            run = (run or t) if ok else None
            if run is not None and t - run >= need:
                return run if run > now + timedelta(minutes=1) else None
        return None

    def _weather_wait(self, reason: str) -> None:
        """W1: a veto stops new items and parks; wait (parked) until it clears or dawn."""
        log.warning("observe: weather veto: %s; parking", reason)
        self._j("weather", f"veto: {reason}: no new items; parking")
        self.result.weather.append(reason)
        if self.network is not None:
            for alert in self.network.alerts():
                if alert.id not in self._answered:
                    self._answered.add(alert.id)
                    self._j("alert", f"alert {alert.id} {alert.target} refused: weather "
                            f"veto: {reason}")
                    self._answer(alert.id, refused=f"weather veto: {reason}")
        self._park_if_unparked(f"weather veto: {reason}")
        assert self.weather is not None
        while True:
            self._check_night()
            if not self.clock.sleep(self.o.weather_every_s, self.stop):
                raise _Stopped()
            veto, why = self.weather.veto()
            if not veto:
                self._j("weather", "clear again: resuming")
                log.info("observe: the weather veto is lifted; resuming")
                return
            reason = why or reason

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
            self._boundary()
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
        self._current = (k, item)
        self._check_night()
        self._boundary()
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
            self._boundary()  # between frames: never mid-exposure
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
        self._frames_now = 0

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
