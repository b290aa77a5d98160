"""Targets and comparison-star sequences.

The data types every other module uses, and reading a local AAVSO VSP chart JSON
(``photometry.sequence_file``).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = [
    "CatalogError",
    "CompStar",
    "Sequence",
    "Target",
    "load_sequence_file",
    "parse_dec",
    "parse_ra",
    "parse_vsp_chart",
]

#: VSP band names -> AAVSO report filter letters (the report says R and I, VSP says Rc and Ic).
VSP_BANDS = {"V": "V", "B": "B", "U": "U", "Rc": "R", "Ic": "I", "R": "R", "I": "I",
             "J": "J", "H": "H", "K": "K", "SG": "SG", "SR": "SR", "SI": "SI"}

#: Words in a VSP comment that make a comparison star unusable.
_BAD_COMMENT = re.compile(r"\b(var(iable)?|suspect(ed)?|do not use|don't use|unusable|"
                          r"double|blend(ed)?|binary)\b", re.IGNORECASE)


class CatalogError(RuntimeError):
    """A target or sequence could not be had (offline, unknown star, bad answer)."""


@dataclass(frozen=True)
class Target:
    """The variable star a frame is measured for."""

    name: str  # as AAVSO spells it (VSX / the VSP chart), else as given
    ra_deg: float
    dec_deg: float
    auid: str | None = None
    var_type: str | None = None
    max_mag: str | None = None
    min_mag: str | None = None
    source: str = "header"  # vsx | sequence | config | header


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
        return self.mags.get(band)

    @property
    def flagged(self) -> bool:
        """True when the sequence's comment marks it as variable or otherwise unusable."""
        return bool(self.comments and _BAD_COMMENT.search(self.comments))


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
            if c.flagged:
                log.debug("comp %s excluded: sequence comment %r", c.name, c.comments.strip())
                continue
            if c.mag(band) is None:
                continue
            out.append(c)
        return out


def parse_ra(value: str | float) -> float:
    """``"hh:mm:ss.ss"`` (or degrees as a number/str) -> degrees."""
    if isinstance(value, (int, float)):
        return float(value)
    text = value.strip()
    if ":" not in text and " " not in text:
        return float(text)
    h, m, s = (float(p) for p in re.split(r"[:\s]+", text))
    deg = 15.0 * (h + m / 60.0 + s / 3600.0)
    if not 0.0 <= deg < 360.0:
        raise ValueError(f"RA out of range: {value!r}")
    return deg


def parse_dec(value: str | float) -> float:
    """``"±dd:mm:ss.s"`` (or degrees) -> degrees."""
    if isinstance(value, (int, float)):
        return float(value)
    text = value.strip()
    if ":" not in text and " " not in text:
        return float(text)
    sign = -1.0 if text.startswith("-") else 1.0
    d, m, s = (abs(float(p)) for p in re.split(r"[:\s]+", text.lstrip("+-")))
    deg = sign * (d + m / 60.0 + s / 3600.0)
    if not -90.0 <= deg <= 90.0:
        raise ValueError(f"Dec out of range: {value!r}")
    return deg


def _parse_comp(entry: Mapping[str, Any]) -> CompStar:
    mags: dict[str, tuple[float, float]] = {}
    for b in entry.get("bands") or []:
        band = VSP_BANDS.get(str(b.get("band", "")).strip())
        mag = b.get("mag")
        if band is None or mag is None:
            continue
        err = b.get("error")
        err_f = float(err) if err is not None else math.nan
        mags[band] = (float(mag), err_f)
    label = str(entry.get("label") or "").strip()
    auid = (str(entry.get("auid")).strip() or None) if entry.get("auid") else None
    return CompStar(label=label or (auid or "?"), ra_deg=parse_ra(entry["ra"]),
                    dec_deg=parse_dec(entry["dec"]), mags=mags, auid=auid,
                    comments=str(entry.get("comments") or ""))


def parse_vsp_chart(data: Any, *, origin: str = "") -> Sequence:
    """Parse a VSP chart answer into a :class:`Sequence`.

    Accepts the API's JSON (``{"chartid", "star", "photometry": [...]}``), SeeVar's wrapper
    (``{"target", "chart", "comparison_stars"}``) and a bare list of photometry entries.
    Raises :class:`CatalogError` with the reason when the document is not a sequence.
    """
    try:
        if isinstance(data, list):
            entries, meta, target = data, {}, {}
        elif isinstance(data, Mapping) and "photometry" in data:
            entries, meta, target = data["photometry"], data, {}
        elif isinstance(data, Mapping) and "comparison_stars" in data:
            entries = data["comparison_stars"]
            meta = dict(data.get("chart") or {})
            target = dict(data.get("target") or {})
        else:
            raise CatalogError(f"not a VSP chart (no 'photometry' list){_at(origin)}")
        if not isinstance(entries, list):
            raise CatalogError(f"VSP chart 'photometry' is not a list{_at(origin)}")
        comps = tuple(_parse_comp(e) for e in entries)
        chart_id = meta.get("chartid") or meta.get("chart_id")
        star = meta.get("star") or target.get("star") or target.get("name")
        ra = target.get("ra_hms") or meta.get("ra")
        dec = target.get("dec_dms") or meta.get("dec")
        fov = meta.get("fov") or meta.get("fov_arcmin")
        maglimit = meta.get("maglimit")
        return Sequence(
            source="vsp",
            comps=comps,
            chart_id=str(chart_id).strip() if chart_id else None,
            star=str(star).strip() if star else None,
            star_auid=(target.get("auid") or meta.get("auid")) or None,
            star_ra_deg=parse_ra(ra) if ra else None,
            star_dec_deg=parse_dec(dec) if dec else None,
            fov_arcmin=float(fov) if fov else None,
            maglimit=float(maglimit) if maglimit else None,
            origin=origin,
        )
    except CatalogError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise CatalogError(f"malformed VSP chart{_at(origin)}: {exc!r}") from exc


def _at(origin: str) -> str:
    return f" in {origin}" if origin else ""


def load_sequence_file(path: str | Path) -> Sequence:
    """Read a local VSP chart JSON file (``photometry.sequence_file``)."""
    p = Path(path).expanduser()
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogError(f"cannot read sequence file {p}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise CatalogError(f"sequence file {p} is not valid JSON: {exc}") from exc
    return parse_vsp_chart(data, origin=str(p))
