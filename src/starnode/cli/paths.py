"""Argument and path safety of the commands that read frames and write a file (``stars``,
``solve``): a command never overwrites its input and never ends in a traceback.

Each problem is one line naming the path as it may be shown
(:func:`starnode.frame.admission.quoted`,
``\\x`` escapes for bytes that are not UTF-8): a name that is not UTF-8, a symbolic link loop, a
missing file, a folder where a file is expected, an ``--out`` that names an input frame, a
folder, or lies in a folder that does not exist, a device that is full.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..frame.admission import quoted

__all__ = ["input_problem", "output_problem", "shown", "write_output"]


def shown(path: str | os.PathLike[str]) -> str:
    """``path`` printable: bytes that are not UTF-8 as ``\\xNN``, control characters escaped."""
    raw = os.fsencode(path)
    return quoted(raw.decode("utf-8", errors="backslashreplace"))


def _utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # surrogate-escaped bytes of a non-UTF-8 name
        return False
    return True


def _stat_problem(path: str, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return f"{shown(path)}: a symbolic link loop (the link points back to itself)"
    if exc.errno == errno.ENOENT:
        return f"{shown(path)}: no such file"
    return f"{shown(path)}: {exc.strerror or exc}"


def input_problem(path: str) -> str | None:
    """Why ``path`` cannot be read as a frame, in one line, or None.

    Parameters
    ----------
    path : str
        A frame named on the command line.

    Returns
    -------
    str or None
    """
    if not _utf8(path):
        return f"{shown(path)}: the file name is not valid UTF-8; rename the file to use it"
    try:
        st = os.stat(path)
    except OSError as exc:
        return _stat_problem(path, exc)
    if stat.S_ISDIR(st.st_mode):
        return f"{shown(path)}: is a folder; give FITS files"
    if not stat.S_ISREG(st.st_mode):
        return f"{shown(path)}: not a regular file"
    return None


def _same_file(a: str, b: str) -> bool:
    with contextlib.suppress(OSError):
        return os.path.samefile(a, b)
    return os.path.abspath(a) == os.path.abspath(b)


def output_problem(out: str, inputs: Sequence[str]) -> str | None:
    """Why ``--out`` cannot be written, in one line, or None.

    Parameters
    ----------
    out : str
        The output path.
    inputs : sequence of str
        The files the command reads: ``out`` must be none of them.

    Returns
    -------
    str or None
    """
    if not _utf8(out):
        return f"--out {shown(out)}: the name is not valid UTF-8"
    for f in inputs:
        if _same_file(out, f):
            return (f"--out {shown(out)} is the input frame {shown(f)}: refusing to overwrite "
                    "it; give another file name")
    try:
        st = os.stat(out)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            return f"--out {_stat_problem(out, exc)}"
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        return f"--out {shown(out)}: is a folder; give a file name"
    parent = Path(os.path.abspath(out)).parent
    if not parent.is_dir():
        return f"--out {shown(out)}: the folder {shown(parent)} does not exist"
    return None


def write_output(out: str, text: str) -> str | None:
    """Write ``text`` to ``out`` atomically (a temporary file beside it, then a rename); the
    problem in one line (disk full...) or None. A failed write leaves ``out`` as it was."""
    path = Path(out)
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        return f"--out {shown(out)}: cannot write it: {exc.strerror or exc}"
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return None
