"""Cheap FITS header reading and the file size a header implies.

The watcher reads the header of every new frame, often while the camera may still be writing it,
so this module reads only the raw 2880-byte header blocks (plus, for :func:`expected_size`, the
headers of any extensions already on disk), never the data, and never raises. The cards are
parsed by astropy (``Header.fromstring`` on the block-aligned prefix), the same parser the frame
reader uses, so the watcher's header dict and the measured frame's header cannot disagree.

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
import math
import os
import re
import unicodedata
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from astropy.io import fits
from astropy.io.fits.verify import VerifyError
from astropy.utils.exceptions import AstropyWarning

log = logging.getLogger(__name__)

BLOCK = 2880
CARD = 80
#: Safety cap: a header longer than this (in bytes) is treated as unreadable.
MAX_HEADER_BYTES = 64 * BLOCK
#: Number of extension headers :func:`expected_size` follows at most.
MAX_EXTENSIONS = 64

_DROP = frozenset({"COMMENT", "HISTORY", ""})

__all__ = ["BLOCK", "HeaderScan", "card_float", "card_text", "clean_cards", "expected_size",
           "header_dict", "parse_header", "read_header", "scan"]


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


def card_float(header: Mapping[str, Any], *keys: str) -> float | None:
    """The first of ``keys`` whose card holds a finite number (bools are not numbers).

    Parameters
    ----------
    header : Mapping
        FITS cards (an astropy Header or a plain dict).
    *keys : str
        Card names, in order of preference.

    Returns
    -------
    float or None
    """
    for k in keys:
        v = _get(header, k)
        if v is None or isinstance(v, bool):
            continue
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            return f
    return None


def card_text(header: Mapping[str, Any], key: str) -> str | None:
    """A card's value as stripped text; None when missing or blank.

    Parameters
    ----------
    header : Mapping
    key : str

    Returns
    -------
    str or None
    """
    v = _get(header, key)
    s = str(v).strip() if v is not None else ""
    return s or None


def _get(header: Mapping[str, Any], key: str) -> Any:
    """``header.get(key)``, None for a card astropy cannot parse (``SITELONG = NaN``)."""
    try:
        return header.get(key)
    except VerifyError:
        return None


def _ascii_card(card: bytes) -> tuple[bytes, bool]:
    """One 80-byte card as printable ASCII: UTF-8 (else Latin-1) letters transliterated
    (``ÿ`` -> ``y``), control characters -> spaces. The flag says a character had no ASCII
    form and became ``?``."""
    try:
        text = card.decode("utf-8")
    except UnicodeDecodeError:
        text = card.decode("latin-1")
    plain = "".join(" " if unicodedata.category(c) == "Cc" else c
                    for c in unicodedata.normalize("NFKD", text)
                    if unicodedata.category(c) != "Mn")
    out = plain.encode("ascii", errors="replace")
    return out.ljust(CARD)[:CARD], out.count(b"?") > plain.count("?")


#: a byte outside printable ASCII
_UNPRINTABLE = re.compile(rb"[^\x20-\x7e]")


def clean_cards(raw: bytes) -> tuple[bytes, frozenset[str]]:
    """Header bytes as the FITS standard wants them (printable ASCII), read faithfully.

    Astropy replaces every byte outside printable ASCII with ``?`` (and refuses a control
    character as an unparsable card), so ``OBJECT = 'SS Cÿg'`` would reach a report as
    ``SS C?g``. Each card with such bytes is decoded as UTF-8, else Latin-1, its letters
    transliterated to ASCII and its control characters made spaces. Only the cards before
    the first END card change; the length never does, so data offsets stay valid.

    Parameters
    ----------
    raw : bytes
        The file's bytes (or its header blocks).

    Returns
    -------
    (bytes, frozenset of str)
        The cleaned bytes, and the keywords of cards that kept a character with no ASCII form
        (as ``?``): a caller refuses a frame whose OBJECT is among them.
    """
    stop = min(len(raw), MAX_HEADER_BYTES) // CARD * CARD
    end = next((i for i in range(0, stop, CARD) if raw[i : i + 8] == b"END     "), stop)
    if _UNPRINTABLE.search(raw, 0, end) is None:  # the usual case: no copy of a 50 MB frame
        return raw, frozenset()
    fixes: dict[int, bytes] = {}
    lossy: set[str] = set()
    for i in range(0, stop, CARD):
        card = raw[i : i + CARD]
        if card[:8] == b"END     ":
            break
        if all(32 <= b < 127 for b in card):
            continue
        fixes[i], lost = _ascii_card(card)
        if lost:
            lossy.add(fixes[i][:8].decode("ascii").strip())
    out = bytearray(raw)
    for i, fixed in fixes.items():
        out[i : i + CARD] = fixed
    return bytes(out), frozenset(lossy)


def _pad(n: int) -> int:
    return -(-n // BLOCK) * BLOCK


def parse_header(raw: bytes) -> fits.Header:
    """An astropy :class:`~astropy.io.fits.Header` from raw header bytes (block-aligned prefix
    of a file, END card optional: a header still being written gives the cards so far).

    Parameters
    ----------
    raw : bytes
        Header blocks; a trailing partial card is ignored.

    Returns
    -------
    astropy.io.fits.Header

    Raises
    ------
    ValueError
        The bytes are not FITS header cards.
    """
    text = clean_cards(raw[: len(raw) // CARD * CARD])[0].decode("ascii")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        return fits.Header.fromstring(text)


def header_dict(header: fits.Header) -> dict[str, Any]:
    """A header as the watcher's plain dict: ``dict(header)`` without COMMENT, HISTORY and
    blank-keyword cards, string values stripped (a repeated keyword keeps its first value).

    Parameters
    ----------
    header : astropy.io.fits.Header

    Returns
    -------
    dict
    """
    out: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        for key in header:
            if key in _DROP or key in out:
                continue
            try:
                value = header[key]
            except Exception:  # SITELONG = NaN, a keyword of garbage bytes: left out
                log.debug("unparsable card %r left out", key)
                continue
            out[key] = value.strip() if isinstance(value, str) else value
    return out


def _parse_cards(raw: bytes) -> dict[str, Any]:
    return header_dict(parse_header(raw))


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

    Parameters
    ----------
    path : str or os.PathLike
    tail : int
        Final data bytes to return.

    Returns
    -------
    HeaderScan
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
                try:  # the cards written so far (a half-written card may not parse)
                    res.header = _parse_cards(raw)
                except ValueError:
                    log.debug("partial header of %s not parseable yet", path)
                return res
            res.header = _parse_cards(raw)
            res.complete = True
            res.header_bytes = len(raw)
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
                xh = _parse_cards(raw)
                xdata = _data_bytes(xh, primary=False)
                if xdata is None:
                    res.problem = "extension header without a valid size"
                    res.data_end = None
                    break
                data_start = offset + len(raw)
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

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    dict
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

    Parameters
    ----------
    header_or_path : dict or str or os.PathLike

    Returns
    -------
    int or None
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
