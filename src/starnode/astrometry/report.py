"""``starnode solve``: the verified solution of frames on disk, like ``solve-field`` but verified.

Each file is loaded as the pipeline loads it (:func:`starnode.frame.load.load_frame`: the measured
plane of a sub or a stack), solved with :func:`.solve.solve_frame` with exactly the references
and hint the pipeline gives it (the target and its comparison sequence when the catalogues -
cached, bundled, or online when allowed - know the field; the bundled Gaia stars, the per-field
Gaia cache and the blind solvers installed in any case), and described: the
centre, scale, rotation, parity, method, matched stars, residual, time, and the WCS as FITS cards
for the file's own (native sensor) pixels. The file is only read, never modified.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from starnode.config import ConfigLike, resolve
from starnode.errors import StarnodeError

from .geometry import center_world
from .solution import Solution, _native
from .solve import solve_frame

log = logging.getLogger("starnode.astrometry")

__all__ = ["describe_solution", "format_solution", "solve_file"]


def describe_solution(sol: Solution, shape: tuple[int, int], binning: int) -> dict[str, Any]:
    """A solution as plain JSON types.

    Parameters
    ----------
    sol : Solution
        The verified solution of the measured plane.
    shape : (int, int)
        The plane's shape.
    binning : int
        Native pixels per plane pixel (the WCS cards are given for native pixels).

    Returns
    -------
    dict
        ``ra_deg``, ``dec_deg`` (the field centre), ``scale_arcsec`` (per native pixel),
        ``rotation_deg``, ``parity`` (``mirrored`` or ``normal``), ``method``, ``n_matched``,
        ``n_detected``, ``rms_px`` (plane pixels), ``elapsed_s``, ``wcs`` (FITS cards).
    """
    ra, dec = center_world(sol.wcs, shape)
    native = _native(sol.wcs, binning)
    cards = {k: v for k, v in native.to_header(relax=False).items()
             if k not in ("DATE-OBS", "MJD-OBS", "MJDREF", "DATEREF", "WCSAXES")}
    return {"ra_deg": round(float(ra), 6), "dec_deg": round(float(dec), 6),
            "scale_arcsec": round(float(sol.scale_arcsec), 4),
            "rotation_deg": round(float(sol.rotation_deg), 3),
            "parity": "mirrored" if sol.mirrored else "normal",
            "method": sol.method, "solved_by": sol.solved_by or sol.method,
            "n_matched": int(sol.n_matched), "n_detected": int(sol.n_detected),
            "rms_px": round(float(sol.rms_px), 3), "elapsed_s": round(float(sol.elapsed_s), 3),
            "binning": int(binning), "wcs": cards}


def solve_file(path: str | Path, config: ConfigLike = None) -> dict[str, Any]:
    """Solve one file; never raises for a bad or unsolvable frame.

    Parameters
    ----------
    path : path
        A FITS frame.
    config : Config, mapping, path or None
        ``astrometry.*``, ``camera.*``, ``db_path`` (the solution cache is used as in the
        pipeline).

    Returns
    -------
    dict
        ``file``, ``ok`` and either the fields of :func:`describe_solution` or ``error``.
    """
    from starnode.frame.load import load_frame

    cfg = resolve(config)
    out: dict[str, Any] = {"file": str(path)}
    try:
        fr = load_frame(Path(path), cfg)
        from starnode.catalogs.field import solver_references

        ra, dec, mag, why = solver_references(fr, cfg)
        if why:
            log.info("%s: solving without a comparison sequence: %s", Path(path).name, why)
        sol = solve_frame(fr, cfg, ref_ra=ra, ref_dec=dec, ref_mag=mag, hint=fr.header_wcs)
    except (StarnodeError, OSError, ValueError) as exc:
        log.info("%s: not solved: %s", path, exc)
        return {**out, "ok": False, "error": str(exc)}
    return {**out, "ok": True, **describe_solution(sol, fr.plane.shape, fr.binning),
            "references": "sequence" if why is None else "none"}


def format_solution(res: dict[str, Any]) -> str:
    """The text form of :func:`solve_file`'s answer (a few lines per file)."""
    if not res["ok"]:
        return f"{res['file']}: NOT SOLVED: {res['error']}"
    from astropy.coordinates import Angle

    ra = Angle(res["ra_deg"], "deg").to_string(unit="hourangle", sep=":", precision=1)
    dec = Angle(res["dec_deg"], "deg").to_string(sep=":", precision=0, alwayssign=True)
    head = (f"{res['file']}: RA {ra} Dec {dec} ({res['ra_deg']:.5f} {res['dec_deg']:+.5f}), "
            f"{res['scale_arcsec']:.4f}\"/px, rotation {res['rotation_deg']:.2f} deg, "
            f"{res['parity']}; {res['method']}"
            + (f" ({res['solved_by']})" if res["solved_by"] != res["method"] else "")
            + f", {res['n_matched']} stars matched, rms {res['rms_px']:.2f} px, "
            f"{res['elapsed_s']:.2f} s")
    cards = "\n".join(f"  {k:<8}= {v!r}" for k, v in res["wcs"].items())
    return f"{head}\n{cards}"
