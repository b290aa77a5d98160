"""The node's one line per frame: what the log, ``starnode status`` and the demo print.

Kept apart from the service so that read-only commands (``status``, the demo's summary) can
format ledger rows without importing the process pool.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import FrameState
from ..frame.admission import printable, quoted
from ..store import Frame

__all__ = ["frame_line", "short_reason"]


def _fmt(value: Any, spec: str) -> str:
    try:
        return format(float(value), spec)
    except (TypeError, ValueError):
        return "?"


def short_reason(reason: str | None, path: str | None) -> str:
    """A reason without its leading ``<file name>: `` (the node's lines already name the file).

    Parameters
    ----------
    reason : str or None
        The pipeline's message.
    path : str or None
        The frame's path; its full form and its base name are both stripped.

    Returns
    -------
    str
        The reason, never None.
    """
    text = str(reason or "")
    if path:
        name = os.path.basename(path)
        for prefix in (f"{path}: ", f"{name}: "):
            if text.startswith(prefix):
                return text[len(prefix):]
    return text


def _measured_line(frame: Frame) -> str:
    r = frame.result or {}
    text = (f"{frame.state:<8} {quoted(frame.name)}: {r.get('target_name', '?')} "
            f"{r.get('filter', '?')} {_fmt(r.get('magnitude'), '.3f')} ± "
            f"{_fmt(r.get('uncertainty'), '.3f')} ({r.get('quality_flag', '?')}, "
            f"{r.get('comparison_stars', '?')} comps)")
    sub = frame.submission
    if sub:
        where = Path(str(sub.get("report_path"))).name if sub.get("report_path") else ""
        text += f" -> {sub.get('status', '?')}" + (f" {where}" if where else "")
        if frame.state != FrameState.REPORTED and sub.get("message"):
            text += f" ({sub.get('message')})"
    return text


def frame_line(frame: Frame) -> str:
    """The one-line summary of a frame's outcome (the node's INFO line, ``starnode status``).

    Parameters
    ----------
    frame : starnode.store.Frame
        A ledger row.

    Returns
    -------
    str
        ``"<state> <file name>: <what happened>"``, one line: a name holding a newline or a
        control character is quoted with it escaped (it cannot forge a log line).
    """
    if frame.state in (FrameState.MEASURED, FrameState.REPORTED) and frame.result:
        return printable(_measured_line(frame))
    if frame.state in (FrameState.SKIPPED, FrameState.FAILED):
        cat = f"[{frame.category}] " if frame.category else ""
        reason = short_reason(frame.reason, frame.path)
        return printable(f"{frame.state:<8} {quoted(frame.name)}: {cat}{reason}")
    return f"{frame.state:<8} {quoted(frame.name)}"
