"""One ledger row as a value, and the JSON rules for what the ledger stores.

Kept apart from :mod:`starnode.store.ledger` (the SQL) so readers of the ledger (status, the
light curve) need only this small module.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import sqlite3
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from starnode.errors import FrameState, RejectCategory

if TYPE_CHECKING:
    from starnode.records import Measurement

__all__ = ["Frame", "FrameFacts", "category_to_store", "dumps", "file_identity", "json_safe",
           "make_owner"]

log = logging.getLogger(__name__)


def make_owner() -> str:
    """A claim owner for this process.

    Returns
    -------
    str
        ``host:pid:token`` (the token tells runs of one process apart).
    """
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def file_identity(path: str | os.PathLike[str]) -> tuple[str, int, int]:
    """What identifies a frame.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    tuple of (str, int, int)
        ``(absolute path, size, mtime_ns)``.

    Raises
    ------
    OSError
        The file cannot be stat'ed.
    """
    p = os.path.abspath(os.fspath(path))
    st = os.stat(p)
    return p, int(st.st_size), int(st.st_mtime_ns)


def json_safe(value: Any) -> Any:
    """Make a result JSON-safe: NaN/inf -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value  # a StrEnum member is a str: stored as its value
    item = getattr(value, "item", None)  # numpy scalar
    if callable(item):
        try:
            return json_safe(item())
        except (TypeError, ValueError):
            pass
    return str(value)


def category_to_store(category: RejectCategory | str | None) -> RejectCategory | None:
    """The reject category the ledger writes: a :class:`~starnode.errors.RejectCategory`.

    ``crash`` (0.2.0's spelling) is written ``crashed``; a text that is no category is written
    ``error``, with a warning (the frame's reason still says what happened).
    """
    if category is None:
        return None
    try:
        return RejectCategory.parse(str(category))
    except ValueError:
        log.warning("unknown reject category %r recorded as %r", category,
                    str(RejectCategory.ERROR))
        return RejectCategory.ERROR


def dumps(value: Any) -> str:
    """``value`` as JSON text (sorted keys, NaN/inf as null, numpy scalars as numbers)."""
    return json.dumps(json_safe(value), allow_nan=False, sort_keys=True)


@dataclass(frozen=True)
class FrameFacts:
    """What the ledger says of a frame, declared once: :class:`Frame` is the whole row, and the
    morning summary's ``FrameRecord`` adds what it reads from the measurement."""

    path: str
    state: str
    category: str | None
    reason: str | None
    target: str | None
    jd: float | None
    magnitude: float | None
    uncertainty: float | None
    quality: str | None


@dataclass(frozen=True)
class Frame(FrameFacts):
    """One ledger row (``result`` and ``submission`` decoded from their JSON)."""

    id: int
    size: int
    mtime_ns: int
    source: str | None
    result: dict[str, Any] | None
    submission: dict[str, Any] | None
    owner: str | None
    attempts: int
    crashes: int
    measure_count: int
    report_count: int
    first_seen: float
    updated: float
    finished: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Frame:
        """Build a frame from a ``SELECT *`` row of ``frames``.

        Parameters
        ----------
        row : sqlite3.Row
            The row.

        Returns
        -------
        Frame
            The frame; ``state`` is a :class:`~starnode.errors.FrameState` when known.
        """
        d = dict(row)
        kw = {f.name: d[f.name] for f in fields(cls) if f.name in d}
        kw["result"] = json.loads(d["result"]) if d["result"] else None
        kw["submission"] = json.loads(d["submission"]) if d["submission"] else None
        with contextlib.suppress(ValueError):
            kw["state"] = FrameState(d["state"])
        if d.get("category") is not None:  # 0.2.0 wrote ``crash``: read as ``crashed``
            with contextlib.suppress(ValueError):
                kw["category"] = RejectCategory.parse(d["category"])
        return cls(**kw)

    @property
    def name(self) -> str:
        """The file's base name."""
        return os.path.basename(self.path)

    @property
    def schema_version(self) -> int | None:
        """Layout version of :attr:`result` (1 for a 0.1.0 dict; None without a result)."""
        if self.result is None:
            return None
        v = self.result.get("schema_version", 1)
        return v if isinstance(v, int) else None

    @property
    def measurement(self) -> Measurement | None:
        """The stored result as a :class:`~starnode.records.Measurement` (None if none)."""
        if self.result is None:
            return None
        from starnode.records import Measurement

        return Measurement.from_dict(self.result)

    def to_dict(self) -> dict[str, Any]:
        """Every field as a plain dict (for ``starnode status --json``)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
