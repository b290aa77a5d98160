"""Lay-outs of the night's sections: plain text, an HTML fragment or page, JSON.

Why apart: the words (:mod:`.words`) are the same in every lay-out; only here is there markup.
The HTML is headings and paragraphs, never a table that only makes sense visually.
"""

from __future__ import annotations

import html
import json
import re
import textwrap
from dataclasses import asdict

from .model import NightSummary
from .words import sections

__all__ = ["render_html", "render_json", "render_text"]


def render_text(s: NightSummary, width: int = 88) -> str:
    """The summary as plain text: each heading, then its paragraphs wrapped to ``width``.

    Parameters
    ----------
    s : NightSummary
        The night.
    width : int
        Line width.

    Returns
    -------
    str
        Newline-terminated text.
    """
    lines: list[str] = []
    for heading, paras in sections(s):
        lines.append(heading)
        lines.append("")
        for p in paras:
            lines.extend(textwrap.wrap(p, width) or [""])
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def render_html(s: NightSummary, *, level: int = 2, standalone: bool = False,
                legend: bool = True) -> str:
    """The summary as headed paragraphs.

    Parameters
    ----------
    s : NightSummary
        The night.
    level : int
        Heading level of the sections (``h2`` by default).
    standalone : bool
        A whole HTML page (default: a fragment).
    legend : bool
        With the sound's legend.

    Returns
    -------
    str
        HTML (``section``, ``h<level>`` and ``p`` elements; no tables).
    """
    h = f"h{level}"
    parts = []
    for heading, paras in sections(s, legend=legend):
        hid = "sum-" + re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")
        parts.append(f'<section aria-labelledby="{hid}"><{h} id="{hid}">'
                     f"{html.escape(heading)}</{h}>")
        parts.extend(f"<p>{html.escape(p)}</p>" for p in paras)
        parts.append("</section>")
    body = "\n".join(parts)
    if not standalone:
        return body
    title = f"starnode: the night of {s.night}" if s.night else "starnode: no observations yet"
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title></head>\n<body><main>"
            f"<h1>{html.escape(title)}</h1>\n{body}\n</main></body></html>\n")


def render_json(s: NightSummary) -> str:
    """The model, its sections and its text as JSON.

    Parameters
    ----------
    s : NightSummary
        The night.

    Returns
    -------
    str
        Indented JSON.
    """
    data = asdict(s)
    for t in data["targets"]:
        t.pop("keys", None)  # bookkeeping (the observations counted), not the night
    data["sections"] = [{"heading": h, "paragraphs": p} for h, p in sections(s)]
    data["text"] = render_text(s)
    return json.dumps(data, indent=2, default=str)

