"""The doctor's vocabulary: a :class:`Check` line and its :class:`Level`.

It sits at the bottom of the layers so that every concern (the configuration, the store, the
catalogues, the astrometry, the AAVSO writer, the node) can say how it is without importing the
collector above it (:mod:`starnode.doctor`, which imports them all).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

__all__ = ["Check", "HealthFn", "Level"]


class Level(IntEnum):
    """How bad a finding is (the exit status follows the worst)."""

    OK = 0
    WARN = 1
    FAIL = 2


@dataclass(frozen=True)
class Check:
    """One line of ``starnode doctor``: a level, a topic and an actionable message."""

    level: Level
    topic: str
    message: str


#: A concern's check: ``health(config) -> list[Check]`` (``config``: a ``starnode.config.Config``).
HealthFn = Callable[[Any], Iterable[Check]]
