"""The tetra3rs blind solver and its pattern database.

The database covers Seestar fields only (0.6-1.5 deg, two pattern scales) and is built from
Tycho-2 stars (Debian's astrometry.net index files, see :mod:`.tycho`) plus the bundled Gaia
G < 10 stars, to magnitude 12: measured on a shared 2-core machine, 76 s of build at one core,
1.1 GB peak memory, a 354 MB file in ``data_dir/astrometry`` that solves the real M 94 subs
blind in milliseconds (docs/astrometry.md). Without the index files, ``--gaia-only`` builds the
same from the bundled G < 10 stars alone (solves Milky Way fields, not sparse ones). It is never
built inside a frame's solve: ``starnode solver-db`` builds it, or, with
``astrometry.tetra3rs_generate``, a background thread does while frames go on without it. A lock
file (with the builder's pid) keeps two processes from building it at once.
:class:`Tetra3rsDatabases` owns the loaded databases of this process.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from astropy.wcs import WCS

from starnode.config import Config
from starnode.frame.detect import Stars
from starnode.util.proc import pid_alive

from .geometry import Shape, fit_tan
from .reference import Refs

log = logging.getLogger("starnode.astrometry")

__all__ = ["T3_FOV_RANGE", "T3_MIN_FREE_MEMORY", "T3_PARAMS", "TETRA3RS", "Tetra3rsDatabases",
           "build_tetra3rs_database", "lock_owner_alive", "solve_tetra3rs",
           "tetra3rs_database_path"]

#: tetra3rs database field range (deg): the S50 field is 0.71 x 1.27 deg.
T3_FOV_RANGE = (0.6, 1.5)
#: free memory needed before the tetra3rs database is generated (it peaks at ~1.1 GB)
T3_MIN_FREE_MEMORY = 1_600_000_000
#: ``generate_from_gaia`` settings: two scales (0.6 and 1.5 deg), stars to magnitude 12,
#: 50 patterns per lattice field at oversampling 2 (12.6 M patterns from Tycho-2 + Gaia).
T3_PARAMS: dict[str, Any] = {"multiscale_step": 2.5, "lattice_field_oversampling": 2,
                             "patterns_per_lattice_field": 50, "verification_stars_per_fov": 150,
                             "star_max_magnitude": 12.0, "pattern_max_error": 0.001}

#: What a blind solver returns: a WCS or None, the reason when None, its own matched stars.
Blind = tuple[WCS | None, str, Refs | None]


def tetra3rs_database_path(config: Config) -> Path:
    """Where the tetra3rs database for Seestar fields is cached.

    Parameters
    ----------
    config : Config
        Its ``data_dir``.

    Returns
    -------
    pathlib.Path
        ``data_dir/astrometry/tetra3rs-<version>-fov0.6-1.5.bin`` (whatever its catalogue).
    """
    cfg = config
    try:
        import tetra3rs

        version = getattr(tetra3rs, "__version__", "x")
    except ImportError:
        version = "x"
    return Path(cfg.data_dir) / "astrometry" / (
        f"tetra3rs-{version}-fov{T3_FOV_RANGE[0]}-{T3_FOV_RANGE[1]}.bin")


def build_tetra3rs_database(config: Config, *, catalog_path: str | None = None,
                            gaia_only: bool = False, **params: Any) -> Path:
    """Generate the tetra3rs database and save it where :func:`solve_frame` looks for it.

    Parameters
    ----------
    config : Config
        Its ``data_dir``.
    catalog_path : str, optional
        A GDR3 binary (tests and experiments). Default: the Tycho-2 + Gaia G < 10 catalogue
        made from Debian's index files (:func:`.tycho.tycho_gaia_catalog`), written beside the
        database.
    gaia_only : bool
        Without ``catalog_path``: the bundled Gaia G < 10 catalogue instead (no astrometry.net
        needed; it cannot solve sparse fields).
    **params
        ``tetra3rs.SolverDatabase.generate_from_gaia`` keywords over :data:`T3_PARAMS`.

    Returns
    -------
    pathlib.Path
        The database file (written atomically).

    Raises
    ------
    ImportError
        tetra3rs is not installed.
    RuntimeError
        The Tycho-2 catalogue is wanted but ``query-starkd`` or the index files are missing.
    """
    import tetra3rs

    from .tycho import tycho_gaia_catalog

    path = tetra3rs_database_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    made = None
    if catalog_path is None and not gaia_only:
        made = path.with_name(f"tycho2-gaia10.{os.getpid()}.gdr3")
        tycho_gaia_catalog(made)
        catalog_path = str(made)
    log.info("generating the tetra3rs database for %.1f-%.1f deg fields from %s (once; "
             "cached in %s)", *T3_FOV_RANGE, catalog_path or "the bundled Gaia catalogue", path)
    t0 = time.monotonic()
    kw = {**T3_PARAMS, "epoch_proper_motion_year": float(time.gmtime().tm_year) + 0.5,
          **params}
    try:
        db = tetra3rs.SolverDatabase.generate_from_gaia(
            catalog_path, max_fov_deg=T3_FOV_RANGE[1], min_fov_deg=T3_FOV_RANGE[0], **kw)
    finally:
        if made is not None:
            made.unlink(missing_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    db.save_to_file(str(tmp))
    os.replace(tmp, path)
    log.info("tetra3rs database: %d stars, %d patterns, generated in %.0f s", db.num_stars,
             db.num_patterns, time.monotonic() - t0)
    return path


def _available_memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def lock_owner_alive(lock: Path) -> bool:
    """True when the process named in a build lock file runs (or the file is unreadable)."""
    try:
        pid = int(lock.read_text().strip() or "0")
    except (OSError, ValueError):
        return True  # unreadable: assume someone is at work
    return True if pid <= 0 else pid_alive(pid)


def _take_lock(lock: Path) -> str:
    """Take the build lock: "" when taken, else why not (someone builds, too little memory)."""
    try:
        age = time.time() - lock.stat().st_mtime
        if age < 6 * 3600 and lock_owner_alive(lock):
            return f"tetra3rs database is being generated (since {age / 60:.0f} min); skipped"
        lock.unlink()  # a stale lock from a process that died
    except FileNotFoundError:
        pass
    avail = _available_memory_bytes()
    if avail is not None and avail < T3_MIN_FREE_MEMORY:
        return (f"not enough free memory to build the tetra3rs database (needs about 1.1 GB, "
                f"{avail / 2**30:.1f} GB available); skipped")
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return "tetra3rs database is being generated by another process; skipped"
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return ""


def _generate_in_background(path: Path, cfg: Config) -> str:
    """Start generating the database unless someone (this or another process) already is."""
    lock = path.with_name(path.name + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    why = _take_lock(lock)
    if why:
        return why

    def run() -> None:
        try:
            try:
                build_tetra3rs_database(cfg)
            except RuntimeError as exc:  # no Tycho-2 index files: the G < 10 stars only
                log.warning("%s; building from the bundled Gaia G<10 stars only", exc)
                build_tetra3rs_database(cfg, gaia_only=True)
        except Exception:
            log.exception("tetra3rs database generation failed")
        finally:
            lock.unlink(missing_ok=True)

    threading.Thread(target=run, name="tetra3rs-db", daemon=True).start()
    return ("tetra3rs database not built yet: generation started in the background "
            "(takes minutes, once); skipped for this frame")


class Tetra3rsDatabases:
    """The tetra3rs databases loaded by this process, by path (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dbs: dict[str, Any] = {}

    def get(self, cfg: Config) -> tuple[Any, str]:
        """The database for ``cfg`` (loaded once), or ``(None, why not)``.

        Parameters
        ----------
        cfg : Config
            ``data_dir`` and ``astrometry.tetra3rs_generate`` are used.

        Returns
        -------
        (database or None, str)
            The reason is empty when the database is returned.
        """
        try:
            import tetra3rs
        except ImportError:
            return None, "tetra3rs is not installed"
        path = tetra3rs_database_path(cfg)
        with self._lock:
            if str(path) in self._dbs:
                return self._dbs[str(path)], ""
            if not path.is_file():
                if not cfg.astrometry.tetra3rs_generate:
                    return None, (f"no tetra3rs database at {path} and "
                                  "astrometry.tetra3rs_generate is false")
                return None, _generate_in_background(path, cfg)
            db = tetra3rs.SolverDatabase.load_from_file(str(path))
            self._dbs[str(path)] = db
            return db, ""

    def clear(self) -> None:
        """Drop the loaded databases (they are large)."""
        with self._lock:
            self._dbs.clear()


#: The process's loaded tetra3rs databases.
TETRA3RS = Tetra3rsDatabases()


def solve_tetra3rs(cfg: Config, stars: Stars, shape: Shape, plane_scale: float) -> Blind:
    """Blind solve from the detected stars' centroids.

    Parameters
    ----------
    cfg : Config
        ``astrometry.blind_timeout_s`` and the database settings.
    stars : Stars
        Detections, brightest first (the 60 brightest are used).
    shape : (int, int)
        The plane's shape.
    plane_scale : float
        Nominal arcseconds per plane pixel.

    Returns
    -------
    (WCS or None, str, Refs or None)
        The solution (unverified), the reason when none, and the catalogue stars tetra3rs
        matched (to verify fields our references cannot).
    """
    db, why = TETRA3RS.get(cfg)
    if db is None:
        return None, f"tetra3rs: {why}", None
    if len(stars) < 4:
        return None, f"tetra3rs: only {len(stars)} stars detected", None
    ny, nx = shape
    fov = nx * plane_scale / 3600.0
    cen = np.column_stack([stars.x - (nx - 1) / 2.0, stars.y - (ny - 1) / 2.0, stars.flux])
    res = db.solve_from_centroids(cen[:60], fov_estimate_deg=fov, image_width=nx,
                                  image_height=ny, fov_max_error_deg=fov * 0.1,
                                  solve_timeout_ms=int(cfg.astrometry.blind_timeout_s * 1000))
    if not res:
        return None, f"tetra3rs: {res.status} ({res.solve_time_ms:.0f} ms)", None
    # Rebuild a TAN WCS from tetra3rs' own pixel<->sky map (its pixel origin is the centre).
    gx, gy = np.meshgrid(np.linspace(0, nx - 1, 5), np.linspace(0, ny - 1, 5))
    sky = [res.pixel_to_world(float(x - (nx - 1) / 2.0), float(y - (ny - 1) / 2.0))
           for x, y in zip(gx.ravel(), gy.ravel(), strict=True)]
    w = fit_tan(gx.ravel(), gy.ravel(), np.array([s[0] for s in sky]),
                np.array([s[1] for s in sky]), shape, (float(res.ra_deg), float(res.dec_deg)))
    own = [db.get_star_by_id(int(i)) for i in np.asarray(res.matched_catalog_ids)]
    own = [c for c in own if c is not None]
    refs = Refs(np.array([c.ra_deg for c in own]), np.array([c.dec_deg for c in own]),
                np.array([c.magnitude for c in own]), len(own), 0) if own else None
    return w, "", refs
