"""Measurements made fit for an AAVSO report: sanitised names, checked numbers, the gates.

Pure functions, no I/O. A :class:`starnode.records.Measurement` becomes a :class:`ReportEntry`
whose every text field is safe to write (:func:`entry_from_measurement`), or the reason it
cannot: :class:`~starnode.errors.FieldError` names the field, and the measurement gets status
``"error"`` - nothing is ever cut or changed silently, since a changed name reports a
different star. :func:`gate` says why a valid entry must still not be reported (poor quality,
check star off).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import PurePath
from typing import Any

from starnode.errors import FieldError
from starnode.records import CheckStar, CompResult, Measurement, Transformation

from .spec import FIELD_LIMITS, FILTER_CODES, JD_RANGE

__all__ = [
    "FieldError",
    "ReportEntry",
    "clean_name",
    "clean_note",
    "entry_from_measurement",
    "gate",
    "measurement_from_result",
    "slug",
]

# Characters that must never reach a row from a name: they split fields, start comments or
# subfields, or break lines. Anything outside printable ASCII is refused too.
_FORBIDDEN = set(",|#")
_NOTE_UNSAFE = re.compile(r"[^A-Za-z0-9 ._+\-:()/\[\]']")


# ---------------------------------------------------------------------------------------------
# sanitising
# ---------------------------------------------------------------------------------------------

#: What a terminal colour code leaves in a name once its ESC is gone (``[31m``, ``[0m``).
_ANSI_REMNANT = re.compile(r"\[[0-9;]*m(?![A-Za-z0-9])")


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
    if _ANSI_REMNANT.search(text):
        raise FieldError(f"{field} {text!r} holds a terminal colour code (an escape sequence "
                         "in the FITS header): not a star name")
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
# entries
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReportEntry:
    """What one measurement contributes to a row, every text already sanitised.

    Stored as JSON (``as_dict``) beside the row, so a time bin can be re-averaged when a later
    frame joins it.
    """

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
    transformed: bool = False         # V transformed from TG (TRANS=YES)
    tv_bv: float | None = None        # the colour term applied, for NOTES
    tv_bv_err: float | None = None
    colour_index: float | None = None  # the target's measured B-V

    def signature(self) -> tuple[Any, ...]:
        """What must be equal for entries to share one binned row."""
        return (self.starid.upper(), self.band, self.cname, self.kname, self.chart,
                self.transformed)

    def as_dict(self) -> dict[str, Any]:
        """The entry as a plain dict (stored as JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReportEntry:
        """The entry back from :meth:`as_dict`'s form (extra keys ignored)."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def _number(value: Any, key: str, *, required: bool = True) -> float | None:
    """``value`` as a finite float; :class:`FieldError` names ``key`` when it is not one."""
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


def _target(m: Measurement) -> dict[str, Any]:
    """STARID and FILTER."""
    try:
        starid = clean_name(m.target_name, "STARID")
    except FieldError as exc:
        raise FieldError(f"target_name: {exc}") from None
    band = str(m.filter or "").strip().upper()
    if band not in FILTER_CODES:
        raise FieldError(f"filter {m.filter!r} is not an AAVSO filter code")
    return {"starid": starid, "band": band}


def _times(m: Measurement, date_type: str) -> dict[str, Any]:
    """JD and HJD (HJD required when the report's DATE is HJD)."""
    jd = _number(m.jd, "jd")
    hjd = _number(m.hjd, "hjd", required=date_type == "HJD")
    assert jd is not None
    if hjd is None:
        hjd = jd
    for label, value in (("jd", jd), ("hjd", hjd)):
        if not JD_RANGE[0] <= value <= JD_RANGE[1]:
            raise FieldError(f"{label}={value!r} is not a full Julian date")
    return {"jd": jd, "hjd": hjd}


def _photometry(m: Measurement) -> dict[str, Any]:
    """Magnitude, error, airmass, instrumental magnitude, exposure."""
    mag = _number(m.magnitude, "magnitude")
    err = _number(m.uncertainty, "uncertainty")
    assert err is not None
    if err <= 0:
        raise FieldError(f"uncertainty={err!r} must be positive")
    airmass = _number(m.airmass, "airmass", required=False)
    if airmass is not None and round(airmass, 3) < 1.0:
        raise FieldError(f"airmass={airmass!r} is below 1")
    return {"mag": mag, "err": err, "airmass": airmass,
            "vmagins": _number(m.instrumental_mag, "instrumental_mag", required=False),
            "exptime": _number(m.exptime, "exptime", required=False)}


def _comparison(m: Measurement) -> dict[str, Any]:
    """CNAME/CMAG: ``ENSEMBLE``, or the one comparison star used."""
    comps = [c for c in m.comps if isinstance(c, CompResult) and c.used]
    raw = m.comparison_stars
    ncomp = int(raw) if isinstance(raw, (int, float)) and not isinstance(raw, bool) \
        else len(comps)
    if ncomp < 1:
        raise FieldError("no comparison star was used")
    cname, cmag = "ENSEMBLE", None
    if ncomp == 1 and len(comps) == 1:
        comp = comps[0]
        cname = _first_valid([comp.auid, comp.label, comp.name], "CNAME")
        cmag = _number(comp.instrumental_mag, "instrumental_mag")
    return {"cname": cname, "cmag": cmag, "ncomp": ncomp}


def _check(m: Measurement) -> dict[str, Any]:
    """KNAME/KMAG and the check star's numbers for NOTES and the gate."""
    k = m.check_star
    out: dict[str, Any] = dict.fromkeys(("kname", "kmag", "kmagins", "krefmag", "kreferr",
                                         "kdev"))
    if k is None:
        return out
    if not isinstance(k, CheckStar):
        raise FieldError("check_star must be a dict or None")
    out["kname"] = _first_valid([k.auid, k.label, k.name], "KNAME")
    try:
        out["kmag"] = _number(k.mag, "mag")
        out["kmagins"] = _number(k.instrumental_mag, "instrumental_mag", required=False)
        out["krefmag"] = _number(k.catalog_mag, "catalog_mag", required=False)
        out["kreferr"] = _number(k.error, "error", required=False)
        out["kdev"] = _number(k.deviation, "deviation", required=False)
    except FieldError as exc:
        raise FieldError(f"check_star: {exc}") from None
    if out["kdev"] is None and out["krefmag"] is not None:
        out["kdev"] = out["kmag"] - out["krefmag"]
    return out


def _transformation(m: Measurement) -> dict[str, Any]:
    """TRANS=YES only for a V magnitude whose colour term is given (it goes into NOTES)."""
    if not m.transformed:
        return {}
    t = m.transformation
    if str(m.filter).upper() != "V" or not isinstance(t, Transformation) or not t.applied:
        raise FieldError("transformed is true but the result is not a V magnitude with an "
                         "applied transformation (coefficient for NOTES)")
    return {"transformed": True, "tv_bv": _number(t.coefficient, "transformation.coefficient"),
            "tv_bv_err": _number(t.coefficient_err, "transformation.coefficient_err",
                                 required=False),
            "colour_index": _number(t.colour_index, "transformation.colour_index",
                                    required=False)}


def _chart(m: Measurement) -> dict[str, Any]:
    """CHART: the VSP chart id, or ``Gaia DR3`` with a note."""
    source = str(m.sequence_source or "vsp").lower()
    if source == "vsp":
        if not m.chart_id:
            raise FieldError("sequence_source is 'vsp' but the result has no chart_id")
        return {"chart": clean_name(m.chart_id, "CHART"), "comps_note": None}
    if source in ("gaia-dr3", "gaia", "gaia dr3"):
        return {"chart": "Gaia DR3", "comps_note": "comparison stars from Gaia DR3 (no VSP "
                "sequence) with V from Gaia photometry"}
    raise FieldError(f"sequence_source {m.sequence_source!r} is unknown")


def entry_from_measurement(m: Measurement, date_type: str = "HJD") -> ReportEntry:
    """Check and sanitise a measurement for the report.

    Parameters
    ----------
    m : Measurement
        What photometry produced.
    date_type : {"HJD", "JD"}
        The report's DATE kind (HJD is then required).

    Returns
    -------
    ReportEntry

    Raises
    ------
    FieldError
        A value cannot be written into its field; the message names it.
    """
    frame = clean_note(PurePath(str(m.file or "")).name) or "unknown"
    telescope = str(m.telescope or "")
    return ReportEntry(
        **_target(m), **_times(m, date_type), **_photometry(m), **_comparison(m), **_check(m),
        **_chart(m), **_transformation(m), frame=frame,
        quality=str(m.quality_flag or "unknown"),
        synthetic=bool(m.synthetic) or "synthetic" in telescope.lower(),
    )


def measurement_from_result(result: Mapping[str, Any] | Measurement,
                            date_type: str = "HJD") -> ReportEntry:
    """:func:`entry_from_measurement` for a result dict (0.1.0 name, kept for callers).

    Raises
    ------
    FieldError
        ``result`` is not a measurement, or a value does not fit.
    """
    if isinstance(result, Measurement):
        return entry_from_measurement(result, date_type)
    try:
        m = Measurement.from_dict(result)
    except TypeError as exc:
        raise FieldError(str(exc)) from None
    return entry_from_measurement(m, date_type)


def gate(m: ReportEntry, *, submit_poor_quality: bool, max_check_deviation: float) -> str | None:
    """Why ``m`` must not be reported (status "skipped").

    Parameters
    ----------
    m : ReportEntry
        The entry.
    submit_poor_quality : bool
        Report ``poor`` measurements too.
    max_check_deviation : float
        Largest tolerated |check - catalogue| (mag).

    Returns
    -------
    str or None
        The reason, or None when it may be reported.
    """
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
