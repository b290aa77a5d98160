"""AAVSO Extended File Format rows: exactly-once keys, time bins, data lines, file text.

Pure functions, no I/O: :mod:`starnode.aavso.submission` stores what they produce and
:mod:`starnode.aavso.outbox` writes the files. Why our own code: the format is a plain text
convention with no maintained Python writer, and every field must fit, never be cut.

- :func:`measurement_key` / :func:`bin_of` are the exactly-once keys;
- :func:`combine` averages a time bin (weighted mean, honest error);
- :func:`format_row` writes one data line from one entry or a bin of several;
- :func:`file_text` writes a whole report.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from starnode._version import SOFTWARE
from starnode.errors import AavsoError, FieldError

from .entries import ReportEntry
from .spec import FIELD_LIMITS, NOTES_LIMIT

__all__ = [
    "DELIM",
    "bin_of",
    "combine",
    "file_comments",
    "file_text",
    "format_row",
    "header_lines",
    "measurement_key",
]

DELIM = ","
#: Decimals of DATE: 6 (0.09 s) keeps 14 characters for a JD (limit 16).
DATE_DECIMALS = 6
#: The exactly-once key rounds the mid-exposure JD to this many decimals (0.86 s).
KEY_DECIMALS = 5


# ---------------------------------------------------------------------------------------------
# keys
# ---------------------------------------------------------------------------------------------

def _name_key(target: str) -> str:
    return " ".join(target.upper().split())


def measurement_key(obscode: str, target: str, band: str, jd: float) -> str:
    """The exactly-once key of one measurement.

    Parameters
    ----------
    obscode, target, band : str
        Observer code, AAVSO star name (case and blanks do not matter), filter code.
    jd : float
        Mid-exposure JD (UTC), rounded to 1e-5 day (0.86 s) in the key.

    Returns
    -------
    str

    Examples
    --------
    >>> measurement_key("zza", "ss  cyg", "tg", 2460797.512341)
    'ZZA|SS CYG|TG|2460797.51234'

    The same frame measured again (a JD differing in its last digits) has the same key:

    >>> measurement_key("ZZA", "SS Cyg", "TG", 2460797.512341 + 1e-7)
    'ZZA|SS CYG|TG|2460797.51234'
    """
    return f"{obscode.upper()}|{_name_key(target)}|{band.upper()}|{jd:.{KEY_DECIMALS}f}"


def bin_of(obscode: str, target: str, band: str, jd: float,
           bin_minutes: float) -> tuple[str, float, float]:
    """The time bin holding ``jd``.

    Bins are a fixed grid of ``bin_minutes`` counted from JD 0, so a measurement always falls in
    the same bin whatever arrived before it (restart-safe, order-independent).

    Parameters
    ----------
    obscode, target, band : str
        As for :func:`measurement_key`.
    jd : float
        Mid-exposure JD (UTC).
    bin_minutes : float
        Bin width.

    Returns
    -------
    tuple of (str, float, float)
        ``(row key, start JD, end JD)``.

    Examples
    --------
    00:17:46 UTC falls in the 10-minute bin from 00:10 to 00:20 UTC:

    >>> from starnode.util.jd import utc_from_jd
    >>> key, start, end = bin_of("ZZA", "SS Cyg", "TG", 2460797.512345, 10)
    >>> key
    'ZZA|SS CYG|TG|bin10m|354354841'
    >>> utc_from_jd(start).strftime("%H:%M:%S"), utc_from_jd(end).strftime("%H:%M:%S")
    ('00:10:00', '00:20:00')
    """
    width = bin_minutes / 1440.0
    index = math.floor(jd / width + 1e-9)
    start = index * width
    key = f"{obscode.upper()}|{_name_key(target)}|{band.upper()}|bin{bin_minutes:g}m|{index}"
    return key, start, start + width


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


def combine(members: Sequence[ReportEntry]) -> Combined:
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


def _transform_notes(members: Sequence[ReportEntry]) -> list[str]:
    """``TV_BV`` (mean over a bin's frames), its error and the target's B-V of a V row."""
    if not members[0].transformed:
        return []
    out = [f"TV_BV={_mean([m.tv_bv for m in members]):.3f}"]
    err = _mean([m.tv_bv_err for m in members])
    if err is not None:
        out.append(f"TV_BV_ERR={err:.3f}")
    bv = _mean([m.colour_index for m in members])
    if bv is not None:
        out.append(f"BV={bv:.3f}")
    return out


def _plain_notes(first: ReportEntry) -> list[str]:
    """The words of NOTES before the '|': plane, transform, comps, synthetic."""
    notes = []
    if first.band in ("TG", "TB", "TR"):
        notes.append(f"Bayer {first.band[1]} plane untransformed")
    if first.transformed:
        notes.append("transformed to V from the Bayer G plane with Tv_bv fitted on each "
                     "frame's VSP comps (B-V)")
    if first.comps_note:
        notes.append(first.comps_note)
    if first.synthetic:
        notes.append("SYNTHETIC DATA - not an observation")
    return notes


def _optional_notes(members: Sequence[ReportEntry], c: Combined) -> list[str]:
    """The ``KEY=value`` magnitudes present, in their order (CMAGINS when the row names its
    comp's magnitude)."""
    first = members[0]
    rules = (("VMAGINS", c.vmagins, c.vmagins), ("CMAGINS", first.cmag, c.cmag),
             ("KMAGINS", c.kmagins, c.kmagins), ("KREFMAG", first.krefmag, first.krefmag),
             ("KREFERR", first.kreferr, first.kreferr))
    return [f"{key}={value:.3f}" for key, present, value in rules if present is not None]


def _bin_notes(members: Sequence[ReportEntry], c: Combined) -> list[str]:
    """The notes naming the frame, or the bin's size, span, errors and frames."""
    if c.n <= 1:
        return [f"FRAME={members[0].frame}"]
    return [f"NBIN={c.n}", f"BINSPAN={c.span_min:.1f}min", f"FORMALERR={c.formal_err:.4f}",
            f"SCATTERERR={c.scatter_err:.4f}",
            f"FRAMES={members[0].frame}..{members[-1].frame}"]


def _key_notes(members: Sequence[ReportEntry], c: Combined) -> list[str]:
    """The ``KEY=value`` notes after the '|'."""
    sub = _optional_notes(members, c)
    sub += _transform_notes(members)
    sub.append(f"NCOMP={min(m.ncomp for m in members)}")
    sub += _bin_notes(members, c)
    quals = sorted({m.quality for m in members})
    sub.append(f"QUALITY={'/'.join(quals)}")
    return sub


def format_row(members: Sequence[ReportEntry], date_type: str) -> str:
    """One data line for a measurement or a bin (members share :meth:`Measurement.signature`)."""
    first = members[0]
    c = combine(members)
    date = c.hjd if date_type == "HJD" else c.jd
    err = max(c.err, 0.0005)
    note_text = "; ".join(_plain_notes(first)) + "|" + "|".join(_key_notes(members, c))
    if len(note_text) > NOTES_LIMIT:
        raise FieldError(f"NOTES would have {len(note_text)} characters (limit {NOTES_LIMIT})")
    fields = [
        _fit("STARID", first.starid),
        _fit("DATE", f"{date:.{DATE_DECIMALS}f}"),
        _fit("MAGNITUDE", f"{c.mag:.3f}"),
        _fit("MAGERR", f"{err:.3f}"),
        first.band,
        "YES" if first.transformed else "NO",
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
    """The parameter lines of a report.

    Examples
    --------
    >>> header_lines("ZZA", "HJD", "starnode 0.2.0")  # doctest: +NORMALIZE_WHITESPACE
    ['#TYPE=EXTENDED', '#OBSCODE=ZZA', '#SOFTWARE=starnode 0.2.0', '#DELIM=,', '#DATE=HJD',
     '#OBSTYPE=CCD']
    """
    return [
        "#TYPE=EXTENDED",
        f"#OBSCODE={obscode}",
        f"#SOFTWARE={software}",
        f"#DELIM={DELIM}",
        f"#DATE={date_type}",
        "#OBSTYPE=CCD",
    ]


def file_text(rows: Iterable[Any], comments: Iterable[str] = (), *, sort: bool = True) -> str:
    """A whole report: header, comments, then the rows sorted by time (in the order given
    with ``sort=False``: the format sets no order, and a file keeps its arrival order).

    ``#OBSCODE`` / ``#DATE`` lines repeat where they change between rows.

    Parameters
    ----------
    rows : iterable of sqlite3.Row or mapping
        Stored rows (``jd``, ``row_key``, ``obscode``, ``date_type``, ``line``).
    comments : iterable of str
        Comment lines for the header (``# `` is prepended).
    sort : bool
        Sort the rows by time (False: keep their order).

    Returns
    -------
    str
        The file's text, newline-terminated.

    Raises
    ------
    AavsoError
        ``rows`` is empty.
    """
    ordered = sorted(rows, key=lambda r: (r["jd"], r["row_key"])) if sort else list(rows)
    if not ordered:
        raise AavsoError("no rows")
    first = ordered[0]
    lines = header_lines(first["obscode"], first["date_type"], SOFTWARE)
    lines += [f"# {c}" for c in comments]
    lines.append("#NAME,DATE,MAG,MERR,FILT,TRANS,MTYPE,CNAME,CMAG,KNAME,KMAG,AMASS,GROUP,CHART,"
                 "NOTES")
    code, dtype = first["obscode"], first["date_type"]
    for r in ordered:
        if r["obscode"] != code:
            code = r["obscode"]
            lines.append(f"#OBSCODE={code}")
        if r["date_type"] != dtype:
            dtype = r["date_type"]
            lines.append(f"#DATE={dtype}")
        lines.append(r["line"])
    return "\n".join(lines) + "\n"


def file_comments(rows: Sequence[Any], night: str | None) -> list[str]:
    """The explanatory comments of a report file (night, open bin, synthetic data).

    Parameters
    ----------
    rows : sequence of sqlite3.Row or mapping
        The file's stored rows (``closed``, ``line``).
    night : str or None
        The observing night the file holds.

    Returns
    -------
    list of str
    """
    out = []
    if night:
        out.append(f"starnode report: observing night of {night} (local evening date at the "
                   "site)")
    if any(not r["closed"] for r in rows):
        out.append("a time bin is still open: its row may change until the bin closes")
    if any("SYNTHETIC DATA" in r["line"] for r in rows):
        out.append("SYNTHETIC DATA - never upload this file to the AAVSO")
    return out
