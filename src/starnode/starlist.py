"""Per-frame starlists: every detected and catalogued star of a measured frame, as ECSV.

Why: the AAVSO smart-telescope programme asks for the stars of every frame, not only the
variable, so that frames can be re-reduced centrally later; and every self-check (errors that
hold from sub to sub, the illumination model, the check star) is a question about the other
stars of the frame. The list is written next to the measurement, under
``data_dir/starlists/<night>/<frame>.ecsv`` (atomically: a temporary file, then a rename), with
the calibrated magnitude of each star on the frame's own zero point (radial when the frame has
one) and flags saying which stars are the target, the comps and the check star.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from astropy.table import Table
from scipy.spatial import cKDTree

from .frames import Frame
from .photometry.apertures import StarMeasurement, measure_stars
from .photometry.detect import detect_stars
from .photometry.ensemble import EnsembleFit

log = logging.getLogger("starnode.starlist")

__all__ = ["COLUMNS", "build_starlist", "starlist_path", "write_starlist"]

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


def starlist_path(data_dir: Path, night: str | None, frame_path: Path) -> Path:
    """``data_dir/starlists/<night>/<frame stem>.ecsv``."""
    return Path(data_dir) / "starlists" / (night or "unknown-night") / f"{frame_path.stem}.ecsv"


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


def build_starlist(frame: Frame, wcs: Any, config: Any, sm: StarMeasurement, fit: EnsembleFit,
                   target_name: str, reference: str = "vsp") -> Table:
    """Every catalogued (target first, comps) and detected star of the frame.

    Parameters
    ----------
    frame : Frame
    wcs : astropy.wcs.WCS
        The verified plane WCS.
    config : Any
        Anything :func:`starnode.config.resolve` accepts.
    sm : StarMeasurement
        The pipeline's photometry: target (0) then the in-frame comps.
    fit : EnsembleFit
        The zero point (:meth:`EnsembleFit.zp_for`) and which comps are used / the check.
    target_name : str
    reference : str
        What the zero point comes from (the sequence's source: ``vsp``, ``gaia-dr3``).

    Returns
    -------
    astropy.table.Table
        :data:`COLUMNS`, one row per star; ``meta`` holds the frame's file, zero point and
        illumination model.
    """
    det = detect_stars(frame)
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
    table = table_from_columns(cols)
    table.meta.update(frame_meta(frame, sm, fit, reference))
    return table


def table_from_columns(cols: dict[str, Any]) -> Table:
    """The starlist table of :data:`COLUMNS` (units, descriptions, formats) from sequences."""
    table = Table({k: np.asarray(cols[k]) if len(cols[k]) else np.array([]) for k in COLUMNS})
    for k, (unit, desc) in COLUMNS.items():
        table[k].unit = unit
        table[k].description = desc
        if k in _FORMATS:
            table[k].format = _FORMATS[k]
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
            "cfa_sampling_mag": round(cfa.sampling_mag, 4) if cfa is not None else None,
            "cfa_uncorrected_mag": round(cfa.uncorrected_mag, 4) if cfa is not None else None,
            "airmass": round(sm.airmass, 3) if sm.airmass is not None else None,
            "scintillation_mag": round(1.0857 * sm.scintillation, 4),
            "reference": reference, "fwhm_px": round(sm.fwhm, 3),
            "aperture_px": round(sm.radius, 3)}


def write_starlist(table: Table, path: Path) -> Path:
    """Write ``table`` as ECSV at ``path`` atomically (temporary file, then rename).

    Parameters
    ----------
    table : astropy.table.Table
    path : Path

    Returns
    -------
    Path
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".starlist-", suffix=".ecsv", dir=path.parent)
    os.close(fd)
    try:
        table.write(tmp, format="ascii.ecsv", overwrite=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


#: why ``measure()`` may refuse a frame whose stars can still be listed
_LISTABLE = ("catalog", "too_few_comps", "no_target", "low_snr", "saturated", "edge")


def frame_starlist(path: str | os.PathLike[str], config: Any) -> Table:
    """Measure one frame (as the pipeline does, writing its starlist) and return the list;
    when the variable cannot be measured (no chart offline, target outside, faint, saturated)
    every star the solver can place is listed anyway
    (:func:`starnode.photometry.fieldlist.field_starlist`: instrumental always, calibrated
    from the best reference there is, named in ``reference``).

    Parameters
    ----------
    path : str or os.PathLike
        The FITS frame.
    config : Any
        Anything :func:`starnode.config.resolve` accepts.

    Returns
    -------
    astropy.table.Table

    Raises
    ------
    starnode.errors.FrameRejected
        The frame cannot be measured (the reason says why).
    """
    from .config import resolve
    from .errors import FrameRejected
    from .photometry import measure

    cfg = resolve(config)
    if not cfg.photometry.starlists:
        raise OSError("photometry.starlists is off in the configuration: no starlist is made")
    try:
        m = measure(path, cfg)
    except FrameRejected as exc:
        if str(exc.category) not in _LISTABLE:
            raise
        from .photometry.fieldlist import field_starlist

        log.info("%s: %s; listing its stars without a measurement", Path(path).name,
                 exc.reason)
        table = field_starlist(path, cfg)
        table.meta["not_measured"] = exc.reason
        return table
    if m.starlist is None:
        raise OSError(f"{Path(path).name}: the starlist could not be written (see the log)")
    return Table.read(m.starlist, format="ascii.ecsv")


def stars_command(files: list[str], config: Any, fmt: str, out: str | None) -> int:
    """``starnode stars FILE...``: the starlists of frames, as ECSV, CSV or JSON.

    Parameters
    ----------
    files : list of str
    config : Any
    fmt : str
        ``ecsv``, ``csv`` or ``json``.
    out : str or None
        Output file (default: stdout).

    Returns
    -------
    int
        0, or 1 when a frame could not be measured (its reason on stderr).
    """
    import io
    import json
    import sys

    from astropy.table import vstack

    from .errors import FrameRejected

    tables, status = [], 0
    for f in files:
        try:
            t = frame_starlist(f, config)
        except (FrameRejected, OSError) as exc:
            sys.stderr.write(f"{f}: {exc}\n")
            status = 1
            continue
        t.add_column([str(f)] * len(t), name="file", index=0)
        tables.append(t)
    if not tables:
        return status
    table = vstack(tables, metadata_conflicts="silent") if len(tables) > 1 else tables[0]
    if len(tables) > 1:  # one header for several frames: each frame's values, not the last's
        table.meta.clear()
        table.meta["frames"] = [dict(t.meta) for t in tables]
    buf = io.StringIO()
    if fmt == "json":
        rows = [{k: (v.item() if hasattr(v, "item") else v) for k, v in zip(
            table.colnames, row, strict=True)} for row in table]
        buf.write(json.dumps(rows, indent=1, allow_nan=True) + "\n")
    else:
        table.write(buf, format="ascii.ecsv" if fmt == "ecsv" else "ascii.csv")
    if out:
        Path(out).write_text(buf.getvalue(), encoding="utf-8")
    else:
        sys.stdout.write(buf.getvalue())
    return status
