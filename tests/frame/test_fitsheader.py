"""starnode.frame.header: the cheap header reader equals astropy; expected_size is exact."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits

from starnode.frame.header import BLOCK, clean_cards, expected_size, read_header, scan


def astropy_dict(path: Path) -> dict[str, Any]:
    """``dict(fits.getheader(path))`` minus COMMENT/HISTORY/blank keys, strings stripped."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        header = fits.getheader(path)
        out: dict[str, Any] = {}
        for key, value in dict(header).items():
            if key in ("COMMENT", "HISTORY", ""):
                continue
            out[key] = value.strip() if isinstance(value, str) else value
    return out


def assert_same(ours: dict[str, Any], ref: dict[str, Any]) -> None:
    assert list(ours) == list(ref)
    for key, value in ref.items():
        assert ours[key] == value, key
        assert type(ours[key]) is type(value), (key, type(ours[key]), type(value))


def raw_header(cards: list[str], data: bytes = b"") -> bytes:
    text = "".join(c.ljust(80) for c in [*cards, "END"])
    raw = text.encode("ascii")
    raw += b" " * (-len(raw) % BLOCK)
    if data:
        raw += data + b"\0" * (-len(data) % BLOCK)
    return raw


def test_real_seestar_subs_equal_astropy(shared: Path) -> None:
    files = sorted((shared / "data" / "seestar-s50").glob("*/*.fit"))
    assert files, "no real Seestar frames found"
    for path in files:
        ours = read_header(path)
        assert_same(ours, astropy_dict(path))
        # the Seestar names a sub Light_<OBJECT>_<exposure>_<filter>_<time>.fit
        assert ours["OBJECT"] == path.name.split("_")[1]
        assert expected_size(path) == os.path.getsize(path) == 4_152_960
        assert expected_size(ours) is not None and expected_size(ours) <= os.path.getsize(path)


SYNTHETIC = [
    "SIMPLE  =                    T / conforms",
    "BITPIX  =                   16",
    "NAXIS   =                    2",
    "NAXIS1  =                    4",
    "NAXIS2  =                    3",
    "EXTEND  =                    T",
    "OBJECT  = 'SS Cyg  '           / target",
    "QUOTE   = 'it''s ''quoted'''",
    "LEAD    = '  leading'",
    "EMPTY   = ''",
    "BLANKS  = '     '",
    "SLASH   = 'a/b / c'            / comment with / slash",
    "DEXP    =              1.5D+03",
    "EEXP    =             -2.5E-02",
    "PLAINF  =                 3.25",
    "INTF    =                  3.0",
    "DOTF    =                   4.",
    "PLUSI   =                  +42",
    "BIGI    = 123456789012345678901234",
    "NEGI    =                  -12",
    "BOOLT   =                    T",
    "BOOLF   =                    F / false",
    "UND     =",
    "CPX     = (1.0, 2.5)",
    "HIERARCH ESO DET CHIP NAME = 'chip 1' / hierarch",
    "HIERARCH ESO TEL ALT = 45.5",
    "HIERARCH LONG KEYWORD NUMBER = 7",
    "LONGSTR = 'The quick brown fox jumps over the lazy dog and keeps on running&'",
    "CONTINUE  ' far beyond the eighty-character card&'",
    "CONTINUE  ' limit.' / end of long string",
    "DUP     =                    1",
    "DUP     =                    2",
    "lower   =                    5",
    "COMMENT this is a comment",
    "HISTORY this is history",
    "        blank keyword commentary",
    "NOEQUALS this card has no value indicator",
    "BZERO   =                32768",
    "BSCALE  =                    1",
]


def test_synthetic_header_equals_astropy(tmp_path: Path) -> None:
    path = tmp_path / "synthetic.fits"
    path.write_bytes(raw_header(SYNTHETIC, b"\x01" * 24))
    ours = read_header(path)
    assert_same(ours, astropy_dict(path))
    assert ours["QUOTE"] == "it's 'quoted'"
    assert ours["LEAD"] == "leading"  # seed: strings whitespace-stripped
    assert ours["LONGSTR"].endswith("card limit.")
    assert ours["ESO DET CHIP NAME"] == "chip 1"
    assert ours["DEXP"] == 1500.0 and isinstance(ours["DEXP"], float)
    assert ours["BIGI"] == 123456789012345678901234
    assert ours["UND"] is None
    assert ours["CPX"] == complex(1.0, 2.5)
    assert ours["DUP"] == 1
    assert "COMMENT" not in ours and "HISTORY" not in ours and "" not in ours
    assert expected_size(path) == 3 * BLOCK == os.path.getsize(path)


def test_astropy_written_header_equals_astropy(tmp_path: Path) -> None:
    hdu = fits.PrimaryHDU(np.arange(12, dtype=np.float32).reshape(3, 4))
    h = hdu.header
    h["OBJECT"] = "V* RR Lyr"
    h["EXPTIME"] = 10.0
    h["GAIN"] = 80
    h["FLAG"] = False
    h["NOTE"] = "x" * 200  # astropy writes CONTINUE cards
    h["APOS"] = "O'Brien"
    h["HIERARCH STARNODE PIPELINE VERSION"] = "0.1"
    h["TINY"] = 1.0e-300
    h["NEGZERO"] = -0.0
    h.add_comment("a comment")
    h.add_history("a history line")
    h.add_blank("")
    path = tmp_path / "astropy.fits"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hdu.writeto(path)
    ours = read_header(path)
    assert_same(ours, astropy_dict(path))
    assert ours["NOTE"] == "x" * 200
    assert expected_size(path) == os.path.getsize(path)


@pytest.mark.parametrize("hdus", [
    lambda: [fits.PrimaryHDU()],
    lambda: [fits.PrimaryHDU(np.zeros((7, 5), dtype=np.int16))],
    lambda: [fits.PrimaryHDU(np.zeros((3, 20, 30), dtype=np.uint16))],
    lambda: [fits.PrimaryHDU(np.zeros((2, 3), dtype=np.float64)),
             fits.ImageHDU(np.zeros((100, 33), dtype=np.int32))],
    lambda: [fits.PrimaryHDU(),
             fits.BinTableHDU.from_columns([fits.Column("v", format="PJ()",
                                                        array=[[1, 2, 3], [4]])])],
    lambda: [fits.GroupsHDU(fits.GroupData(np.zeros((4, 2, 3), dtype=np.float32),
                                           parnames=["u", "v"],
                                           pardata=[np.zeros(4), np.zeros(4)],
                                           bitpix=-32))],
])
def test_expected_size_is_the_file_size(tmp_path: Path, hdus: Any) -> None:
    path = tmp_path / "f.fits"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits.HDUList(hdus()).writeto(path)
    size = os.path.getsize(path)
    assert expected_size(path) == size
    header = read_header(path)
    assert_same(header, astropy_dict(path))
    lower = expected_size(header)
    assert lower is not None and lower <= size


def test_truncated_file_expects_its_full_size(tmp_path: Path) -> None:
    buf = io.BytesIO()
    fits.PrimaryHDU(np.ones((50, 40), dtype=np.uint16)).writeto(buf)
    full = buf.getvalue()
    path = tmp_path / "partial.fits"
    path.write_bytes(full[: len(full) // 2])
    assert expected_size(path) == len(full)
    assert read_header(path)["NAXIS1"] == 40
    # header not finished yet: no END card
    path.write_bytes(full[:400])
    assert read_header(path) == {}
    assert expected_size(path) is None
    assert scan(path).problem


def test_unreadable_inputs_give_empty_dict_and_never_raise(tmp_path: Path) -> None:
    empty = tmp_path / "empty.fits"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.fits"
    junk.write_bytes(b"not a fits file" * 300)
    zeros = tmp_path / "prealloc.fits"
    zeros.write_bytes(b"\0" * 3 * BLOCK)
    for p in (empty, junk, zeros, tmp_path / "missing.fits", tmp_path):
        assert read_header(p) == {}
        assert expected_size(p) is None
    assert scan(zeros).blank
    assert expected_size({"NAXIS": 2}) is None
    assert expected_size({}) is None


# ---------------------------------------------------------------- issue 10, item 13
def _header_file(tmp_path: Path, cards: list[bytes]) -> Path:
    raw = b"".join(c.ljust(80, b" ")[:80] for c in [
        b"SIMPLE  =                    T", b"BITPIX  =                    8",
        b"NAXIS   =                    0", *cards, b"END"])
    p = tmp_path / "h.fit"
    p.write_bytes(raw.ljust(BLOCK, b" "))
    return p


def test_non_ascii_object_is_transliterated_not_question_marks(tmp_path: Path) -> None:
    for raw in ("OBJECT  = 'SS C\xffg'".encode("latin-1"), "OBJECT  = 'SS Cÿg'".encode(),
                b"OBJECT  = 'SS\x07Cyg'"):
        assert read_header(_header_file(tmp_path, [raw]))["OBJECT"] == "SS Cyg"


def test_unparsable_card_is_left_out_and_the_rest_kept(tmp_path: Path) -> None:
    h = read_header(_header_file(tmp_path, [b"SITELONG= NaN", b"OBJECT  = 'SS Cyg'"]))
    assert "SITELONG" not in h and h["OBJECT"] == "SS Cyg"


def test_clean_cards_keeps_the_length_and_names_lossy_cards() -> None:
    raw = "OBJECT  = '天鹅座'".encode().ljust(80) + b"END".ljust(80)
    clean, lossy = clean_cards(raw)
    assert len(clean) == len(raw) and clean.isascii() and lossy == {"OBJECT"}
    plain = b"OBJECT  = 'SS Cyg'".ljust(80) + b"END".ljust(80)
    assert clean_cards(plain) == (plain, frozenset())


def test_garbage_bytes_in_a_keyword_never_raise(tmp_path: Path) -> None:
    h = read_header(_header_file(tmp_path, [b"\xff\xfe*[  = 'x'", b"OBJECT  = 'SS Cyg'"]))
    assert h["OBJECT"] == "SS Cyg"
