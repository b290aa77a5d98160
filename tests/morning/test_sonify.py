"""The light curve as sound: pitch follows brightness, ticks per point, buzz for poor points,
a hum while within the comparison range; a real WAV file from a real processed night."""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from morning_night import GOOD, make_night
from starnode.config import Config
from starnode.morning.sonify import HUM_HZ, LEAD_S, RATE, render, sonify_night, write_wav
from starnode.store import Ledger

JD0 = 2460933.40


def _peak_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / RATE)[int(np.argmax(spec))])


def _energy(x: np.ndarray, hz: float, width: float = 15.0) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / RATE)
    return float(spec[(f > hz - width) & (f < hz + width)].sum())


def test_pitch_rises_as_the_star_brightens() -> None:
    jd = [JD0, JD0 + 1 / 24, JD0 + 2 / 24]  # three points, one hour apart
    x, m = render(jd, [12.0, 11.5, 11.0], ["good"] * 3, seconds_per_hour=4.0)
    assert m.duration_s == pytest.approx(2 * LEAD_S + 8.0, abs=0.1)
    early = x[int((LEAD_S + 0.5) * RATE):int((LEAD_S + 1.5) * RATE)]
    late = x[int((LEAD_S + 6.5) * RATE):int((LEAD_S + 7.5) * RATE)]
    f_early, f_late = _peak_hz(early), _peak_hz(late)
    assert f_late > f_early * 1.5  # brighter -> higher
    assert m.freq(12.0) == pytest.approx(220.0) and m.freq(11.0) == pytest.approx(880.0)
    assert abs(f_early - m.freq(11.875)) < 40 and abs(f_late - m.freq(11.125)) < 80


def test_poor_points_buzz_and_good_points_ping() -> None:
    seg = slice(int(LEAD_S * RATE), int((LEAD_S + 0.06) * RATE))
    good, mg = render([JD0], [10.0], ["good"])
    poor, _ = render([JD0], [10.0], ["poor"])
    f0 = mg.freq(10.0)
    # the ping is a pure tone (an octave up); the buzz a square wave (odd harmonics)
    assert _energy(good[seg], 2 * f0, 40) > 20 * _energy(good[seg], 3 * f0, 40)
    assert _energy(poor[seg], 3 * f0, 40) > 0.05 * _energy(poor[seg], f0, 40)
    assert _energy(poor[seg], 3 * f0, 40) > 20 * _energy(good[seg], 3 * f0, 40)


def test_the_comparison_hum_stops_outside_the_range() -> None:
    jd = [JD0, JD0 + 1 / 24, JD0 + 2 / 24]
    x, m = render(jd, [11.0, 11.0, 8.0], ["good"] * 3, comp_range=(9.5, 12.5))
    inside = x[int((LEAD_S + 1.0) * RATE):int((LEAD_S + 2.0) * RATE)]
    outside = x[int((LEAD_S + 7.2) * RATE):int((LEAD_S + 7.9) * RATE)]
    assert _energy(inside, HUM_HZ) > 50 * _energy(outside, HUM_HZ)
    assert m.inside_comp_fraction == pytest.approx(2 / 3)
    none, _ = render(jd, [11.0, 11.0, 8.0], ["good"] * 3)
    assert _energy(none[int((LEAD_S + 1.0) * RATE):int((LEAD_S + 2.0) * RATE)], HUM_HZ) < \
        _energy(inside, HUM_HZ) / 50


def test_bad_input() -> None:
    with pytest.raises(ValueError):
        render([], [], [])
    with pytest.raises(ValueError):
        render([JD0], [1.0, 2.0], ["good"])


def test_wav_file_round_trip(tmp_path: Path) -> None:
    x, m = render([JD0, JD0 + 0.5 / 24], [10.0, 9.0], ["good", "poor"])
    path = write_wav(tmp_path / "s" / "curve.wav", x)
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, RATE)
        assert w.getnframes() / w.getframerate() == pytest.approx(m.duration_s, abs=1e-3)
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert 0 < np.abs(pcm).max() <= 32767


@pytest.mark.slow
def test_sound_of_a_real_night(tmp_path: Path) -> None:
    cfg: Config = make_night(tmp_path)
    with Ledger(cfg) as led:
        measured = led.measurements("SS Cyg")
    path, m = sonify_night(cfg, "SS Cyg")
    assert path == cfg.data_dir / "lightcurves" / "SS_Cyg_2025-09-14.wav" and path.is_file()
    assert m.points == len(GOOD) == len(measured)
    assert m.poor_points == sum(1 for f in measured if f.quality == "poor") > 0
    hours = (max(f.jd for f in measured) - min(f.jd for f in measured)) * 24
    assert m.duration_s == pytest.approx(hours * 4.0 + 2 * LEAD_S, abs=0.1)
    r = subprocess.run([sys.executable, "-m", "starnode", "lightcurve", "SS Cyg", "--data-dir",
                        str(cfg.data_dir), "--sound", str(tmp_path / "night.wav")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "night.wav").is_file() and f"{m.duration_s:.1f} s" in r.stdout
    with pytest.raises(LookupError):
        sonify_night(cfg, "SS Cyg", night="2020-01-01")
