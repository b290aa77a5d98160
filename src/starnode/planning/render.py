"""The plan for people: in words (to be read or heard), as JSON, as a small HTML page, and an
altitude chart (PNG) with its text alternative."""

from __future__ import annotations

import base64
import html
import io
import json
from datetime import datetime
from pathlib import Path

import numpy as np

from .ephemeris import Site, altaz, time_grid, to_datetimes
from .model import Plan

__all__ = ["chart_png", "chart_text", "plan_html", "plan_json", "plan_text"]


def _hm(t: datetime) -> str:
    return t.strftime("%H:%M")


def _frames(seconds: float) -> str:
    return f"{seconds:g}-second frames"


def plan_text(plan: Plan) -> str:
    """The plan in sentences a member can hear::

        Tonight (2025-09-14, dark from 19:52 to 03:41 UTC): SS Cyg from 20:10 to 22:40 UTC,
        10-second frames; RS Oph left out: below 30° all night.
    """
    if plan.dusk and plan.dawn:
        head = (f"Tonight ({plan.night}, dark from {_hm(plan.dusk)} to {_hm(plan.dawn)} UTC)")
    else:
        head = f"Tonight ({plan.night}, never dark enough)"
    parts = [f"{it.target} from {_hm(it.start)} to {_hm(it.end)} UTC, "
             f"{_frames(it.exposure_s)} ({it.frames} frames)" for it in plan.items]
    body = "; ".join(parts) if parts else "nothing to observe"
    lines = [f"{head}: {body}."]
    if plan.excluded:
        lines.append("; ".join(f"{e.target} left out: {e.reason}" for e in plan.excluded) + ".")
    lines.extend(f"Note: {n}." for n in plan.notes)
    lines.append(f"Plan {plan.hash}, valid until {plan.expires:%Y-%m-%d %H:%M} UTC.")
    return "\n".join(lines) + "\n"


def plan_json(plan: Plan) -> str:
    """``{"night", "hash", "expires", "items": [...], "excluded": [...], ...}``, UTC 'Z'."""
    return json.dumps(plan.to_dict(), indent=2, ensure_ascii=False) + "\n"


def _tracks(plan: Plan, step_s: float = 300.0
            ) -> tuple[list[datetime], dict[str, np.ndarray]] | None:
    if not plan.items or not plan.dusk or not plan.dawn or not plan.site:
        return None
    s = plan.site
    site = Site(s["lat_deg"], s["lon_deg"], s.get("height_m", 0.0))
    times = time_grid(plan.dusk, plan.dawn, step_s)
    names = list(dict.fromkeys(it.target for it in plan.items))
    first = {it.target: it for it in plan.items}
    alt, _ = altaz(site, times, [first[n].ra_deg for n in names],
                   [first[n].dec_deg for n in names])
    return to_datetimes(times), {n: alt[i] for i, n in enumerate(names)}


def chart_text(plan: Plan) -> str:
    """The chart's text alternative: for each item, its altitude over its window."""
    if not plan.items:
        return f"Altitude chart for {plan.night}: no targets planned."
    lines = [f"Altitude chart for the night of {plan.night}, time in UTC."]
    for it in plan.items:
        lines.append(f"{it.target}: observed {_hm(it.start)} to {_hm(it.end)}, between "
                     f"{it.min_altitude_deg:.0f}° and {it.max_altitude_deg:.0f}° altitude.")
    return " ".join(lines)


def chart_png(plan: Plan, floor_deg: float = 30.0, ceiling_deg: float = 80.0) -> bytes:
    """An altitude chart of the planned targets from dusk to dawn; the planned windows are
    drawn thick. Empty bytes when nothing is planned."""
    tracks = _tracks(plan)
    if tracks is None:
        return b""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import dates as mdates
    from matplotlib import pyplot as plt

    times, alts = tracks
    fig, ax = plt.subplots(figsize=(9, 5.2), dpi=100)
    try:
        x = np.array([t.replace(tzinfo=None) for t in times], dtype="datetime64[s]")
        for name, alt in alts.items():
            (line,) = ax.plot(x, alt, lw=1, alpha=0.5)
            for it in (i for i in plan.items if i.target == name):
                sel = (x >= np.datetime64(it.start.replace(tzinfo=None), "s")) & \
                      (x <= np.datetime64(it.end.replace(tzinfo=None), "s"))
                ax.plot(x[sel], alt[sel], lw=4, color=line.get_color(),
                        label=f"{name} {_hm(it.start)}-{_hm(it.end)}")
        ax.axhspan(0, floor_deg, color="grey", alpha=0.15, lw=0)
        ax.axhspan(ceiling_deg, 90, color="grey", alpha=0.15, lw=0)
        ax.set_ylim(0, 90)
        ax.set_ylabel("altitude (°)")
        ax.set_xlabel("UTC")
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
        ax.set_title(f"Plan for the night of {plan.night} ({plan.hash})")
        ax.grid(alpha=0.3)
        fig.legend(fontsize=8, loc="lower center", ncol=3, frameon=False)
        fig.subplots_adjust(bottom=0.24)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": "starnode"})
        return buf.getvalue()
    finally:
        plt.close(fig)


def plan_html(plan: Plan, png: bytes | None = None) -> str:
    """A self-contained page: the plan in words, a table, the chart (with its text as alt)."""
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(it.target)}</td><td>{_hm(it.start)}</td><td>{_hm(it.end)}</td>"
        f"<td>{it.exposure_s:g} s</td><td>{it.frames}</td>"
        f"<td>{it.min_altitude_deg:.0f}-{it.max_altitude_deg:.0f}°</td>"
        f"<td>{esc(it.reason)}</td></tr>" for it in plan.items)
    left = "".join(f"<li>{esc(e.target)}: {esc(e.reason)}</li>" for e in plan.excluded)
    img = ""
    if png:
        data = base64.b64encode(png).decode("ascii")
        img = (f'<figure><img src="data:image/png;base64,{data}" alt="{esc(chart_text(plan))}">'
               f"<figcaption>{esc(chart_text(plan))}</figcaption></figure>")
    words = "".join(f"<p>{esc(line)}</p>" for line in plan_text(plan).splitlines())
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f"<title>Plan for {esc(plan.night)}</title></head><body>"
            f"<h1>Plan for the night of {esc(plan.night)}</h1>{words}"
            f"<table><caption>Planned targets (times UTC)</caption><thead><tr>"
            f'<th scope="col">Target</th><th scope="col">Start</th><th scope="col">End</th>'
            f'<th scope="col">Frames of</th><th scope="col">Frames</th>'
            f'<th scope="col">Altitude</th><th scope="col">Why</th></tr></thead>'
            f"<tbody>{rows}</tbody></table>"
            f"<h2>Left out</h2><ul>{left}</ul>{img}</body></html>\n")


def write(path: str | Path, text: str | bytes) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")


