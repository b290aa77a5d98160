"""``starnode solver-db`` housekeeping: no temporary file outlives a killed build, and a
truncated database is caught by ``starnode doctor``.

The build (:func:`starnode.astrometry.build_tetra3rs_database`) saves to
``<database>.<pid>.tmp`` and renames; a build killed while saving leaves that file (25 MB and
more) and the catalogue ``tycho2-gaia10.<pid>.gdr3``. :func:`remove_leftovers` deletes those
whose process is gone (before a build, and at the node's start). After a build,
:func:`record` writes ``<database>.size`` (its size and sha256); :func:`check` compares the
database with it (a size check: quick enough for ``doctor``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["check", "record", "remove_leftovers"]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers(folder: str | os.PathLike[str]) -> int:
    """Delete the temporary files of solver-database builds whose process is gone.

    Parameters
    ----------
    folder : path-like
        ``data_dir/astrometry``.

    Returns
    -------
    int
        Files deleted.
    """
    root = Path(folder)
    if not root.is_dir():
        return 0
    n = 0
    for p in [*root.glob("tetra3rs-*.bin.*.tmp"), *root.glob("tycho2-gaia10.*.gdr3")]:
        parts = p.name.split(".")
        pid_text = parts[-2]
        if not pid_text.isdigit() or (_pid_alive(int(pid_text)) and int(pid_text) != os.getpid()):
            continue
        with contextlib.suppress(OSError):
            p.unlink()
            n += 1
    if n:
        log.info("removed %d temporary file(s) of a solver-database build that was stopped", n)
    return n


def _record_path(db: Path) -> Path:
    return db.with_name(db.name + ".size")


def record(db: Path) -> None:
    """Write ``<database>.size``: the database's size and sha256, after a build."""
    h = hashlib.sha256()
    with open(db, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    _record_path(db).write_text(json.dumps({"size": db.stat().st_size,
                                            "sha256": h.hexdigest()}) + "\n")


def check(db: Path) -> tuple[bool, str]:
    """Whether the database is whole: ``(ok, what)``.

    A database smaller or larger than recorded at its build is damaged (truncated by a full
    disk, a copy cut short); without a record only its existence is known.
    """
    try:
        size = db.stat().st_size
    except OSError as exc:
        return False, f"{db}: {exc.strerror or exc}"
    try:
        want: dict[str, Any] = json.loads(_record_path(db).read_text())
    except (OSError, ValueError):
        if size == 0:
            return False, f"{db} is empty: rebuild it with 'starnode solver-db --force'"
        return True, f"{db} ({size / 2**20:.0f} MB; built before its size was recorded)"
    if int(want.get("size", -1)) != size:
        return False, (f"{db} is damaged: {size} bytes, {want.get('size')} when it was built "
                       "(truncated?); rebuild it with 'starnode solver-db --force'")
    return True, f"{db} ({size / 2**20:.0f} MB, as built)"
