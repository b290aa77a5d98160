"""Freed work buffers stay with the process (issue 18, item 8: sep's page faults)."""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import resource

import pytest

from starnode.util.memory import reuse_freed_memory

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="mallopt thresholds are glibc's")


def _faults_of_a_fresh_40mb_buffer() -> int:
    """Page faults of a C work buffer (malloc, touch every page, free), as sep's are."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    p = libc.malloc(40 << 20)
    ctypes.memset(p, 1, 40 << 20)
    libc.free(p)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_a_freed_40mb_buffer_is_reused_without_page_faults() -> None:
    # 40 MB is above glibc's largest dynamic mmap threshold (32 MB): by default every such
    # buffer is a fresh mapping, ~10,000 page faults each time
    assert reuse_freed_memory() is True
    assert reuse_freed_memory() is True  # once per process, idempotent
    _faults_of_a_fresh_40mb_buffer()  # the heap grows once
    assert _faults_of_a_fresh_40mb_buffer() < 500
