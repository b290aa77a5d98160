"""Cheap FITS header reading and the file size a header implies.

The watcher reads the header of every new frame, often while the camera may still be writing it,
so this module parses the raw 2880-byte header blocks itself instead of opening the file with
astropy: it reads only the header blocks (plus, for :func:`expected_size`, the headers of any
extensions already on disk), never the data, and never raises.

:func:`read_header` returns the same dict as ``dict(astropy.io.fits.getheader(path))`` - same keys,
same Python value types (``bool``, ``int``, ``float``, ``complex``, ``str``, ``None`` for an
undefined value) - except that COMMENT, HISTORY and blank-keyword cards are dropped and string
values are whitespace-stripped (the seed's event dict). Long strings continued with ``CONTINUE``
cards are joined and ``HIERARCH`` keywords are keyed without the ``HIERARCH`` prefix, as astropy
does. A keyword that appears twice keeps its first value (``dict(header)`` does the same).

:func:`expected_size` gives the total size in bytes a complete file must have: the primary
header's blocks plus its padded data (``|BITPIX|/8 x GCOUNT x (PCOUNT + NAXIS1 x ... x NAXISn)``,
rounded up to 2880 bytes), plus every extension whose header is already present on disk. An
extension the writer has not started yet cannot be known: for a file still being written the
result is a lower bound, which is why the watcher also requires the size and mtime to be stable.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

BLOCK = 2880
CARD = 80
#: Safety cap: a header longer than this (in bytes) is treated as unreadable.
MAX_HEADER_BYTES = 64 * BLOCK
#: Number of extension headers :func:`expected_size` follows at most.
MAX_EXTENSIONS = 64

_DROP = frozenset({"COMMENT", "HISTORY", ""})
_INT_RE = re.compile(r"^[+-]? *\d+$")
_FLOAT_RE = re.compile(r"^[+-]? *(\.\d+|\d+(\.\d*)?)([DEde] *[+-]? *\d+)?$")
_COMPLEX_RE = re.compile(r"^\( *([^,()]+?) *, *([^,()]+?) *\)$")

__all__ = ["BLOCK", "HeaderScan", "expected_size", "read_header", "scan"]


@dataclass
class HeaderScan:
    """What one cheap read of a file's header blocks tells.

    ``complete`` is False while the primary header has no END card yet (or the file is empty or
    still all zero bytes at the start). ``header_bytes`` is the size of the primary header in
    whole blocks, ``data_bytes`` the padded size of its data; ``total`` the size of the primary
    HDU plus the extensions already present (None when unknown). ``last_data`` holds the final
    bytes of the last HDU's data (unpadded) when they were read, for the "preallocated but not
    written yet" check.
    """

    header: dict[str, Any] = field(default_factory=dict)
    complete: bool = False
    is_fits: bool = False
    blank: bool = False
    header_bytes: int = 0
    data_bytes: int | None = None
    total: int | None = None
    data_end: int | None = None
    last_data: bytes | None = None
    problem: str = ""


def _pad(n: int) -> int:
    return -(-n // BLOCK) * BLOCK


def _parse_string(text: str) -> tuple[str, str]:
    """Parse a quoted FITS string at the start of ``text``; return (value, rest)."""
    out: list[str] = []
    i = 1
    n = len(text)
    while i < n:
        j = text.find("'", i)
        if j < 0:  # unterminated: take the rest, as lenient readers do
            out.append(text[i:])
            return "".join(out), ""
        out.append(text[i:j])
        if j + 1 < n and text[j + 1] == "'":
            out.append("'")
            i = j + 2
            continue
        return "".join(out), text[j + 1 :]
    return "".join(out), ""


def _parse_number(tok: str) -> Any:
    t = tok.replace(" ", "")
    if _INT_RE.match(tok):
        return int(t)
    if _FLOAT_RE.match(tok):
        return float(t.replace("D", "E").replace("d", "e"))
    return None


def _parse_value(field_text: str) -> tuple[Any, bool]:
    """Value of a card's value field. Returns (value, is_long_string_start)."""
    s = field_text.lstrip()
    if s.startswith("'"):
        value, _ = _parse_string(s)
        value = value.rstrip()
        return value, value.endswith("&")
    tok = s.split("/", 1)[0].strip()
    if tok == "":
        return None, False
    if tok == "T":
        return True, False
    if tok == "F":
        return False, False
    num = _parse_number(tok)
    if num is not None:
        return num, False
    m = _COMPLEX_RE.match(tok)
    if m:
        re_part, im_part = _parse_number(m.group(1)), _parse_number(m.group(2))
        if re_part is not None and im_part is not None:
            return complex(float(re_part), float(im_part)), False
    return tok, False


def _parse_cards(raw: bytes) -> tuple[dict[str, Any], int | None]:
    """Parse header blocks; return (cards dict, byte offset just past the END block or None)."""
    header: dict[str, Any] = {}
    text = raw.decode("ascii", errors="replace")
    ncards = len(text) // CARD
    long_key: str | None = None
    long_parts: list[str] = []

    def finish_long() -> None:
        nonlocal long_key, long_parts
        if long_key is not None:
            joined = "".join(long_parts)
            if long_key not in header:
                header[long_key] = joined.strip()
        long_key, long_parts = None, []

    for i in range(ncards):
        card = text[i * CARD : (i + 1) * CARD]
        key8 = card[:8].rstrip().upper()
        if key8 == "END" and card[8:].strip() == "":
            finish_long()
            return header, _pad((i + 1) * CARD)
        if key8 == "CONTINUE" and long_key is not None:
            s = card[8:].lstrip()
            if s.startswith("'"):
                value, _ = _parse_string(s)
                value = value.rstrip()
                if value.endswith("&"):
                    long_parts.append(value[:-1])
                    continue
                long_parts.append(value)
                finish_long()
                continue
            finish_long()
        else:
            finish_long()
        if card[:9].upper() == "HIERARCH " and "=" in card:
            name, _, rest = card[9:].partition("=")
            key = " ".join(name.split()).upper()
            value, is_long = _parse_value(rest)
        elif card[8:10] == "= ":
            key = key8
            value, is_long = _parse_value(card[10:])
        else:
            # COMMENT, HISTORY, blank keyword, or a non-standard card: astropy keeps the text
            key = key8
            value, is_long = card[8:].strip(), False
        if key in _DROP:
            continue
        if is_long and isinstance(value, str):
            long_key, long_parts = key, [value[:-1]]
            continue
        if key in header:
            continue
        header[key] = value.strip() if isinstance(value, str) else value
    finish_long()
    return header, None


def _read_header_blocks(f: Any, offset: int) -> tuple[bytes, bool]:
    """Read whole blocks from ``offset`` until one holds an END card; (bytes, found_end)."""
    f.seek(offset)
    chunks: list[bytes] = []
    total = 0
    while total < MAX_HEADER_BYTES:
        block = f.read(BLOCK)
        if len(block) < BLOCK:
            if block:
                chunks.append(block)
            return b"".join(chunks), False
        chunks.append(block)
        total += BLOCK
        for j in range(0, BLOCK, CARD):
            card = block[j : j + CARD]
            if card[:8] == b"END     " and card[8:].strip(b" ") == b"":
                return b"".join(chunks), True
    return b"".join(chunks), False


def _data_bytes(h: dict[str, Any], primary: bool) -> int | None:
    """Unpadded data size an HDU header implies, or None if the keywords are missing/invalid."""
    bitpix, naxis = h.get("BITPIX"), h.get("NAXIS")
    if not isinstance(bitpix, int) or isinstance(bitpix, bool) or bitpix not in (
        8, 16, 32, 64, -32, -64
    ):
        return None
    if not isinstance(naxis, int) or isinstance(naxis, bool) or not 0 <= naxis <= 999:
        return None
    if naxis == 0:
        return 0
    dims: list[int] = []
    for k in range(1, naxis + 1):
        v = h.get(f"NAXIS{k}")
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            return None
        dims.append(v)
    pcount = h.get("PCOUNT", 0)
    gcount = h.get("GCOUNT", 1)
    if not isinstance(pcount, int) or not isinstance(gcount, int) or pcount < 0 or gcount < 0:
        return None
    if primary and dims[0] == 0 and h.get("GROUPS") is True:  # random groups
        dims = dims[1:]
    n = 1
    for d in dims:
        n *= d
    return abs(bitpix) // 8 * gcount * (pcount + n)


def scan(path: str | os.PathLike[str], *, tail: int = 32) -> HeaderScan:
    """Read the primary header (and extension headers already on disk) of ``path`` cheaply.

    Never raises: an unreadable file gives a :class:`HeaderScan` with ``problem`` set.
    ``tail`` is how many final bytes of the last HDU's data to return in ``last_data``.
    """
    res = HeaderScan()
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(BLOCK)
            if not head:
                res.problem = "empty file"
                return res
            if head.count(0) == len(head):
                res.blank = True
                res.problem = "first block is still all zero bytes"
                return res
            if not head.startswith(b"SIMPLE  ="):
                res.problem = "not a FITS file (no SIMPLE card)"
                return res
            res.is_fits = True
            raw, found = _read_header_blocks(f, 0)
            if not found:
                res.problem = "primary header has no END card yet"
                res.header, _ = _parse_cards(raw[: len(raw) // CARD * CARD])
                return res
            res.header, hbytes = _parse_cards(raw)
            res.complete = True
            res.header_bytes = hbytes or len(raw)
            data = _data_bytes(res.header, primary=True)
            if data is None:
                res.problem = "BITPIX/NAXISn missing or invalid: size unknown"
                return res
            res.data_bytes = _pad(data)
            offset = res.header_bytes + res.data_bytes
            data_start, res.data_end = res.header_bytes, res.header_bytes + data
            # extensions already present on disk
            for _ in range(MAX_EXTENSIONS):
                if offset + BLOCK > size:
                    break
                f.seek(offset)
                if not f.read(9).startswith(b"XTENSION="):
                    break
                raw, found = _read_header_blocks(f, offset)
                if not found:
                    res.problem = "an extension header has no END card yet"
                    offset += _pad(len(raw)) + BLOCK  # at least one more block
                    res.data_end = None
                    break
                xh, xbytes = _parse_cards(raw)
                xdata = _data_bytes(xh, primary=False)
                if xdata is None:
                    res.problem = "extension header without a valid size"
                    res.data_end = None
                    break
                data_start = offset + (xbytes or len(raw))
                res.data_end = data_start + xdata
                offset = data_start + _pad(xdata)
            res.total = offset
            if tail > 0 and res.data_end is not None and res.data_end <= size:
                start = max(res.data_end - tail, data_start)
                if res.data_end > start:
                    f.seek(start)
                    res.last_data = f.read(res.data_end - start)
    except (OSError, ValueError) as exc:
        res.problem = f"unreadable: {exc}"
    return res


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The primary header of ``path`` as a plain dict; ``{}`` on any failure, never raises.

    Same keys and value types as ``dict(astropy.io.fits.getheader(path))`` without COMMENT,
    HISTORY and blank-keyword cards, string values stripped of surrounding whitespace.
    """
    try:
        res = scan(path, tail=0)
    except Exception:  # defensive: scan() already catches I/O errors
        log.debug("read_header(%s) failed", path, exc_info=True)
        return {}
    return res.header if res.complete else {}


def expected_size(header_or_path: dict[str, Any] | str | os.PathLike[str]) -> int | None:
    """Total file size in bytes the header implies, or None when it cannot be known.

    Given a path: exact size of the primary HDU (header blocks + padded data) plus every
    extension whose header is already in the file (a lower bound while a writer may still add
    extensions). Given a header dict (from :func:`read_header`): the padded primary data plus
    the fewest header blocks that can hold its cards - a lower bound, because the dict has lost
    the COMMENT/HISTORY/CONTINUE cards that also take room in the header.
    """
    try:
        if isinstance(header_or_path, dict):
            data = _data_bytes(header_or_path, primary=True)
            if data is None:
                return None
            return _pad((len(header_or_path) + 1) * CARD) + _pad(data)
        res = scan(header_or_path, tail=0)
        return res.total
    except Exception:
        log.debug("expected_size(%r) failed", header_or_path, exc_info=True)
        return None
