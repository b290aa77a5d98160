"""The telescope driver interface (connect, state, goto, capture, stop, park, unpark) and the
drivers that need no hardware: ``none`` (nothing moves) and the simulated mount used by
``starnode observe --dry-run``.

A driver only *sends*; it never decides whether a command is safe (that is
:mod:`starnode.telescope.safety`) and never claims a park it did not see (:attr:`MountState.
parked` is what the mount reports). Every command sent is appended to :attr:`Driver.commands`
with the time it was sent, so tests and ``--dry-run`` show the exact sequence.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from .clock import Clock
from .coords import to_mount
from .settings import Site

log = logging.getLogger(__name__)

__all__ = ["Command", "ConnectionLost", "Driver", "DriverError", "Exposure", "MotionDisabled",
           "MountState", "NoneDriver", "SimDriver"]


class DriverError(Exception):
    """The mount or camera refused or failed a command (the message says which)."""


class ConnectionLost(DriverError):
    """The device does not answer (connection refused, reset, timed out)."""


class MotionDisabled(DriverError):
    """The ``none`` driver: nothing moves."""


@dataclass(frozen=True)
class MountState:
    """What the mount reports (nothing inferred)."""

    connected: bool
    parked: bool
    slewing: bool
    tracking: bool = False
    ra_deg: float | None = None  # in the mount's equatorial system
    dec_deg: float | None = None
    equatorial_system: str = "unknown"  # topocentric | J2000 | J2050 | other | unknown
    alignment: str = "unknown"  # altaz | polar | germanpolar | unknown


@dataclass(frozen=True)
class Command:
    """One command sent to a device."""

    t: datetime
    device: str  # telescope | camera
    name: str
    args: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        args = " ".join(f"{k}={v}" for k, v in self.args.items())
        return f"{self.t:%Y-%m-%dT%H:%M:%SZ} {self.device} {self.name} {args}".rstrip()


@dataclass(frozen=True)
class Exposure:
    """A finished exposure: the pixels and when it started by the host's clock."""

    data: np.ndarray
    start: datetime
    exposure_s: float


class Driver:
    """The interface; subclasses implement the ``_`` primitives.

    Parameters
    ----------
    site : Site
        For coordinate conversion (the mount's equatorial system is apparent, of date).
    clock : Clock
        Times commands and polls.
    """

    name = "abstract"
    poll_s = 1.0

    def __init__(self, site: Site | None, clock: Clock) -> None:
        self.site = site
        self.clock = clock
        self.commands: list[Command] = []
        self._lock = threading.Lock()

    def _log(self, device: str, name: str, **args: Any) -> None:
        with self._lock:
            self.commands.append(Command(self.clock.now(), device, name, args))
        log.debug("%s %s %s", device, name, args)

    # the interface -----------------------------------------------------------------
    def connect(self) -> None:
        raise NotImplementedError

    def disconnect(self) -> None:
        """Best effort; never raises."""

    def state(self) -> MountState:
        raise NotImplementedError

    def is_slewing(self) -> bool:
        """``Slewing`` alone (polled while a slew runs)."""
        return self.state().slewing

    def is_parked(self) -> bool:
        """``AtPark`` alone: the only evidence of a park."""
        return self.state().parked

    def unpark(self) -> None:
        raise NotImplementedError

    def park(self) -> None:
        """Start parking; whether the mount *is* parked is :meth:`state`'s ``parked``."""
        raise NotImplementedError

    def goto(self, ra_deg: float, dec_deg: float, name: str) -> None:
        """Start a slew to an ICRS position (converted to the mount's system at send time)."""
        raise NotImplementedError

    def stop(self) -> None:
        """Abort a slew and an exposure in progress (best effort; never raises)."""

    def start_exposure(self, seconds: float) -> None:
        raise NotImplementedError

    def image_ready(self) -> bool:
        raise NotImplementedError

    def image(self) -> np.ndarray:
        raise NotImplementedError

    def capture(self, seconds: float, *, timeout_s: float,
                stop: threading.Event | None = None,
                tick: Callable[[], object] | None = None) -> Exposure | None:
        """One exposure: start, wait for ``ImageReady`` (at most ``seconds + timeout_s``),
        download. None when stopped meanwhile. ``tick`` is called at every poll (the runner's
        clock check: it raises to abandon the frame).

        Raises
        ------
        DriverError
            The camera failed, or the image never became ready.
        """
        start = self.clock.now()
        self.start_exposure(seconds)
        if not self.clock.sleep(seconds, stop):
            self.stop()
            return None
        deadline = start + timedelta(seconds=seconds + timeout_s)
        while not self.image_ready():
            if tick is not None:
                try:
                    tick()
                except Exception:
                    self.stop()
                    raise
            if self.clock.now() >= deadline:
                self.stop()
                raise DriverError(f"the camera's image was not ready {timeout_s:.0f} s after "
                                  "the exposure ended")
            if not self.clock.sleep(self.poll_s, stop):
                self.stop()
                return None
        return Exposure(self.image(), start, seconds)


class NoneDriver(Driver):
    """``telescope.driver: none``: connects to nothing and moves nothing."""

    name = "none"

    def connect(self) -> None:
        raise MotionDisabled("telescope.driver is 'none': nothing moves (set telescope.driver: "
                             "alpaca to drive a telescope; 'starnode observe --dry-run' shows "
                             "what it would send)")

    def state(self) -> MountState:
        return MountState(connected=False, parked=True, slewing=False)


class SimDriver(Driver):
    """A perfect simulated mount and camera (``--dry-run``): commands are recorded, slews
    take ``slew_s`` on the clock, images are blank. Its equatorial system is ``topocentric``
    (what the Seestar is expected to report), so the coordinates printed are those sent."""

    name = "simulated"

    def __init__(self, site: Site | None, clock: Clock, *, slew_s: float = 20.0,
                 shape: tuple[int, int] = (8, 8), equatorial_system: str = "topocentric"
                 ) -> None:
        super().__init__(site, clock)
        self.slew_s = slew_s
        self.shape = shape
        self.system = equatorial_system
        self._connected = False
        self._parked = True
        self._slew_end: datetime | None = None
        self._exp_end: datetime | None = None
        self._radec: tuple[float, float] | None = None

    def connect(self) -> None:
        self._log("telescope", "connect")
        self._connected = True

    def state(self) -> MountState:
        now = self.clock.now()
        slewing = self._slew_end is not None and now < self._slew_end
        ra, dec = self._radec or (None, None)
        return MountState(self._connected, self._parked, slewing, not self._parked, ra, dec,
                          self.system, "altaz")

    def unpark(self) -> None:
        self._log("telescope", "unpark")
        self._parked = False

    def park(self) -> None:
        self._log("telescope", "park")
        self._parked = True
        self._slew_end = None

    def goto(self, ra_deg: float, dec_deg: float, name: str) -> None:
        if self.site is None:
            raise DriverError("no site: cannot convert coordinates")
        ra, dec = to_mount(ra_deg, dec_deg, self.system, self.clock.now(), self.site)
        self._log("telescope", "slewtocoordinatesasync", target=name,
                  RightAscension=f"{ra / 15:.5f}h", Declination=f"{dec:+.4f}",
                  system=self.system)
        self._radec = (ra, dec)
        self._slew_end = self.clock.now() + timedelta(seconds=self.slew_s)

    def stop(self) -> None:
        if self.state().slewing:
            self._log("telescope", "abortslew")
        self._slew_end = None

    def start_exposure(self, seconds: float) -> None:
        self._log("camera", "startexposure", Duration=seconds, Light=True)
        self._exp_end = self.clock.now() + timedelta(seconds=seconds)

    def image_ready(self) -> bool:
        return self._exp_end is not None and self.clock.now() >= self._exp_end

    def image(self) -> np.ndarray:
        self._log("camera", "imagearray")
        return np.zeros(self.shape, dtype=np.uint16)
