"""The morning after: a night told in plain sentences, for a screen reader first.

Why: many observers of the network cannot stand at a telescope; some cannot see a plot or use a
mouse. What they want in the morning is "what did my telescope see, was it good, is my name on
the record?" -- so this package turns the ledger into short sentences that read well aloud:
counts in words, skipped frames grouped by *why* in everyday language, magnitudes rounded the
way an observer says them, the error in words where it decides the answer, the check star's
health and what happened to the AAVSO report. No table carries meaning on its own.

Layers (so each can change alone):

- :mod:`.snapshot` - :func:`load_snapshot`, the ONLY reader of the ledger and the outbox, and
  the rule of which night a frame belongs to (:func:`frame_night`, documented there);
- :mod:`.model` - :func:`build_night`: a snapshot as a :class:`NightSummary` (no wording);
- :mod:`.words` - :func:`sections`: the model as headed paragraphs, generated, never
  hand-assembled per case;
- :mod:`.render` - :func:`render_text`, :func:`render_html`, :func:`render_json`.
"""

from __future__ import annotations

from ...config import ConfigLike, resolve
from .model import NightSummary, Point, TargetNight, build_night
from .render import render_html, render_json, render_text
from .snapshot import (
    FrameRecord,
    Snapshot,
    frame_night,
    frame_target,
    load_snapshot,
    night_frames,
    night_of_jd,
    norm_name,
)
from .words import REASON_WORDS, UPLOAD_WORDS, sections, sound_legend

__all__ = [
    "REASON_WORDS",
    "UPLOAD_WORDS",
    "FrameRecord",
    "NightSummary",
    "Point",
    "Snapshot",
    "TargetNight",
    "build_night",
    "frame_night",
    "frame_target",
    "load_snapshot",
    "night_frames",
    "night_of_jd",
    "night_summary",
    "norm_name",
    "render_html",
    "render_json",
    "render_text",
    "sections",
    "sound_legend",
]


def night_summary(config: ConfigLike, night: str | None = None,
                  target: str | None = None) -> NightSummary:
    """Read the ledger of ``config`` and build the night's model (the command's entry).

    Parameters
    ----------
    config : Config or anything :func:`starnode.config.resolve` accepts
        The data_dir to read, and the quality thresholds of the check star.
    night : str, optional
        ISO date of the night (default: the latest).
    target : str, optional
        Only this star.

    Returns
    -------
    NightSummary
    """
    cfg = resolve(config)
    q = cfg.quality
    return build_night(load_snapshot(cfg), night, target,
                       good_check=float(q.good_max_check_deviation),
                       acceptable_check=float(q.acceptable_max_check_deviation))
