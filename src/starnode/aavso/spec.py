"""The AAVSO Extended File Format, as data: fields, limits, codes, parameters.

The writer (:mod:`starnode.aavso.rows`) and the checker (:mod:`starnode.aavso.validator`) must
agree on every limit and code; both read them from here, so a limit changes in one place.
Sources: the AAVSO Extended File Format spec v1.2 and the limits of the WebObs upload tool
(``../shared/aavso/README.md``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "DATE_KINDS",
    "ERROR",
    "EXTENSIONS",
    "FIELDS",
    "FIELD_LIMITS",
    "FILTER_ADVICE",
    "FILTER_CODES",
    "JD_RANGE",
    "KNOWN_PARAMS",
    "MTYPES",
    "NOTES_LIMIT",
    "OBSTYPES",
    "PLACEHOLDERS",
    "REPEATABLE",
    "REQUIRED_PARAMS",
    "SOFTWARE_LIMIT",
    "WARNING",
    "Finding",
    "Report",
]

ERROR = "ERROR"
WARNING = "WARNING"

#: The 15 fields of a data line, in order.
FIELDS: tuple[str, ...] = (
    "STARID", "DATE", "MAGNITUDE", "MAGERR", "FILTER", "TRANSFORMED", "MTYPE", "CNAME", "CMAG",
    "KNAME", "KMAG", "AIRMASS", "GROUP", "CHART", "NOTES",
)

#: Length limits of the spec ("Limit:" notes) and of the WebObs upload tool (AIRMASS).
FIELD_LIMITS: dict[str, int] = {
    "STARID": 30, "DATE": 16, "MAGNITUDE": 8, "MAGERR": 6, "CNAME": 20, "CMAG": 8, "KNAME": 20,
    "KMAG": 8, "AIRMASS": 7, "GROUP": 5, "CHART": 20,
}
NOTES_LIMIT = 4000
SOFTWARE_LIMIT = 255

#: Filter codes of the spec that WebObs accepts ("O" is listed but refused by WebObs).
FILTER_CODES = frozenset((
    "U", "B", "V", "R", "I", "J", "H", "K", "TG", "TB", "TR", "CV", "CR", "SZ", "SU", "SG",
    "SR", "SI", "STU", "STV", "STB", "STY", "STHBW", "STHBN", "MA", "MB", "MI", "ZS", "Y", "HA",
    "HAC",
))
FILTER_ADVICE = {
    "O": "WebObs cannot accept filter 'O' although the spec lists it; use CV or TB/TG/TR",
    "RC": "'Rc' is a VSP band name; the report code for Cousins R is 'R'",
    "IC": "'Ic' is a VSP band name; the report code for Cousins I is 'I'",
    "G": "a green Bayer plane is 'TG' (a Sloan g' filter is 'SG')",
    "GREEN": "a green Bayer plane is 'TG'",
    "C": "unfiltered data are 'CV' (V comparison magnitudes) or 'CR' (R)",
    "CLEAR": "unfiltered data are 'CV' (V comparison magnitudes) or 'CR' (R)",
    "N": "unfiltered data are 'CV' or 'CR'",
    "NONE": "unfiltered data are 'CV' or 'CR'",
    "L": "luminance / clear is 'CV' or 'CR'",
    "LUM": "luminance / clear is 'CV' or 'CR'",
    "CBB": "a clear-blue-blocking filter is reported as CV (or CR) with 'CBB filter' in NOTES",
}
DATE_KINDS = ("JD", "HJD", "EXCEL")
OBSTYPES = ("CCD", "DSLR", "PEP")
MTYPES = ("STD", "DIF", "ABS")
KNOWN_PARAMS = ("TYPE", "OBSCODE", "SOFTWARE", "DELIM", "DATE", "OBSTYPE")
REQUIRED_PARAMS = ("TYPE", "OBSCODE", "SOFTWARE", "DELIM", "DATE")
REPEATABLE = ("OBSCODE", "DATE")
EXTENSIONS = (".txt", ".csv", ".tsv")
PLACEHOLDERS = frozenset((
    "XXX", "XXXX", "XXXXX", "ABC", "ABCD", "?", "NA", "NONE", "TEST", "TST01", "YOURCODE",
    "CHANGEME", "OBSCODE",
))
#: Plausible full Julian dates (years 1900 .. 2100); the report writer uses the same range.
JD_RANGE = (2415020.0, 2488070.0)


# Patterns of the checker (field syntax, suspicious words).
PARAM_RE = re.compile(r"#\s*([A-Za-z]+)\s*=(.*)")
DECIMAL_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)")
INTEGER_RE = re.compile(r"[0-9]+")
EXCEL_RE = re.compile(r"\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d{2}(?::\d{2})? ?(?:[aApP]\.?[mM]\.?)?")
SIMBAD_RE = re.compile(r"(?:V\*|\*\*?|NAME|EM\*|SV\*)\s", re.IGNORECASE)
PLAIN_NAME_RE = re.compile(r"[A-Za-z0-9 +\-._:()/'\[\]]+")
OSC_WORDS_RE = re.compile(
    r"seestar|dwarf|vespera|unistellar|\bosc\b|one[- ]shot|bayer|debayer|cfa|rggb|bggr|grbg|gbrg",
    re.IGNORECASE,
)
TRANSFORM_WORDS_RE = re.compile(r"transform|\bT[a-z]{1,3}_?[a-z]{1,3}\s*=|TAver", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    """One problem: ``line`` (1-based, 0 = whole file), ``severity``, ``rule`` and ``message``."""

    line: int
    severity: str
    rule: str
    message: str

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def __str__(self) -> str:
        return f"{self.line}: {self.severity} {self.rule}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {"line": self.line, "severity": self.severity, "rule": self.rule,
                "message": self.message}


class Report(list[Finding]):
    """The findings of one file, sorted by line (errors first within a line)."""

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self if f.severity == WARNING]

    @property
    def ok(self) -> bool:
        """True when the file has no ERROR (WebObs should accept it)."""
        return not self.errors

    def summary(self) -> str:
        return f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)"

    def as_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "errors": [f.as_dict() for f in self.errors],
                "warnings": [f.as_dict() for f in self.warnings]}
