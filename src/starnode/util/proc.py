"""Is a process alive? One answer for the lock files and the ledger's claims."""

from __future__ import annotations

import os

__all__ = ["pid_alive"]


def pid_alive(pid: int) -> bool:
    """True when a process with ``pid`` exists on this machine (possibly another user's)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user
        return True
    except OSError:
        return False
    return True
