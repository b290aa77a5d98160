"""Keep freed work buffers in the process instead of handing them back to the kernel.

Why: ``sep.extract`` allocates ~45 MB of work buffers per call on a 1080 x 1920 stack and frees
them on return. With glibc's default, dynamic thresholds those blocks end up mapped afresh for
every frame (the frame's own arrays, freed in between, make glibc trim the heap), so each
detection pays ~11,000 page faults, ~20 ms of kernel time (issue 18: a third of the worker's
time on a stack went there). Raising glibc's mmap and trim thresholds once makes the next
frame reuse the same pages. The cost is that up to :data:`TRIM_BYTES` of freed memory stays
with the process (a frame's working set, ~100 MB, is about that already).

Only glibc (Linux) has ``mallopt``; elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading

log = logging.getLogger(__name__)

__all__ = ["MMAP_BYTES", "TRIM_BYTES", "reuse_freed_memory"]

#: blocks below this come from the heap (reusable) rather than from a fresh mapping
MMAP_BYTES = 64 << 20
#: free memory at the top of the heap kept up to this
TRIM_BYTES = 128 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
_lock = threading.Lock()
_done: bool | None = None


def reuse_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds (once per process).

    Returns
    -------
    bool
        Whether they are set (False: not glibc, or ``mallopt`` refused).
    """
    global _done
    with _lock:
        if _done is None:
            _done = _mallopt()
        return _done


def _mallopt() -> bool:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD,
                                                                          TRIM_BYTES))
    log.debug("glibc mmap/trim thresholds %s", "raised" if ok else "unchanged")
    return ok
