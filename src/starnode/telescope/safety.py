"""The safety manager: every rule that can stop the telescope, failing closed.

Rules (docs/telescope.md explains each and why):

- **S1 fail closed**: no motion without a configured site, a plausible clock and a working
  ephemeris (:meth:`SafetyManager.preflight`); any error while checking is a refusal.
- **S2 sun**: no unpark, slew or exposure with the sun above ``sun_limit``; no slew within
  :data:`SUN_AVOID_DEG` of the sun; the night ends at the *dawn crossing*, an event computed for
  the night (:func:`starnode.telescope.sky.night_events`), so dusk is never taken for dawn.
- **S3 envelope**: never below the floor (``min_altitude`` and the ``horizon`` mask) or above
  ``max_altitude``, over the item's whole remaining window at slew time and over every frame.
- **S7 motion is opt-in**: ``telescope.motion: true``.

The manager computes the sky itself from the site and the clock; it never trusts the plan.
A refusal is a :class:`Refusal` with a sentence a member can hear and a short ``code``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np

from .clock import Clock
from .settings import TelescopeSettings
from .sky import NightEvents, NightSky, Track, night_events

log = logging.getLogger(__name__)

__all__ = ["EARLIEST_PLAUSIBLE", "SUN_AVOID_DEG", "Refusal", "SafetyManager"]

#: No slew ends, starts or passes this close to the sun (degrees).
SUN_AVOID_DEG = 45.0
#: A clock earlier than this is not plausible (not set: a Raspberry Pi without RTC boots in 1970
#: or at its last shutdown time).
EARLIEST_PLAUSIBLE = datetime(2025, 1, 1, tzinfo=UTC)
#: The clock going back by more than this is a step, not jitter: motion stops.
CLOCK_BACKSTEP_S = 60.0


class Refusal(Exception):
    """A safety rule refuses; ``str()`` is the reason in words, :attr:`code` is its key."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _noon_before(night: str, lon_deg: float) -> datetime:
    d = datetime.fromisoformat(night).replace(tzinfo=UTC)
    return d.replace(hour=12) - timedelta(hours=lon_deg / 15)


class SafetyManager:
    """Gates for one night.

    Parameters
    ----------
    settings : TelescopeSettings
        Limits and the site.
    clock : Clock
        The clock whose ``now`` every check uses.
    events : callable, optional
        ``(site, night, limit) -> NightEvents`` (tests inject a broken ephemeris).
    """

    def __init__(self, settings: TelescopeSettings, clock: Clock, *,
                 events: Callable[..., NightEvents] = night_events) -> None:
        self.s = settings
        self.clock = clock
        self._events_fn = events
        self.events: NightEvents | None = None
        self.sky: NightSky | None = None
        self.night: str | None = None
        self._last_now: datetime | None = None
        mask = sorted(settings.horizon)
        self._mask_az = np.array([a for a, _ in mask], dtype=float)
        self._mask_alt = np.array([h for _, h in mask], dtype=float)

    # S1 ----------------------------------------------------------------------------
    def preflight(self, night: str) -> NightEvents:
        """Check the site, the clock and the ephemeris for ``night``; tabulate the sun.

        Raises
        ------
        Refusal
            ``site``, ``clock`` or ``ephemeris``.
        """
        site = self.s.site
        if site is None:
            raise Refusal("site", "no site is configured (site.latitude and site.longitude): "
                          "without it the sun and the altitudes cannot be computed")
        if site.lat_deg == 0.0 and site.lon_deg == 0.0:
            raise Refusal("site", "the site is 0/0 (latitude and longitude not set): refusing "
                          "to compute the sky for the Gulf of Guinea")
        self.check_clock()
        now = self.clock.now()
        start = _noon_before(night, site.lon_deg)
        if not start - timedelta(hours=12) <= now <= start + timedelta(hours=24):
            raise Refusal("clock", f"the clock says {now:%Y-%m-%d %H:%M} UTC, which is not "
                          f"during the night of {night}: is the clock or the plan wrong?")
        try:
            events = self._events_fn(site, night, self.s.sun_limit)
            sky = NightSky(site, start, start + timedelta(hours=24))
            alt = sky.sun_alt(now)
            if not math.isfinite(alt) or not -90.0 <= alt <= 90.0:
                raise ValueError(f"sun altitude {alt!r}")
        except Refusal:
            raise
        except Exception as exc:  # any failure of the ephemeris is a refusal (fail closed)
            raise Refusal("ephemeris", f"the ephemeris does not work ({exc}): the sun cannot "
                          "be computed, so nothing moves") from exc
        self.events, self.sky, self.night = events, sky, night
        return events

    def check_clock(self) -> datetime:
        """The current time, if plausible.

        Raises
        ------
        Refusal
            ``clock``: before :data:`EARLIEST_PLAUSIBLE`, or stepped back.
        """
        now = self.clock.now()
        if now.tzinfo is None or now < EARLIEST_PLAUSIBLE:
            raise Refusal("clock", f"the clock says {now}, which cannot be right (not set?): "
                          "nothing moves until it is")
        if self._last_now is not None and (self._last_now - now).total_seconds() \
                > CLOCK_BACKSTEP_S:
            back = (self._last_now - now).total_seconds()
            self._last_now = now
            raise Refusal("clock", f"the clock went back by {back:.0f} s: times and the sun "
                          "cannot be trusted until it is steady")
        self._last_now = now
        return now

    def _ready(self) -> tuple[NightSky, NightEvents]:
        if self.sky is None or self.events is None:
            raise Refusal("preflight", "the safety checks have not run for this night")
        return self.sky, self.events

    # S7 ----------------------------------------------------------------------------
    def check_motion_enabled(self) -> None:
        if not self.s.motion:
            raise Refusal("motion", "motion is off (telescope.motion: false): nothing moves "
                          "until you turn it on")

    # S2 ----------------------------------------------------------------------------
    def sun_alt(self, t: datetime | None = None) -> float:
        sky, _ = self._ready()
        return sky.sun_alt(t or self.clock.now())

    def check_sun(self, t: datetime | None = None, what: str = "move") -> None:
        """Refuse when the sun is above the limit at ``t`` (default now)."""
        t = t or self.check_clock()
        alt = self.sun_alt(t)
        if alt > self.s.sun_limit:
            raise Refusal("sun", f"the sun is at {alt:.1f} deg, above the limit "
                          f"{self.s.sun_limit:g} deg: no {what}")

    def dusk(self) -> datetime | None:
        """The night's dusk event (None: no downward crossing, e.g. a polar night)."""
        return self._ready()[1].dusk

    def dawn(self) -> datetime | None:
        """The night's dawn event (None: the sun does not rise through the limit)."""
        return self._ready()[1].dawn

    def check_before_dawn(self, until: datetime) -> None:
        dawn = self.dawn()
        if dawn is not None and until > dawn:
            raise Refusal("dawn", f"dawn (the sun rising through {self.s.sun_limit:g} deg) is "
                          f"at {dawn:%H:%M:%S} UTC")

    # S3 ----------------------------------------------------------------------------
    def floor(self, az: float) -> float:
        """The lowest allowed altitude at azimuth ``az``: min_altitude or the horizon mask."""
        if self._mask_az.size == 0:
            return self.s.min_altitude
        az = az % 360.0
        xs = np.concatenate([self._mask_az - 360.0, self._mask_az, self._mask_az + 360.0])
        ys = np.concatenate([self._mask_alt] * 3)
        return max(self.s.min_altitude, float(np.interp(az, xs, ys)))

    def check_envelope(self, track: Track, start: datetime, end: datetime) -> None:
        """Refuse when the position leaves [floor, ceiling] anywhere in ``[start, end]``."""
        for t, alt, az in track.between(start, end):
            if alt < self.floor(az):
                raise Refusal("altitude", f"the target is at {alt:.1f} deg (azimuth {az:.0f}) "
                              f"at {t:%H:%M} UTC, below the floor {self.floor(az):.0f} deg")
            if alt > self.s.max_altitude:
                raise Refusal("altitude", f"the target is at {alt:.1f} deg at {t:%H:%M} UTC, "
                              f"above the ceiling {self.s.max_altitude:g} deg")

    # the gates the runner calls ------------------------------------------------------
    def track(self, ra_deg: float, dec_deg: float, start: datetime, end: datetime) -> Track:
        if self.s.site is None:
            raise Refusal("site", "no site is configured")
        return Track(self.s.site, ra_deg, dec_deg, start, end)

    def gate_unpark(self) -> None:
        self.check_motion_enabled()
        self.check_sun(what="unpark")

    def gate_slew(self, track: Track, end: datetime) -> None:
        """Before a slew: motion on, sun down, away from the sun, envelope until ``end``."""
        self.check_motion_enabled()
        now = self.check_clock()
        self.check_sun(now, "slew")
        self._away_from_sun(track, now, ": no slew")
        self.check_envelope(track, now, max(now, end))

    def check_observable(self, track: Track, start: datetime, end: datetime) -> None:
        """Whether the target can be observed from ``start`` to ``end`` (an alert's minimum
        window), moving nothing: the sun down at both ends and before dawn, the target away
        from the sun and inside the envelope throughout.

        Raises
        ------
        Refusal
            The first gate that fails, in words.
        """
        self.check_before_dawn(end)
        self.check_sun(start, "observation")
        self.check_sun(end, "observation")
        self._away_from_sun(track, start)
        self.check_envelope(track, start, end)

    def _away_from_sun(self, track: Track, t: datetime, then: str = "") -> None:
        """Refuse a target closer than ``SUN_AVOID_DEG`` to the sun at ``t`` (``then``: what
        the refusal adds, such as ": no slew")."""
        sky, _ = self._ready()
        sep = sky.sun_separation(t, track.ra, track.dec)
        if sep < SUN_AVOID_DEG:
            raise Refusal("sun", f"the target is {sep:.0f} deg from the sun (the limit is "
                          f"{SUN_AVOID_DEG:g} deg){then}")

    def gate_frame(self, track: Track, exposure_s: float) -> None:
        """Before each frame: sun down at its start and end, before dawn, in the envelope."""
        self.check_motion_enabled()
        now = self.check_clock()
        end = now + timedelta(seconds=exposure_s)
        self.check_before_dawn(end)
        self.check_sun(now, "exposure")
        self.check_sun(end, "exposure")
        self.check_envelope(track, now, end)
