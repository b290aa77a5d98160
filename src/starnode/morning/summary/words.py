"""The night in words: counts, reasons, trends, check star and reports as spoken sentences.

Why: a screen reader reads sentences well and tables badly, and an observer says "about 1.2
magnitudes", not "1.2347". Every sentence here is generated from a :class:`NightSummary`
(:func:`sections`), never assembled by hand for one case; :mod:`.render` only lays them out.
"""

from __future__ import annotations

import datetime as _dt
import math
import statistics
from collections import Counter
from pathlib import Path

from ...frame.timesite import utc_from_jd
from .model import NightSummary, TargetNight

__all__ = ["REASON_WORDS", "UPLOAD_WORDS", "count", "mag", "mags", "sections", "sound_legend",
           "utc", "was"]


#: Why frames were skipped, by the pipeline's category, as an observer would say it:
#: (one frame ..., several frames ...).
REASON_WORDS: dict[str, tuple[str, str]] = {
    "unreadable": ("was a damaged or incomplete file that could not be read",
                   "were damaged or incomplete files that could not be read"),
    "not_light": ("was not a picture of the sky (a dark, flat or bias frame)",
                  "were not pictures of the sky (dark, flat or bias frames)"),
    "no_target": ("did not show the star: the telescope pointed elsewhere",
                  "did not show the star: the telescope pointed elsewhere"),
    "astrometry": ("could not be matched to the star map, usually clouds or poor focus",
                   "could not be matched to the star map, usually clouds or poor focus"),
    "low_snr": ("was too faint to measure: cloudy or out of focus",
                "were too faint to measure: cloudy or out of focus"),
    "too_few_comps": ("showed too few comparison stars: cloudy or out of focus",
                      "showed too few comparison stars: cloudy or out of focus"),
    "saturated": ("was overexposed: the star was too bright for the camera",
                  "were overexposed: the star was too bright for the camera"),
    "edge": ("had the star too close to the edge of the picture",
             "had the star too close to the edge of the picture"),
    "catalog": ("could not be measured: no comparison-star chart was available",
                "could not be measured: no comparison-star chart was available"),
    "config": ("could not be measured because of a setting (see starnode doctor)",
               "could not be measured because of a setting (see starnode doctor)"),
    "error": ("failed with a program error (see starnode status)",
              "failed with a program error (see starnode status)"),
    "crashed": ("made the measuring program crash (see starnode status)",
                "made the measuring program crash (see starnode status)"),
    "timeout": ("took too long to measure and was stopped (see starnode status)",
                "took too long to measure and was stopped (see starnode status)"),
}

#: Upload states of report rows (aavso_rows.upload), in words.
UPLOAD_WORDS: dict[str, str] = {
    "manual": "in the outbox for you to upload to the AAVSO",
    "pending": "queued for upload",
    "uploading": "being uploaded",
    "sent": "uploaded and confirmed by the AAVSO",
    "uncertain": "uploaded but not confirmed (check WebObs)",
    "none": "a dry run, not for upload",
}

_SMALL = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
          "eleven", "twelve")


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``3 frames``, ``one frame``: small numbers in words, as people say them.

    Parameters
    ----------
    n : int
        How many.
    noun : str
        The singular.
    plural : str, optional
        The plural (default: ``noun + "s"``).

    Returns
    -------
    str
    """
    word = _SMALL[n] if 0 <= n < len(_SMALL) else str(n)
    return f"{word} {noun if n == 1 else (plural or noun + 's')}"


def was(n: int) -> str:
    """``was`` for one, ``were`` for any other count.

    Parameters
    ----------
    n : int
        How many.

    Returns
    -------
    str
    """
    return "was" if n == 1 else "were"


def mag(value: float) -> str:
    """A magnitude as an observer says it: one decimal.

    Parameters
    ----------
    value : float
        Magnitude.

    Returns
    -------
    str
    """
    return f"{value:.1f}"


def mags(delta: float) -> str:
    """A magnitude difference in words: ``1.2 magnitudes``, ``0.15 of a magnitude``.

    Parameters
    ----------
    delta : float
        The difference (its sign is ignored).

    Returns
    -------
    str
    """
    d = abs(delta)
    if d >= 0.95:
        return f"{d:.1f} magnitudes"
    if d >= 0.095:
        return f"{d:.1f} of a magnitude"
    return f"{d:.2f} of a magnitude"


def utc(jd: float, scale: str = "UTC", *, date: bool = False) -> str:
    """The clock time of a JD, labelled with its time scale: ``21:36 UTC``.

    Parameters
    ----------
    jd : float
        Julian date in ``scale``.
    scale : str
        ``"UTC"`` for a JD (UTC); ``"HJD"`` for a heliocentric JD, which is labelled so (it
        differs from the clock by up to 8 minutes).
    date : bool
        Also the date (``2025-09-14 21:36 UTC``).

    Returns
    -------
    str
    """
    t = utc_from_jd(jd)
    return (f"{t:%Y-%m-%d %H:%M}" if date else f"{t:%H:%M}") + f" {scale}"


def _spoken_list(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _trend(t: TargetNight) -> list[str]:
    """Magnitude range and whether the star brightened or faded, error in words."""
    pts = t.points
    out: list[str] = []
    filt = f" in the {_spoken_list(t.filters)} filter" if t.filters else ""
    if len(pts) == 1:
        p = pts[0]
        out.append(f"The one measurement, at {utc(p.jd, p.scale)}, gave magnitude {p.magnitude:.2f}"
                   f"{filt}, give or take {p.uncertainty:.2f}.")
        return out
    ms = [p.magnitude for p in pts]
    errs = [p.uncertainty for p in pts]
    typ = statistics.median(errs)
    bright, faint = min(ms), max(ms)
    out.append(f"Between {utc(pts[0].jd, pts[0].scale)} and {utc(pts[-1].jd, pts[-1].scale)} "
               f"the star measured from "
               f"magnitude {faint:.2f} at its faintest to {bright:.2f} at its brightest{filt}. "
               f"A typical measurement is good to about {typ:.2f} of a magnitude.")
    k = max(1, len(pts) // 4)
    start = statistics.fmean(ms[:k])
    end = statistics.fmean(ms[-k:])
    delta = end - start
    err = math.hypot(statistics.fmean(errs[:k]) / math.sqrt(k),
                     statistics.fmean(errs[-k:]) / math.sqrt(k))
    if abs(delta) < max(3.0 * err, 0.02):
        out.append(f"It stayed about the same over the night: the change of {mags(delta)} is "
                   f"within the measurement error of about {err:.2f}.")
    else:
        verb = "brightened" if delta < 0 else "faded"
        sure = "" if abs(delta) > 10 * err else \
            f" That is more than the error of about {err:.2f}, but only a few times it."
        out.append(f"It {verb} by about {mags(delta)}, from about {mag(start)} to about "
                   f"{mag(end)}.{sure}")
    if t.comp_min is not None and t.comp_max is not None and \
            (bright < t.comp_min - 0.5 or faint > t.comp_max + 0.5):
        out.append(f"Some values lie outside the comparison stars' range ({t.comp_min:.1f} to "
                   f"{t.comp_max:.1f}), so they are extrapolated and less certain.")
    return out


def _quality_words(t: TargetNight) -> str | None:
    if not t.quality:
        return None
    parts = [f"{count(t.quality[q], 'measurement')} {q}"
             for q in ("good", "acceptable", "poor") if t.quality.get(q)]
    text = f"Quality: {_spoken_list(parts)}."
    for q in ("acceptable", "poor"):
        why = [_quality_reason(r) for r in t.quality_reasons.get(q, [])]
        if why:
            common = [r for r, _ in Counter(why).most_common(2)]
            text += f" Not rated good because of {_spoken_list(common)}." if q == "acceptable" \
                else f" Rated poor because of {_spoken_list(common)}."
    return text


_QUALITY_REASONS = (("snr", "a weak signal (faint star, haze or thin cloud)"),
                    ("uncertainty", "a large uncertainty"),
                    ("comparison stars", "few comparison stars"),
                    ("no check star", "no check star"),
                    ("check star", "the check star being off its catalogue value"),
                    ("airmass", "the star being low in the sky"),
                    ("horizon", "the star being below the horizon"),
                    ("stack", "an uncertain time for a stacked frame"))


def _quality_reason(reason: str) -> str:
    """A quality gate's reason ("SNR 31 < 50") in words."""
    low = reason.lower()
    return next((words for key, words in _QUALITY_REASONS if key in low), reason)


def _check_words(s: NightSummary, t: TargetNight) -> str | None:
    devs = t.check_deviations
    labels = sorted(t.check_labels)
    label = f" (label {labels[0]})" if len(labels) == 1 else \
        f"s (labels {_spoken_list(labels)})" if labels else ""
    if not t.measured:
        return None
    if not devs:
        return "There was no check star, so the values cannot be cross-checked."
    worst = max(abs(d) for d in devs)
    mean = statistics.fmean(devs)
    if worst <= s.good_check:
        return (f"The check star{label} {'was' if len(labels) < 2 else 'were'} healthy: within "
                f"{worst:.2f} of a magnitude of the catalogue all night.")
    bad = sum(1 for d in devs if abs(d) > s.acceptable_check)
    if bad == 0:
        side = "brighter" if mean < 0 else "fainter"
        verb = "was" if len(labels) < 2 else "were"
        avg = "on average right on the catalogue" if abs(mean) < 0.005 else \
            f"on average {abs(mean):.2f} of a magnitude {side} than the catalogue"
        return (f"The check star{label} {verb} fair: {avg}, {worst:.2f} at most off it. "
                "The measurements are usable.")
    return (f"The check star{label} {'was' if len(labels) < 2 else 'were'} unhealthy in "
            f"{count(bad, 'frame')}: up to {worst:.2f} of a magnitude off the catalogue, so "
            "those measurements are doubtful.")


def _report_files_tally(t: TargetNight) -> tuple[int, list[str], Counter[str]]:
    """The rows, the file names and the upload states of the star's report files."""
    states: Counter[str] = Counter()
    rows = 0
    files = []
    for o in t.report_files:
        rows += int(o.get("rows") or 0)
        files.append(Path(str(o.get("path"))).name)
        for state, n in (o.get("states") or {}).items():
            states[state] += n
    return rows, files, states


def _reported_words(t: TargetNight) -> list[str]:
    """What was reported, where, under which code, and the state of its upload."""
    out: list[str] = []
    rows, files, states = _report_files_tally(t)
    where = f" in the report file {_spoken_list(files)}" if files else ""
    codes = sorted({str(o.get('obscode')) for o in t.report_files if o.get("obscode")})
    who = f" under observer code {_spoken_list(codes)}" if codes else ""
    out.append(f"{count(t.reported, 'measurement', 'measurements').capitalize()} "
               f"{was(t.reported)} reported{who}{where}"
               + (f", as {count(rows, 'row')}" if rows and rows != t.reported else "")
               + ".")
    synthetic = t.synthetic or any(o.get("synthetic") for o in t.report_files)
    out += _upload_status(t, rows, states, synthetic)
    if "DEMO" in {c.upper() for c in codes} and not synthetic:
        out.append("These are demonstration data: never upload them.")
    return out


def _upload_status(t: TargetNight, rows: int, states: Counter[str], synthetic: bool
                   ) -> list[str]:
    """The "Status:" line: synthetic rows are never "for you to upload"."""
    if synthetic:
        return [f"Status: {count(rows or t.reported, 'row')} in the outbox, made from "
                "SYNTHETIC frames (demonstration data, not observations): never upload "
                "them."]
    if states:
        parts = [f"{count(n, 'row')} {UPLOAD_WORDS.get(st, st)}"
                 for st, n in states.most_common()]
        return ["Status: " + _spoken_list(parts) + "."]
    return []


def _report_words(s: NightSummary, t: TargetNight) -> list[str]:
    out: list[str] = []
    if not t.measured:
        return out
    if t.reported:
        out += _reported_words(t)
    for why, n in sorted(t.held_back.items(), key=lambda kv: -kv[1]):
        out.append(f"{count(n, 'measurement').capitalize()} {was(n)} held back: {why}.")
    if t.not_yet:
        out.append(f"{count(t.not_yet, 'measurement').capitalize()} {was(t.not_yet)} not "
                   "reported yet.")
    if not t.reported and not t.held_back and not t.not_yet:
        out.append("Nothing was reported.")
    return out


def _skip_words(skipped: dict[str, int], other: list[str] | None = None) -> list[str]:
    out = []
    for cat, n in sorted(skipped.items(), key=lambda kv: (-kv[1], kv[0])):
        words = REASON_WORDS.get(cat)
        phrase = words[n != 1] if words else f"{was(n)} skipped ({cat.replace('_', ' ')})"
        out.append(f"{count(n, 'frame').capitalize()} {phrase}.")
    for reason, n in Counter(other or []).most_common():
        out.append(f"{count(n, 'frame').capitalize()} {was(n)} skipped: {reason}.")
    return out


def sound_legend(seconds_per_hour: float = 4.0) -> str:
    """The spoken-style legend of :mod:`~starnode.morning.sonify` (beside the words it explains).

    Parameters
    ----------
    seconds_per_hour : float
        Seconds of sound per hour of the night.

    Returns
    -------
    str
    """
    return (f"Each hour of the night takes {seconds_per_hour:g} "
            "seconds. The steady tone is the star: the higher it sounds, the brighter the star. "
            "Each soft tick is one measurement; a buzzing tick is a measurement flagged poor. "
            "A quiet low hum plays underneath while the star is within the brightness range of "
            "the comparison stars; when the hum stops, the star is outside that range and the "
            "value is less certain.")


def sections(s: NightSummary, *, legend: bool = True) -> list[tuple[str, list[str]]]:
    """The summary as headed paragraphs: what the text, HTML and JSON lay out.

    Parameters
    ----------
    s : NightSummary
        The night.
    legend : bool
        With the sound's legend.

    Returns
    -------
    list of (str, list of str)
        ``(heading, paragraphs)`` in reading order.
    """
    if s.night is None:
        return [("No observations yet", [
            "The ledger has no frames yet. Once the telescope has written frames and the "
            "node has measured them, the night will be described here."])]
    out: list[tuple[str, list[str]]] = [("Overview", [_overview(s, s.night)])]
    out += [(t.name, _target_paragraphs(s, t)) for t in s.targets]
    if s.other_frames:
        paras = [f"{count(s.other_frames, 'frame').capitalize()} could not be tied to a star."]
        paras += _skip_words(s.other_skipped)
        out.append(("Other frames", paras))
    if legend and any(t.points for t in s.targets):
        out.append(("Listening to the light curve", [sound_legend()]))
    if len(s.nights) > 1:
        out.append(("Other nights", ["The ledger also has the nights of "
                                     + _spoken_list([_long_date(n) for n in s.nights
                                                     if n != s.night][-5:]) + "."]))
    return out


def _overview(s: NightSummary, night: str) -> str:
    total = sum(t.frames for t in s.targets) + s.other_frames
    measured = sum(t.measured for t in s.targets)
    stars = _spoken_list([t.name for t in s.targets if t.measured])
    return (f"The night of {_long_date(night)}. The telescope took {count(total, 'frame')} "
            f"and {count(measured, 'frame')} {was(measured)} measured"
            + (f", of {stars}." if stars else "."))


def _frames_words(t: TargetNight) -> str:
    """How many frames of the star were taken, measured, skipped, failed and waiting."""
    return (f"{count(t.frames, 'frame').capitalize()} of {t.name} {was(t.frames)} taken: "
            f"{count(t.measured, 'frame')} measured"
            + (f", {count(sum(t.skipped.values()) + len(t.skipped_other), 'frame')} "
               "skipped" if t.skipped or t.skipped_other else "")
            + (f", {count(t.failed, 'frame')} failed" if t.failed else "")
            + (f", {count(t.waiting, 'frame')} still waiting" if t.waiting else "")
            + ".")


def _copies_words(copies: int) -> str:
    one = copies == 1
    return (f"{count(copies, 'more frame').capitalize()} {was(copies)} "
            + ("a copy of a frame" if one else "copies of frames")
            + " already measured (the same exposure copied again); each "
            "observation is counted and reported once.")


def _target_paragraphs(s: NightSummary, t: TargetNight) -> list[str]:
    """One star's section: frames, copies, skips, trend, quality, check star, reports."""
    paras = [_frames_words(t)]
    if t.copies:
        paras.append(_copies_words(t.copies))
    paras += _skip_words(t.skipped, t.skipped_other)
    if t.points:
        paras += _trend(t)
    for extra in (_quality_words(t), _check_words(s, t)):
        if extra:
            paras.append(extra)
    paras += _report_words(s, t)
    return paras


def _long_date(night: str) -> str:
    try:
        d = _dt.date.fromisoformat(night)
    except ValueError:
        return night
    return f"{d:%A} {d.day} {d:%B %Y}"
