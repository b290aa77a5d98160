"""Coercing loose values (FITS cards, JSON, SQLite rows) and normalising star names."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["finite_float", "name_key", "normalize_name"]


def finite_float(value: Any) -> float | None:
    """``float(value)`` when it is a finite number, else ``None`` (never raises).

    Booleans are not numbers here (a FITS ``T`` must not become 1.0).

    Examples
    --------
    >>> finite_float("12.5"), finite_float(7)
    (12.5, 7.0)
    >>> finite_float(True), finite_float("nan"), finite_float("n/a"), finite_float(None)
    (None, None, None, None)
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if math.isfinite(f) else None


def normalize_name(name: str | None) -> str:
    """Cache and comparison form of a star name: blanks collapsed, case folded (``"ss cyg"``).

    Examples
    --------
    >>> normalize_name("  SS   Cyg "), normalize_name(None)
    ('ss cyg', '')
    """
    return " ".join(str(name or "").split()).casefold()


def name_key(name: str | None) -> str:
    """A looser key for matching names typed differently: letters and digits only, lower case
    (``"SS Cyg"``, ``"ss_cyg"`` and ``"SSCYG"`` all give ``"sscyg"``).

    Examples
    --------
    >>> {name_key(n) for n in ("SS Cyg", "ss_cyg", "SSCYG", " s s-cyg")}
    {'sscyg'}
    """
    return "".join(ch for ch in normalize_name(name) if ch.isalnum())
