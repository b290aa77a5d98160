"""Reading frames (issue 18): the primary header admission parsed is the frame's header when
the file is the usual 16-bit camera frame; the result is astropy's reading of the file, and a
truncated or changed file is refused or read as astropy reads it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from starnode import synthetic
from starnode.frame.admission import admit
from starnode.frame.header import clean_cards
from starnode.frame.load import FrameRejected, _admitted_image, _open


def _sub(tmp_path: Path, name: str = "sub.fit", **header: object) -> Path:
    hdul, _ = synthetic.make_sub(seed=1, shape=(64, 48), pointing_offset_arcmin=(0, 0))
    for k, v in header.items():
        hdul[0].header[k] = v
    return synthetic.write_frame(tmp_path / name, hdul)


def _both(path: Path, raw: bytes | None = None) -> tuple[object, object]:
    """(astropy's reading, the reading with admission's header) of ``path`` (or of ``raw``,
    admission having read ``path``): the header's cards, the image, or the refusal."""
    out = []
    raw = clean_cards(path.read_bytes() if raw is None else raw)[0]
    for admitted in (None, admit(path)):
        try:
            header, data = _open(path, raw, admitted)
        except FrameRejected as exc:
            out.append((exc.category, exc.reason))
            continue
        out.append((header.tostring(), list(header.items()), data.dtype.str, data.shape,
                    data.tobytes()))
    return out[0], out[1]


def test_the_usual_sub_is_read_once_and_as_astropy_reads_it(tmp_path: Path) -> None:
    path = _sub(tmp_path)
    raw = path.read_bytes()
    assert _admitted_image(path, raw, admit(path)) is not None  # the header parsed once
    astropy_way, once = _both(path)
    assert astropy_way == once
    with fits.open(path) as hdul:
        assert once[0] == hdul[0].header.tostring()  # type: ignore[index]
        np.testing.assert_array_equal(_open(path, raw, admit(path))[1], hdul[0].data)


def test_a_truncated_sub_is_refused_with_the_same_reason(tmp_path: Path) -> None:
    path = _sub(tmp_path)
    full = path.read_bytes()
    path.write_bytes(full[: len(full) - 4000])
    astropy_way, once = _both(path)
    assert astropy_way == once
    assert once[0] == "unreadable" and "truncated" in once[1]  # type: ignore[index]


def test_a_file_changed_after_admission_is_read_as_it_is_now(tmp_path: Path) -> None:
    path = _sub(tmp_path, OBJECT="SS Cyg")
    other = _sub(tmp_path, "other.fit", OBJECT="U Gem", EXPTIME=20.0)
    astropy_now = _both(other)[0]
    assert _both(path, other.read_bytes())[1] == astropy_now


def _with_cards(path: Path, out: Path, change: dict[str, object]) -> Path:
    """``path`` with its primary header's cards changed, the data bytes as they were."""
    raw = path.read_bytes()
    header = fits.Header.fromstring(raw[:2880 * 8].split(b"END" + b" " * 77)[0].decode())
    blocks = len(header.tostring()) // 2880 * 2880 + 2880 * (len(header.tostring()) % 2880 > 0)
    header.update(change)
    out.write_bytes(header.tostring().encode() + raw[blocks:])
    return out


@pytest.mark.parametrize("change", [
    {"BZERO": 0}, {"BSCALE": 2.0}, {"BLANK": 0}, {"PCOUNT": 1}, {"GCOUNT": 2},
    {"BITPIX": 32},
])
def test_other_frames_are_read_by_astropy(tmp_path: Path, change: dict[str, object]) -> None:
    odd = _with_cards(_sub(tmp_path), tmp_path / "odd.fit", change)
    admitted = admit(odd)
    assert admitted is None or _admitted_image(odd, odd.read_bytes(), admitted) is None
    astropy_way, once = _both(odd)
    assert astropy_way == once


def test_a_header_with_other_than_ascii_is_read_by_astropy(tmp_path: Path) -> None:
    path = _sub(tmp_path, OBJECT="SS Cxg")
    raw = path.read_bytes()
    odd = tmp_path / "odd.fit"
    odd.write_bytes(raw.replace(b"SS Cxg", b"SS C\xffg", 1))
    cleaned = clean_cards(odd.read_bytes())[0]
    assert cleaned != odd.read_bytes()
    assert _admitted_image(odd, cleaned, admit(odd)) is None
    astropy_way, once = _both(odd)
    assert astropy_way == once


def test_a_stack_is_read_once_too(tmp_path: Path) -> None:
    hdul, _ = synthetic.make_stack(seed=2, shape=(40, 30), stackcnt=5)
    path = synthetic.write_frame(tmp_path / "stack.fit", hdul)
    astropy_way, once = _both(path)
    assert astropy_way == once
