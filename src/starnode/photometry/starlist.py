"""Per-frame starlists: every detected and catalogued star of a measured frame, as ECSV.

Why: the AAVSO smart-telescope programme asks for the stars of every frame, not only the
variable, so that frames can be re-reduced centrally later; and every self-check (errors that
hold from sub to sub, the illumination model, the check star) is a question about the other
stars of the frame. The list is written next to the measurement, under
``data_dir/starlists/<night>/<frame>.ecsv`` (atomically: a temporary file, then a rename), with
the calibrated magnitude of each star on the frame's own zero point (radial when the frame has
one) and flags saying which stars are the target, the comps and the check star.

Starlists never cost the report its space: they are gzip-compressed (``<frame>.ecsv.gz``,
about a quarter of the plain text; astropy reads them as they are), their writing pauses while
the data folder has less than ``starlists.min_free_mb`` free (each skipped list is recorded in
``data_dir/starlists/skipped.txt``: the frame can be listed again later with ``starnode
stars``), and ``starlists.keep_days`` deletes the lists of old nights (:func:`prune`).
"""

from __future__ import annotations

import datetime as _dt
import gzip
import io
import logging
import math
import os
import re
import shutil
import tempfile
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy import units as u
from astropy.io.ascii.ecsv import Ecsv
from astropy.table import Table
from astropy.table.meta import get_yaml_from_header
from scipy.spatial import cKDTree

from ..config import Config
from ..frame.detect import field_stars
from ..frame.load import Frame
from .apertures import StarMeasurement, measure_stars
from .ensemble import EnsembleFit

log = logging.getLogger("starnode.starlist")

__all__ = ["COLUMNS", "Starlist", "StarlistSkipped", "build_starlist", "ecsv_text",
           "frame_meta", "frame_values", "prune", "starlist_path", "table_from_columns",
           "write_starlist"]


class StarlistSkipped(OSError):
    """The starlist was not written, on purpose (free space low); the reason is recorded."""

#: column -> (unit, description), in order
COLUMNS: dict[str, tuple[str | None, str]] = {
    "name": (None, "target name, comp label, or 'field'"),
    "ra": ("deg", "ICRS right ascension (from the verified WCS)"),
    "dec": ("deg", "ICRS declination"),
    "x": ("pix", "measured-plane x (0-based)"),
    "y": ("pix", "measured-plane y (0-based)"),
    "flux": ("adu", "aperture flux, sky removed"),
    "flux_err": ("adu", "its error (CCD equation, scintillation)"),
    "inst_mag": ("mag", "-2.5 log10(flux / exptime)"),
    "inst_err": ("mag", "its error, the frame's excess noise included"),
    "mag": ("mag", "calibrated on the frame's zero point (at the star's position)"),
    "mag_err": ("mag", "inst_err and the zero point's error in quadrature"),
    "excess": ("mag", "the excess noise in inst_err (the frame's aperture term and the CFA "
               "sampling error left after the correction; all of it when not recentred)"),
    "fwhm": ("pix", "the star's FWHM from its second moments (NaN when not detected)"),
    "saturated": (None, "a pixel at the saturation level"),
    "edge": (None, "too close to the edge for the annulus"),
    "blended": (None, "detection merged with a neighbour"),
    "comp": (None, "in the ensemble"),
    "check": (None, "the check star"),
    "target": (None, "the variable"),
    "zero_point": ("mag", "the frame's zero point (at the frame centre for a radial model)"),
    "zp_error": ("mag", "its error"),
    "frame_excess": ("mag", "the frame's excess noise (as in the measurement record)"),
    "airmass": (None, "the frame's airmass (the target's; scintillation of every star uses it)"),
    "scintillation": ("mag", "the scintillation term in every star's error"),
    "reference": (None, "what calibrates mag: vsp (a VSP sequence), gaia-dr3, or none"),
}

#: the columns that hold one value per frame (repeated on each of its rows, so that CSV, JSON
#: and several frames in one ECSV keep each frame's own values)
FRAME_COLUMNS = ("zero_point", "zp_error", "frame_excess", "airmass", "scintillation",
                 "reference")


_FORMATS = {"ra": ".6f", "dec": ".6f", "x": ".2f", "y": ".2f", "flux": ".1f", "flux_err": ".1f",
            "inst_mag": ".4f", "inst_err": ".4f", "mag": ".4f", "mag_err": ".4f", "fwhm": ".2f",
            "excess": ".4f", "zero_point": ".4f", "zp_error": ".4f", "frame_excess": ".4f",
            "airmass": ".3f", "scintillation": ".4f"}


@dataclass
class Starlist:
    """A frame's starlist as plain columns: what :func:`build_starlist` makes and
    :func:`write_starlist` writes, without astropy's table machinery on the worker's path (an
    astropy ``Table`` of 25 columns costs more to make than the whole ECSV text).

    ``columns`` are the :data:`COLUMNS`, each the array ``table_from_columns`` makes of it;
    :meth:`table` is the astropy table (units, descriptions, formats, ``meta``), the same one
    ``table_from_columns`` makes, and the file written is the same, byte for byte.
    """

    columns: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_columns(cls, cols: dict[str, Any], meta: dict[str, Any] | None = None
                     ) -> Starlist:
        """From sequences of the :data:`COLUMNS` (as :func:`table_from_columns` takes)."""
        return cls({k: _column_array(cols[k]) for k in COLUMNS}, dict(meta or {}))

    def __len__(self) -> int:
        """The number of stars (rows)."""
        return len(self.columns["name"]) if self.columns else 0

    def table(self) -> Table:
        """The astropy table (:func:`table_from_columns`, with ``meta``)."""
        table = table_from_columns(self.columns)
        table.meta.update(self.meta)
        return table


def _column_array(values: Any) -> np.ndarray:
    """A column's array as ``table_from_columns`` makes it (an empty one: float64)."""
    return np.asarray(values) if len(values) else np.array([])


def starlist_path(data_dir: Path, night: str | None, frame_path: Path) -> Path:
    """``data_dir/starlists/<night>/<frame stem>.ecsv.gz``."""
    return Path(data_dir) / "starlists" / (night or "unknown-night") / \
        f"{frame_path.stem}.ecsv.gz"


def _fwhm_of(det: Any, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FWHM, blended) of each position from its nearest detection within 1.5 px."""
    fwhm = np.full(len(x), np.nan)
    blended = np.zeros(len(x), dtype=bool)
    if len(det.x) == 0 or len(x) == 0:
        return fwhm, blended
    dist, idx = cKDTree(det.xy).query(np.column_stack([x, y]))
    hit = dist < 1.5
    fwhm[hit] = det.fwhm[idx[hit]]
    blended[hit] = det.blended[idx[hit]]
    return fwhm, blended


def build_starlist(frame: Frame, wcs: Any, config: Config, sm: StarMeasurement,
                   fit: EnsembleFit, target_name: str, reference: str = "vsp") -> Starlist:
    """Every catalogued (target first, comps) and detected star of the frame.

    Parameters
    ----------
    frame : Frame
    wcs : astropy.wcs.WCS
        The verified plane WCS.
    config : Config
        The resolved configuration.
    sm : StarMeasurement
        The pipeline's photometry: target (0) then the in-frame comps.
    fit : EnsembleFit
        The zero point (:meth:`EnsembleFit.zp_for`) and which comps are used / the check.
    target_name : str
    reference : str
        What the zero point comes from (the sequence's source: ``vsp``, ``gaia-dr3``).

    Returns
    -------
    Starlist
        :data:`COLUMNS`, one row per star (:meth:`Starlist.table`: as an astropy table);
        ``meta`` holds the frame's file, zero point and illumination model.
    """
    det = field_stars(frame.plane, memo=frame.extractions, finite=frame.plane_is_finite)
    n_cat = len(sm.x)
    far = np.ones(len(det.x), dtype=bool)
    if len(det.x) and n_cat:
        dist, _ = cKDTree(np.column_stack([sm.x, sm.y])).query(det.xy)
        far = dist > max(2.0, sm.fwhm)
    # the frame's airmass (scintillation) and the frame's excess terms and CFA model: a handful
    # of bright field stars must not estimate (or miss) them on their own
    field = (measure_stars(frame, det.xy[far], config, fwhm=sm.fwhm,
                           neighbours=np.column_stack([sm.x, sm.y]), airmass=sm.airmass,
                           excess=sm.frame_terms())
             if far.any() else None)
    names = [target_name] + [row.comp.label for row in sorted(fit.rows, key=lambda r: r.i)]
    role = {row.i: row for row in fit.rows}
    cols: dict[str, list[Any]] = {k: [] for k in COLUMNS}
    zp_err_field = fit.zp_err

    def add(src: StarMeasurement, j: int, name: str, comp: bool, check: bool,
            target: bool) -> None:
        zp, zp_err = fit.zp_for(src, j)
        cols["name"].append(name)
        cols["x"].append(float(src.x[j]))
        cols["y"].append(float(src.y[j]))
        cols["flux"].append(float(src.flux[j]))
        cols["flux_err"].append(float(src.flux_err[j]))
        cols["inst_mag"].append(float(src.mag[j]))
        cols["inst_err"].append(float(src.mag_err[j]))
        cols["excess"].append(float(src.star_excess[j]) if src.star_excess is not None
                              else src.excess_mag)
        cols["mag"].append(float(src.mag[j]) + zp)
        cols["mag_err"].append(math.hypot(float(src.mag_err[j]), zp_err if comp or check
                                          or target else zp_err_field))
        cols["saturated"].append(bool(src.saturated[j]))
        cols["edge"].append(bool(src.edge[j]))
        cols["comp"].append(comp)
        cols["check"].append(check)
        cols["target"].append(target)

    for j in range(n_cat):
        row = role.get(j)
        add(sm, j, names[j] if j < len(names) else "?", row is not None and id(row) in fit.used,
            row is not None and row is fit.check, j == 0)
    if field is not None:
        for j in range(len(field.x)):
            add(field, j, "field", False, False, False)
    x, y = np.array(cols["x"]), np.array(cols["y"])
    per_frame = frame_values(sm, fit, reference)
    for k in FRAME_COLUMNS:
        cols[k] = [per_frame[k]] * len(x)
    cols["fwhm"], blended = (list(a) for a in _fwhm_of(det, x, y))
    cols["blended"] = [bool(b) for b in blended]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ra, dec = wcs.all_pix2world(x, y, 0) if len(x) else (np.array([]), np.array([]))
    cols["ra"], cols["dec"] = list(np.asarray(ra, float)), list(np.asarray(dec, float))
    return Starlist.from_columns(cols, frame_meta(frame, sm, fit, reference))


#: each column's unit, parsed once (as ``Column.unit = "deg"`` parses it)
_UNITS = {k: None if unit is None else u.Unit(unit, parse_strict="silent")
          for k, (unit, _) in COLUMNS.items()}


def table_from_columns(cols: dict[str, Any]) -> Table:
    """The starlist table of :data:`COLUMNS` (units, descriptions, formats) from sequences."""
    table = Table({k: _column_array(cols[k]) for k in COLUMNS})
    for k, (_, desc) in COLUMNS.items():
        col = table[k]
        col.unit = _UNITS[k]
        col.description = desc
        if k in _FORMATS:
            # the format as ``col.format = ...`` sets it, without its test of formatting the
            # column (these formats are known good: a test formats every column)
            col._format = _FORMATS[k]
    return table


def frame_values(sm: StarMeasurement, fit: EnsembleFit | None, reference: str
                 ) -> dict[str, Any]:
    """The per-frame columns (:data:`FRAME_COLUMNS`)."""
    return {"zero_point": round(fit.zp, 4) if fit is not None else math.nan,
            "zp_error": round(fit.zp_err, 4) if fit is not None else math.nan,
            "frame_excess": round(sm.excess_mag, 4),
            "airmass": round(sm.airmass, 3) if sm.airmass is not None else math.nan,
            "scintillation": round(1.0857 * sm.scintillation, 4), "reference": reference}


def frame_meta(frame: Frame, sm: StarMeasurement, fit: EnsembleFit | None, reference: str
               ) -> dict[str, Any]:
    """The frame's values for the table's meta."""
    cfa = sm.cfa
    return {"file": str(frame.path),
            "zero_point": round(fit.zp, 4) if fit is not None else None,
            "zp_error": round(fit.zp_err, 4) if fit is not None else None,
            "illumination": ("radial" if fit is not None and fit.radial is not None
                             and fit.radial.keep else "constant"),
            "excess_noise_mag": round(sm.excess_mag, 4),
            "aperture_excess_mag": round(sm.aperture_excess_mag, 4),
            "cfa_t1": round(cfa.t1, 4) if cfa is not None else None,
            "cfa_t2": round(cfa.modulation, 4) if cfa is not None else None,
            "cfa_t2_err": round(cfa.t2_err, 4) if cfa is not None else None,
            "cfa_t2_stars": cfa.t2_stars if cfa is not None else None,
            "cfa_sampling_mag": round(cfa.sampling_mag, 4) if cfa is not None else None,
            "cfa_uncorrected_mag": round(cfa.uncorrected_mag, 4) if cfa is not None else None,
            "airmass": round(sm.airmass, 3) if sm.airmass is not None else None,
            "scintillation_mag": round(1.0857 * sm.scintillation, 4),
            "reference": reference, "fwhm_px": round(sm.fwhm, 3),
            "aperture_px": round(sm.radius, 3)}


def _record_skip(root: Path, path: Path, reason: str) -> None:
    """One line in ``starlists/skipped.txt`` (when even that cannot be written, the log has
    it)."""
    stamp = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    try:
        with open(root / "skipped.txt", "a", encoding="utf-8") as fh:
            fh.write(f"{stamp}\t{path.name}\t{reason}\n")
    except OSError:
        pass


#: the ECSV header up to the table's meta, per column signature (astropy's YAML dump of the
#: column block is most of the cost of writing a starlist, and it never changes)
_ECSV_HEADS: dict[tuple[Any, ...], tuple[list[str], list[str]]] = {}
_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./+-]*")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "y", "n", "null", "~"}


def _astropy_ecsv(table: Table) -> str:
    buf = io.StringIO()
    table.write(buf, format="ascii.ecsv")
    return buf.getvalue()


def _signature(table: Table) -> tuple[Any, ...] | None:
    """What the ECSV column block depends on; None: not a plain table (astropy writes it)."""
    sig = []
    for col in table.columns.values():
        if (getattr(col, "mask", None) is not None or col.ndim != 1 or col.dtype.kind not in "biufU"
                or col.meta):
            return None
        sig.append((col.info.name, col.dtype.str, str(col.unit), col.format, col.description))
    return tuple(sig)


def _ecsv_head(table: Table, sig: tuple[Any, ...]) -> tuple[list[str], list[str]]:
    """(lines before the meta, lines after it: the schema line and the column names)."""
    head = _ECSV_HEADS.get(sig)
    if head is None:
        lines = _astropy_ecsv(Table(table[:0], meta={})).splitlines()
        cut = next(i for i, line in enumerate(lines) if line.startswith("# schema:"))
        head = _ECSV_HEADS[sig] = (lines[:cut], lines[cut:])
    return head


def _meta_value(v: Any) -> str | None:
    """YAML of a simple meta value as astropy's dumper writes it; None: ask the dumper."""
    if v is None:
        return "null"
    if type(v) is bool:
        return "true" if v else "false"
    if type(v) is int:
        return str(v)
    if type(v) is float and math.isfinite(v):
        text = repr(v).lower()
        return text.replace("e", ".0e", 1) if "." not in text and "e" in text else text
    if type(v) is str and _PLAIN.fullmatch(v) and v.lower() not in _YAML_WORDS:
        return v
    return None


def _meta_lines(meta: dict[str, Any]) -> list[str]:
    """The ``# meta: !!omap`` block: one ``- {key: value}`` line per item."""
    if not meta:
        return []
    out = ["# meta: !!omap"]
    for k, v in meta.items():
        text = _meta_value(v) if isinstance(k, str) and _PLAIN.fullmatch(k) else None
        line = f"# - {{{k}: {text}}}" if text is not None else ""
        if line and len(line) <= 100:
            out.append(line)
            continue
        # anything else (quoted, folded, a numpy value) as astropy's dumper writes it
        dumped = get_yaml_from_header({"cols": [], "meta": OrderedDict([(k, v)])})
        start = dumped.index("meta: !!omap") + 1
        out.extend("# " + x for x in dumped[start:] if x.startswith(("- ", "  ")))
    return out


def _texts(data: np.ndarray) -> list[str]:
    """``str`` of each value, as astropy's writer makes it: numpy's ``str`` of each element,
    which for float64, integers, booleans and text is Python's ``str`` of the plain value
    (``tolist``: ~5x faster than formatting numpy scalars; not float32, whose Python value
    prints more digits)."""
    if data.dtype.kind in "biuU" or data.dtype == np.float64:
        return list(map(str, data.tolist()))
    return list(map(str, data))


#: a value astropy's splitter writes as it is: printable ASCII without a space or a quote (the
#: csv writer quotes none of its characters, the splitter strips none); the text of a number
#: or a boolean always is
_BARE = re.compile(r'[!#-~]+')


def _rows(cols: list[list[str]], text: list[bool]) -> list[str]:
    """Each row's line as astropy's splitter (``Ecsv().data.splitter.join``) makes it: the
    values joined by a space when none needs quoting (only a text column's may), else by the
    splitter itself."""
    texts = [i for i, t in enumerate(text) if t]
    splitter = Ecsv().data.splitter
    return [" ".join(vals) if all(_BARE.fullmatch(vals[i]) for i in texts)
            else splitter.join(list(vals)) for vals in zip(*cols, strict=True)]


def _light_signature(starlist: Starlist) -> tuple[Any, ...] | None:
    """A :class:`Starlist`'s column signature (its units, descriptions and formats are the
    :data:`COLUMNS`'); None: not the plain columns (its table is written instead)."""
    cols = starlist.columns
    if tuple(cols) != tuple(COLUMNS):
        return None
    sig: list[Any] = ["starlist"]
    for k, a in cols.items():
        if type(a) is not np.ndarray or a.ndim != 1 or a.dtype.kind not in "biufU":
            return None
        # a text column is ``datatype: string`` whatever its width: one header for all widths
        sig.append((k, "U" if a.dtype.kind == "U" else a.dtype.str))
    return tuple(sig)


def _light_ecsv(starlist: Starlist) -> str:
    """:func:`ecsv_text` of a :class:`Starlist`: its table's text, the table made only once
    per column signature (for the header)."""
    sig = _light_signature(starlist)
    if sig is None or len({len(a) for a in starlist.columns.values()}) > 1:
        return ecsv_text(starlist.table())
    head = _ECSV_HEADS.get(sig)
    if head is None:
        table = starlist.table()
        tsig = _signature(table)
        if tsig is None:  # pragma: no cover - the kinds above always make a plain table
            return _astropy_ecsv(table)
        head = _ECSV_HEADS[sig] = _ecsv_head(table, tsig)
    before, after = head
    arrays = list(starlist.columns.values())
    rows = _rows([_texts(a) for a in arrays], [a.dtype.kind == "U" for a in arrays])
    return os.linesep.join([*before, *_meta_lines(starlist.meta), *after, *rows]) + os.linesep


def ecsv_text(table: Table | Starlist) -> str:
    """``table`` as ECSV text, exactly as astropy writes it, without dumping the column block
    as YAML for every frame (cached per column signature; the rows are astropy's ``str`` of
    each value joined as its own splitter joins them).

    Parameters
    ----------
    table : astropy.table.Table or Starlist
        A :class:`Starlist` is written as its :meth:`Starlist.table` would be.

    Returns
    -------
    str
    """
    if isinstance(table, Starlist):
        return _light_ecsv(table)
    sig = _signature(table)
    if sig is None:
        return _astropy_ecsv(table)
    before, after = _ecsv_head(table, sig)
    cols = list(table.columns.values())
    rows = _rows([_texts(col.data) for col in cols], [col.dtype.kind == "U" for col in cols])
    return os.linesep.join([*before, *_meta_lines(table.meta), *after, *rows]) + os.linesep


def write_starlist(table: Table | Starlist, path: Path, *, min_free_mb: int = 0) -> Path:
    """Write ``table`` as gzip-compressed ECSV at ``path`` atomically (temporary file, then
    rename).

    Parameters
    ----------
    table : astropy.table.Table or Starlist
    path : Path
        ``.ecsv.gz`` (compressed) or ``.ecsv``.
    min_free_mb : int
        Do not write when the folder's file system has less free space (MiB): the report and
        the ledger come first.

    Returns
    -------
    Path

    Raises
    ------
    StarlistSkipped
        Free space is below ``min_free_mb`` (recorded in ``skipped.txt`` beside the nights).
    OSError
        It could not be written (nothing is left behind).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if min_free_mb > 0:
        free = shutil.disk_usage(path.parent).free // 2**20
        if free < min_free_mb:
            reason = (f"only {free} MiB free (starlists.min_free_mb {min_free_mb}): starlist "
                      "paused, the report comes first")
            _record_skip(path.parent.parent, path, reason)
            raise StarlistSkipped(reason)
    fd, tmp = tempfile.mkstemp(prefix=".starlist-", suffix=".tmp", dir=path.parent)
    try:
        data = ecsv_text(table).encode("utf-8")
        if path.suffix == ".gz":
            data = gzip.compress(data, compresslevel=6, mtime=0)
        with os.fdopen(fd, "wb") as fh:
            fd = -1
            fh.write(data)
        os.replace(tmp, path)
    except BaseException as exc:
        if fd >= 0:
            os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):  # a full disk: skipped, with a record
            _record_skip(path.parent.parent, path, f"not written: {exc.strerror or exc}")
        raise
    return path


def prune(data_dir: str | os.PathLike[str], keep_days: int,
          today: _dt.date | None = None) -> int:
    """Delete the starlists of nights older than ``keep_days`` (0: keep all).

    Parameters
    ----------
    data_dir : path-like
        The data folder (its ``starlists/<YYYY-MM-DD>/`` folders).
    keep_days : int
        Nights kept, counted back from ``today``.
    today : date, optional
        Default: today (UTC).

    Returns
    -------
    int
        Night folders deleted.
    """
    root = Path(data_dir) / "starlists"
    if keep_days <= 0 or not root.is_dir():
        return 0
    limit = (today or _dt.datetime.now(_dt.UTC).date()) - _dt.timedelta(days=keep_days)
    n = 0
    for night in sorted(root.iterdir()):
        try:
            day = _dt.date.fromisoformat(night.name)
        except ValueError:
            continue
        if day < limit and night.is_dir() and not night.is_symlink():
            shutil.rmtree(night, ignore_errors=True)
            n += 1
    if n:
        log.info("starlists: %d night(s) older than %d day(s) deleted (starlists.keep_days)",
                 n, keep_days)
    return n
