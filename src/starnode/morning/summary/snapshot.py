"""The one adapter between the morning summary and the node's storage, and the night rule.

Why one adapter: the summary, the sound and the web page must all tell the same night from the
same facts. :func:`load_snapshot` is the only code of this package that reads the ledger
(:class:`starnode.store.Ledger`, each measured frame as a typed
:class:`starnode.records.Measurement` via :attr:`starnode.store.Frame.measurement`) and the
outbox (:func:`starnode.aavso.outbox_files`); it returns plain :class:`FrameRecord` rows, so the
wording and the page never touch SQL or JSON.

The night a frame belongs to (:func:`frame_night`) -- one rule for the summary, the sound and
the page:

- **measured and reported frames**: the measurement's own ``night`` (the date of the local
  evening at the site, the rule of the AAVSO reports, so the summary and the report file agree);
  for a row written by 0.1.0 (no ``night`` in its result) the report's night if it has one, else
  the same rule applied to its time (:func:`starnode.frame.timesite.night_of`, site longitude of the
  measurement or of the configuration).
- **skipped, failed and waiting frames** have no measurement, and the ledger keeps no header
  time for them (only the file's path, size, mtime and when the node first saw it). So: the
  time stamp in a Seestar file name (``..._20250914-213000.fit``), read as the local clock time
  the Seestar writes, whose evening date is that time minus 12 hours; without a stamp, the
  moment the node first saw the file (a UTC instant) under the report's rule. The file's mtime
  is not used: copying frames off the telescope often resets it.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import re
from dataclasses import dataclass
from typing import Any

from ...config import Config
from ...frame.timesite import jd_from_unix, night_of
from ...instruments import profile
from ...store.frame import FrameFacts

log = logging.getLogger(__name__)

__all__ = ["FrameRecord", "Snapshot", "frame_night", "frame_target", "load_snapshot",
           "night_frames", "night_of_jd"]

_MEASURED = ("measured", "reported")
_STAMP = re.compile(r"(\d{8})-(\d{6})")


@dataclass(frozen=True)
class FrameRecord(FrameFacts):
    """One frame as the summary needs it: the ledger's facts and what the measurement adds."""

    name: str
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
    hjd: float | None = None  # HJD of mid-exposure (the ledger's time column), when known
    key: str | None = None  # the observation (the AAVSO measurement key): copies share it


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


def _measured_fields(frame: Any, longitude: float | None) -> dict[str, Any]:
    """The summary's fields of a measured ledger row, from its typed measurement."""
    try:
        m = frame.measurement
    except (TypeError, ValueError) as exc:  # a damaged result: keep the frame, say why
        log.warning("frame %s: unreadable measurement (%s); counted without it", frame.name, exc)
        m = None
    sub = frame.submission or {}
    # the ledger's time column holds the HJD (or the JD when there is none): never a clock time
    out: dict[str, Any] = {"jd": None, "hjd": frame.jd, "magnitude": frame.magnitude,
                           "uncertainty": frame.uncertainty, "quality": frame.quality,
                           "night": sub.get("night"), "key": sub.get("key")}
    if m is None:
        return out
    utc_jd = _finite(m.jd)
    out.update(jd=utc_jd if utc_jd else None, hjd=_finite(m.hjd))
    night = m.night or out["night"]
    if night is None and out["jd"] is not None:
        lon = m.site_longitude if m.site_longitude is not None else longitude
        night = night_of(float(out["jd"]), lon)
    out.update(quality_reasons=tuple(m.quality_reasons), filter=m.filter or None,
               **_check_fields(m.check_star), **_comp_range(m.comps),
               synthetic=bool(m.synthetic), night=night)
    return out


def _check_fields(check: Any) -> dict[str, Any]:
    """The check star's label and deviation (None without a check star)."""
    if not check:
        return {"check_label": None, "check_deviation": None}
    return {"check_label": check.label or check.name,
            "check_deviation": _finite(check.deviation)}


def _comp_range(comps: Any) -> dict[str, Any]:
    """The catalogue magnitude range of the comparison stars used."""
    cmags = [v for v in (_finite(c.catalog_mag) for c in comps if c.used) if v is not None]
    if not cmags:
        return {"comp_min": None, "comp_max": None}
    return {"comp_min": min(cmags), "comp_max": max(cmags)}


def _record(frame: Any, longitude: float | None) -> FrameRecord:
    sub = frame.submission or {}
    base: dict[str, Any] = {"jd": None, "magnitude": None, "uncertainty": None, "quality": None}
    if frame.state in _MEASURED:
        base = _measured_fields(frame, longitude)
    return FrameRecord(name=frame.name, path=frame.path, state=str(frame.state),
                       category=frame.category, reason=frame.reason, target=frame.target,
                       submission_status=sub.get("status"),
                       submission_message=sub.get("message"), first_seen=frame.first_seen,
                       **base)


def load_snapshot(config: Config) -> Snapshot:
    """Read the ledger and the outbox of ``config``, read only.

    Parameters
    ----------
    config : Config
        Names the data_dir (its database and outbox).

    Returns
    -------
    Snapshot
        Every frame of the ledger and every outbox file; empty when there is no database yet
        (none is created).
    """
    from ...aavso import outbox_files
    from ...store import Ledger

    cfg = config
    longitude = cfg.site.longitude
    if not cfg.db_path.exists():
        return Snapshot(str(cfg.data_dir), [], [], longitude)
    with Ledger(cfg) as led:
        frames = [_record(f, longitude) for f in led.frames()]
    try:
        outbox = list(outbox_files(cfg))
    except Exception as exc:  # a damaged report table: the frames still tell the night
        log.warning("cannot list the outbox: %s", exc)
        outbox = []
    return Snapshot(str(cfg.data_dir), frames, outbox, longitude)


def night_of_jd(jd: float, longitude: float | None) -> str:
    """The observing night of a UTC JD (the reports' rule).

    Parameters
    ----------
    jd : float
        Julian date (UTC).
    longitude : float or None
        Site longitude, east positive (None: Greenwich).

    Returns
    -------
    str
        ISO date of the local evening.
    """
    return night_of(jd, longitude)


def _stamp_night(name: str) -> str | None:
    m = _STAMP.search(name)
    if not m:
        return None
    try:
        t = _dt.datetime.strptime(m.group(1) + m.group(2), "%Y%m%d%H%M%S")
    except ValueError:
        return None
    return (t - _dt.timedelta(hours=12)).date().isoformat()


def frame_night(f: FrameRecord, longitude: float | None) -> str | None:
    """The night a frame belongs to (the rule is in this module's docstring).

    Parameters
    ----------
    f : FrameRecord
        The frame.
    longitude : float or None
        The site's longitude (for frames known only by when they were first seen).

    Returns
    -------
    str or None
        ISO date of the night's evening; None when nothing tells.
    """
    if f.state in _MEASURED and f.night:
        return f.night
    when = f.jd if f.jd is not None else f.hjd
    if f.state in _MEASURED and when is not None:
        return night_of(when, longitude)
    stamped = _stamp_night(f.name)
    if stamped:
        return stamped
    if f.first_seen is not None:
        return night_of(jd_from_unix(f.first_seen), longitude)
    return None


def night_frames(snap: Snapshot, night: str | None) -> list[FrameRecord]:
    """The frames of one night, in the order they were first seen.

    Parameters
    ----------
    snap : Snapshot
        What :func:`load_snapshot` read.
    night : str or None
        ISO date of the night.

    Returns
    -------
    list of FrameRecord
    """
    out = [f for f in snap.frames if frame_night(f, snap.longitude) == night]
    return sorted(out, key=lambda f: (f.first_seen or 0.0, f.name))


def norm_name(name: str) -> str:
    """A star name compared loosely (case, underscores and spaces ignored)."""
    return " ".join(name.upper().replace("_", " ").split())


def frame_target(f: FrameRecord, known: dict[str, str]) -> str | None:
    """The frame's target.

    Parameters
    ----------
    f : FrameRecord
        The frame.
    known : dict
        Normalised name (:func:`norm_name`) -> name of the measured targets.

    Returns
    -------
    str or None
        The ledger's target, or the one in a Seestar file name (spelt as a measured target
        when it matches one); None when neither tells.
    """
    if f.target:
        return known.get(norm_name(f.target), f.target)
    named = profile().target_in_name(f.name)
    if named:
        return known.get(norm_name(named), named.strip())
    return None
