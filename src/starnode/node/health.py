"""The node's own checks for ``starnode doctor``: data directory, disk, lock, watch folder,
watch mode, frames found, workers. Collected by :func:`starnode.doctor.run_checks`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..config import Config
from ..diagnostics import Check, Level
from .intake import matches_include, walk
from .lock import DataDirLock

__all__ = ["health"]

#: Files looked at when counting frames under watch.path (a big archive stays quick).
_WALK_LIMIT = 50_000


def _data_dir(cfg: Config) -> list[Check]:
    dd = cfg.data_dir
    # Read-only: the doctor looks (os.access), it never creates the folder or a probe file.
    existing = next(p for p in (dd, *dd.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        what = "write in" if existing == dd else f"create {dd} in"
        return [Check(Level.FAIL, "data_dir", f"cannot {what} {existing}; set data_dir (or "
                      "--data-dir) to a folder this user owns")]
    free = shutil.disk_usage(existing).free
    level = Level.FAIL if free < 100e6 else Level.WARN if free < 1e9 else Level.OK
    state = "is writable" if existing == dd else "does not exist yet; the node will create it"
    out = [Check(Level.OK, "data_dir", f"{dd} {state}"),
           Check(level, "disk space", f"{free / 1e9:.1f} GB free in {existing}"
                 + ("" if level == Level.OK else ": free some space (the ledger and logs grow "
                    "slowly, but a full disk stops the node)"))]
    holder = DataDirLock(dd).holder()
    if holder is not None:
        out.append(Check(Level.OK, "node", f"a 'starnode run' (pid {holder}) is running on this "
                         "data_dir"))
    return out


def _watch_folder(cfg: Config) -> Check | None:
    """None when watch.path is a readable folder, else the problem."""
    wp = cfg.watch.path
    if not wp:
        return Check(Level.WARN, "watch.path", "not set: 'starnode run' needs the folder the "
                     "telescope writes into (e.g. /mnt/seestar/MyWorks)")
    if not os.path.isdir(wp):
        return Check(Level.FAIL, "watch.path", f"{wp} is not a folder: mount the telescope "
                     "share (see docs/node.md, 'Mounting the Seestar share') or fix watch.path")
    if not os.access(wp, os.R_OK | os.X_OK):
        return Check(Level.FAIL, "watch.path", f"{wp} is not readable by this user; fix the "
                     "mount options (uid=, file_mode=) or the permissions")
    return None


def _watch_mode(cfg: Config) -> list[Check]:
    """The filesystem under watch.path and the watcher's mode on it."""
    from ..watcher import choose_mode, find_mount, is_remote, read_mounts

    w = cfg.watch
    assert w.path is not None  # health() asks only when _watch_folder found none
    m = find_mount(os.path.realpath(w.path), read_mounts())
    fstype = m.fstype if m else None
    out = [Check(Level.OK, "watch.path", f"{w.path} on {fstype or '?'}"
                 + (f" (mounted at {m.mount_point})" if m else ""))]
    mode, why = (w.mode, f"watch.mode is {w.mode}") if w.mode != "auto" else \
        choose_mode(w.path, recursive=w.recursive)
    level = Level.OK
    if w.mode == "events" and fstype and is_remote(fstype):
        level = Level.WARN
        why += "; inotify does not see files written by the telescope on a network mount: " \
               "use watch.mode auto or poll"
    out.append(Check(level, "watch mode", f"{mode} ({why}), "
                     f"{'recursive' if w.recursive else 'top folder only'}, "
                     f"debounce {w.debounce_delay:g} s"))
    return out


def _frames(cfg: Config) -> Check:
    w = cfg.watch
    assert w.path is not None  # as in _watch_mode
    n = 0
    for i, path in enumerate(walk(Path(w.path), w.recursive)):
        if i > _WALK_LIMIT:
            break
        n += matches_include(path, w.include, w.extensions)
    return Check(Level.OK if n else Level.WARN, "frames", f"{n} frame(s) match watch.include "
                 f"{w.include} under {w.path}" + ("" if n else ": check watch.include and "
                                                  "watch.recursive"))


def _workers(cfg: Config) -> Check:
    ncpu = os.cpu_count() or 1
    if cfg.workers > ncpu:
        return Check(Level.WARN, "workers", f"workers: {cfg.workers} but only {ncpu} CPU "
                     f"core(s); use {max(1, ncpu - 1)} or fewer")
    return Check(Level.OK, "workers", f"{cfg.workers} of {ncpu} core(s)")


def health(cfg: Config) -> list[Check]:
    """The node's checks.

    Parameters
    ----------
    cfg : Config
        The configuration to check.

    Returns
    -------
    list of starnode.diagnostics.Check
        Data directory, disk space, a running node, the watch folder, its mode, the frames
        found there, the worker count.
    """
    out = _data_dir(cfg)
    problem = _watch_folder(cfg)
    if problem is not None:
        out.append(problem)
    else:
        out += [*_watch_mode(cfg), _frames(cfg)]
    out.append(_workers(cfg))
    solver = _solver_db(cfg)
    if solver is not None:
        out.append(solver)
    return out


def _solver_db(cfg: Config) -> Check | None:
    """The tetra3rs database, when built: whole (its recorded size), or damaged."""
    from ..astrometry import tetra3rs_database_path
    from ..astrometry.solverdb import check

    db = tetra3rs_database_path(cfg)
    if not db.exists():
        return None
    ok, what = check(db)
    return Check(Level.OK if ok else Level.FAIL, "solver database", what)
