"""A light curve you can hear: a night's measurements as a short WAV file.

Why: a plot is closed to an observer who cannot see it; a sound is not. Listening, a rise in
pitch is heard as the star brightening, a buzz as a doubtful point, and the shape of an outburst
comes through in a few seconds. Only numpy and the standard library's :mod:`wave`.

The mapping (also spoken by :func:`starnode.morning.summary.sound_legend`):

- **time**: ``seconds_per_hour`` seconds of sound per hour of the night (default 4), with half
  a second of lead-in and tail; measurement times keep their spacing.
- **pitch**: the star's magnitude, brighter = higher. The middle of the night's range sounds at
  440 Hz; ``semitones_per_mag`` = 24 / (the night's range), bounded to 4..48, so the night's
  whole range spans two octaves (220-880 Hz) unless it is tiny (under half a magnitude: then
  48 semitones per magnitude, a 0.1 mag change is about a third) or huge (over 6 magnitudes).
- **the star**: a soft sine tone gliding between measurements (silent across gaps longer than
  90 minutes of the night, e.g. clouds).
- **ticks**: one short tick per measurement at its pitch: a soft bell-like ping (a decaying
  sine) for good and acceptable points; a buzz (a decaying square wave, rich in odd harmonics)
  for points flagged poor.
- **comparison range**: a quiet low hum (110 Hz with its fifth) that sounds while the star is
  within the magnitude range of the comparison stars used, and stops while it is outside
  (a value extrapolated beyond the comparisons, less certain). The hum does not depend on the
  pitch scale, so it means the same on every night.
- 16-bit mono PCM, 22 050 samples per second.
"""

from __future__ import annotations

import logging
import math
import os
import wave
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import Config

if TYPE_CHECKING:
    from .summary.model import NightSummary, TargetNight

log = logging.getLogger(__name__)

__all__ = ["SoundMapping", "render", "sonify_night", "write_wav"]

RATE = 22050
CENTRE_HZ = 440.0
LEAD_S = 0.5
GAP_DAYS = 90.0 / 1440.0
TICK_S = 0.06
AMP_TONE = 0.18
AMP_TICK = 0.45
AMP_COMP = 0.06
HUM_HZ = 110.0


@dataclass(frozen=True)
class SoundMapping:
    """How a sound was made (for the legend, the web page and the tests)."""

    seconds_per_hour: float
    duration_s: float
    rate: int
    points: int
    poor_points: int
    centre_mag: float
    semitones_per_mag: float
    freq_faintest_hz: float
    freq_brightest_hz: float
    comp_range: tuple[float, float] | None
    inside_comp_fraction: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def freq(self, magnitude: float) -> float:
        """The pitch of a magnitude under this mapping.

        Parameters
        ----------
        magnitude : float
            The star's magnitude.

        Returns
        -------
        float
            Frequency in Hz.
        """
        return CENTRE_HZ * 2.0 ** ((self.centre_mag - magnitude) * self.semitones_per_mag / 12.0)


def render(times_jd: Sequence[float], mags: Sequence[float], quality: Sequence[str], *,
           comp_range: tuple[float, float] | None = None, seconds_per_hour: float = 4.0,
           rate: int = RATE) -> tuple[np.ndarray, SoundMapping]:
    """The sound of one light curve (the mapping is in this module's docstring).

    Parameters
    ----------
    times_jd, mags : sequence of float
        Times (JD) and magnitudes of the measurements, any order.
    quality : sequence of str
        Their quality flags (``poor`` buzzes).
    comp_range : (float, float), optional
        The comparison stars' magnitude range (the hum).
    seconds_per_hour : float
        Seconds of sound per hour of the night.
    rate : int
        Samples per second.

    Returns
    -------
    samples : numpy.ndarray
        Float samples in -1..1.
    mapping : SoundMapping
        How the sound was made.

    Raises
    ------
    ValueError
        Empty or mismatched inputs, or a non-positive ``seconds_per_hour``.
    """
    t = np.asarray(times_jd, dtype=float)
    m = np.asarray(mags, dtype=float)
    _check_inputs(t, m, quality, seconds_per_hour)
    order = np.argsort(t)
    t, m = t[order], m[order]
    q = [str(quality[i]) for i in order]
    span = float(m.max() - m.min())
    spm = float(np.clip(24.0 / span, 4.0, 48.0)) if span > 0 else 48.0
    centre = float(m.min() + m.max()) / 2.0
    sec_per_day = seconds_per_hour * 24.0
    pos = LEAD_S + (t - t[0]) * sec_per_day  # seconds into the sound
    duration = float(pos[-1] + LEAD_S + TICK_S)
    n = math.ceil(duration * rate)
    out = np.zeros(n)
    clock = np.arange(n) / rate

    def hz(mag: np.ndarray | float) -> np.ndarray:
        return CENTRE_HZ * 2.0 ** ((centre - np.asarray(mag, dtype=float)) * spm / 12.0)

    if t.size > 1:
        _add_tone(out, clock, t, pos, m, hz, rate)
    _add_ticks(out, pos, m, q, hz, rate)
    inside = None
    if comp_range is not None:  # a low hum while the star is within the comparisons' range
        inside = _add_hum(out, clock, pos, m, comp_range, rate)
    peak = float(np.abs(out).max())
    if peak > 0.99:
        out *= 0.99 / peak
    mapping = SoundMapping(seconds_per_hour, n / rate, rate, int(t.size),
                           sum(1 for x in q if x == "poor"), centre, spm,
                           float(hz(m.max())), float(hz(m.min())),
                           (float(min(comp_range)), float(max(comp_range))) if comp_range
                           else None, inside)
    return out, mapping


def _check_inputs(t: np.ndarray, m: np.ndarray, quality: Sequence[str],
                  seconds_per_hour: float) -> None:
    if t.size == 0 or t.size != m.size or len(quality) != t.size:
        raise ValueError("need as many times, magnitudes and quality flags, at least one")
    if seconds_per_hour <= 0:
        raise ValueError("seconds_per_hour must be positive")


def _add_tone(out: np.ndarray, clock: np.ndarray, t: np.ndarray, pos: np.ndarray,
              m: np.ndarray, hz: Callable[[np.ndarray], np.ndarray], rate: int) -> None:
    """The star: a gliding sine, phase-continuous, silent across long gaps."""
    i0 = int(pos[0] * rate)
    i1 = int(pos[-1] * rate) + 1
    seg = clock[i0:i1]
    f = hz(np.interp(seg, pos, m))
    phase = 2 * np.pi * np.cumsum(f) / rate
    env = np.ones_like(seg)
    for g in np.flatnonzero(np.diff(t) > GAP_DAYS):  # silence across long gaps
        env[(seg > pos[g] + 0.05) & (seg < pos[g + 1] - 0.05)] = 0.0
    fade = min(len(seg) // 2, int(0.02 * rate))
    if fade:
        env[:fade] *= np.linspace(0, 1, fade)
        env[-fade:] *= np.linspace(1, 0, fade)
    out[i0:i1] += AMP_TONE * env * np.sin(phase)


def _add_ticks(out: np.ndarray, pos: np.ndarray, m: np.ndarray, q: list[str],
               hz: Callable[[float], np.ndarray], rate: int) -> None:
    """A tick per measurement: ping for good/acceptable, buzz for poor."""
    nt = int(TICK_S * rate)
    tt = np.arange(nt) / rate
    decay = np.exp(-tt / (TICK_S / 4.0))
    for p_s, mag, flag in zip(pos, m, q, strict=True):
        f0 = float(hz(mag))
        if flag == "poor":
            wave_ = np.sign(np.sin(2 * np.pi * f0 * tt)) * 0.7
        else:
            wave_ = np.sin(2 * np.pi * 2 * f0 * tt)
        a = int(p_s * rate)
        out[a:a + nt] += AMP_TICK * decay[: len(out[a:a + nt])] * wave_[: len(out[a:a + nt])]


def _add_hum(out: np.ndarray, clock: np.ndarray, pos: np.ndarray, m: np.ndarray,
             comp_range: tuple[float, float], rate: int) -> float:
    """A low hum while the star is within the comparisons' range; returns the fraction of
    measurements inside it."""
    n = len(out)
    lo, hi = min(comp_range), max(comp_range)
    star = np.interp(clock, pos, m)
    gate = ((star >= lo) & (star <= hi)).astype(float)
    k = max(1, int(0.05 * rate))  # 50 ms ramps, no clicks
    gate = np.convolve(gate, np.ones(k) / k, mode="same")
    fade = min(n // 2, int(0.2 * rate))
    gate[:fade] *= np.linspace(0, 1, fade)
    gate[-fade:] *= np.linspace(1, 0, fade)
    out += AMP_COMP * gate * (np.sin(2 * np.pi * HUM_HZ * clock)
                              + 0.5 * np.sin(2 * np.pi * 1.5 * HUM_HZ * clock))
    return float(np.mean((m >= lo) & (m <= hi)))


def write_wav(path: str | os.PathLike[str], samples: np.ndarray, rate: int = RATE) -> Path:
    """Write samples as a 16-bit mono PCM WAV (the standard library's :mod:`wave`).

    Parameters
    ----------
    path : str or os.PathLike
        The file (its folder is created).
    samples : numpy.ndarray
        Float samples, clipped to -1..1.
    rate : int
        Samples per second.

    Returns
    -------
    Path
        The file written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def sonify_night(config: Config, target: str, out: str | os.PathLike[str] | None = None, *,
                 night: str | None = None, seconds_per_hour: float = 4.0
                 ) -> tuple[Path, SoundMapping]:
    """Write the sound of one star's night, read from the ledger.

    Parameters
    ----------
    config : Config
        The data_dir.
    target : str
        The star.
    out : str or os.PathLike, optional
        The WAV file (default ``data_dir/lightcurves/<target>_<night>.wav``).
    night : str, optional
        ISO date of the night (default: the star's latest night with measurements).
    seconds_per_hour : float
        Seconds of sound per hour of the night.

    Returns
    -------
    path : Path
        The file written.
    mapping : SoundMapping
        How the sound was made.

    Raises
    ------
    LookupError
        No measurements of ``target`` (on ``night``) to hear.
    """
    cfg = config
    s = _night_with_points(cfg, night, target)
    star = next((t for t in s.targets if t.points), None)
    if star is None:
        raise LookupError(f"no measurements of {target!r}"
                          + (f" on the night of {night}" if night else "") + " to sonify")
    pts = star.points
    comp = _comp_range(star)
    samples, mapping = render([p.jd for p in pts], [p.magnitude for p in pts],
                              [p.quality for p in pts], comp_range=comp,
                              seconds_per_hour=seconds_per_hour)
    if out is None:
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in star.name)
        out = cfg.data_dir / "lightcurves" / f"{safe}_{s.night}.wav"
    path = write_wav(out, samples, mapping.rate)
    log.info("sound of %s, night of %s: %d point(s), %.1f s -> %s", star.name, s.night,
             mapping.points, mapping.duration_s, path)
    return path, mapping


def _night_with_points(cfg: Config, night: str | None, target: str) -> NightSummary:
    """The star's night; without ``night`` the latest one with measurements (the latest
    night may hold only skipped frames)."""
    from .summary import night_summary

    s = night_summary(cfg, night, target)
    if night is None and not any(t.points for t in s.targets):
        for n in reversed(s.nights):
            s = night_summary(cfg, n, target)
            if any(t.points for t in s.targets):
                break
    return s


def _comp_range(star: TargetNight) -> tuple[float, float] | None:
    if star.comp_min is None or star.comp_max is None:
        return None
    return star.comp_min, star.comp_max
