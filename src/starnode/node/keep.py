"""The node's side of a measured frame: what the worker may not write, the node keeps.

A worker measures without writing anything of the node's (:mod:`starnode.node.pool`): before a
frame goes out, the node gives it the check-star choices of the nights the frame may belong to
(:func:`night_checks`); when it comes back, the node records the check star the frame chose for
its night and writes its starlist (:func:`keep`, with
:func:`starnode.photometry.night.keep_night`), in this one process, before the ledger row.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from typing import Any

from ..config import Config
from ..frame.header import read_header
from ..store import Store
from ..store.checkstars import CheckStars
from .pool import MeasuredFrame

log = logging.getLogger("starnode.node")

__all__ = ["keep", "night_checks"]


def _frame_date(path: str) -> _dt.date | None:
    """The UTC date the frame was taken (``DATE-OBS``), else of its file's modification."""
    try:
        text = str(read_header(path).get("DATE-OBS") or "")
        return _dt.date.fromisoformat(text[:10])
    except (OSError, ValueError):
        pass
    try:
        return _dt.datetime.fromtimestamp(os.stat(path).st_mtime, _dt.UTC).date()
    except OSError:
        return None


def night_checks(store: Store, path: str) -> dict[tuple[str, str], str]:
    """The check stars already kept for the nights a frame may belong to.

    An observing night is named by the local date of its evening, so a frame taken on UTC date
    D belongs to the night of D - 1, D or D + 1 (whatever the longitude); the choices of those
    three nights are what the worker needs (a header read, no pixel data).

    Parameters
    ----------
    store : Store
        The node's open database (a file deleted under the node is not created afresh).
    path : str
        The frame.

    Returns
    -------
    dict
        ``(normalised target, night) -> label``; empty when the date is unknown or the node's
        database has no choice for those nights.
    """
    day = _frame_date(path)
    if day is None:
        return {}
    one = _dt.timedelta(days=1)
    return CheckStars(store).between((day - one).isoformat(), (day + one).isoformat())


def keep(config: Config, outcome: MeasuredFrame, store: Store) -> dict[str, Any]:
    """Record the night's check star the frame chose and write its starlist.

    Parameters
    ----------
    config : Config
    outcome : MeasuredFrame
        The worker's.
    store : Store
        The node's open database.

    Returns
    -------
    dict
        The measurement's dict, with ``starlist`` (the file written, or None).
    """
    from ..photometry.night import keep_night

    result = dict(outcome.result)
    if outcome.check is None and outcome.starlist is None:
        return result
    path = str(result.get("file") or "")
    result["starlist"] = keep_night(config, outcome.check, outcome.starlist,
                                    result.get("night"), path, store=store)
    return result
