"""AAVSO Extended File Format rows from photometry results: sanitising, binning, nights, keys.

Pure functions, no I/O. :mod:`starnode.aavso` stores what they produce and writes the files.

- :func:`measurement_from_result` turns a photometry result dict (docs/INTERFACES.md) into a
  :class:`Measurement` whose every text field is safe to write, or raises :class:`FieldError`
  (the measurement then gets status ``"error"`` with the reason: nothing is cut silently).
- :func:`gate` says why a measurement must not be reported (poor quality, check star).
- :func:`format_row` writes one data line from one measurement or from a time bin of several.
- :func:`night_of` is the observing night: the local date of the evening at the site.
- :func:`measurement_key` / :func:`bin_of` are the exactly-once keys.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import PurePath
from typing import Any

from .validator import FIELD_LIMITS, FILTER_CODES, JD_RANGE, NOTES_LIMIT

__all__ = [
    "DELIM",
    "FieldError",
    "Measurement",
    "bin_of",
    "clean_name",
    "clean_note",
    "combine",
    "format_row",
    "gate",
    "header_lines",
    "measurement_from_result",
    "measurement_key",
    "night_of",
    "slug",
]

DELIM = ","
#: Decimals of DATE: 6 (0.09 s) keeps 14 characters for a JD (limit 16).
DATE_DECIMALS = 6
#: The exactly-once key rounds the mid-exposure JD to this many decimals (0.86 s).
KEY_DECIMALS = 5
_UNIX_EPOCH_JD = 2440587.5
# Characters that must never reach a row from a name: they split fields, start comments or
# subfields, or break lines. Anything outside printable ASCII is refused too.
_FORBIDDEN = set(",|#")
_NOTE_UNSAFE = re.compile(r"[^A-Za-z0-9 ._+\-:()/\[\]']")


class FieldError(ValueError):
    """A value of the result cannot be written into its AAVSO field (named in the message)."""


# ---------------------------------------------------------------------------------------------
# sanitising
# ---------------------------------------------------------------------------------------------

def clean_name(value: Any, field: str, limit: int | None = None) -> str:
    """A name (STARID, KNAME, CNAME, CHART) safe for one field, or :class:`FieldError`.

    Leading/trailing blanks are removed and runs of spaces collapse to one (VSX spelling). A
    comma, ``|``, ``#``, a line break or any other control or non-ASCII character is refused:
    a name is an identifier, and changing it would report a different star.
    """
    if value is None:
        raise FieldError(f"{field} is missing")
    text = str(value).strip(" \t")
    bad = sorted({c for c in text if c in _FORBIDDEN or not 32 <= ord(c) <= 126})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise FieldError(f"{field} {text!r} contains {shown}: it could split or inject a row")
    text = re.sub(r" {2,}", " ", text)
    if not text:
        raise FieldError(f"{field} is empty")
    limit = FIELD_LIMITS.get(field) if limit is None else limit
    if limit is not None and len(text) > limit:
        raise FieldError(f"{field} {text!r} has {len(text)} characters; the AAVSO limit is "
                         f"{limit}")
    return text


def clean_note(value: Any) -> str:
    """Free text for NOTES (e.g. a frame name): every character that could split a field, start a
    ``|KEY=VALUE`` subfield or a comment, or is not printable ASCII, becomes ``_``."""
    return _NOTE_UNSAFE.sub("_", str(value)).strip()


def slug(text: str) -> str:
    """A file-name-safe form of a star name ("SS Cyg" -> "SS_Cyg")."""
    out = re.sub(r"[^A-Za-z0-9+\-.]+", "_", text).strip("_.")
    return out or "unnamed"


# ---------------------------------------------------------------------------------------------
# time, nights, keys
# ---------------------------------------------------------------------------------------------

def night_of(jd: float, longitude_deg: float | None) -> str:
    """The observing night of a UTC Julian date: ``YYYY-MM-DD`` of the evening it began.

    Local mean solar time at the site (UTC + longitude/15 h) minus 12 h, so a night runs from
    local noon to local noon and keeps the date of its evening. Without a longitude, UTC
    (Greenwich) is used.
    """
    lon = float(longitude_deg or 0.0)
    lon = (lon + 180.0) % 360.0 - 180.0
    days = jd - _UNIX_EPOCH_JD + lon / 360.0 - 0.5
    return (_dt.date(1970, 1, 1) + _dt.timedelta(days=math.floor(days))).isoformat()


def _name_key(target: str) -> str:
    return " ".join(target.upper().split())


def measurement_key(obscode: str, target: str, band: str, jd: float) -> str:
    """The exactly-once key of one measurement: observer, star, filter, mid-exposure JD (UTC)
    rounded to 1e-5 day (0.86 s)."""
    return f"{obscode.upper()}|{_name_key(target)}|{band.upper()}|{jd:.{KEY_DECIMALS}f}"


def bin_of(obscode: str, target: str, band: str, jd: float,
           bin_minutes: float) -> tuple[str, float, float]:
    """The time bin holding ``jd``: ``(row key, start JD, end JD)``.

    Bins are a fixed grid of ``bin_minutes`` counted from JD 0, so a measurement always falls in
    the same bin whatever arrived before it (restart-safe, order-independent).
    """
    width = bin_minutes / 1440.0
    index = math.floor(jd / width + 1e-9)
    start = index * width
    key = f"{obscode.upper()}|{_name_key(target)}|{band.upper()}|bin{bin_minutes:g}m|{index}"
    return key, start, start + width


# ---------------------------------------------------------------------------------------------
# measurements
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Measurement:
    """What one result contributes to a row, every text already sanitised."""

    starid: str
    band: str
    jd: float
    hjd: float
    mag: float
    err: float
    airmass: float | None
    cname: str              # "ENSEMBLE" or the single comparison star
    cmag: float | None      # instrumental mag of a single comp; None for an ensemble
    kname: str | None
    kmag: float | None      # check star, standardised like the target
    kmagins: float | None
    krefmag: float | None
    kreferr: float | None
    kdev: float | None
    vmagins: float | None
    chart: str
    comps_note: str | None  # where comps came from when not a VSP chart
    ncomp: int
    frame: str
    exptime: float | None
    quality: str
    synthetic: bool

    def signature(self) -> tuple[Any, ...]:
        """What must be equal for measurements to share one binned row."""
        return (self.starid.upper(), self.band, self.cname, self.kname, self.chart)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Measurement:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def _number(result: Mapping[str, Any], key: str, *, required: bool = True) -> float | None:
    value = result.get(key)
    if value is None:
        if required:
            raise FieldError(f"result has no {key!r}")
        return None
    if isinstance(value, bool):
        raise FieldError(f"{key}={value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FieldError(f"{key}={value!r} is not a number") from None
    if not math.isfinite(number):
        raise FieldError(f"{key}={value!r} is not a finite number")
    return number


def _first_valid(candidates: Sequence[Any], field: str) -> str:
    """The first given identifier (AUID, then chart label, then name), sanitised. A given but
    unusable one is an error: falling back to another would hide a broken input."""
    for c in candidates:
        if c is None or str(c).strip() == "":
            continue
        return clean_name(c, field)
    raise FieldError(f"{field}: the star has no AUID, label or name")


def measurement_from_result(result: Mapping[str, Any], date_type: str = "HJD") -> Measurement:
    """Check and sanitise a photometry result; :class:`FieldError` names what cannot be written."""
    if not isinstance(result, Mapping):
        raise FieldError(f"result must be a dict, got {type(result).__name__}")
    name = result.get("target_name")
    try:
        starid = clean_name(name, "STARID")
    except FieldError as exc:
        raise FieldError(f"target_name: {exc}") from None
    band = str(result.get("filter") or "").strip().upper()
    if band not in FILTER_CODES:
        raise FieldError(f"filter {result.get('filter')!r} is not an AAVSO filter code")
    jd = _number(result, "jd")
    hjd = _number(result, "hjd", required=date_type == "HJD")
    assert jd is not None
    if hjd is None:
        hjd = jd
    for label, value in (("jd", jd), ("hjd", hjd)):
        if not JD_RANGE[0] <= value <= JD_RANGE[1]:
            raise FieldError(f"{label}={value!r} is not a full Julian date")
    mag = _number(result, "magnitude")
    err = _number(result, "uncertainty")
    assert mag is not None and err is not None
    if err <= 0:
        raise FieldError(f"uncertainty={err!r} must be positive")
    if result.get("transformed"):
        raise FieldError("transformed magnitudes are not reported by starnode (TRANS=NO only)")
    airmass = _number(result, "airmass", required=False)
    if airmass is not None and round(airmass, 3) < 1.0:
        raise FieldError(f"airmass={airmass!r} is below 1")

    comps = [c for c in (result.get("comps") or []) if isinstance(c, Mapping) and c.get("used")]
    ncomp_raw = result.get("comparison_stars")
    ncomp = int(ncomp_raw) if isinstance(ncomp_raw, (int, float)) and not isinstance(
        ncomp_raw, bool) else len(comps)
    if ncomp < 1:
        raise FieldError("no comparison star was used")
    cname, cmag = "ENSEMBLE", None
    if ncomp == 1 and len(comps) == 1:
        comp = comps[0]
        cname = _first_valid([comp.get("auid"), comp.get("label"), comp.get("name")], "CNAME")
        cmag = _number(comp, "instrumental_mag")

    check = result.get("check_star")
    kname = kmag = kmagins = krefmag = kreferr = kdev = None
    if isinstance(check, Mapping):
        kname = _first_valid([check.get("auid"), check.get("label"), check.get("name")],
                             "KNAME")
        try:
            kmag = _number(check, "mag")
            kmagins = _number(check, "instrumental_mag", required=False)
            krefmag = _number(check, "catalog_mag", required=False)
            kreferr = _number(check, "error", required=False)
            kdev = _number(check, "deviation", required=False)
        except FieldError as exc:
            raise FieldError(f"check_star: {exc}") from None
        if kdev is None and kmag is not None and krefmag is not None:
            kdev = kmag - krefmag
    elif check is not None:
        raise FieldError("check_star must be a dict or None")

    source = str(result.get("sequence_source") or "vsp").lower()
    comps_note = None
    if source == "vsp":
        if not result.get("chart_id"):
            raise FieldError("sequence_source is 'vsp' but the result has no chart_id")
        chart = clean_name(result.get("chart_id"), "CHART")
    elif source in ("gaia-dr3", "gaia", "gaia dr3"):
        chart = "Gaia DR3"
        comps_note = "comparison stars from Gaia DR3 (no VSP sequence) with V from Gaia photometry"
    else:
        raise FieldError(f"sequence_source {result.get('sequence_source')!r} is unknown")

    frame = clean_note(PurePath(str(result.get("file") or "")).name) or "unknown"
    telescope = str(result.get("telescope") or "")
    return Measurement(
        starid=starid, band=band, jd=jd, hjd=hjd, mag=mag, err=err, airmass=airmass,
        cname=cname, cmag=cmag, kname=kname, kmag=kmag, kmagins=kmagins, krefmag=krefmag,
        kreferr=kreferr, kdev=kdev,
        vmagins=_number(result, "instrumental_mag", required=False), chart=chart,
        comps_note=comps_note, ncomp=ncomp, frame=frame,
        exptime=_number(result, "exptime", required=False),
        quality=str(result.get("quality_flag") or "unknown"),
        synthetic=bool(result.get("synthetic")) or "synthetic" in telescope.lower(),
    )


def gate(m: Measurement, *, submit_poor_quality: bool, max_check_deviation: float) -> str | None:
    """Why ``m`` must not be reported (status "skipped"), or None."""
    if m.quality == "poor" and not submit_poor_quality:
        return "quality_flag is 'poor' (aavso.submit_poor_quality is false)"
    if m.kname is None:
        if m.cname == "ENSEMBLE":
            return "no check star: an ENSEMBLE row needs one (K-C is how AAVSO judges the data)"
        return None
    if m.kdev is None:
        return f"check star {m.kname} has no catalogue magnitude to compare with"
    if abs(m.kdev) > max_check_deviation:
        return (f"check star {m.kname} is {m.kdev:+.3f} mag off its catalogue value "
                f"(limit aavso.max_check_deviation={max_check_deviation:g})")
    return None


# ---------------------------------------------------------------------------------------------
# rows
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Combined:
    """A row's numbers: one measurement, or the weighted mean of a time bin."""

    jd: float
    hjd: float
    mag: float
    err: float
    formal_err: float
    scatter_err: float | None
    airmass: float | None
    cmag: float | None
    kmag: float | None
    kmagins: float | None
    vmagins: float | None
    n: int
    span_min: float


def _mean(values: Sequence[float | None]) -> float | None:
    if not values or any(v is None for v in values):
        return None
    return sum(values) / len(values)  # type: ignore[arg-type]


def combine(members: Sequence[Measurement]) -> Combined:
    """Weighted mean (w = 1/err²) of a bin. The error is the larger of the formal error of the
    mean and the standard error from the scatter of the points about it; the time is the middle
    of the first and last mid-exposure times."""
    if not members:
        raise ValueError("an empty bin")
    weights = [1.0 / (m.err * m.err) for m in members]
    wsum = sum(weights)
    mag = sum(w * m.mag for w, m in zip(weights, members, strict=True)) / wsum
    formal = 1.0 / math.sqrt(wsum)
    scatter = None
    n = len(members)
    if n > 1:
        chi = sum(w * (m.mag - mag) ** 2 for w, m in zip(weights, members, strict=True))
        scatter = math.sqrt(chi / ((n - 1) * wsum))
    jds = [m.jd for m in members]
    hjds = [m.hjd for m in members]
    return Combined(
        jd=(min(jds) + max(jds)) / 2, hjd=(min(hjds) + max(hjds)) / 2, mag=mag,
        err=max(formal, scatter or 0.0), formal_err=formal, scatter_err=scatter,
        airmass=_mean([m.airmass for m in members]), cmag=_mean([m.cmag for m in members]),
        kmag=_mean([m.kmag for m in members]), kmagins=_mean([m.kmagins for m in members]),
        vmagins=_mean([m.vmagins for m in members]), n=n,
        span_min=(max(jds) - min(jds)) * 1440.0,
    )


def _fit(field: str, text: str) -> str:
    limit = FIELD_LIMITS.get(field)
    if limit is not None and len(text) > limit:
        raise FieldError(f"{field}={text!r} has {len(text)} characters (limit {limit})")
    return text


def _mag(value: float | None) -> str:
    return "na" if value is None else f"{value:.3f}"


def format_row(members: Sequence[Measurement], date_type: str) -> str:
    """One data line for a measurement or a bin (members share :meth:`Measurement.signature`)."""
    first = members[0]
    c = combine(members)
    date = c.hjd if date_type == "HJD" else c.jd
    err = max(c.err, 0.0005)
    notes = []
    if first.band in ("TG", "TB", "TR"):
        notes.append(f"Bayer {first.band[1]} plane untransformed")
    if first.comps_note:
        notes.append(first.comps_note)
    if first.synthetic:
        notes.append("SYNTHETIC DATA - not an observation")
    sub = []
    if c.vmagins is not None:
        sub.append(f"VMAGINS={c.vmagins:.3f}")
    if first.cmag is not None:
        sub.append(f"CMAGINS={c.cmag:.3f}")
    if c.kmagins is not None:
        sub.append(f"KMAGINS={c.kmagins:.3f}")
    if first.krefmag is not None:
        sub.append(f"KREFMAG={first.krefmag:.3f}")
    if first.kreferr is not None:
        sub.append(f"KREFERR={first.kreferr:.3f}")
    sub.append(f"NCOMP={min(m.ncomp for m in members)}")
    if c.n > 1:
        sub.append(f"NBIN={c.n}")
        sub.append(f"BINSPAN={c.span_min:.1f}min")
        sub.append(f"FORMALERR={c.formal_err:.4f}")
        sub.append(f"SCATTERERR={c.scatter_err:.4f}")
        sub.append(f"FRAMES={members[0].frame}..{members[-1].frame}")
    else:
        sub.append(f"FRAME={first.frame}")
    quals = sorted({m.quality for m in members})
    sub.append(f"QUALITY={'/'.join(quals)}")
    note_text = "; ".join(notes) + "|" + "|".join(sub)
    if len(note_text) > NOTES_LIMIT:
        raise FieldError(f"NOTES would have {len(note_text)} characters (limit {NOTES_LIMIT})")
    fields = [
        _fit("STARID", first.starid),
        _fit("DATE", f"{date:.{DATE_DECIMALS}f}"),
        _fit("MAGNITUDE", f"{c.mag:.3f}"),
        _fit("MAGERR", f"{err:.3f}"),
        first.band,
        "NO",
        "STD",
        _fit("CNAME", first.cname),
        _fit("CMAG", _mag(c.cmag)),
        _fit("KNAME", first.kname or "na"),
        _fit("KMAG", _mag(c.kmag)),
        _fit("AIRMASS", "na" if c.airmass is None else f"{c.airmass:.3f}"),
        "na",
        _fit("CHART", first.chart),
        note_text,
    ]
    for value in fields:
        if DELIM in value or "\n" in value or "\r" in value:
            raise FieldError(f"internal: field {value!r} would split the row")
    return DELIM.join(fields)


def header_lines(obscode: str, date_type: str, software: str) -> list[str]:
    """The parameter lines of a report."""
    return [
        "#TYPE=EXTENDED",
        f"#OBSCODE={obscode}",
        f"#SOFTWARE={software}",
        f"#DELIM={DELIM}",
        f"#DATE={date_type}",
        "#OBSTYPE=CCD",
    ]
