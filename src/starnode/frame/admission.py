"""Admission: is this path a frame we may read at all?

A watched share is hostile ground: anything can carry a ``.fit`` name. A FIFO blocks the
reader in ``open`` forever; a symlink to ``/dev/zero`` is an endless file; a sparse file or a
header announcing 20000 x 20000 pixels makes the reader allocate gigabytes; a 500 KB
tile-compressed file can decompress to several GB. So before a single data byte is read, a
frame must be a **regular file** (a symlink to one is fine), opened without blocking, whose
size, whose header's ``NAXISn`` and whose *decompressed* size (``ZNAXISn``/``ZBITPIX`` of a
tile-compressed HDU) are all within ``limits.max_frame_bytes``. Only the header blocks are read
to decide. A refusal is a :class:`~starnode.errors.FrameRejected` (``not_a_file`` or
``too_large``) whose reason ends up in ``starnode status``.

The node runs :func:`check` before it hands a frame to a worker, and
:func:`starnode.frame.load.load_frame` runs it again (the file may have been swapped since, and
``load_frame`` is public).
"""

from __future__ import annotations

import contextlib
import os
import stat
from typing import Any

from ..config import Config
from ..errors import FrameRejected, RejectCategory
from .header import BLOCK, CARD, MAX_HEADER_BYTES, parse_header

__all__ = ["DEFAULT_MAX_FRAME_BYTES", "admit", "check", "encodable", "irregular", "max_frame_bytes",
           "printable", "quoted", "text_form"]

#: 256 MiB: the largest Seestar frame (an S30 Pro RGB stack, 3 x 3840 x 2160 float32) is about
#: 100 MB, a raw S50/S30 sub 4-17 MB.
DEFAULT_MAX_FRAME_BYTES = 256 * 2**20

#: Extension headers followed at most.
_MAX_HDUS = 64

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def irregular(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` is not a regular file, or None when it is one (or a symlink to one).

    Parameters
    ----------
    path : path-like
        The candidate frame.

    Returns
    -------
    str or None
        e.g. ``"not a regular file: a FIFO (named pipe)"``.

    Raises
    ------
    OSError
        ``path`` does not exist (a dangling symlink included) or cannot be stat'ed.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return "not a regular file: a symlink to nothing"
        raise
    if stat.S_ISREG(st.st_mode):
        return None
    via = " (through a symlink)" if os.path.islink(path) else ""
    return f"not a regular file: {_kind(st.st_mode)}{via}"


def max_frame_bytes(config: Config | None) -> int:
    """``limits.max_frame_bytes`` of a configuration (the default without one).

    Parameters
    ----------
    config : Config or None
        The configuration; None gives the default.

    Returns
    -------
    int
    """
    if config is None:
        return DEFAULT_MAX_FRAME_BYTES
    return config.limits.max_frame_bytes


def _int(header: Any, key: str) -> int:
    value = header.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key}={value!r} is not an integer")
    return value


def _hdu_sizes(header: Any) -> tuple[int, int, str]:
    """(bytes on disk, bytes once read/decompressed, which cards said so) of one HDU."""
    naxis = _int(header, "NAXIS")
    stored = abs(_int(header, "BITPIX")) // 8 if naxis else 0
    for k in range(1, naxis + 1):
        stored *= _int(header, f"NAXIS{k}")
    if naxis:
        stored = (stored + _int(header, "PCOUNT")) * max(_int(header, "GCOUNT") or 1, 1)
    if header.get("ZIMAGE") is True:
        full = abs(_int(header, "ZBITPIX")) // 8
        for k in range(1, _int(header, "ZNAXIS") + 1):
            full *= _int(header, f"ZNAXIS{k}")
        return stored, full, "ZNAXISn (it would decompress to that)"
    return stored, stored, "NAXISn"


def _read_header(fd: int, offset: int) -> bytes | None:
    """The header blocks at ``offset`` up to the END card; None when there is none."""
    chunks: list[bytes] = []
    while sum(map(len, chunks)) < MAX_HEADER_BYTES:
        block = os.pread(fd, BLOCK, offset + BLOCK * len(chunks))
        if len(block) < BLOCK:
            return None
        chunks.append(block)
        if any(block[j:j + 8] == b"END     " and not block[j + 8:j + CARD].strip(b" ")
               for j in range(0, BLOCK, CARD)):
            return b"".join(chunks)
    return None


def _announced(fd: int, size: int, limit: int, name: str) -> tuple[bytes, Any] | None:
    """Refuse a file whose headers announce more than ``limit`` bytes (one HDU or in all).

    Returns the first header's blocks and its parsed cards (None: it has none that parse).
    """
    offset, total = 0, 0
    first = None
    for _ in range(_MAX_HDUS):
        raw = _read_header(fd, offset)
        if raw is None:
            return first  # not FITS, or truncated: the reader says why, within the size limit
        try:
            header = parse_header(raw)
            stored, full, cards = _hdu_sizes(header)
        except (ValueError, KeyError):
            return first
        if first is None:
            first = (raw, header)
        total += full
        if total > limit:
            raise FrameRejected(
                f"{name}: its header's {cards} announce {total:,} bytes of image data, more "
                f"than limits.max_frame_bytes = {limit:,}; not read", RejectCategory.TOO_LARGE)
        offset += len(raw) + -(-stored // BLOCK) * BLOCK
        if offset >= size:
            return first
    return first


def check(path: str | os.PathLike[str], limit: int = DEFAULT_MAX_FRAME_BYTES) -> None:
    """Refuse ``path`` unless it is a regular file whose size and announced data fit ``limit``.

    See :func:`admit`, which also returns the header it read.

    Raises
    ------
    FrameRejected
        As :func:`admit`.
    """
    admit(path, limit)


def admit(path: str | os.PathLike[str], limit: int = DEFAULT_MAX_FRAME_BYTES
          ) -> tuple[bytes, Any] | None:
    """Refuse ``path`` unless it is a regular file whose size and announced data fit ``limit``.

    Never blocks (the file is opened with ``O_NONBLOCK`` after a ``stat`` said it is regular,
    and checked again with ``fstat``) and reads only header blocks.

    Parameters
    ----------
    path : path-like
        The candidate frame.
    limit : int
        Largest file size, and largest total image data its headers may announce (the
        decompressed size for tile-compressed HDUs), in bytes.

    Returns
    -------
    (bytes, astropy.io.fits.Header) or None
        The primary header's blocks as read and their cards (:func:`~.header.parse_header`),
        so that a reader of the file need not parse them again; None when they do not parse.

    Raises
    ------
    FrameRejected
        ``not_a_file`` (a FIFO, device, socket, folder, or a symlink to one),
        ``too_large``, or ``unreadable`` (missing, cannot be opened), with the reason.
    """
    name = os.path.basename(os.fspath(path))
    try:
        why = irregular(path)
        fd = -1 if why else os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise FrameRejected(f"cannot read {path}: {exc.strerror or exc}",
                            RejectCategory.UNREADABLE) from exc
    first = None
    if why is None:
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):  # swapped between stat and open
                why = f"not a regular file: {_kind(st.st_mode)}"
            elif st.st_size > limit:
                raise FrameRejected(
                    f"{name}: {st.st_size:,} bytes, more than limits.max_frame_bytes = "
                    f"{limit:,}; not read", RejectCategory.TOO_LARGE)
            else:
                first = _announced(fd, st.st_size, limit, name)
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)
    if why is not None:
        raise FrameRejected(f"{name}: {why}; only regular files are frames",
                            RejectCategory.NOT_A_FILE)
    return first


def _escaped(ch: str) -> str:
    if ch.isprintable():
        return ch
    if 0xDC80 <= ord(ch) <= 0xDCFF:  # a byte that is not UTF-8 (surrogate-escaped)
        return f"\\x{ord(ch) - 0xDC00:02x}"
    return repr(ch)[1:-1]


def printable(text: str) -> str:
    """``text`` with every control or undecodable character escaped (``\\n``, ``\\x1b``,
    ``\\xe9`` for a byte that is not UTF-8): nothing in it can start a new log line, move the
    cursor or fail to encode."""
    return text if text.isprintable() else "".join(map(_escaped, text))


def quoted(path: str | os.PathLike[str]) -> str:
    """A file name or path as it may appear in a log line or ``starnode status``.

    Parameters
    ----------
    path : str or path-like
        Any name, even one holding a newline or bytes that are not UTF-8.

    Returns
    -------
    str
        ``path`` unchanged when every character is printable, else quoted with its control
        characters escaped, repr-style (``'Light_a\\nINFO x.fit'``).
    """
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    return text if text.isprintable() else f"'{printable(text)}'"


def encodable(path: str) -> bool:
    """Whether ``path`` can be stored as text (it holds no byte that is not UTF-8)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def text_form(path: str) -> str:
    """A path that is not UTF-8 as storable text: the bad bytes as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")
