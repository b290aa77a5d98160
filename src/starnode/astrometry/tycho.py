"""The star catalogue of the Seestar-FOV tetra3rs database: Tycho-2 depth plus Gaia G < 10.

Why not the bundled Gaia catalogue alone: it stops at G = 10, and a Seestar field away from the
Milky Way holds 3-6 such stars, too few for a pattern match (the real M 94 subs are never
solved from it). Tycho-2 (to V ~ 12) has the depth, and Debian already ships it: the stars of
astrometry.net's index files (``astrometry-data-tycho2-07``, or ``-08`` and ``-09``), read with
``query-starkd`` (part of the ``astrometry.net`` package). They are J2000 positions with VT
magnitudes; the bundled Gaia G < 10 stars (with proper motions) replace the Tycho-2 stars within
2″ of them. The result is written as a GDR3 binary, the format
``tetra3rs.SolverDatabase.generate_from_gaia`` reads (b'GDR3', u32 version, u64 n, then
i64 id, f64 ra, f64 dec, f32 mag, f32 pmra, f32 pmdec per star).
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy.spatial import cKDTree

from .reference import _GAIA_DTYPE, GAIA

log = logging.getLogger("starnode.astrometry")

__all__ = ["INDEX_DIR", "tycho_gaia_catalog", "tycho_index_files"]

#: Where Debian's astrometry-data-* packages put the index files.
INDEX_DIR = Path("/usr/share/astrometry")
#: Index scales whose stars are used (07 alone holds 99.8 % of the stars of 07 + 08 + 09).
_SCALES = ("07", "08", "09")


def tycho_index_files(index_dir: Path | str = INDEX_DIR) -> list[Path]:
    """The Tycho-2 index files of scales 07-09 installed in ``index_dir``.

    Parameters
    ----------
    index_dir : path
        Default ``/usr/share/astrometry``.

    Returns
    -------
    list of pathlib.Path
        Sorted; empty when none is installed.
    """
    pat = re.compile(r"index-tycho2-(\d\d)(\.littleendian|\.bigendian)?\.fits$")
    out = []
    for p in sorted(Path(index_dir).glob("index-tycho2-*.fits")):
        m = pat.match(p.name)
        if m and m.group(1) in _SCALES:
            out.append(p)
    return out


def _xyz(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    r, d = np.radians(ra), np.radians(dec)
    return np.column_stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)])


def _index_stars(exe: str, index: Path, cones: list[tuple[float, float, float]],
                 tmp: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RA, Dec, VT of one index file's stars within the cones (``query-starkd``)."""
    ra, dec, mag = [], [], []
    for i, (cra, cdec, rad) in enumerate(cones):
        out = tmp / f"{index.stem}.{i}.rdls"
        cmd = [exe, "-r", f"{cra:.6f}", "-d", f"{cdec:.6f}", "-R", f"{rad:.4f}", "-t", "MAG_VT",
               "-o", str(out), str(index)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 or not out.is_file():
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"query-starkd failed on {index.name} (exit {proc.returncode}): "
                               f"{tail[0][:200]}")
        t = fits.getdata(out, 1)
        ra.append(np.asarray(t["RA"], float))
        dec.append(np.asarray(t["DEC"], float))
        mag.append(np.asarray(t["MAG_VT"], float))
    return np.concatenate(ra), np.concatenate(dec), np.concatenate(mag)


def tycho_gaia_catalog(out: Path | str, index_files: list[Path] | None = None, *,
                       cone: tuple[float, float, float] | None = None,
                       query_starkd: str | None = None) -> int:
    """Write the Tycho-2 + Gaia G < 10 catalogue as a GDR3 binary.

    Parameters
    ----------
    out : path
        The GDR3 file to write.
    index_files : list of pathlib.Path, optional
        Default: :func:`tycho_index_files`.
    cone : (ra, dec, radius), optional
        Only this part of the sky (degrees; tests); default the whole sky.
    query_starkd : str, optional
        The executable (default: found on PATH).

    Returns
    -------
    int
        Stars written.

    Raises
    ------
    RuntimeError
        ``query-starkd`` or the index files are missing, or ``query-starkd`` failed.
    """
    exe = query_starkd or shutil.which("query-starkd")
    files = tycho_index_files() if index_files is None else list(index_files)
    if exe is None or not files:
        raise RuntimeError("the Tycho-2 stars come from astrometry.net's index files: "
                           "apt-get install --no-install-recommends astrometry.net "
                           "astrometry-data-tycho2-07-littleendian (or -08 and -09)")
    # query-starkd refuses -R 180: two 91-degree caps make the whole sky
    cones = [cone] if cone is not None else [(0.0, 90.0, 91.0), (0.0, -90.0, 91.0)]
    with tempfile.TemporaryDirectory(prefix="starnode-tycho-") as tmp:
        parts = [_index_stars(exe, f, cones, Path(tmp)) for f in files]
    ra, dec, mag = (np.concatenate([p[k] for p in parts]) for k in range(3))
    # one star per position: duplicates within 1" (the caps overlap, the scales share stars)
    pairs = cKDTree(_xyz(ra, dec)).query_pairs(np.radians(1.0 / 3600), output_type="ndarray")
    drop = np.zeros(len(ra), bool)
    drop[np.maximum(pairs[:, 0], pairs[:, 1])] = True
    ra, dec, mag = ra[~drop], dec[~drop], mag[~drop]
    n_tycho = len(ra)
    g_ra, g_dec, g_rec = _gaia_bright(cone)
    if len(g_ra) and len(ra):
        d, _ = cKDTree(_xyz(g_ra, g_dec)).query(_xyz(ra, dec),
                                                distance_upper_bound=np.radians(2.0 / 3600))
        keep = ~np.isfinite(d)
        ra, dec, mag = ra[keep], dec[keep], mag[keep]
    rec = np.zeros(len(g_rec) + len(ra), dtype=_GAIA_DTYPE)
    rec[:len(g_rec)] = g_rec
    tail = rec[len(g_rec):]
    tail["id"] = np.arange(1, len(ra) + 1, dtype=np.int64)  # Gaia DR3 ids are > 4e9
    tail["ra"], tail["dec"], tail["mag"] = ra, dec, mag
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        fh.write(b"GDR3" + np.uint32(1).tobytes() + np.uint64(len(rec)).tobytes())
        rec.tofile(fh)
    log.info("Tycho-2 + Gaia catalogue: %d Tycho-2 stars from %s, %d Gaia G<10 stars, %d in "
             "all -> %s", n_tycho, ", ".join(f.name for f in files), len(g_rec), len(rec), path)
    return len(rec)


def _gaia_bright(cone: tuple[float, float, float] | None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The bundled Gaia G < 10 records (epoch 2016.0), all or within the cone."""
    tab = GAIA.load()
    if tab is None:
        e = np.empty(0)
        return e, e, np.zeros(0, dtype=_GAIA_DTYPE)
    rec = tab.rec
    if cone is not None:
        r, d = np.radians(cone[0]), np.radians(cone[1])
        v = np.array([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)])
        rec = rec[tab.xyz @ v > np.cos(np.radians(cone[2]))]
    return rec["ra"], rec["dec"], rec
