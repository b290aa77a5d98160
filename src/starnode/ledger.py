"""Deprecated location: the ledger moved to :mod:`starnode.store.ledger`.

Every public name of 0.1.0's ``starnode.ledger`` is re-exported here (the state constants are
now :class:`~starnode.errors.FrameState` members, equal to their old string values).
"""

from __future__ import annotations

from .store.frame import Frame, file_identity, make_owner
from .store.ledger import (
    DONE_STATES,
    FAILED,
    MEASURED,
    PENDING,
    PROCESSING,
    REPORTED,
    REPORTED_STATUSES,
    SKIPPED,
    STATES,
    Ledger,
)

__all__ = [
    "DONE_STATES",
    "FAILED",
    "MEASURED",
    "PENDING",
    "PROCESSING",
    "REPORTED",
    "REPORTED_STATUSES",
    "SKIPPED",
    "STATES",
    "Frame",
    "Ledger",
    "file_identity",
    "make_owner",
]
