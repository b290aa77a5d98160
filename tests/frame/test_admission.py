"""Admission: only regular files of a sane size are frames; refused before any byte is read."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from starnode.config import Config
from starnode.errors import FrameRejected, RejectCategory
from starnode.frame import admission
from starnode.frame.load import load_frame

LIMIT = 64 * 2**20


def _header_only(path: Path, **cards: int) -> Path:
    """A FITS header announcing ``cards`` (NAXISn...) and no data: a few KB on disk."""
    hdr = fits.Header()
    hdr["SIMPLE"] = True
    for k, v in {"BITPIX": 16, **cards}.items():
        hdr[k] = v
    path.write_bytes(hdr.tostring().encode("ascii"))
    return path


def _refused(path: Path, limit: int = LIMIT) -> FrameRejected:
    with pytest.raises(FrameRejected) as info:
        admission.check(path, limit)
    return info.value


def test_a_small_frame_is_admitted(tmp_path: Path) -> None:
    p = tmp_path / "Light_ok.fit"
    fits.PrimaryHDU(np.zeros((8, 8), dtype=np.uint16)).writeto(p)
    admission.check(p, LIMIT)  # does not raise
    link = tmp_path / "Light_link.fit"
    link.symlink_to(p)
    admission.check(link, LIMIT)  # a symlink to a regular file is a frame too


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "Light_fifo.fit"
    os.mkfifo(fifo)
    out: list[BaseException] = []
    t = threading.Thread(target=lambda: out.append(_refused(fifo)), daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "admission blocked on a FIFO"
    assert out[0].category == RejectCategory.NOT_A_FILE
    assert "FIFO" in out[0].reason


def test_a_symlink_to_dev_zero_and_a_folder_are_refused(tmp_path: Path) -> None:
    link = tmp_path / "Light_zero.fit"
    link.symlink_to("/dev/zero")
    exc = _refused(link)
    assert exc.category == RejectCategory.NOT_A_FILE and "device" in exc.reason
    assert "symlink" in exc.reason
    folder = tmp_path / "x.fit"
    folder.mkdir()
    exc = _refused(folder)
    assert exc.category == RejectCategory.NOT_A_FILE and "folder" in exc.reason


def test_a_sparse_frame_over_the_limit_is_refused_by_its_size(tmp_path: Path) -> None:
    p = _header_only(tmp_path / "Light_sparse.fit", NAXIS=2, NAXIS1=20000, NAXIS2=20000)
    with open(p, "r+b") as f:
        f.truncate(2880 + 20000 * 20000 * 2)  # sparse: nothing written
    exc = _refused(p)
    assert exc.category == RejectCategory.TOO_LARGE and "bytes" in exc.reason


def test_a_header_announcing_gigabytes_is_refused(tmp_path: Path) -> None:
    p = _header_only(tmp_path / "Light_huge.fit", NAXIS=2, NAXIS1=100000, NAXIS2=100000)
    exc = _refused(p)
    assert exc.category == RejectCategory.TOO_LARGE and "NAXIS" in exc.reason


def test_a_tile_compressed_file_announcing_gigabytes_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "Light_bomb.fit"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(np.zeros((64, 64), np.uint16))]).writeto(p)
    raw = bytearray(p.read_bytes())
    for key, new in ((b"ZNAXIS1 =", 60000), (b"ZNAXIS2 =", 60000)):
        at = raw.index(key)
        raw[at:at + 80] = f"{key.decode()[:8]:8}= {new:20d}".ljust(80).encode()
    p.write_bytes(bytes(raw))
    assert p.stat().st_size < 100_000
    exc = _refused(p)
    assert exc.category == RejectCategory.TOO_LARGE and "decompress" in exc.reason
    small = tmp_path / "Light_comp.fit"
    fits.HDUList([fits.PrimaryHDU(),
                  fits.CompImageHDU(np.zeros((64, 64), np.uint16))]).writeto(small)
    admission.check(small, LIMIT)


def test_load_frame_refuses_before_reading(tmp_path: Path) -> None:
    link = tmp_path / "Light_zero.fit"
    link.symlink_to("/dev/zero")
    with pytest.raises(FrameRejected) as info:
        load_frame(link, Config({"limits": {"max_frame_bytes": LIMIT}}))
    assert info.value.category == RejectCategory.NOT_A_FILE
    big = _header_only(tmp_path / "Light_big.fit", NAXIS=2, NAXIS1=30000, NAXIS2=30000)
    with pytest.raises(FrameRejected) as info:
        load_frame(big, Config({"limits": {"max_frame_bytes": LIMIT}}))
    assert info.value.category == RejectCategory.TOO_LARGE


def test_the_limit_has_a_default_fit_for_seestar_frames() -> None:
    limit = admission.max_frame_bytes(None)
    s30_pro_stack = 3 * 3840 * 2160 * 4  # float32 RGB stack of the largest Seestar sensor
    assert s30_pro_stack < limit < 800 * 2**20
