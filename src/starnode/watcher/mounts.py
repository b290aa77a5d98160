"""Which filesystem a folder lives on, and so whether OS file events can be trusted there.

inotify (and FSEvents, kqueue) only sees writes made by this machine's kernel. On a network
share (CIFS/SMB, NFS, 9p, most FUSE filesystems) the camera writes from the other side, so the
watcher must poll instead. Linux lists every mount with its type in ``/proc/self/mountinfo``;
this module parses it (no library offers that parse with the octal escapes handled) and picks
the mode.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["MOUNTINFO", "REMOTE_FSTYPES", "Mount", "choose_mode", "find_mount", "is_remote",
           "read_mounts", "under"]

#: Where Linux lists the mounts this process sees (tests point it at a temporary file).
MOUNTINFO = "/proc/self/mountinfo"

#: Filesystem types on which the writer may be another machine (inotify sees nothing): poll.
REMOTE_FSTYPES = frozenset({
    "cifs", "smb3", "smbfs", "smb", "nfs", "nfs4", "9p", "v9fs", "sshfs", "davfs", "fuse",
    "ceph", "glusterfs", "lustre", "afs", "gpfs", "ncpfs", "coda", "virtiofs", "vboxsf",
    "vmhgfs", "drvfs", "ocfs2", "gfs2", "beegfs", "orangefs", "pvfs2", "fuse.sshfs",
})

_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class Mount:
    """One line of ``/proc/self/mountinfo``."""

    mount_point: str
    fstype: str
    source: str


def _unescape(field: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def read_mounts(mountinfo: str | os.PathLike[str] | None = None) -> list[Mount]:
    """Parse a mountinfo file.

    Parameters
    ----------
    mountinfo : path-like, optional
        The file to read; default :data:`MOUNTINFO` (looked up at call time).

    Returns
    -------
    list of Mount
        One per parsable line; ``[]`` when the file cannot be read.
    """
    try:
        with open(mountinfo or MOUNTINFO, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    mounts = []
    for line in lines:
        parts = line.split(" ")
        try:
            sep = parts.index("-", 6)
            mounts.append(Mount(_unescape(parts[4]), _unescape(parts[sep + 1]),
                                _unescape(parts[sep + 2]) if len(parts) > sep + 2 else ""))
        except (ValueError, IndexError):
            continue
    return mounts


def under(path: str, folder: str) -> bool:
    """True when ``path`` is ``folder`` or lies below it (plain string test, no I/O)."""
    if folder == "/":
        return path.startswith("/")
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def find_mount(path: str, mounts: Iterable[Mount]) -> Mount | None:
    """The mount holding ``path``.

    Parameters
    ----------
    path : str
        An absolute, resolved path.
    mounts : iterable of Mount
        As :func:`read_mounts` gives them.

    Returns
    -------
    Mount or None
        The longest mount point that is a prefix of ``path`` (the last listed wins a tie).
    """
    best: Mount | None = None
    for m in mounts:
        if under(path, m.mount_point) and (
            best is None or len(m.mount_point) >= len(best.mount_point)
        ):
            best = m
    return best


def is_remote(fstype: str) -> bool:
    """True for network/remote filesystems (and every FUSE filesystem except ``fuseblk``)."""
    t = fstype.lower()
    return t in REMOTE_FSTYPES or t.startswith("fuse.") or t.startswith("nfs")


def choose_mode(path: str | os.PathLike[str], *, recursive: bool = False,
                mountinfo: str | os.PathLike[str] | None = None) -> tuple[str, str]:
    """How to watch ``path`` in ``mode="auto"``.

    Parameters
    ----------
    path : path-like
        The watched folder.
    recursive : bool
        Also consider mounts below ``path``.
    mountinfo : path-like, optional
        The mount table (default :data:`MOUNTINFO`).

    Returns
    -------
    tuple of (str, str)
        ``("poll" | "events", reason)``: poll when the folder (or, with ``recursive``, a mount
        below it) is on a network/remote or FUSE filesystem; OS events otherwise (ext4, xfs,
        btrfs, tmpfs, overlay, fuseblk...).
    """
    real = os.path.realpath(os.fspath(path))
    source = mountinfo or MOUNTINFO
    mounts = read_mounts(source)
    if not mounts:
        return "events", f"filesystem type of {real} unknown (no {source})"
    m = find_mount(real, mounts)
    if m is None:
        return "events", f"no mount found for {real} in {source}"
    if is_remote(m.fstype):
        return "poll", (f"{real} is on a {m.fstype} mount at {m.mount_point} ({m.source}): the "
                        "writer may be on the other side, where inotify sees nothing")
    if recursive:
        for sub in mounts:
            if sub.mount_point != m.mount_point and under(sub.mount_point, real) and is_remote(
                sub.fstype
            ):
                return "poll", (f"{sub.mount_point} below {real} is a {sub.fstype} mount: "
                                "inotify would miss writes made on the other side")
    return "events", f"{real} is on a local {m.fstype} filesystem at {m.mount_point}"
