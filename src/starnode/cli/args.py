"""Argument types shared by the commands (the parser itself is in :mod:`starnode.cli`)."""

from __future__ import annotations

import argparse
import re
from datetime import date

__all__ = ["night_arg"]


def night_arg(text: str) -> str:
    """``--night``: an ISO date, else an argparse error naming the expected format."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise argparse.ArgumentTypeError(f"{text!r}: expected YYYY-MM-DD (the evening's date)")
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: expected YYYY-MM-DD ({exc})") from None
