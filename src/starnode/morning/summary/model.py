"""The model of one night: counts, points, reasons and reports per target, no wording.

Why apart from the words: the text, the HTML, the JSON, the sound and the web page all read the
same :class:`NightSummary`; how it is said (:mod:`.words`) can change without touching how it
is counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .snapshot import FrameRecord, Snapshot, frame_night, frame_target, norm_name

__all__ = ["NightSummary", "Point", "TargetNight", "build_night"]


@dataclass
class Point:
    """One measurement of a target (time, magnitude, error, quality, whether reported).

    ``jd`` is the JD (UTC) of mid-exposure, ``scale`` ``"UTC"``; only for a frame whose stored
    measurement cannot be read is it the ledger's HJD, and ``scale`` says ``"HJD"``.
    """

    jd: float
    magnitude: float
    uncertainty: float
    quality: str
    reported: bool
    scale: str = "UTC"


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
    copies: int = 0  # frames that are copies of an observation already counted (re-copied)
    keys: set[str] = field(default_factory=set, repr=False)  # the observations counted


@dataclass
class NightSummary:
    """One night: its targets, frames tied to no star, the observer codes of its reports."""

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
    """The model of one night.

    Parameters
    ----------
    snap : Snapshot
        What :func:`~starnode.morning.summary.load_snapshot` read.
    night : str, optional
        ISO date of the night (default: the latest night in the ledger).
    target : str, optional
        Only this star (name compared loosely).
    good_check, acceptable_check : float
        The check-star deviations (mag) that are healthy and still fair.

    Returns
    -------
    NightSummary
        ``night`` is None when the ledger has no frames.
    """
    per_night = [(frame_night(f, snap.longitude), f) for f in snap.frames]
    nights = sorted({n for n, _ in per_night if n})
    if night is None and nights:
        night = nights[-1]
    chosen = [f for n, f in per_night if n == night]
    known = {norm_name(f.target): f.target for f in snap.frames if f.target}
    want = norm_name(target) if target else None
    targets, other, other_n = _per_target(chosen, known, want)
    codes = _attach_reports(targets, snap.outbox, night)
    out = sorted(targets.values(), key=lambda x: (-x.frames, x.name))
    for t in out:
        t.points.sort(key=lambda p: p.jd)
    return NightSummary(night, nights, snap.data_dir, out, dict(other), other_n,
                        sorted(c for c in codes if c), good_check, acceptable_check)


def _per_target(chosen: list[FrameRecord], known: dict[str, str], want: str | None
                ) -> tuple[dict[str, TargetNight], Counter[str], int]:
    """The night's frames by star; frames tied to no star are counted (skip reasons too)."""
    targets: dict[str, TargetNight] = {}
    other: Counter[str] = Counter()
    other_n = 0
    for f in chosen:
        name = frame_target(f, known)
        if want is not None and (name is None or norm_name(name) != want):
            continue
        if name is None:
            other_n += 1
            if f.state in ("skipped", "failed"):
                other[f.category or "error"] += 1
            continue
        t = targets.setdefault(norm_name(name), TargetNight(name=name))
        _add(t, f)
    return targets, other, other_n


def _attach_reports(targets: dict[str, TargetNight], outbox: list[dict[str, Any]],
                    night: str | None) -> set[str]:
    """Give each star its report files of the night; returns their observer codes."""
    codes: set[str] = set()
    for o in outbox:
        if o.get("night") != night:
            continue
        tn = targets.get(norm_name(str(o.get("target") or "")))
        if tn is not None:
            tn.report_files.append(o)
            codes.add(str(o.get("obscode") or ""))
    return codes


_MEASURED_STATES = ("measured", "reported")


def _is_copy(t: TargetNight, f: FrameRecord) -> bool:
    """The same exposure again (a night copied twice): counted once, the copy noted."""
    if f.state not in _MEASURED_STATES or not f.key:
        return False
    if f.key in t.keys:
        t.copies += 1
        return True
    t.keys.add(f.key)
    return False


def _add(t: TargetNight, f: FrameRecord) -> None:
    if _is_copy(t, f):
        return
    t.frames += 1
    t.synthetic = t.synthetic or f.synthetic
    when, scale = (f.jd, "UTC") if f.jd is not None else (f.hjd, "HJD")
    if f.state in _MEASURED_STATES and f.magnitude is not None and when is not None:
        _add_measured(t, f, f.magnitude, when, scale)
    elif f.state == "skipped":
        _add_skipped(t, f)
    elif f.state == "failed":
        t.failed += 1
    else:
        t.waiting += 1


def _add_skipped(t: TargetNight, f: FrameRecord) -> None:
    if f.category:
        t.skipped[f.category] = t.skipped.get(f.category, 0) + 1
    else:
        t.skipped_other.append(f.reason or "no reason recorded")


def _add_measured(t: TargetNight, f: FrameRecord, magnitude: float, when: float,
                  scale: str) -> None:
    t.measured += 1
    q = f.quality or "poor"
    t.quality[q] = t.quality.get(q, 0) + 1
    t.quality_reasons.setdefault(q, []).extend(f.quality_reasons)
    t.points.append(Point(when, magnitude, f.uncertainty or 0.0, q,
                          f.state == "reported", scale))
    if f.filter and f.filter not in t.filters:
        t.filters.append(f.filter)
    _add_check(t, f)
    _add_comp_range(t, f)
    _add_report_state(t, f)


def _add_check(t: TargetNight, f: FrameRecord) -> None:
    if f.check_deviation is None:
        return
    t.check_deviations.append(f.check_deviation)
    if f.check_label and f.check_label not in t.check_labels:
        t.check_labels.append(f.check_label)


def _add_comp_range(t: TargetNight, f: FrameRecord) -> None:
    if f.comp_min is not None:
        t.comp_min = f.comp_min if t.comp_min is None else min(t.comp_min, f.comp_min)
    if f.comp_max is not None:
        t.comp_max = f.comp_max if t.comp_max is None else max(t.comp_max, f.comp_max)


def _add_report_state(t: TargetNight, f: FrameRecord) -> None:
    """Reported, held back (and why) or not reported yet."""
    status = (f.submission_status or "").lower()
    if f.state == "reported":
        t.reported += 1
    elif status in ("skipped", "rejected"):
        why = _held_reason(f.submission_message or status)
        t.held_back[why] = t.held_back.get(why, 0) + 1
    else:
        t.not_yet += 1


def _held_reason(message: str) -> str:
    m = message.lower()
    if "poor" in m:
        return "the measurement was flagged poor"
    if "check star" in m:
        return "the check star was too far from its catalogue value"
    if "synthetic" in m:
        return "synthetic test data are never uploaded"
    return message
