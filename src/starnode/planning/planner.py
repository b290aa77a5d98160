"""Tonight's plan: which candidates to observe, when (absolute UTC) and with what exposures.

:func:`plan_night` is the one entry point (the telescope runner, ``starnode plan`` and the hub
call it). For the night's dark window (the sun at or below ``telescope.sun_limit``) it samples
every candidate's altitude and azimuth, the Moon and the sun on one time grid (one vectorised
astropy transform, inside an offline IERS context), applies the hard gates - each refusal
recorded with its reason - then scores the survivors (AAVSO alerts and campaigns first, then
cadence debt, then altitude) and packs them greedily into slots. Every window is verified minute
by minute at the end: the altitude floor, the horizon mask, the ceiling, the Moon and the sun
hold over the item's whole window, not only at its start. See docs/planning.md.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import astropy.units as u
import numpy as np
from astropy.time import Time

from starnode.config import Config, ConfigLike, resolve
from starnode.instruments import Instrument, model_from_header, profile
from starnode.store import ObservingHistory
from starnode.util.values import normalize_name

from .candidates import Candidate, config_candidates, merge_candidates
from .ephemeris import (
    DarkWindow,
    MoonTrack,
    Site,
    altaz,
    altaz_pairs,
    dark_window,
    datetime_grid,
    grid_offsets,
    moon_track,
    night_of,
    offline_iers,
    separation_deg,
    site_from_config,
    sun_altitudes,
    time_grid,
)
from .model import Exclusion, Plan, PlanItem

log = logging.getLogger(__name__)

__all__ = ["choose_exposure", "deg", "horizon_floor", "instrument_for", "plan_night",
           "snr_calibration"]

#: Cadence debt of a target never measured here (capped debts stay below the alert bonus).
NEVER_OBSERVED_DEBT = 10.0
ALERT_BONUS = 1000.0


def deg(value: float) -> str:
    """``−12°`` (a true minus sign, as a member hears it), ``30°``, ``12.5°``."""
    text = f"{abs(value):.1f}".rstrip("0").rstrip(".")
    return f"{'−' if value < 0 and text != '0' else ''}{text}°"


def instrument_for(config: Config) -> Instrument:
    """``telescope.model``, else the model the latest measured frame names, else the S50; the
    ``generic`` profile takes its camera numbers from the config's ``camera`` section."""
    cfg = config
    if cfg.telescope.model:
        inst = profile(cfg.telescope.model)
    else:
        text = ObservingHistory(cfg.db_path).latest_telescope() if cfg.db_path.exists() else None
        inst = profile(model_from_header({"INSTRUME": text}) if text else None)
    if inst.model == "generic":  # the camera section describes it
        cam = cfg.camera
        inst = replace(inst, gain_e_per_adu=float(cam.gain_e_per_adu),
                       read_noise_e=float(cam.read_noise_e),
                       linearity_limit_adu=float(cam.saturation_adu),
                       aperture_mm=float(cam.aperture_mm),
                       pixel_scale_arcsec=float(cam.pixel_scale_arcsec
                                                or inst.pixel_scale_arcsec),
                       zeropoint_e=inst.zeropoint_e + 5.0 * math.log10(
                           float(cam.aperture_mm) / inst.aperture_mm))
    return inst


def horizon_floor(config: Config, az_deg: Any) -> np.ndarray:
    """The lowest altitude allowed at each azimuth: the higher of ``telescope.min_altitude``
    and the horizon mask (linearly interpolated, wrapping at 360°)."""
    tel = config.telescope
    az = np.asarray(az_deg, dtype=float)
    floor = np.full(az.shape, float(tel.min_altitude))
    if tel.horizon:
        pts = sorted((float(a) % 360.0, float(h)) for a, h in tel.horizon)
        mask = np.interp(az % 360.0, [p[0] for p in pts], [p[1] for p in pts], period=360.0)
        floor = np.maximum(floor, mask)
    return floor


def snr_calibration(inst: Instrument, samples: Sequence[tuple[float, float, float]],
                    min_samples: int = 5) -> tuple[float, int]:
    """The factor that brings the instrument's S/N model to the S/N this node measured
    (median of measured / modelled over ``(mag, exposure_s, snr)`` samples; 1 with fewer than
    ``min_samples``), and the number of samples used."""
    ratios = []
    for mag, exp, snr in samples:
        model = inst.snr(mag, exp)
        if model > 0 and snr > 0:
            ratios.append(snr / model)
    if len(ratios) < min_samples:
        return 1.0, len(ratios)
    return float(np.clip(np.median(ratios), 0.1, 10.0)), len(ratios)


def choose_exposure(inst: Instrument, brightest: float | None, faintest: float | None, *,
                    min_snr: float, snr_scale: float = 1.0, expert: bool = True
                    ) -> tuple[float | None, str | None, str]:
    """The longest frame that does not saturate the brightest magnitude and whose S/N at the
    faintest reaches ``min_snr``.

    Returns
    -------
    (exposure_s, code, reason)
        ``exposure_s`` None with ``code`` (``saturates``, ``too_faint``, ``unknown_range``)
        and the reason in words when no exposure will do.
    """
    if brightest is None and faintest is None:
        return None, "unknown_range", "its magnitude range is unknown (give brightest and " \
            "faintest, or a name VSX knows)"
    bright = brightest if brightest is not None else faintest
    faint = faintest if faintest is not None else brightest
    assert bright is not None and faint is not None
    options = inst.allowed_exposures(altaz=True, expert=expert)
    fitting = [e for e in options if not inst.saturates(bright, e)]
    if not fitting:
        shortest = options[0]
        return None, "saturates", (f"at {bright:g} mag (its brightest) it saturates even in "
                                   f"{shortest:g}-second frames (the limit is "
                                   f"{inst.saturation_mag(shortest):.1f} mag)")
    exposure = max(fitting)
    snr = inst.snr(faint, exposure) * snr_scale
    if snr < min_snr:
        return None, "too_faint", (f"at {faint:g} mag (its faintest) it reaches S/N "
                                   f"{snr:.0f} in {exposure:g}-second frames; {min_snr:g} is "
                                   "needed")
    return exposure, None, ""


@dataclass
class _Live:
    """A candidate that passed the gates that need no ephemeris."""

    cand: Candidate
    exposure_s: float
    debt: float
    debt_text: str


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` (stop exclusive) of every run of True."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.nonzero(edges == 1)[0].tolist(), np.nonzero(edges == -1)[0].tolist(),
                    strict=True))


def _minute_ceil(t: datetime) -> datetime:
    f = t.replace(second=0, microsecond=0)
    return f if f == t else f + timedelta(minutes=1)


def _minute_floor(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


class _Night:
    """The grid of one night and the gates evaluated on it."""

    def __init__(self, cfg: Config, site: Site, dark: DarkWindow, inst: Instrument,
                 start: datetime, end: datetime) -> None:
        self.cfg, self.site, self.dark, self.inst = cfg, site, dark, inst
        self.pl = cfg.planning
        self.start, self.end = start, end
        self.step_s = float(self.pl.step_minutes) * 60.0
        self.times = time_grid(self.start, self.end, self.step_s)
        self.dts = datetime_grid(self.start, self.end, self.step_s)
        self.moon = moon_track(site, self.times)
        self.sun = sun_altitudes(site, self.times)
        self._jd = np.asarray(self.times.jd, dtype=float)

    def moon_at(self, times: Time) -> MoonTrack:
        """The Moon at other times within the night, interpolated (it moves ~0.5°/h)."""
        jd = np.asarray(times.jd, dtype=float)
        az = np.degrees(np.unwrap(np.radians(self.moon.az_deg)))
        return MoonTrack(np.interp(jd, self._jd, self.moon.alt_deg),
                         np.interp(jd, self._jd, az) % 360.0,
                         np.interp(jd, self._jd, self.moon.illumination))

    def sun_at(self, times: Time) -> np.ndarray:
        """The sun's altitude at other times within the night, interpolated."""
        return np.interp(np.asarray(times.jd, dtype=float), self._jd, self.sun)

    def gates(self, alt: np.ndarray, az: np.ndarray, moon: Any = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(high-enough, altitude-ok, moon-ok) masks, shaped like ``alt``."""
        tel, pl = self.cfg.telescope, self.pl
        moon = moon or self.moon
        floor = horizon_floor(self.cfg, az)
        high = alt >= floor
        alt_ok = high & (alt <= float(tel.max_altitude))
        up = moon.alt_deg > 0.0
        required = np.maximum(float(pl.moon_min_separation),
                              float(pl.moon_full_separation) * moon.illumination)
        sep = separation_deg(alt, az, moon.alt_deg, moon.az_deg)
        moon_ok = ~up | (sep >= required)
        if float(pl.moon_max_illumination) < 1.0:
            moon_ok &= ~(up & (moon.illumination > float(pl.moon_max_illumination)))
        return high, alt_ok, moon_ok

    def why_never(self, i: int, alt: np.ndarray, az: np.ndarray, high: np.ndarray,
                  alt_ok: np.ndarray, moon_ok: np.ndarray, kmin: int) -> tuple[str, str]:
        """``(code, reason)`` of a target that has no window at all."""
        tel = self.cfg.telescope
        floor = float(tel.min_altitude)
        top = float(alt[i].max())
        if top < floor:
            return "altitude", f"below {deg(floor)} all night (at most {deg(round(top))})"
        if not high[i].any():
            return "horizon", "hidden by the horizon mask all night"
        if not alt_ok[i].any():
            return "ceiling", (f"above the {deg(float(tel.max_altitude))} ceiling whenever it "
                               f"is above {deg(floor)}")
        seg_alt = alt_ok[i, :-1] & alt_ok[i, 1:]
        if not any(b - a >= kmin for a, b in _runs(seg_alt)):
            return "altitude", (f"high enough for less than {self.pl.min_slot_minutes:g} "
                                "minutes at a time")
        j = int(np.argmax(np.where(alt_ok[i], alt[i], -99)))
        illum = float(self.moon.illumination[j])
        if self.moon.alt_deg[j] > 0 and illum > float(self.pl.moon_max_illumination):
            return "moon", (f"the Moon is up and {illum * 100:.0f}% illuminated whenever it is "
                            "high enough")
        sep = float(separation_deg(alt[i, j], az[i, j], self.moon.alt_deg[j],
                                   self.moon.az_deg[j]))
        return "moon", (f"too close to the Moon whenever it is high enough ({sep:.0f}° away, "
                        f"{self.moon.illumination[j] * 100:.0f}% illuminated)")


def _gate_static(cfg: Config, inst: Instrument, cands: Sequence[Candidate], ref_jd: float,
                 last: dict[str, float], snr_scale: float
                 ) -> tuple[list[_Live], list[Exclusion]]:
    """Gates that need no ephemeris: resolved, cadence, saturation and faintness."""
    pl = cfg.planning
    live, out = [], []
    for c in cands:
        if c.problem or c.ra_deg is None or c.dec_deg is None:
            out.append(Exclusion(c.name, c.problem or "no coordinates", "unresolved"))
            continue
        cadence = float(c.cadence_days if c.cadence_days is not None else pl.cadence_days)
        seen = last.get(normalize_name(c.name))
        if seen is not None:
            days = ref_jd - seen
            if days < cadence:
                unit = "day" if cadence == 1 else "days"
                out.append(Exclusion(c.name, f"observed {days:.1f} days ago; its cadence is "
                                     f"{cadence:g} {unit}", "cadence"))
                continue
            debt = min(days / cadence if cadence > 0 else 99.0, 99.0)
            debt_text = f"last observed {days:.1f} days ago"
        else:
            debt, debt_text = NEVER_OBSERVED_DEBT, "not observed here yet"
        exposure, code, reason = choose_exposure(
            inst, c.brightest, c.faintest, min_snr=float(pl.min_snr), snr_scale=snr_scale,
            expert=bool(pl.expert_exposures))
        if exposure is None:
            out.append(Exclusion(c.name, reason, code or ""))
            continue
        live.append(_Live(c, exposure, debt, debt_text))
    return live, out


def _best_slot(usable: np.ndarray, seg_alt: np.ndarray, k: int, kmin: int
               ) -> tuple[int, int] | None:
    """The segments ``[a, b)`` to use: ``k`` consecutive usable segments with the highest
    mean altitude, else the longest shorter run of at least ``kmin``."""
    best: tuple[float, int, int] | None = None
    for a, b in _runs(usable):
        n = b - a
        if n >= k:
            sums = np.convolve(seg_alt[a:b], np.ones(k), mode="valid")
            j = int(np.argmax(sums))
            cand = (1e6 + float(sums[j]) / k, a + j, a + j + k)
        elif n >= kmin:
            cand = (n * 1e3 + float(seg_alt[a:b].mean()), a, b)
        else:
            continue
        if best is None or cand[0] > best[0]:
            best = cand
    return None if best is None else (best[1], best[2])


def _verify_all(night: _Night, items: Sequence[PlanItem]) -> list[PlanItem | None]:
    """Each item checked minute by minute (ends included; one transform for all of them) and
    trimmed to its longest stretch where every gate holds; None when that is shorter than
    ``planning.min_slot_minutes``."""
    if not items:
        return []
    offsets, ras, decs, bounds = [], [], [], [0]
    for it in items:
        off = grid_offsets(it.start, it.end, 60.0)
        offsets.append(off + (it.start - night.start).total_seconds())
        ras.append(np.full(off.size, it.ra_deg))
        decs.append(np.full(off.size, it.dec_deg))
        bounds.append(bounds[-1] + off.size)
    t0 = Time(night.start)
    times = t0 + np.concatenate(offsets) * u.s
    alt, az = altaz_pairs(night.site, times, np.concatenate(ras), np.concatenate(decs))
    _, alt_ok, moon_ok = night.gates(alt, az, night.moon_at(times))
    ok = alt_ok & moon_ok & (night.sun_at(times) <= float(night.cfg.telescope.sun_limit))
    out: list[PlanItem | None] = []
    for n, it in enumerate(items):
        a0, b0 = bounds[n], bounds[n + 1]
        out.append(_trim(night, it, ok[a0:b0], alt[a0:b0]))
    return out


def _trim(night: _Night, item: PlanItem, ok: np.ndarray, alt: np.ndarray
          ) -> PlanItem | None:
    if ok.all():
        return _with_alt(item, alt)
    runs = _runs(ok)
    if not runs:
        return None
    a, b = max(runs, key=lambda r: r[1] - r[0])
    dts = datetime_grid(item.start, item.end, 60.0)
    start, end = _minute_floor(dts[a]), _minute_floor(dts[b - 1])
    if (end - start).total_seconds() < float(night.pl.min_slot_minutes) * 60.0 - 1:
        return None
    return _with_alt(_frames(night.inst, item, start, end), alt[a:b])


def _with_alt(item: PlanItem, alt: np.ndarray) -> PlanItem:
    return replace(item, min_altitude_deg=round(float(alt.min()), 1),
                   max_altitude_deg=round(float(alt.max()), 1))


def _frames(inst: Instrument, item: PlanItem, start: datetime, end: datetime) -> PlanItem:
    span = (end - start).total_seconds() - inst.setup_s
    frames = max(1, int(span // (item.exposure_s + inst.frame_overhead_s)))
    return replace(item, start=start, end=end, frames=frames)


def _pack(night: _Night, live: list[_Live], alt: np.ndarray, az: np.ndarray
          ) -> tuple[list[PlanItem], list[Exclusion]]:
    pl = night.pl
    high, alt_ok, moon_ok = night.gates(alt, az)
    ok = alt_ok & moon_ok
    seg_ok = ok[:, :-1] & ok[:, 1:]
    seg_alt = (alt[:, :-1] + alt[:, 1:]) / 2.0
    free = np.ones(seg_ok.shape[1], dtype=bool)
    k = max(1, round(float(pl.slot_minutes) / float(pl.step_minutes)))
    kmin = max(1, math.ceil(float(pl.min_slot_minutes) / float(pl.step_minutes) - 1e-9))
    scores = _scores(live, alt, alt_ok)
    order = sorted(range(len(live)), key=lambda i: (-scores[i], live[i].cand.name))
    items: list[PlanItem] = []
    out: list[Exclusion] = []
    for i in order:
        lv = live[i]
        name = lv.cand.name
        if not any(b - a >= kmin for a, b in _runs(seg_ok[i])):
            code, reason = night.why_never(i, alt, az, high, alt_ok, moon_ok, kmin)
            out.append(Exclusion(name, reason, code))
            continue
        if pl.max_targets and len(items) >= int(pl.max_targets):
            out.append(Exclusion(name, f"planning.max_targets ({pl.max_targets}) reached with "
                                 "higher-priority targets", "packing"))
            continue
        slot = _slot(night, lv, seg_ok[i] & free, seg_alt[i], k, kmin)
        if slot is None:
            out.append(Exclusion(name, "no free time while it is well placed: the night is "
                                 "full with higher-priority targets", "packing"))
            continue
        a, b = slot
        free[a:b] = False
        items.append(_frames(night.inst, _item(night, lv, a, b, scores[i]), night.dts[a],
                             night.dts[b]))
    return _verified(night, items, out)


def _scores(live: list[_Live], alt: np.ndarray, alt_ok: np.ndarray) -> list[float]:
    """Each target's priority: alert bonus, cadence debt, best altitude within the limits."""
    top = np.where(alt_ok, alt, -90.0).max(axis=1) if alt.shape[1] else np.zeros(len(live))
    return [(ALERT_BONUS if lv.cand.alert else 0.0) + 10.0 * lv.debt
            + 9.0 * max(0.0, float(top[i])) / 90.0 for i, lv in enumerate(live)]


def _slot(night: _Night, lv: _Live, usable: np.ndarray, seg_alt: np.ndarray, k: int,
          kmin: int) -> tuple[int, int] | None:
    """The best free slot: inside the hub's wished window first, else anywhere."""
    if lv.cand.window is not None:
        w0, w1 = lv.cand.window
        inside = np.array([w0 <= a and b <= w1 for a, b in zip(
            night.dts[:-1], night.dts[1:], strict=True)], dtype=bool)
        slot = _best_slot(usable & inside, seg_alt, k, kmin)
        if slot is not None:
            return slot
    return _best_slot(usable, seg_alt, k, kmin)


def _item(night: _Night, lv: _Live, a: int, b: int, score: float) -> PlanItem:
    """The plan item of a target in segments ``a..b``, with why it was chosen."""
    why = ["AAVSO alert or campaign"] if lv.cand.alert else []
    if lv.cand.source == "hub":
        why.append("asked for by the hub")
    why.append(lv.debt_text)
    return PlanItem(target=lv.cand.name, ra_deg=float(lv.cand.ra_deg or 0.0),
                    dec_deg=float(lv.cand.dec_deg or 0.0), start=night.dts[a],
                    end=night.dts[b], exposure_s=lv.exposure_s, frames=1,
                    score=round(score, 3), reason="; ".join(why))


def _verified(night: _Night, items: list[PlanItem], out: list[Exclusion]
              ) -> tuple[list[PlanItem], list[Exclusion]]:
    """The items whose window survives the altitude limits and horizon mask, by start time;
    the others join the exclusions."""
    verified = []
    for item, checked in zip(items, _verify_all(night, items), strict=True):
        if checked is None:
            out.append(Exclusion(item.target, "its only window is cut by the altitude limits "
                                 "or the horizon mask", "altitude"))
        else:
            verified.append(checked)
    verified.sort(key=lambda it: (it.start, it.target))
    return verified, out


def _default_night(site: Site, limit: float, now: datetime) -> str:
    """Tonight, or - once this night's dawn has passed - the coming night."""
    night = night_of(now, site.lon_deg)
    dark = dark_window(site, night, limit)
    if now >= (dark.end or dark.night_end):
        d = datetime.fromisoformat(night) + timedelta(days=1)
        night = d.date().isoformat()
    return night


def _candidates(cfg: Config, candidates: Iterable[Candidate] | None) -> tuple[list[Candidate],
                                                                           list[str]]:
    if candidates is not None:
        return merge_candidates([list(candidates)]), []
    from .targettool import SECTION_NAMES, target_tool_candidates

    tt = target_tool_candidates(cfg)
    notes = [f"the Target Tool's {SECTION_NAMES.get(s, s)} could not be read: {o}"
             for s, o in tt.origins.items() if not o.startswith(("network", "cache"))]
    notes += [f"the Target Tool's {SECTION_NAMES.get(s, s)} is from an older {o}"
              for s, o in tt.origins.items() if o.startswith("cache (stale")]
    return merge_candidates([config_candidates(cfg), tt.candidates]), notes


def plan_night(config: ConfigLike, night: str | None = None, *, now: datetime | None = None,
               candidates: Iterable[Candidate] | None = None) -> Plan:
    """Tonight's plan for this site and telescope.

    Parameters
    ----------
    config : Config or anything :func:`starnode.config.resolve` accepts
        ``site``, ``telescope``, ``planning``, ``targets`` and ``target_tool`` are used.
    night : str, optional
        ``YYYY-MM-DD``, the evening's date; default: the night in progress, or the coming one
        once this night's dawn has passed.
    now : datetime, optional
        An aware "now" (tests); it stamps ``created`` and picks the default night.
    candidates : iterable of Candidate, optional
        Plan these instead of the config's ``targets`` and the Target Tool.

    Returns
    -------
    Plan
        Items in UTC order with absolute start and end, exclusions with their reasons, the
        dusk and dawn of the night, and ``expires`` = dawn (the end of the night when it never
        gets dark).

    Raises
    ------
    ConfigError
        No site configured (nothing is planned for an unknown place).
    """
    cfg = resolve(config)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    site = site_from_config(cfg)
    with offline_iers():  # every astropy call of the plan: no download, any IERS age
        return _plan(cfg, site, night, now, candidates)


def _plan(cfg: Config, site: Site, night: str | None, now: datetime,
          candidates: Iterable[Candidate] | None) -> Plan:
    limit = float(cfg.telescope.sun_limit)
    night = night or _default_night(site, limit, now)
    inst = instrument_for(cfg)
    cands, notes = _candidates(cfg, candidates)
    dark = dark_window(site, night, limit)
    base: dict[str, Any] = {"night": night, "created": now, "site": site.to_dict(),
                            "sun_limit_deg": limit, "instrument": inst.model}
    if not dark.dark:
        reason = f"the sun never reaches {deg(limit)}"
        return Plan(expires=dark.night_end, excluded=tuple(
            Exclusion(c.name, reason, "sun") for c in cands), notes=tuple(notes), **base)
    assert dark.start is not None and dark.end is not None
    # on whole minutes; a plan made during the night starts now, never in the past
    start, end = _minute_ceil(max(dark.start, now) if now < dark.end else dark.start), \
        _minute_floor(dark.end)
    if (end - start).total_seconds() < float(cfg.planning.min_slot_minutes) * 60.0:
        left = max(0, int((end - start).total_seconds() // 60))
        reason = (f"only {left} dark minutes are left (the sun is below {deg(limit)} until "
                  f"{dark.end:%H:%M} UTC)")
        return Plan(expires=dark.end, excluded=tuple(Exclusion(c.name, reason, "sun")
                                                      for c in cands),
                    dusk=dark.start, dawn=dark.end, notes=tuple(notes), **base)
    history = ObservingHistory(cfg.db_path)
    scale, n = snr_calibration(inst, history.snr_samples())
    if n >= 5:
        notes.append(f"S/N model calibrated on {n} measured frames (x{scale:.2f})")
    ref_jd = float(Time(dark.start).jd)
    live, excluded = _gate_static(cfg, inst, cands, ref_jd, history.last_observed(), scale)
    nightgrid = _Night(cfg, site, dark, inst, start, end)
    alt, az = altaz(site, nightgrid.times, [lv.cand.ra_deg for lv in live],
                    [lv.cand.dec_deg for lv in live])
    items, more = _pack(nightgrid, live, alt, az)
    log.info("plan for %s: %d items, %d left out", night, len(items), len(excluded) + len(more))
    return Plan(expires=dark.end, items=tuple(items), excluded=tuple(excluded + more),
                dusk=dark.start, dawn=dark.end, notes=tuple(notes), **base)
