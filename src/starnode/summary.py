"""The morning after: a night told in plain sentences, for a screen reader first.

Why: many observers of the network cannot stand at a telescope; some cannot see a plot or use a
mouse. What they want in the morning is "what did my telescope see, was it good, is my name on
the record?" -- so this module turns the ledger into short sentences that read well aloud: counts
in words, skipped frames grouped by *why* in everyday language, magnitudes rounded the way an
observer says them, the error in words where it decides the answer, the check star's health and
what happened to the AAVSO report. No table carries meaning on its own.

Layers (so each can change alone):

- :func:`load_snapshot` is the ONLY place that reads the ledger and the outbox. It returns plain
  :class:`FrameRecord` rows and outbox dicts; re-point it at another store and nothing else moves.
- :func:`build_night` turns a snapshot into a :class:`NightSummary` (a model, no wording of
  layout), :func:`sections` words it as headed paragraphs, and :func:`render_text`,
  :func:`render_html` and :func:`render_json` lay those out. The text is generated, never
  hand-assembled per case.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import logging
import math
import re
import statistics
import textwrap
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .config import Config, resolve

log = logging.getLogger(__name__)

__all__ = [
    "FrameRecord",
    "NightSummary",
    "Snapshot",
    "TargetNight",
    "build_night",
    "load_snapshot",
    "night_frames",
    "night_summary",
    "render_html",
    "render_json",
    "render_text",
    "sections",
    "sound_legend",
]

_UNIX_EPOCH_JD = 2440587.5

# ------------------------------------------------------------------------------------ adapter


@dataclass(frozen=True)
class FrameRecord:
    """One frame as the summary needs it (whatever store it came from)."""

    name: str
    path: str
    state: str  # pending processing measured reported skipped failed
    category: str | None
    reason: str | None
    target: str | None
    jd: float | None
    magnitude: float | None
    uncertainty: float | None
    quality: str | None
    quality_reasons: tuple[str, ...] = ()
    filter: str | None = None
    check_label: str | None = None
    check_deviation: float | None = None
    comp_min: float | None = None
    comp_max: float | None = None
    synthetic: bool = False
    submission_status: str | None = None
    submission_message: str | None = None
    night: str | None = None
    first_seen: float | None = None


@dataclass
class Snapshot:
    """Everything the morning summary reads: frames and outbox files."""

    data_dir: str
    frames: list[FrameRecord]
    outbox: list[dict[str, Any]]
    longitude: float | None = None


def _finite(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def load_snapshot(config: Config | Any) -> Snapshot:
    """Read the ledger and the outbox of ``config`` (read only; an absent ledger is empty).

    This is the single adapter between the summary and the node's storage.
    """
    from .aavso import outbox_files
    from .ledger import Ledger

    cfg = resolve(config)
    if not cfg.db_path.exists():
        return Snapshot(str(cfg.data_dir), [], [], cfg.site.longitude)
    with Ledger(cfg) as led:
        rows = led.frames()
    try:
        outbox = list(outbox_files(cfg))
    except Exception as exc:  # no aavso table yet, or a damaged one: the frames still tell
        log.warning("cannot list the outbox: %s", exc)
        outbox = []
    frames = []
    for f in rows:
        r = f.result or {}
        check = r.get("check_star") or {}
        comps = [c for c in r.get("comps") or [] if c.get("used", True)]
        cmags = [m for m in (_finite(c.get("catalog_mag")) for c in comps) if m is not None]
        sub = f.submission or {}
        measured = f.state in ("measured", "reported")
        frames.append(FrameRecord(
            name=f.name, path=f.path, state=f.state, category=f.category, reason=f.reason,
            target=f.target, jd=f.jd if measured else None,
            magnitude=f.magnitude if measured else None,
            uncertainty=f.uncertainty if measured else None,
            quality=f.quality if measured else None,
            quality_reasons=tuple(r.get("quality_reasons") or ()) if measured else (),
            filter=r.get("filter") if measured else None,
            check_label=(check.get("label") or check.get("name")) if measured else None,
            check_deviation=_finite(check.get("deviation")) if measured else None,
            comp_min=min(cmags) if measured and cmags else None,
            comp_max=max(cmags) if measured and cmags else None,
            synthetic=bool(r.get("synthetic")),
            submission_status=sub.get("status"), submission_message=sub.get("message"),
            night=sub.get("night"), first_seen=f.first_seen))
    return Snapshot(str(cfg.data_dir), frames, outbox, cfg.site.longitude)


# ------------------------------------------------------------------------------------ model

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
    "crash": ("made the measuring program crash (see starnode status)",
              "made the measuring program crash (see starnode status)"),
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

_STAMP = re.compile(r"(\d{8})-(\d{6})")
_SEESTAR = re.compile(r"^(?:Light|Stacked_\d+)_(.+?)_\d+(?:\.\d+)?s_", re.IGNORECASE)


def _norm(name: str) -> str:
    return " ".join(name.upper().replace("_", " ").split())


def night_of_jd(jd: float, longitude: float | None) -> str:
    """The observing night (local evening date) of a UTC JD (the reports' definition)."""
    from .aavso_report import night_of

    return night_of(jd, longitude)


def frame_night(f: FrameRecord, longitude: float | None) -> str | None:
    """The night a frame belongs to: the report's night, its JD, the time in a Seestar file
    name (local time: the evening date is that time minus 12 h), or when it was first seen."""
    if f.night:
        return f.night
    if f.jd is not None:
        return night_of_jd(f.jd, longitude)
    m = _STAMP.search(f.name)
    if m:
        try:
            t = _dt.datetime.strptime(m.group(1) + m.group(2), "%Y%m%d%H%M%S")
            return (t - _dt.timedelta(hours=12)).date().isoformat()
        except ValueError:
            pass
    if f.first_seen is not None:
        return night_of_jd(f.first_seen / 86400.0 + _UNIX_EPOCH_JD, longitude)
    return None


def night_frames(snap: Snapshot, night: str | None) -> list[FrameRecord]:
    """The frames of one night, in the order they were first seen."""
    out = [f for f in snap.frames if frame_night(f, snap.longitude) == night]
    return sorted(out, key=lambda f: (f.first_seen or 0.0, f.name))


def frame_target(f: FrameRecord, known: dict[str, str]) -> str | None:
    """The frame's target: the ledger's, or the one in a Seestar file name when it matches a
    measured target (``known``: normalised name -> name)."""
    if f.target:
        return known.get(_norm(f.target), f.target)
    m = _SEESTAR.match(f.name)
    if m:
        return known.get(_norm(m.group(1)), m.group(1).strip())
    return None


@dataclass
class Point:
    jd: float
    magnitude: float
    uncertainty: float
    quality: str
    reported: bool


@dataclass
class TargetNight:
    """One star on one night."""

    name: str
    frames: int = 0
    measured: int = 0
    points: list[Point] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # category -> count
    skipped_other: list[str] = field(default_factory=list)  # reasons without a category
    failed: int = 0
    waiting: int = 0  # pending or processing
    filters: list[str] = field(default_factory=list)
    quality: dict[str, int] = field(default_factory=dict)
    quality_reasons: dict[str, list[str]] = field(default_factory=dict)
    check_labels: list[str] = field(default_factory=list)
    check_deviations: list[float] = field(default_factory=list)
    comp_min: float | None = None
    comp_max: float | None = None
    reported: int = 0
    held_back: dict[str, int] = field(default_factory=dict)  # reason -> count
    not_yet: int = 0
    report_files: list[dict[str, Any]] = field(default_factory=list)
    synthetic: bool = False


@dataclass
class NightSummary:
    night: str | None
    nights: list[str]
    data_dir: str
    targets: list[TargetNight]
    other_skipped: dict[str, int]
    other_frames: int
    observer_codes: list[str]
    good_check: float = 0.05
    acceptable_check: float = 0.15


def build_night(snap: Snapshot, night: str | None = None, target: str | None = None, *,
                good_check: float = 0.05, acceptable_check: float = 0.15) -> NightSummary:
    """The model of one night (default: the latest night in the ledger)."""
    known = {_norm(f.target): f.target for f in snap.frames if f.target}
    per_night = [(frame_night(f, snap.longitude), f) for f in snap.frames]
    nights = sorted({n for n, _ in per_night if n})
    if night is None and nights:
        night = nights[-1]
    chosen = [f for n, f in per_night if n == night]
    want = _norm(target) if target else None
    targets: dict[str, TargetNight] = {}
    other: Counter[str] = Counter()
    other_n = 0
    for f in chosen:
        name = frame_target(f, known)
        if want is not None and (name is None or _norm(name) != want):
            continue
        if name is None:
            other_n += 1
            if f.state in ("skipped", "failed"):
                other[f.category or "error"] += 1
            continue
        t = targets.setdefault(_norm(name), TargetNight(name=name))
        _add(t, f)
    codes: set[str] = set()
    for o in snap.outbox:
        if o.get("night") != night:
            continue
        t = targets.get(_norm(str(o.get("target") or "")))
        if t is not None:
            t.report_files.append(o)
            codes.add(str(o.get("obscode") or ""))
    out = sorted(targets.values(), key=lambda x: (-x.frames, x.name))
    for t in out:
        t.points.sort(key=lambda p: p.jd)
    return NightSummary(night, nights, snap.data_dir, out, dict(other), other_n,
                        sorted(c for c in codes if c), good_check, acceptable_check)


def _add(t: TargetNight, f: FrameRecord) -> None:
    t.frames += 1
    t.synthetic = t.synthetic or f.synthetic
    if f.state in ("measured", "reported") and f.magnitude is not None and f.jd is not None:
        t.measured += 1
        q = f.quality or "poor"
        t.quality[q] = t.quality.get(q, 0) + 1
        t.quality_reasons.setdefault(q, []).extend(f.quality_reasons)
        t.points.append(Point(f.jd, f.magnitude, f.uncertainty or 0.0, q,
                              f.state == "reported"))
        if f.filter and f.filter not in t.filters:
            t.filters.append(f.filter)
        if f.check_deviation is not None:
            t.check_deviations.append(f.check_deviation)
            if f.check_label and f.check_label not in t.check_labels:
                t.check_labels.append(f.check_label)
        if f.comp_min is not None:
            t.comp_min = f.comp_min if t.comp_min is None else min(t.comp_min, f.comp_min)
        if f.comp_max is not None:
            t.comp_max = f.comp_max if t.comp_max is None else max(t.comp_max, f.comp_max)
        status = (f.submission_status or "").lower()
        if f.state == "reported":
            t.reported += 1
        elif status in ("skipped", "rejected"):
            why = _held_reason(f.submission_message or status)
            t.held_back[why] = t.held_back.get(why, 0) + 1
        else:
            t.not_yet += 1
    elif f.state == "skipped":
        if f.category:
            t.skipped[f.category] = t.skipped.get(f.category, 0) + 1
        else:
            t.skipped_other.append(f.reason or "no reason recorded")
    elif f.state == "failed":
        t.failed += 1
    else:
        t.waiting += 1


def _held_reason(message: str) -> str:
    m = message.lower()
    if "poor" in m:
        return "the measurement was flagged poor"
    if "check star" in m:
        return "the check star was too far from its catalogue value"
    if "synthetic" in m:
        return "synthetic test data are never uploaded"
    return message


# ------------------------------------------------------------------------------------ words
_SMALL = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
          "eleven", "twelve")


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``3 frames``, ``one frame``: small numbers in words, as people say them."""
    word = _SMALL[n] if 0 <= n < len(_SMALL) else str(n)
    return f"{word} {noun if n == 1 else (plural or noun + 's')}"


def was(n: int) -> str:
    return "was" if n == 1 else "were"


def mag(value: float) -> str:
    """A magnitude as an observer says it: one decimal, two when it is needed to tell
    values apart (callers decide), never more."""
    return f"{value:.1f}"


def mags(delta: float) -> str:
    """A magnitude difference: about 1.2 magnitudes, 0.15 of a magnitude."""
    d = abs(delta)
    if d >= 0.95:
        return f"{d:.1f} magnitudes"
    if d >= 0.095:
        return f"{d:.1f} of a magnitude"
    return f"{d:.2f} of a magnitude"


def utc(jd: float) -> str:
    t = _dt.datetime.fromtimestamp((jd - _UNIX_EPOCH_JD) * 86400.0, _dt.UTC)
    return f"{t:%H:%M} UTC"


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
        out.append(f"The one measurement, at {utc(p.jd)}, gave magnitude {p.magnitude:.2f}"
                   f"{filt}, give or take {p.uncertainty:.2f}.")
        return out
    ms = [p.magnitude for p in pts]
    errs = [p.uncertainty for p in pts]
    typ = statistics.median(errs)
    bright, faint = min(ms), max(ms)
    out.append(f"Between {utc(pts[0].jd)} and {utc(pts[-1].jd)} the star measured from "
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


def _report_words(s: NightSummary, t: TargetNight) -> list[str]:
    out: list[str] = []
    if not t.measured:
        return out
    if t.reported:
        states: Counter[str] = Counter()
        rows = 0
        files = []
        for o in t.report_files:
            rows += int(o.get("rows") or 0)
            files.append(Path(str(o.get("path"))).name)
            for state, n in (o.get("states") or {}).items():
                states[state] += n
        where = f" in the report file {_spoken_list(files)}" if files else ""
        codes = sorted({str(o.get('obscode')) for o in t.report_files if o.get("obscode")})
        who = f" under observer code {_spoken_list(codes)}" if codes else ""
        out.append(f"{count(t.reported, 'measurement', 'measurements').capitalize()} "
                   f"{was(t.reported)} reported{who}{where}"
                   + (f", as {count(rows, 'row')}" if rows and rows != t.reported else "")
                   + ".")
        if states:
            parts = [f"{count(n, 'row')} {UPLOAD_WORDS.get(st, st)}"
                     for st, n in states.most_common()]
            out.append("Status: " + _spoken_list(parts) + ".")
        if "DEMO" in {c.upper() for c in codes} or t.synthetic:
            out.append("These are demonstration data: never upload them.")
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
    """The spoken-style legend of :mod:`starnode.sonify` (kept next to the words it explains)."""
    return (f"Each hour of the night takes {seconds_per_hour:g} "
            "seconds. The steady tone is the star: the higher it sounds, the brighter the star. "
            "Each soft tick is one measurement; a buzzing tick is a measurement flagged poor. "
            "A quiet low hum plays underneath while the star is within the brightness range of "
            "the comparison stars; when the hum stops, the star is outside that range and the "
            "value is less certain.")


def sections(s: NightSummary, *, legend: bool = True) -> list[tuple[str, list[str]]]:
    """The summary as (heading, paragraphs): what both text and HTML lay out (``legend``: with
    the sound's legend)."""
    out: list[tuple[str, list[str]]] = []
    if s.night is None:
        return [("No observations yet", [
            "The ledger has no frames yet. Once the telescope has written frames and the "
            "node has measured them, the night will be described here."])]
    total = sum(t.frames for t in s.targets) + s.other_frames
    measured = sum(t.measured for t in s.targets)
    stars = _spoken_list([t.name for t in s.targets if t.measured])
    intro = (f"The night of {_long_date(s.night)}. The telescope took {count(total, 'frame')} "
             f"and {count(measured, 'frame')} {was(measured)} measured"
             + (f", of {stars}." if stars else "."))
    out.append(("Overview", [intro]))
    for t in s.targets:
        paras = [f"{count(t.frames, 'frame').capitalize()} of {t.name} {was(t.frames)} taken: "
                 f"{count(t.measured, 'frame')} measured"
                 + (f", {count(sum(t.skipped.values()) + len(t.skipped_other), 'frame')} "
                    "skipped" if t.skipped or t.skipped_other else "")
                 + (f", {count(t.failed, 'frame')} failed" if t.failed else "")
                 + (f", {count(t.waiting, 'frame')} still waiting" if t.waiting else "")
                 + "."]
        paras += _skip_words(t.skipped, t.skipped_other)
        if t.points:
            paras += _trend(t)
        for extra in (_quality_words(t), _check_words(s, t)):
            if extra:
                paras.append(extra)
        paras += _report_words(s, t)
        out.append((t.name, paras))
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


def _long_date(night: str) -> str:
    try:
        d = _dt.date.fromisoformat(night)
    except ValueError:
        return night
    return f"{d:%A} {d.day} {d:%B %Y}"


# ------------------------------------------------------------------------------------ render
def render_text(s: NightSummary, width: int = 88) -> str:
    lines: list[str] = []
    for heading, paras in sections(s):
        lines.append(heading)
        lines.append("")
        for p in paras:
            lines.extend(textwrap.wrap(p, width) or [""])
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def render_html(s: NightSummary, *, level: int = 2, standalone: bool = False,
                legend: bool = True) -> str:
    """The summary as headed paragraphs (a fragment; a whole page with ``standalone``)."""
    h = f"h{level}"
    parts = []
    for heading, paras in sections(s, legend=legend):
        hid = "sum-" + re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")
        parts.append(f'<section aria-labelledby="{hid}"><{h} id="{hid}">'
                     f"{html.escape(heading)}</{h}>")
        parts.extend(f"<p>{html.escape(p)}</p>" for p in paras)
        parts.append("</section>")
    body = "\n".join(parts)
    if not standalone:
        return body
    title = f"starnode: the night of {s.night}" if s.night else "starnode: no observations yet"
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title></head>\n<body><main>"
            f"<h1>{html.escape(title)}</h1>\n{body}\n</main></body></html>\n")


def render_json(s: NightSummary) -> str:
    data = asdict(s)
    data["sections"] = [{"heading": h, "paragraphs": p} for h, p in sections(s)]
    data["text"] = render_text(s)
    return json.dumps(data, indent=2, default=str)


def night_summary(config: Config | Any, night: str | None = None, target: str | None = None
                  ) -> NightSummary:
    """Read the ledger of ``config`` and build the night's model (the command's entry)."""
    cfg = resolve(config)
    q = cfg.quality
    return build_night(load_snapshot(cfg), night, target,
                       good_check=float(q.good_max_check_deviation),
                       acceptable_check=float(q.acceptable_max_check_deviation))
