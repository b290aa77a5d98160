"""External blind solvers: ASTAP and astrometry.net's ``solve-field``, when installed.

Each is run in a temporary folder with the nominal scale and the header position (when there is
one) as hints and a timeout (``astrometry.blind_timeout_s``); its WCS is only a candidate,
verified by the caller like any other guess. ``solve-field`` reads our own star list (sep
detections) and, with Debian's Tycho-2 index packages (``astrometry-data-tycho2-08`` and
``-09``), solves a Seestar field in about a second, pointing known or not.
:class:`SolverFinder` locates the executables (configured path or PATH) and warns once about a
configured one that is missing.
"""

from __future__ import annotations

import logging
import math
import shutil
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from starnode.config import Config
from starnode.frame.detect import Stars

from .geometry import Shape
from .reference import Refs
from .tetra import Blind, solve_tetra3rs

log = logging.getLogger("starnode.astrometry")

__all__ = ["FINDER", "Pointing", "SolverFinder", "blind_solvers", "solve_astap", "solve_field",
           "solve_field_command"]


def _write_plane(plane: np.ndarray, path: Path) -> None:
    fits.PrimaryHDU(np.asarray(plane, dtype=np.float32)).writeto(path, overwrite=True)


#: A field position (RA, Dec in degrees) or None: lost in space.
Pointing = tuple[float, float] | None


def solve_astap(cfg: Config, exe: str, plane: np.ndarray, pointing: Pointing,
                plane_scale: float) -> Blind:
    """ASTAP on the plane: around ``pointing``, or the whole sky (``-r 180``) without one."""
    with tempfile.TemporaryDirectory(prefix="starnode-astap-") as tmp:
        img = Path(tmp) / "plane.fits"
        _write_plane(plane, img)
        fov_h = plane.shape[0] * plane_scale / 3600.0
        if pointing is None:
            where = ["-r", "180"]
        else:
            where = ["-ra", f"{pointing[0] / 15.0:.6f}", "-spd", f"{pointing[1] + 90.0:.6f}",
                     "-r", f"{cfg.astrometry.search_radius_deg + fov_h:.2f}"]
        cmd = [exe, "-f", str(img), *where, "-fov", f"{fov_h:.4f}", "-z", "0", "-wcs"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True,
                                  timeout=cfg.astrometry.blind_timeout_s)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"astap: {exc}", None
        wcs_file = img.with_suffix(".wcs")
        if proc.returncode != 0 or not wcs_file.is_file():
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
            return None, f"astap: exit {proc.returncode}: {tail[0][:200]}", None
        return _read_wcs_file(wcs_file), "", None


def solve_field_command(exe: str, xyls: Path, shape: Shape, plane_scale: float,
                        scale_tolerance: float, cone: tuple[float, float, float] | None,
                        timeout_s: float) -> list[str]:
    """The ``solve-field`` command for a star list (sep detections, 1-based X, Y, FLUX).

    Parameters
    ----------
    exe : str
        The executable.
    xyls : pathlib.Path
        The star list (a FITS table); results are written beside it.
    shape : (int, int)
        The plane's shape (rows, columns).
    plane_scale : float
        Nominal arcseconds per plane pixel: the search runs within ``scale_tolerance`` of it.
    scale_tolerance : float
        Relative half-width of the scale range.
    cone : (ra, dec, radius) or None
        Where to look (degrees); None searches the whole sky.
    timeout_s : float
        CPU limit of the run.

    Returns
    -------
    list of str
        The argument vector.
    """
    tol = max(float(scale_tolerance), 0.02)
    cmd = [exe, str(xyls), "--width", str(shape[1]), "--height", str(shape[0]),
           "--x-column", "X", "--y-column", "Y", "--sort-column", "FLUX",
           "--scale-units", "arcsecperpix", "--scale-low", f"{plane_scale * (1 - tol):.4f}",
           "--scale-high", f"{plane_scale * (1 + tol):.4f}"]
    if cone is not None:
        cmd += ["--ra", f"{cone[0]:.6f}", "--dec", f"{cone[1]:.6f}", "--radius",
                f"{cone[2]:.3f}"]
    return [*cmd, "--no-plots", "--overwrite", "--no-verify", "--crpix-center",
                  "--tweak-order", "1", "--cpulimit", str(max(1, int(timeout_s))),
                  "--dir", str(xyls.parent), "--new-fits", "none", "--rdls", "none",
                  "--match", "none", "--solved", "none", "--index-xyls", "none",
                  "--temp-axy"]


def solve_field(cfg: Config, exe: str, stars: Stars, shape: Shape, pointing: Pointing,
                plane_scale: float) -> Blind:
    """astrometry.net's ``solve-field`` on the detected stars, with the known scale range.

    With a pointing it first searches around it (``astrometry.search_radius_deg`` plus the
    half diagonal); when that finds nothing, or without a pointing, it searches the whole sky
    (about a second with Debian's Tycho-2 index files: the time is start-up and index loading).

    Returns
    -------
    (WCS or None, str, Refs or None)
        The solution (unverified), the reason when none, and the index stars astrometry.net
        matched (its ``.corr`` file), which verify fields our references cannot.
    """
    with tempfile.TemporaryDirectory(prefix="starnode-solvefield-") as tmp:
        xyl = Path(tmp) / "stars.xyls"
        cols = [fits.Column(name="X", format="D", array=stars.x + 1.0),
                fits.Column(name="Y", format="D", array=stars.y + 1.0),
                fits.Column(name="FLUX", format="D", array=stars.flux)]
        fits.BinTableHDU.from_columns(cols).writeto(xyl)
        half_diag = 0.5 * math.hypot(*shape) * plane_scale / 3600.0
        cones: list[tuple[float, float, float] | None] = [None]
        if pointing is not None:
            cones.insert(0, (*pointing, cfg.astrometry.search_radius_deg + half_diag))
        timeout = float(cfg.astrometry.blind_timeout_s)
        whys = []
        for cone in cones:
            cmd = solve_field_command(exe, xyl, shape, plane_scale,
                                      cfg.astrometry.scale_tolerance, cone, timeout)
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True,
                                      timeout=timeout + 10)
            except (OSError, subprocess.TimeoutExpired) as exc:
                return None, f"solve-field: {exc}", None
            wcs_file = Path(tmp) / "stars.wcs"
            if wcs_file.is_file():
                return _read_wcs_file(wcs_file), "", _corr_refs(Path(tmp) / "stars.corr")
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
            where = "whole sky" if cone is None else f"within {cone[2]:.1f} deg"
            whys.append(f"no solution {where} (exit {proc.returncode}: {tail[0][:160]})")
        return None, "solve-field: " + "; ".join(whys), None


def _corr_refs(corr: Path) -> Refs | None:
    """The index stars of astrometry.net's matches (``.corr``), as reference stars."""
    if not corr.is_file():
        return None
    with fits.open(corr) as hd:
        t = hd[1].data
        ra = np.asarray(t["index_ra"], dtype=float)
        dec = np.asarray(t["index_dec"], dtype=float)
    return Refs(ra, dec, np.full(len(ra), 11.0), len(ra), 0)


def _read_wcs_file(path: Path) -> WCS:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        hdr = fits.getheader(path)
        hdr["NAXIS"] = 2
        return WCS(hdr, naxis=2, relax=True).celestial


class SolverFinder:
    """Finds solver executables; a configured one that is missing is warned about once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._warned: set[str] = set()

    def which(self, configured: str | None, *names: str) -> str | None:
        """The configured executable (a name on PATH or a file), else the first of ``names``.

        Parameters
        ----------
        configured : str or None
            ``astrometry.astap_path`` / ``astrometry.solve_field_path``.
        *names : str
            Names to look for on PATH when nothing is configured.

        Returns
        -------
        str or None
            The executable, or None (a configured one that is missing is not replaced).
        """
        if configured:
            p = shutil.which(configured) or (configured if Path(configured).is_file() else None)
            if p is None:
                with self._lock:
                    first = configured not in self._warned
                    self._warned.add(configured)
                if first:
                    log.warning("configured solver %s not found: not used", configured)
            return p
        for n in names:
            p = shutil.which(n)
            if p:
                return p
        return None


#: The process's solver finder.
FINDER = SolverFinder()


def blind_solvers(cfg: Config, plane: np.ndarray, stars: Stars, shape: Shape,
                  pointing: Pointing, plane_scale: float
                  ) -> list[tuple[str, Callable[[], Blind]]]:
    """The blind solvers available, in order of preference, as ``(name, run)`` pairs.

    Parameters
    ----------
    cfg : Config
        ``astrometry.tetra3rs``, ``astap_path``, ``solve_field_path``...
    plane : numpy.ndarray
        The measured plane (ASTAP reads an image).
    stars : Stars
        Detections (tetra3rs and solve-field read star lists).
    shape : (int, int)
        The plane's shape.
    pointing : (float, float) or None
        The header position (degrees), a hint for ASTAP and solve-field; None: lost in space.
    plane_scale : float
        Nominal arcseconds per plane pixel.

    Returns
    -------
    list of (str, callable)
        Each callable returns ``(WCS or None, why, the solver's own matched stars or None)``.
    """
    ac = cfg.astrometry
    out: list[tuple[str, Callable[[], Blind]]] = []
    if ac.tetra3rs:
        out.append(("tetra3rs", lambda: solve_tetra3rs(cfg, stars, shape, plane_scale)))
    astap = FINDER.which(ac.astap_path, "astap_cli", "astap")
    if astap:
        out.append(("astap", lambda: solve_astap(cfg, astap, plane, pointing, plane_scale)))
    sf = FINDER.which(ac.solve_field_path, "solve-field")
    if sf:
        out.append(("solve-field", lambda: solve_field(cfg, sf, stars, shape, pointing,
                                                       plane_scale)))
    if not out:
        log.debug("no blind solver available")
    return out
