"""Argument types of the ``starnode`` command line: each flag is checked when it is parsed,
like the configuration key it stands for, so a bad value is one argparse line (exit 2) and
never a silent misbehaviour (``--workers -1`` measuring nothing) or a traceback
(``--port 99999``).
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from datetime import date

from ..config.schema import SCHEMA

__all__ = ["config_int", "night_arg", "number_in", "port_arg"]


def night_arg(text: str) -> str:
    """``--night``: an ISO date, else an argparse error naming the expected format."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise argparse.ArgumentTypeError(f"{text!r}: expected YYYY-MM-DD (the evening's date)")
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: expected YYYY-MM-DD ({exc})") from None


def number_in(kind: type[int] | type[float], low: float | None = None,
              high: float | None = None) -> Callable[[str], int | float]:
    """An argparse type: a finite ``kind`` (int or float) within ``[low, high]``.

    Parameters
    ----------
    kind : type
        ``int`` or ``float``.
    low, high : float, optional
        Inclusive bounds (None: unbounded).

    Returns
    -------
    callable
        Converts the text or raises :class:`argparse.ArgumentTypeError` saying what is allowed.
    """
    what = "a whole number" if kind is int else "a number"
    if low is not None and high is not None:
        allowed = f"{what} from {low:g} to {high:g}"
    elif low is not None:
        allowed = f"{what} of at least {low:g}"
    elif high is not None:
        allowed = f"{what} of at most {high:g}"
    else:
        allowed = what

    def convert(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected {allowed}") from None
        if not math.isfinite(value) or (low is not None and value < low) or (
                high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text}: expected {allowed}")
        return value

    convert.__name__ = kind.__name__  # argparse names the type in its messages
    return convert


def config_int(section: str, key: str) -> Callable[[str], int | float]:
    """An argparse type with the bounds of the configuration key (``config_int("", "workers")``
    for ``--workers``): the flag and the key accept the same values."""
    field = SCHEMA[section][key]
    return number_in(int, field.min, field.max)


#: ``--port``: a TCP port a server can listen on.
port_arg = number_in(int, 1, 65535)
