"""Durable file writes: a reader sees the old file or the new one, never half of either.

A report file or a cache entry written in place and interrupted (SIGKILL, power loss, disk
full) would be truncated; here every write goes to a temporary file in the same folder, is
fsynced, renamed over the target (atomic on POSIX) and the folder is fsynced so the rename
itself survives a crash. Temporary names start with a dot and end in ``.tmp`` so that
:func:`remove_stale_temporaries` can clear the ones a killed process left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "append_jsonl",
    "atomic_write",
    "fsync_dir",
    "private_dir",
    "remove_stale_temporaries",
]

#: Suffix of every temporary file this module creates.
TMP_SUFFIX = ".tmp"


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` durable (best effort where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], data: bytes, *, mode: int | None = None) -> str:
    """Replace ``path`` with ``data`` atomically and durably.

    Parameters
    ----------
    path : path-like
        The file to write; its folder is created if missing.
    data : bytes
        The whole new content.
    mode : int, optional
        Permission bits for the new file (e.g. ``0o600``); default: the umask's.

    Returns
    -------
    str
        The sha256 hex digest of ``data``.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TMP_SUFFIX, dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)
    return hashlib.sha256(data).hexdigest()


def remove_stale_temporaries(folder: str | os.PathLike[str], *, recursive: bool = True) -> int:
    """Delete ``.*.tmp`` files that a killed writer left in ``folder``; returns how many.

    Call it only where no other live process writes (the node holds the data-directory lock).
    """
    root = Path(folder)
    if not root.is_dir():
        return 0
    pattern = "**/.*" + TMP_SUFFIX if recursive else ".*" + TMP_SUFFIX
    n = 0
    for p in root.glob(pattern):
        with contextlib.suppress(OSError):
            if p.is_file() and not p.is_symlink():
                p.unlink()
                n += 1
    return n


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and parents) if needed and make it owner-only (0700)."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        os.chmod(p, 0o700)
    return p


def append_jsonl(path: str | os.PathLike[str], record: Mapping[str, Any]) -> None:
    """Append one JSON line to ``path`` and fsync it (an audit trail survives a crash)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, default=str, sort_keys=True) + "\n"
    with open(p, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())
