"""Validator for AAVSO Extended File Format reports (spec v1.2 plus known WebObs limits).

Every report starnode writes is checked with :func:`validate_text` before it replaces the previous
version of the file; ``starnode validate FILE`` uses :func:`validate_file`.

    >>> head = "".join(line + "\\n" for line in ("#TYPE=EXTENDED", "#OBSCODE=ZZA",
    ...     "#SOFTWARE=starnode", "#DELIM=,", "#DATE=JD", "#OBSTYPE=CCD"))
    >>> row = ("SS Cyg,2460797.51234,11.234,0.021,V,NO,STD,ENSEMBLE,na,000-BCP-221,11.420,"
    ...        "1.234,na,X41941HP,na")
    >>> report = validate_text(head + row + "\\n")
    >>> report.ok, report.summary()
    (True, '0 error(s), 0 warning(s)')
    >>> report = validate_text(head + row.replace("11.234", "-") + "\\n")
    >>> report.ok, [str(f) for f in report.errors]
    (False, ["7: ERROR D03: MAGNITUDE='-' is not a number (a '<' prefix is allowed)"])

A :class:`Report` is a ``list`` of :class:`Finding` (``line``, ``severity`` "ERROR" or "WARNING",
``rule``, ``message``); ``line`` is 1-based, 0 for findings about the whole file. ERROR means
WebObs would refuse the file or the row breaks a rule of the written spec (or a rule this project
treats as mandatory, e.g. an ENSEMBLE row needs a check star); WARNING means legal but suspicious.

Rule identifiers follow the shared reference checker (``F`` file, ``H`` header, ``D`` data field,
``X`` cross-field science checks) so findings of both can be compared line by line.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Iterable
from pathlib import Path

from ..config import is_observer_code
from ..frame.timesite import jd_from_unix
from . import spec
from .spec import (
    ERROR,
    FIELD_LIMITS,
    FIELDS,
    FILTER_CODES,
    JD_RANGE,
    NOTES_LIMIT,
    SOFTWARE_LIMIT,
    WARNING,
    Finding,
    Report,
)

__all__ = [
    "ERROR",
    "FIELDS",
    "FIELD_LIMITS",
    "FILTER_CODES",
    "SYNTHETIC_RULE",
    "WARNING",
    "Finding",
    "Report",
    "validate_bytes",
    "validate_file",
    "validate_text",
]


_FIRST_JD, _LAST_JD = JD_RANGE
#: A ``|KEY=VALUE`` subfield of NOTES that is an error (CREFERR, KREFERR, FORMALERR, ...).
_NOTE_ERR_RE = re.compile(r"(?:^|\|)\s*([A-Z]*ERR)=\s*([^|]*?)\s*(?=\||$)")
#: The rule of the WARNING on a file of synthetic (demo) rows: legal, but never to upload.
SYNTHETIC_RULE = "X09"



def _is_decimal(text: str) -> bool:
    return spec.DECIMAL_RE.fullmatch(text) is not None


def _decimal_places(text: str) -> int:
    _, dot, frac = text.partition(".")
    return len(frac) if dot else 0


def _jd_now() -> float:
    return jd_from_unix(_dt.datetime.now(_dt.UTC).timestamp())


class _Checker:
    """State of one pass over a file."""

    def __init__(self, name: str | None) -> None:
        self.name = name
        self.found: list[Finding] = []
        self.params: dict[str, str] = {}
        self.delim: str | None = None
        self.date_kind: str | None = None
        self.obstype = "CCD"
        self.software = ""
        self.in_data = False
        self.n_records = 0
        self.short_line = 0  # last record with too few fields (a split record?)
        self.seen: dict[tuple[str, str, str], int] = {}
        self.synthetic = 0  # rows whose NOTES say SYNTHETIC DATA (made-up test frames)

    # -- reporting ---------------------------------------------------------------------------
    def error(self, line: int, rule: str, message: str) -> None:
        self.found.append(Finding(line, ERROR, rule, message))

    def warning(self, line: int, rule: str, message: str) -> None:
        self.found.append(Finding(line, WARNING, rule, message))

    # -- whole file --------------------------------------------------------------------------
    def run(self, raw: bytes) -> Report:
        self.extension()
        for number, chunk in enumerate(self.split_lines(raw), start=1):
            self.line(number, chunk[:-1] if chunk.endswith(b"\r") else chunk)
        self.whole_file()
        report = Report(sorted(self.found, key=lambda f: (f.line, f.severity != ERROR, f.rule)))
        return report

    def extension(self) -> None:
        if self.name is None:
            return
        ext = os.path.splitext(self.name)[1].lower()
        if ext not in spec.EXTENSIONS:
            self.error(0, "F01", f"extension {ext or '(none)'!r}: WebObs takes only "
                       ".txt, .csv and .tsv files")

    def split_lines(self, raw: bytes) -> list[bytes]:
        """The file's lines (a byte-order mark dropped, bare CRs read as LFs; CRLF kept)."""
        if raw[:3] == b"\xef\xbb\xbf":
            self.error(1, "F02", "UTF-8 byte-order mark at the start: '#TYPE' is not in column 1")
            raw = raw[3:]
        if b"\r" in raw and b"\n" not in raw:
            self.error(0, "F02", "lines end with a bare CR; use LF (or CRLF)")
            raw = raw.replace(b"\r", b"\n")
        lines = raw.split(b"\n")
        if lines and not lines[-1]:
            lines.pop()
        if any(chunk.endswith(b"\r") for chunk in lines):
            self.warning(0, "F02", "CRLF line endings (LF is safest)")
        return lines

    def whole_file(self) -> None:
        """What only the end of the file can tell: parameters, records, synthetic rows."""
        if not self.in_data:
            for key in spec.REQUIRED_PARAMS:
                if key not in self.params:
                    self.error(0, "H01", f"parameter #{key}= is missing")
        if self.n_records == 0:
            self.error(0, "F06", "the file holds no observation")
        if self.synthetic:
            self.warning(0, SYNTHETIC_RULE, f"SYNTHETIC DATA: {self.synthetic} row(s) come from "
                         "made-up test frames (starnode demo), not observations: never upload "
                         "this file to the AAVSO")

    # -- one line ----------------------------------------------------------------------------
    def line(self, n: int, chunk: bytes) -> None:
        try:
            text = chunk.decode("ascii")
        except UnicodeDecodeError:
            text = chunk.decode("utf-8", errors="replace")
            self.error(n, "F03", "non-ASCII characters: the format is plain ASCII (a name "
                       "copied from a FITS header?)")
        controls = {c for c in text if ord(c) < 32 and not (c == "\t" and self.delim == "\t")}
        if controls:
            what = ("a carriage return" if "\r" in controls
                    else "control characters " + ", ".join(sorted(hex(ord(c)) for c in controls)))
            self.error(n, "F03", f"{what} inside the line")
        if text.strip() == "":
            self.error(n, "F04", "blank line: WebObs refuses blank lines (comment them with '#')")
            return
        if text[0].isspace() and text.lstrip().startswith("#"):
            self.error(n, "F05", "'#' must be in column 1 (parameters and comments)")
            return
        if text.startswith("#"):
            self.parameter(n, text)
            return
        self.record(n, text)

    def parameter(self, n: int, text: str) -> None:
        match = spec.PARAM_RE.fullmatch(text)
        if match is None:
            return  # a comment
        key, value = match.group(1).upper(), match.group(2)
        if key not in spec.KNOWN_PARAMS:
            return  # '#CREFMAG=...', '#Observer=...': comments for WebObs
        if self.in_data and key not in spec.REPEATABLE:
            self.warning(n, "H08", f"#{key} after the first observation: only #OBSCODE and "
                         "#DATE may change inside a file")
        if not self.in_data and key in self.params and \
                self.params[key].strip() != value.strip():
            self.warning(n, "H09", f"#{key} is given twice with different values")
        self.params[key] = value
        handler = getattr(self, f"param_{key.lower()}")
        handler(n, value)

    def param_delim(self, n: int, value: str) -> None:
        self.delim = None
        word = value.strip()
        if value and not word:
            self.error(n, "H05", "#DELIM is a space; space, '|' and '#' cannot be delimiters")
            return
        named = {"tab": "\t", "comma": ","}.get(word.lower())
        if named is not None:
            self.delim = named
            return
        if len(word) != 1:
            self.error(n, "H05", f"#DELIM={word!r}: one ASCII character (or 'tab' / 'comma')")
        elif word in "|# " or not 32 <= ord(word) <= 126:
            self.error(n, "H05", f"#DELIM={word!r} is not allowed ('|', '#' and space are "
                       "reserved; printable ASCII only)")
        elif word in ".+-<0123456789":
            self.error(n, "H05", f"#DELIM={word!r} also appears inside numbers; use ',' ';' "
                       "or '!'")
        else:
            self.delim = word

    def param_type(self, n: int, value: str) -> None:
        if value.strip().upper() != "EXTENDED":
            self.error(n, "H02", f"#TYPE={value.strip()!r}: must be EXTENDED")

    def param_obscode(self, n: int, value: str) -> None:
        code = value.strip()
        if not code:
            self.error(n, "H03", "#OBSCODE is empty")
        elif code.upper() in spec.PLACEHOLDERS:
            self.warning(n, "H03", f"#OBSCODE={code!r} looks like a placeholder, not a code "
                         "assigned by the AAVSO")
        elif not is_observer_code(code):
            self.warning(n, "H03", f"#OBSCODE={code!r}: AAVSO observer codes are short "
                         "letters/digits")

    def param_software(self, n: int, value: str) -> None:
        self.software = value
        name = value.strip()
        if not name:
            self.error(n, "H04", "#SOFTWARE is empty")
        if len(name) > SOFTWARE_LIMIT:
            self.error(n, "H04", f"#SOFTWARE has {len(name)} characters (limit "
                       f"{SOFTWARE_LIMIT})")

    def param_date(self, n: int, value: str) -> None:
        kind = value.strip().upper()
        self.date_kind = kind if kind in spec.DATE_KINDS else "?"
        if kind == "EXCEL":
            self.warning(n, "H06", "#DATE=EXCEL: prefer JD (Excel dates overflow the "
                         "16-character DATE field)")
        elif kind not in spec.DATE_KINDS:
            why = ""
            if kind.startswith("BJD"):
                why = "; BJD is not accepted - report HJD (UTC) or JD (UTC)"
            elif kind in ("MJD", "RJD", "HMJD"):
                why = "; only full Julian dates are accepted"
            self.error(n, "H06", f"#DATE={value.strip()!r} is not JD, HJD or EXCEL{why}")

    def param_obstype(self, n: int, value: str) -> None:
        kind = value.strip().upper()
        self.obstype = kind
        if kind in spec.OBSTYPES:
            return
        why = ""
        if kind == "CMOS":
            why = "; a CMOS camera is reported as CCD"
        elif kind in ("VISUAL", "VIS", "PTG", "VISDIG"):
            why = "; visual observations use the Visual File Format"
        self.error(n, "H07", f"#OBSTYPE={value.strip()!r} is not CCD, DSLR or PEP{why}")

    # -- an observation ----------------------------------------------------------------------
    def record(self, n: int, text: str) -> None:
        if not self.in_data:
            self.first_record(n)
        self.n_records += 1
        if self.delim is None:
            if self.n_records == 1:
                self.error(n, "D99", "observation lines cannot be split without a valid #DELIM")
            return
        parts = text.split(self.delim)
        head = [p.strip().upper() for p in parts[:2]]
        if len(head) == 2 and head[0] in ("NAME", "STARID") and head[1] == "DATE":
            self.error(n, "D98", "a column-header line that is not commented out with '#' "
                       "(WebObs fails on it)")
            return
        if self.short_line and parts[0].strip() == "":
            self.error(n, "D97", f"starts with the delimiter right after the short line "
                       f"{self.short_line}: one record split by a newline in STARID")
            self.short_line = 0
            return
        if len(parts) != len(FIELDS):
            self.wrong_field_count(n, parts)
            return
        self.short_line = 0
        if self.empty_fields(n, parts):
            return
        self.fields(n, {name: value.strip() for name, value in zip(FIELDS, parts, strict=True)})

    def first_record(self, n: int) -> None:
        """The header ends at the first observation: its required parameters must be known."""
        self.in_data = True
        for key in spec.REQUIRED_PARAMS:
            if key not in self.params:
                self.error(n, "H01", f"parameter #{key}= missing before the first "
                           "observation")
        if "OBSTYPE" not in self.params:
            self.warning(n, "H01", "#OBSTYPE is missing (WebObs assumes CCD)")

    def empty_fields(self, n: int, parts: list[str]) -> bool:
        """Report empty fields (an error: True) and fields with spaces around them."""
        empty = False
        for name, value in zip(FIELDS, parts, strict=True):
            if not value.strip():
                self.error(n, "D96", f"{name} is empty: write 'na' for a missing value")
                empty = True
            elif value != value.strip():
                self.warning(n, "D95", f"{name} has leading/trailing spaces: {value!r}")
        return empty

    def wrong_field_count(self, n: int, parts: list[str]) -> None:
        count = len(parts)
        if count > len(FIELDS):
            date_like = len(parts) > 1 and _is_decimal(parts[1].strip())
            if not date_like and self.date_kind in ("JD", "HJD"):
                hint = "STARID seems to contain the delimiter"
            else:
                hint = "a field (often NOTES) contains the delimiter, or a trailing delimiter"
        elif self.short_line:
            hint = "a record split by an embedded newline?"
        else:
            hint = "missing fields or a wrong #DELIM"
            self.short_line = n
        self.error(n, "D97", f"{count} fields instead of {len(FIELDS)}: {hint}")

    def fields(self, n: int, f: dict[str, str]) -> None:
        for name, limit in FIELD_LIMITS.items():
            if len(f[name]) > limit:
                self.error(n, "D00", f"{name}={f[name]!r} has {len(f[name])} characters "
                           f"(limit {limit})")
        self.starid(n, f["STARID"])
        self.date(n, f["DATE"])
        self.magnitude(n, f["MAGNITUDE"])
        self.magerr(n, f["MAGERR"])
        band = self.filter(n, f["FILTER"])
        transformed = f["TRANSFORMED"].upper()
        if transformed not in ("YES", "NO"):
            self.error(n, "D06", f"TRANSFORMED={f['TRANSFORMED']!r}: YES or NO")
        mtype = f["MTYPE"].upper()
        if mtype not in spec.MTYPES:
            hint = " (the code is DIF)" if mtype in ("DIFF", "DIFFERENTIAL") else ""
            self.error(n, "D07", f"MTYPE={f['MTYPE']!r} is not STD, DIF or ABS{hint}")
        elif mtype == "ABS":
            self.warning(n, "D07", "MTYPE=ABS exists only for backwards compatibility; use STD")
        self.comp_and_check(n, f, mtype)
        self.airmass(n, f["AIRMASS"])
        group = f["GROUP"]
        if group.lower() != "na" and spec.INTEGER_RE.fullmatch(group) is None:
            self.error(n, "D13", f"GROUP={group!r}: an integer or 'na'")
        if f["CHART"].lower() == "na":
            self.warning(n, "D14", "CHART is 'na': give the VSP chart id (or the catalogue, "
                         "e.g. 'Gaia DR3', for own comparison stars)")
        notes = f["NOTES"]
        self.synthetic += "SYNTHETIC DATA" in notes.upper()
        if len(notes) > NOTES_LIMIT:
            self.warning(n, "D15", f"NOTES has {len(notes)} characters (the spec allows "
                         "'several thousand')")
        self.science(n, band, transformed, notes)
        self.note_errors(n, notes)
        key = (f["STARID"].upper(), f["DATE"], band)
        first = self.seen.setdefault(key, n)
        if first != n:
            self.warning(n, "X04", f"same STARID, DATE and FILTER as line {first}")

    def starid(self, n: int, sid: str) -> None:
        if sid.lower() == "na":
            self.error(n, "D01", "STARID is 'na'")
        if spec.SIMBAD_RE.match(sid):
            self.warning(n, "D01", f"STARID={sid!r} has a SIMBAD-style prefix; use the VSX "
                         "name or the AUID")
        elif spec.PLAIN_NAME_RE.fullmatch(sid) is None:
            self.warning(n, "D01", f"STARID={sid!r} has unusual characters (a FITS OBJECT?)")
        if "  " in sid:
            self.warning(n, "D01", f"STARID={sid!r} has doubled spaces (VSX names use one)")

    def date(self, n: int, value: str) -> None:
        kind = self.date_kind
        if kind == "EXCEL":
            if spec.EXCEL_RE.fullmatch(value) is None:
                self.error(n, "D02", f"DATE={value!r} is not an Excel NOW() date")
            return
        if kind not in ("JD", "HJD"):
            return  # no usable #DATE: already reported
        if not _is_decimal(value) or "." not in value:
            self.error(n, "D02", f"DATE={value!r} is not a decimal Julian date (#DATE={kind})")
            return
        jd = float(value)
        if not _FIRST_JD <= jd <= _LAST_JD:
            self.error(n, "D02", f"DATE={value} is not a full Julian date (MJD or reduced?)")
        elif jd > _jd_now() + 1.0:
            self.warning(n, "D02", f"DATE={value} is in the future")
        if _decimal_places(value) < 4:
            self.warning(n, "D02", f"DATE={value} has fewer than 4 decimals")

    def magnitude(self, n: int, value: str) -> None:
        body = value[1:] if value.startswith("<") else value
        if not _is_decimal(body):
            self.error(n, "D03", f"MAGNITUDE={value!r} is not a number (a '<' prefix is allowed)")
        elif "." not in body:
            self.error(n, "D03", f"MAGNITUDE={value!r} has no decimal point (write 9.0, not 9)")
        elif float(body) < -1.5:
            self.warning(n, "D03", f"MAGNITUDE={value} is brighter than any variable: an "
                         "instrumental or differential value?")
        elif float(body) > 25:
            self.warning(n, "D03", f"MAGNITUDE={value} is implausibly faint")

    def magerr(self, n: int, value: str) -> None:
        if value.lower() == "na":
            return
        if not _is_decimal(value):
            self.error(n, "D04", f"MAGERR={value!r} is neither a number nor 'na'")
            return
        err = float(value)
        if err < 0:
            self.error(n, "D04", f"MAGERR={value} is negative")
        elif err == 0:
            self.warning(n, "D04", "MAGERR is 0: no measurement is exact")
        elif err > 1.0:
            self.warning(n, "D04", f"MAGERR={value} is over 1 mag")

    def filter(self, n: int, value: str) -> str:
        code = value.upper()
        if code in FILTER_CODES:
            if value != code:
                self.warning(n, "D05", f"FILTER={value!r}: write it in upper case ({code!r})")
        elif code in spec.FILTER_ADVICE:
            self.error(n, "D05", f"FILTER={value!r}: {spec.FILTER_ADVICE[code]}")
        else:
            self.error(n, "D05", f"FILTER={value!r} is not an AAVSO filter code")
        return code

    def optional_number(self, n: int, name: str, value: str) -> float | None:
        if value.lower() == "na":
            return None
        if _is_decimal(value):
            return float(value)
        self.error(n, "D11", f"{name}={value!r} is neither a number nor 'na'")
        return None

    def comp_and_check(self, n: int, f: dict[str, str], mtype: str) -> None:
        cname, kname = f["CNAME"].upper(), f["KNAME"].upper()
        cmag = self.optional_number(n, "CMAG", f["CMAG"])
        kmag = self.optional_number(n, "KMAG", f["KMAG"])
        no_comp, no_check = cname == "NA", kname == "NA"
        if cname == "ENSEMBLE":
            self.ensemble_comp(n, f, no_check, kmag)
        else:
            self.named_comp(n, f, mtype, no_comp, no_check, cmag)
        self.check_star(n, f, cname, kname, cmag, kmag)

    def ensemble_comp(self, n: int, f: dict[str, str], no_check: bool,
                      kmag: float | None) -> None:
        if f["CMAG"].lower() != "na":
            self.error(n, "D08", "CNAME=ENSEMBLE needs CMAG=na")
        if no_check or kmag is None:
            self.error(n, "D09", "an ENSEMBLE row must report its check star (KNAME and a "
                       "numeric KMAG)")

    def named_comp(self, n: int, f: dict[str, str], mtype: str, no_comp: bool, no_check: bool,
                   cmag: float | None) -> None:
        if mtype == "DIF" and no_comp:
            self.error(n, "D10", "MTYPE=DIF needs the comparison star in CNAME")
        if not no_comp and cmag is None:
            self.warning(n, "D10", f"CNAME={f['CNAME']!r} without CMAG: report the comp's "
                         "instrumental magnitude")
        if no_comp and mtype == "STD":
            self.warning(n, "D10", "CNAME is 'na': name the comparison star or use ENSEMBLE")
        if not no_comp and no_check:
            self.warning(n, "D09", "no check star (KNAME=na): the AAVSO judges errors by K-C")

    def check_star(self, n: int, f: dict[str, str], cname: str, kname: str,
                   cmag: float | None, kmag: float | None) -> None:
        no_comp, no_check = cname == "NA", kname == "NA"
        if kname == "ENSEMBLE":
            self.error(n, "D09", "KNAME cannot be ENSEMBLE")
        elif not no_check and kmag is None:
            self.error(n, "D09", f"KNAME={f['KNAME']!r} without a numeric KMAG")
        if no_check and kmag is not None:
            self.error(n, "D09", "KMAG is a number but KNAME is 'na'")
        if no_comp and cmag is not None:
            self.error(n, "D08", "CMAG is a number but CNAME is 'na'")
        if not no_comp and not no_check and cname == kname:
            self.error(n, "D09", f"{f['CNAME']!r} is both the comparison and the check star")

    def airmass(self, n: int, value: str) -> None:
        if value.lower() == "na":
            return
        if not _is_decimal(value):
            self.error(n, "D12", f"AIRMASS={value!r} is neither a number nor 'na'")
        elif float(value) < 1.0:
            self.error(n, "D12", f"AIRMASS={value} is below 1")
        elif float(value) > 5.0:
            self.warning(n, "D12", f"AIRMASS={value}: altitude below about 11 degrees")

    def note_errors(self, n: int, notes: str) -> None:
        for m in _NOTE_ERR_RE.finditer(notes):
            if _is_decimal(m.group(2)) and float(m.group(2)) < 0:
                self.error(n, "D16", f"NOTES {m.group(1)}={m.group(2)}: an error cannot be "
                           "negative")

    def science(self, n: int, band: str, transformed: str, notes: str) -> None:
        if band in ("CV", "CR"):
            if self.obstype == "DSLR":
                self.warning(n, "X01", f"FILTER={band} with OBSTYPE=DSLR: a colour plane is "
                             "TB/TG/TR")
            elif spec.OSC_WORDS_RE.search(notes) or spec.OSC_WORDS_RE.search(self.software):
                self.warning(n, "X01", f"FILTER={band} from what looks like a one-shot-colour "
                             "camera: report the green plane as TG")
        if transformed == "YES":
            if band in ("TG", "TB", "TR"):
                self.warning(n, "X02", f"TRANSFORMED=YES with FILTER={band}: transformed data "
                             "are reported in the standard band")
            if notes.lower() == "na" or spec.TRANSFORM_WORDS_RE.search(notes) is None:
                self.warning(n, "X03", "TRANSFORMED=YES but NOTES does not describe the "
                             "transformation")


def validate_bytes(raw: bytes, name: str | None = None) -> Report:
    """Check the bytes of a report.

    Parameters
    ----------
    raw : bytes
        The file's content.
    name : str, optional
        Its file name; enables the extension check.

    Returns
    -------
    Report
        The findings, sorted by line; ``report.ok`` when there is no ERROR.
    """
    return _Checker(name).run(raw)


def validate_text(text: str, name: str | None = None) -> Report:
    """Check the text of a report (any non-ASCII character is an error, as in a file).

    Parameters
    ----------
    text : str
        The report.
    name : str, optional
        Its file name; enables the extension check.

    Returns
    -------
    Report
    """
    return validate_bytes(text.encode("utf-8"), name)


def validate_file(path: str | os.PathLike[str]) -> Report:
    """Check a report file.

    Parameters
    ----------
    path : path-like
        The file.

    Returns
    -------
    Report

    Raises
    ------
    OSError
        The file cannot be read.
    """
    p = Path(path)
    return validate_bytes(p.read_bytes(), p.name)


def errors_of(findings: Iterable[Finding]) -> list[Finding]:
    """The ERROR findings of any iterable of findings."""
    return [f for f in findings if f.severity == ERROR]
