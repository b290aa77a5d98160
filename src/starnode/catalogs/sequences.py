"""Comparison sequences from files: ``catalogs.sequence_file``, the bundled charts, VSP JSON.

This is the one place that reads a chart file. :class:`SequenceFiles` keeps each parsed file
keyed by its resolved path, modification time and size, so the photometry of a night, the
synthetic frames and the catalogue fallback all share one parse per file and see an edited
file at once.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from starnode.config import Config
from starnode.errors import CatalogError
from starnode.util.values import normalize_name

from .types import VSP_BANDS, CompStar, Sequence, Target, at, parse_dec, parse_ra, separation_deg

log = logging.getLogger("starnode.catalogs")

__all__ = ["SEQUENCE_FILES", "SequenceFiles", "bundled_paths", "load_sequence_file",
           "local_sequences", "parse_vsp_chart", "sequence_matches"]


def _parse_comp(entry: Mapping[str, Any]) -> CompStar:
    mags: dict[str, tuple[float, float]] = {}
    for b in entry.get("bands") or []:
        band = VSP_BANDS.get(str(b.get("band", "")).strip())
        mag = b.get("mag")
        if band is None or mag is None:
            continue
        err = b.get("error")
        mags[band] = (float(mag), float(err) if err is not None else math.nan)
    label = str(entry.get("label") or "").strip()
    auid = (str(entry.get("auid")).strip() or None) if entry.get("auid") else None
    return CompStar(label=label or (auid or "?"), ra_deg=parse_ra(entry["ra"]),
                    dec_deg=parse_dec(entry["dec"]), mags=mags, auid=auid,
                    comments=str(entry.get("comments") or ""))


def _chart_parts(data: Any, origin: str) -> tuple[Any, Mapping[str, Any], Mapping[str, Any]]:
    """(photometry entries, chart metadata, target metadata) of the three accepted shapes."""
    if isinstance(data, list):
        return data, {}, {}
    if isinstance(data, Mapping) and "photometry" in data:
        return data["photometry"], data, {}
    if isinstance(data, Mapping) and "comparison_stars" in data:
        return (data["comparison_stars"], dict(data.get("chart") or {}),
                dict(data.get("target") or {}))
    raise CatalogError(f"not a VSP chart (no 'photometry' list){at(origin)}")


def _opt_str(value: Any) -> str | None:
    return str(value).strip() if value else None


def parse_vsp_chart(data: Any, *, origin: str = "") -> Sequence:
    """Parse a VSP chart answer into a :class:`Sequence`.

    Parameters
    ----------
    data : dict or list
        The API's JSON (``{"chartid", "star", "photometry": [...]}``), SeeVar's wrapper
        (``{"target", "chart", "comparison_stars"}``) or a bare list of photometry entries.
    origin : str
        Where it came from, for messages and ``Sequence.origin``.

    Returns
    -------
    Sequence
        Source ``"vsp"``.

    Raises
    ------
    CatalogError
        The document is not a sequence (the message says why).
    """
    entries, meta, target = _chart_parts(data, origin)
    if not isinstance(entries, list):
        raise CatalogError(f"VSP chart 'photometry' is not a list{at(origin)}")
    try:
        comps = tuple(_parse_comp(e) for e in entries)
        ra = target.get("ra_hms") or meta.get("ra")
        dec = target.get("dec_dms") or meta.get("dec")
        fov = meta.get("fov") or meta.get("fov_arcmin")
        return Sequence(
            source="vsp", comps=comps,
            chart_id=_opt_str(meta.get("chartid") or meta.get("chart_id")),
            star=_opt_str(meta.get("star") or target.get("star") or target.get("name")),
            star_auid=(target.get("auid") or meta.get("auid")) or None,
            star_ra_deg=parse_ra(ra) if ra else None,
            star_dec_deg=parse_dec(dec) if dec else None,
            fov_arcmin=float(fov) if fov else None,
            maglimit=float(meta["maglimit"]) if meta.get("maglimit") else None,
            origin=origin)
    except (KeyError, TypeError, ValueError) as exc:
        raise CatalogError(f"malformed VSP chart{at(origin)}: {exc!r}") from exc


def _read_chart(p: Path) -> Sequence:
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogError(f"cannot read sequence file {p}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise CatalogError(f"sequence file {p} is not valid JSON: {exc}") from exc
    return parse_vsp_chart(data, origin=str(p))


class SequenceFiles:
    """Parsed chart files, each kept until the file changes (thread-safe, bounded)."""

    def __init__(self, max_entries: int = 32) -> None:
        self._lock = threading.Lock()
        self._seqs: dict[str, tuple[tuple[float, int], Sequence]] = {}
        self.max_entries = max_entries

    def load(self, path: str | os.PathLike[str]) -> Sequence:
        """The sequence in a VSP chart JSON file, parsed once per file version.

        Parameters
        ----------
        path : path-like
            The file (``~`` is expanded).

        Returns
        -------
        Sequence
            ``origin`` is the path as given (expanded).

        Raises
        ------
        CatalogError
            Missing, unreadable, not JSON, or not a chart.
        """
        p = Path(path).expanduser()
        try:
            st = p.stat()
        except OSError as exc:
            raise CatalogError(f"cannot read sequence file {p}: {exc.strerror}") from exc
        key, stamp = f"{p.resolve()}|{p}", (st.st_mtime, st.st_size)
        with self._lock:
            hit = self._seqs.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        seq = _read_chart(p)
        with self._lock:
            if len(self._seqs) >= self.max_entries:
                self._seqs.pop(next(iter(self._seqs)))
            self._seqs[key] = (stamp, seq)
        return seq

    def clear(self) -> None:
        """Forget every parsed file."""
        with self._lock:
            self._seqs.clear()


#: The process's parsed chart files.
SEQUENCE_FILES = SequenceFiles()


def load_sequence_file(path: str | os.PathLike[str]) -> Sequence:
    """Read a local VSP chart JSON file (``catalogs.sequence_file``, a bundled chart).

    Parameters
    ----------
    path : path-like
        The chart file.

    Returns
    -------
    Sequence
        The parsed sequence (shared while the file is unchanged; do not mutate it).

    Raises
    ------
    CatalogError
        Missing, unreadable, not JSON, or not a chart.
    """
    return SEQUENCE_FILES.load(path)


def bundled_paths() -> list[Path]:
    """The charts shipped in ``starnode/data`` (``*_vsp.json``)."""
    try:
        folder = resources.files("starnode") / "data"
        return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith("_vsp.json"))
    except (OSError, ModuleNotFoundError):
        return []


def local_sequences(cfg: Config) -> list[Sequence]:
    """The configured ``sequence_file`` (if readable) and the bundled charts."""
    paths = []
    if cfg.catalogs.sequence_file:
        paths.append(Path(cfg.catalogs.sequence_file).expanduser())
    paths.extend(bundled_paths())
    out = []
    for p in paths:
        try:
            out.append(load_sequence_file(p))
        except CatalogError as exc:
            log.debug("local chart %s not usable: %s", p, exc)
    return out


def sequence_matches(seq: Sequence, target: Target) -> bool:
    """True when the chart is for the target: same name, or its star within 1′."""
    if seq.star and normalize_name(seq.star) == normalize_name(target.name):
        return True
    pos = seq.star_position()
    if pos is None or not all(map(math.isfinite, (target.ra_deg, target.dec_deg))):
        return False
    return separation_deg(pos[0], pos[1], target.ra_deg, target.dec_deg) < 1.0 / 60.0
