"""External blind solvers: ASTAP and astrometry.net's ``solve-field``, when installed.

Each is run in a temporary folder with the nominal scale and the header position as hints and a
timeout (``astrometry.blind_timeout_s``); its WCS is only a candidate, verified by the caller
like any other guess. :class:`SolverFinder` locates the executables (configured path or PATH)
and warns once about a configured one that is missing.
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
from starnode.starfind import Stars

from .geometry import Shape
from .reference import Refs
from .tetra import Blind, solve_tetra3rs

log = logging.getLogger("starnode.astrometry")

__all__ = ["FINDER", "SolverFinder", "blind_solvers", "solve_astap", "solve_field"]


def _write_plane(plane: np.ndarray, path: Path) -> None:
    fits.PrimaryHDU(np.asarray(plane, dtype=np.float32)).writeto(path, overwrite=True)


def solve_astap(cfg: Config, exe: str, plane: np.ndarray, ra0: float, dec0: float,
                 plane_scale: float) -> Blind:
    with tempfile.TemporaryDirectory(prefix="starnode-astap-") as tmp:
        img = Path(tmp) / "plane.fits"
        _write_plane(plane, img)
        fov_h = plane.shape[0] * plane_scale / 3600.0
        cmd = [exe, "-f", str(img), "-ra", f"{ra0 / 15.0:.6f}", "-spd", f"{dec0 + 90.0:.6f}",
               "-r", f"{cfg.astrometry.search_radius_deg + fov_h:.2f}", "-fov", f"{fov_h:.4f}",
               "-z", "0", "-wcs"]
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


def solve_field(cfg: Config, exe: str, stars: Stars, shape: Shape, ra0: float,
                 dec0: float, plane_scale: float) -> Blind:
    with tempfile.TemporaryDirectory(prefix="starnode-solvefield-") as tmp:
        xyl = Path(tmp) / "stars.xyls"
        cols = [fits.Column(name="X", format="D", array=stars.x + 1.0),
                fits.Column(name="Y", format="D", array=stars.y + 1.0),
                fits.Column(name="FLUX", format="D", array=stars.flux)]
        fits.BinTableHDU.from_columns(cols).writeto(xyl)
        half_diag = 0.5 * math.hypot(*shape) * plane_scale / 3600.0
        timeout = float(cfg.astrometry.blind_timeout_s)
        cmd = [exe, str(xyl), "--width", str(shape[1]), "--height", str(shape[0]),
               "--x-column", "X", "--y-column", "Y", "--sort-column", "FLUX",
               "--scale-units", "arcsecperpix", "--scale-low", f"{plane_scale * 0.9:.4f}",
               "--scale-high", f"{plane_scale * 1.1:.4f}", "--ra", f"{ra0:.6f}",
               "--dec", f"{dec0:.6f}",
               "--radius", f"{cfg.astrometry.search_radius_deg + half_diag:.3f}",
               "--no-plots", "--overwrite", "--no-verify", "--crpix-center",
               "--tweak-order", "1", "--cpulimit", str(max(1, int(timeout))),
               "--dir", tmp, "--new-fits", "none", "--rdls", "none", "--match", "none",
               "--solved", "none", "--index-xyls", "none", "--temp-axy"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 10)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"solve-field: {exc}", None
        wcs_file = Path(tmp) / "stars.wcs"
        if not wcs_file.is_file():
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
            return None, (f"solve-field: no solution (exit {proc.returncode}: "
                          f"{tail[0][:200]})"), None
        w = _read_wcs_file(wcs_file)
        # astrometry.net's own matches (.corr) verify fields our references cannot.
        corr = Path(tmp) / "stars.corr"
        refs = None
        if corr.is_file():
            with fits.open(corr) as hd:
                t = hd[1].data
                ra = np.asarray(t["index_ra"], dtype=float)
                dec = np.asarray(t["index_dec"], dtype=float)
                refs = Refs(ra, dec, np.full(len(ra), 11.0), len(ra), 0)
        return w, "", refs


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


def blind_solvers(cfg: Config, plane: np.ndarray, stars: Stars, shape: Shape, ra0: float,
                  dec0: float, plane_scale: float) -> list[tuple[str, Callable[[], Blind]]]:
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
    ra0, dec0 : float
        The header position (degrees), a hint for ASTAP and solve-field.
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
        out.append(("astap", lambda: solve_astap(cfg, astap, plane, ra0, dec0, plane_scale)))
    sf = FINDER.which(ac.solve_field_path, "solve-field")
    if sf:
        out.append(("solve-field", lambda: solve_field(cfg, sf, stars, shape, ra0, dec0,
                                                       plane_scale)))
    if not out:
        log.debug("no blind solver available")
    return out
