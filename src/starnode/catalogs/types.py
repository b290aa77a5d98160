"""What the catalogues give: the target, a comparison star, a sequence, and how to read them.

The comment rule (:func:`comment_flag`) lives beside :class:`CompStar` because it decides which
comps a sequence offers; angles are parsed by :class:`astropy.coordinates.Angle` and
separations computed by :func:`astropy.coordinates.angular_separation`.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import astropy.units as u
from astropy.coordinates import (
    Angle,
    IllegalHourWarning,
    IllegalSecondWarning,
    angular_separation,
)

from starnode.util.values import finite_float

log = logging.getLogger("starnode.catalogs")

__all__ = [
    "VSP_BANDS",
    "CompStar",
    "Sequence",
    "Target",
    "VsxMag",
    "comment_flag",
    "parse_dec",
    "parse_ra",
    "parse_vsx_mag",
    "separation_deg",
]

#: VSP band names -> AAVSO report filter letters (the report says R and I, VSP says Rc and Ic).
VSP_BANDS = {"V": "V", "B": "B", "U": "U", "Rc": "R", "Ic": "I", "R": "R", "I": "I",
             "J": "J", "H": "H", "K": "K", "SG": "SG", "SR": "SR", "SI": "SI"}

# --- comparison-star comments ----------------------------------------------------------------
# The rule was set on the real VSP comments in shared/data (vsp/*.json, aavso-api/*.json):
#   "This star is a micro-variable. DSCT, 12.285 - 12.303V. Do not use as a CCD comparison star."
#       -> excluded (variable, and "do not use")
#   "Suspected variable NSV 2386. Acceptable to use."  -> kept: the sequence team says so
#   "BINO_COMP", "BINO_COMP      ", "#", "", "  ", None  -> not flags (kept)
# A comment excludes a comp when it says not to use it, or calls it variable without saying it
# is acceptable to use. Words like "double", "blend" or "suspect(ed)" alone exclude nothing.
_UNUSABLE = re.compile(r"\b(?:do\s+not|don'?t|never|not\s+to)\s+use\b|\bunusable\b|"
                       r"\bnot\s+(?:suitable|recommended|usable)\b|\bavoid\b", re.IGNORECASE)
_VARIABLE = re.compile(r"\b(?:micro-?)?variab(?:le|ility)\b|\bvar\b|\bNSV\s*\d+",
                       re.IGNORECASE)
_ACCEPTED = re.compile(r"\b(?:acceptable|ok|okay|fine|safe)\s+(?:to|for)\s+use\b|"
                       r"\b(?:may|can)\s+be\s+used\b", re.IGNORECASE)


def comment_flag(comment: str | None) -> str | None:
    """Why a VSP comment makes a comparison star unusable, or None when it does not.

    Parameters
    ----------
    comment : str or None
        The sequence's comment for the comp.

    Returns
    -------
    str or None
        The reason (quoting the comment), or None for a usable comp.
    """
    text = " ".join(str(comment or "").split())
    if not text:
        return None
    if _UNUSABLE.search(text):
        return f"sequence comment says not to use it: {text!r}"
    if _VARIABLE.search(text) and not _ACCEPTED.search(text):
        return f"sequence comment marks it variable: {text!r}"
    return None


def separation_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Great-circle distance between two positions (all in degrees).

    Parameters
    ----------
    ra1, dec1, ra2, dec2 : float
        ICRS right ascensions and declinations, degrees.

    Returns
    -------
    float
        The separation in degrees (:func:`astropy.coordinates.angular_separation`).
    """
    return math.degrees(float(angular_separation(math.radians(ra1), math.radians(dec1),
                                                 math.radians(ra2), math.radians(dec2))))


def finite(*values: float | None) -> bool:
    """True when every value is a finite number (not None, not NaN)."""
    return all(finite_float(v) is not None for v in values)


def _plain_degrees(value: str | float) -> float | None:
    """Degrees from a number or a plain decimal string; None for a sexagesimal string."""
    if isinstance(value, (int, float)):
        return float(value)
    text = value.strip()
    if ":" not in text and " " not in text:
        return float(text)
    return None


def _angle_deg(text: str, unit: Any) -> float:
    """Degrees of a sexagesimal string; ``ss = 60.0`` (seen in real VSP charts) is carried,
    out-of-range values are refused by the callers."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IllegalSecondWarning)
        warnings.simplefilter("ignore", IllegalHourWarning)
        return float(Angle(text.strip(), unit=unit).degree)


def _parse_angle(value: str | float, unit: Any, lo: float, hi: float, what: str) -> float:
    plain = _plain_degrees(value)
    if plain is not None:
        return plain
    deg = _angle_deg(str(value), unit)
    if not (lo <= deg < hi or (hi == 90.0 and deg == hi)):
        raise ValueError(f"{what} out of range: {value!r}")
    return deg


def parse_ra(value: str | float) -> float:
    """Right ascension in degrees from ``"hh:mm:ss.ss"``, ``"hh mm ss"`` or degrees.

    Parameters
    ----------
    value : str or float
        Sexagesimal hours, or degrees as a number or a decimal string.

    Returns
    -------
    float
        Degrees.

    Raises
    ------
    ValueError
        Unreadable, or outside 0..360.

    Examples
    --------
    SS Cyg, 21h 42m 42.8s = 21.71189 h = 325.67833 deg, however it is written:

    >>> round(parse_ra("21:42:42.80"), 5), round(parse_ra("21 42 42.8"), 5), parse_ra(325.67833)
    (325.67833, 325.67833, 325.67833)
    """
    return _parse_angle(value, u.hourangle, 0.0, 360.0, "RA")


def parse_dec(value: str | float) -> float:
    """Declination in degrees from ``"±dd:mm:ss.s"``, ``"±dd mm ss"`` or degrees (else as
    :func:`parse_ra`; outside -90..90 is refused).

    Examples
    --------
    >>> round(parse_dec("+43:35:09.9"), 6), parse_dec("-05 30 00")
    (43.586083, -5.5)
    >>> parse_dec("91:00:00")
    Traceback (most recent call last):
    ...
    ValueError: Dec out of range: '91:00:00'
    """
    return _parse_angle(value, u.deg, -90.0, 90.0, "Dec")


@dataclass(frozen=True)
class Target:
    """The variable star a frame is measured for."""

    name: str  # as AAVSO spells it (VSX / the VSP chart), else as given
    ra_deg: float
    dec_deg: float
    auid: str | None = None
    var_type: str | None = None
    max_mag: str | None = None  # as VSX gives it, with its band: "3.96 V"
    min_mag: str | None = None  # "4.11 V", or an amplitude "(0.20) V"
    source: str = "header"  # vsx | sequence | config | header
    period_days: float | None = None


@dataclass(frozen=True)
class VsxMag:
    """A VSX magnitude field: ``"3.96 V"``, ``"(0.20) V"`` (an amplitude), ``"<15.5 V"``."""

    value: float
    band: str | None
    amplitude: bool = False
    fainter_than: bool = False


def parse_vsx_mag(text: str | None) -> VsxMag | None:
    """Parse a VSX ``MaxMag``/``MinMag`` string.

    Parameters
    ----------
    text : str or None
        ``"3.96 V"``, ``"(0.20) V"``, ``"<15.5 V"``...

    Returns
    -------
    VsxMag or None
        None when empty or not a magnitude.

    Examples
    --------
    >>> parse_vsx_mag("8.2 V")
    VsxMag(value=8.2, band='V', amplitude=False, fainter_than=False)
    >>> parse_vsx_mag("(0.20) V").amplitude, parse_vsx_mag("<15.5 V").fainter_than
    (True, True)
    >>> parse_vsx_mag("n/a") is None
    True
    """
    if not text or not str(text).strip():
        return None
    m = re.fullmatch(r"\s*(<|>)?\s*(\()?\s*([-+]?\d+(?:\.\d*)?|[-+]?\.\d+)\s*(\))?\s*:?\s*"
                     r"([A-Za-z][A-Za-z0-9_]*)?\s*", str(text))
    if not m:
        return None
    return VsxMag(value=float(m.group(3)), band=m.group(5),
                  amplitude=bool(m.group(2) and m.group(4)), fainter_than=m.group(1) == "<")


@dataclass(frozen=True)
class CompStar:
    """One comparison star of a sequence, with its magnitudes by report band."""

    label: str
    ra_deg: float
    dec_deg: float
    mags: Mapping[str, tuple[float, float]]  # band ("V", "B", "R", ...) -> (mag, error)
    auid: str | None = None
    comments: str = ""

    @property
    def name(self) -> str:
        """How the report names it: the AUID when there is one, else the chart label."""
        return self.auid or self.label

    def mag(self, band: str) -> tuple[float, float] | None:
        """``(magnitude, error)`` in a report band, or None when the sequence has none."""
        return self.mags.get(band)

    @property
    def flag_reason(self) -> str | None:
        """Why the sequence's comment excludes this comp (see :func:`comment_flag`), or None."""
        return comment_flag(self.comments)

    @property
    def flagged(self) -> bool:
        """True when the sequence's comment marks it as variable or otherwise unusable."""
        return self.flag_reason is not None


@dataclass(frozen=True)
class Sequence:
    """A comparison sequence for one field.

    ``source`` is ``"vsp"`` for an AAVSO VSP chart (``chart_id`` set), ``"gaia-dr3"`` for the
    Gaia fallback (``chart_id`` None). Comps of different sources are never mixed.
    """

    source: str
    comps: tuple[CompStar, ...]
    chart_id: str | None = None
    star: str | None = None
    star_auid: str | None = None
    star_ra_deg: float | None = None
    star_dec_deg: float | None = None
    fov_arcmin: float | None = None
    maglimit: float | None = None
    origin: str = ""  # where it came from: a file path, a URL, "cache"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def usable(self, band: str) -> list[CompStar]:
        """Comps with a magnitude in ``band`` and not flagged in the sequence comments."""
        out = []
        for c in self.comps:
            reason = c.flag_reason
            if reason:
                log.debug("comp %s excluded: %s", c.name, reason)
                continue
            if c.mag(band) is None:
                continue
            out.append(c)
        return out

    def star_position(self) -> tuple[float, float] | None:
        """``(ra, dec)`` of the sequence's variable star in degrees, when the chart gives it."""
        if self.star_ra_deg is None or self.star_dec_deg is None:
            return None
        if not finite(self.star_ra_deg, self.star_dec_deg):
            return None
        return float(self.star_ra_deg), float(self.star_dec_deg)


def at(origin: str) -> str:
    """`` in <origin>`` for messages, or nothing."""
    return f" in {origin}" if origin else ""


def snippet(text: str, limit: int = 200) -> str:
    """The first ``limit`` characters of ``text`` on one line, for error messages."""
    one = " ".join(text.split())
    return one[:limit] + ("…" if len(one) > limit else "")


def field_request(fov_arcmin: float, maglimit: float | None, default_maglimit: float
                  ) -> tuple[float, float]:
    """The field and limit a catalogue request asks for (and is cached under).

    Parameters
    ----------
    fov_arcmin : float
        The field of view wanted.
    maglimit : float or None
        The faintest magnitude wanted; None means ``default_maglimit``.
    default_maglimit : float
        ``catalogs.maglimit``.

    Returns
    -------
    (float, float)
        The field rounded up to whole arcminutes, and the limit rounded to 0.1 mag.
    """
    fov = float(math.ceil(fov_arcmin - 1e-9))
    return fov, round(float(default_maglimit if maglimit is None else maglimit), 1)
