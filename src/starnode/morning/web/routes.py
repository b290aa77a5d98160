"""The page's routes: tonight, the frames, one target (PNG, table, sound), summary, outbox.

Why server-rendered: a page that is plain HTML works with every screen reader, with the
keyboard alone, at 200 % zoom and in forced colours, without JavaScript. Every route is a GET
and reads the ledger only through :func:`starnode.morning.summary.load_snapshot`; the PNG and WAV it
serves are derived files, drawn again when the ledger is newer than them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, PlainTextResponse, Response
from fastapi.templating import Jinja2Templates

from ...config import Config
from ..summary import (
    REASON_WORDS,
    NightSummary,
    Snapshot,
    TargetNight,
    build_night,
    frame_target,
    load_snapshot,
    night_frames,
    norm_name,
    render_html,
    render_text,
    sound_legend,
)
from ..summary.words import utc

__all__ = ["router"]

router = APIRouter()

_STATE_WORDS = {"measured": "measured, not reported", "reported": "measured and reported",
                "skipped": "skipped", "failed": "failed", "pending": "waiting",
                "processing": "being measured"}
#: Quality in words with a mark, never by colour alone.
_QUALITY_MARK = {"good": "✓ good", "acceptable": "~ acceptable", "poor": "✗ poor"}


def _cfg(request: Request) -> Config:
    cfg: Config = request.app.state.config
    return cfg


def _templates(request: Request) -> Jinja2Templates:
    t: Jinja2Templates = request.app.state.templates
    return t


def _night(cfg: Config, snap: Snapshot, night: str | None, target: str | None = None
           ) -> NightSummary:
    q = cfg.quality
    return build_night(snap, night, target, good_check=float(q.good_max_check_deviation),
                       acceptable_check=float(q.acceptable_max_check_deviation))


def _utc(jd: float | None, scale: str = "UTC") -> str:
    """The time of a JD (UTC) as a date and clock time; an HJD is labelled HJD."""
    return "" if jd is None else utc(jd, scale, date=True)


def _why(category: str | None, reason: str | None) -> str:
    words = REASON_WORDS.get(category or "")
    return words[0] if words else (reason or "")


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


def _ledger_mtime(cfg: Config) -> float:
    newest = 0.0
    for suffix in ("", "-wal"):
        p = Path(str(cfg.db_path) + suffix)
        if p.exists():
            newest = max(newest, p.stat().st_mtime)
    return newest


def _stale(path: Path, cfg: Config) -> bool:
    return not path.exists() or path.stat().st_mtime < _ledger_mtime(cfg)


def context(request: Request, night: str | None, page: str) -> dict[str, Any]:
    """What every page's template gets (the night's model, the snapshot, the nav).

    Parameters
    ----------
    request : Request
        The request.
    night : str or None
        ISO date asked for (default: the latest night).
    page : str
        Which page (for ``aria-current`` in the navigation).

    Returns
    -------
    dict
        The template context.

    Raises
    ------
    HTTPException
        404 for a night without frames.
    """
    cfg = _cfg(request)
    snap = load_snapshot(cfg)
    s = _night(cfg, snap, night)
    if night is not None and night not in s.nights:
        raise HTTPException(404, f"no frames on the night of {night}")
    return {"request": request, "s": s, "snap": snap, "page": page,
            "nightq": f"?night={s.night}" if s.night else "",
            "targets": [t for t in s.targets if t.points], "quote": quote}


def _find_target(ctx: dict[str, Any], name: str) -> TargetNight:
    t = next((t for t in ctx["s"].targets if norm_name(t.name) == norm_name(name)), None)
    if t is None or not t.points:
        raise HTTPException(404, f"no measurements of {name} on this night")
    return t


@router.get("/")
def index(request: Request, night: str | None = None) -> Response:
    """Tonight: the status counts, the summary, the light curves and the report files."""
    ctx = context(request, night, "index")
    s = ctx["s"]
    outbox = [o for o in ctx["snap"].outbox if o.get("night") == s.night and o.get("exists")]
    counts: dict[str, int] = {}
    seen: set[str] = set()
    for f in night_frames(ctx["snap"], s.night):
        if f.key and f.state in ("measured", "reported"):
            if f.key in seen:  # a copy of a frame already counted (a night copied twice)
                continue
            seen.add(f.key)
        counts[f.state] = counts.get(f.state, 0) + 1
    from ...telescope.status import telescope_status

    ctx.update(summary_html=render_html(s, level=3), outbox=outbox,
               telescope=telescope_status(_cfg(request)),
               counts=[(_STATE_WORDS.get(k, k), n) for k, n in counts.items()],
               outbox_name=lambda o: Path(str(o["path"])).name)
    return _templates(request).TemplateResponse(request, "index.html", ctx)


def _frame_row(f: Any, known: dict[str, str]) -> dict[str, str]:
    refused = f.state in ("skipped", "failed")
    return {"name": f.name, "target": frame_target(f, known) or "unknown",
            "state": _STATE_WORDS.get(f.state, f.state),
            "time": _utc(f.jd) if f.jd is not None else _utc(f.hjd, "HJD"),
            "magnitude": "" if f.magnitude is None else f"{f.magnitude:.3f}",
            "quality": _QUALITY_MARK.get(f.quality or "", ""),
            "why": _why(f.category, f.reason) if refused else "",
            "detail": f.reason or (f.submission_message if f.state == "measured" else "") or ""}


@router.get("/frames")
def frames(request: Request, night: str | None = None) -> Response:
    """Every frame of the night, with the reason for each one skipped."""
    ctx = context(request, night, "frames")
    snap = ctx["snap"]
    known = {norm_name(f.target): f.target for f in snap.frames if f.target}
    ctx.update(rows=[_frame_row(f, known) for f in night_frames(snap, ctx["s"].night)])
    return _templates(request).TemplateResponse(request, "frames.html", ctx)


@router.get("/target/{name:path}/lightcurve.png")
def lightcurve_png(request: Request, name: str, night: str | None = None) -> Response:
    """The light-curve plot (drawn again when the ledger is newer)."""
    from ..lightcurve import plot_lightcurve

    cfg = _cfg(request)
    t = _find_target(context(request, night, "png"), name)
    out = cfg.data_dir / "lightcurves" / f"{_safe(t.name)}.png"
    if _stale(out, cfg):
        plot_lightcurve(cfg, t.name, out)
    return FileResponse(out, media_type="image/png")


@router.get("/target/{name:path}/sound.wav")
def sound(request: Request, name: str, night: str | None = None) -> Response:
    """The night's light curve as sound (written again when the ledger is newer)."""
    from ..sonify import sonify_night

    cfg = _cfg(request)
    ctx = context(request, night, "wav")
    t = _find_target(ctx, name)
    out = cfg.data_dir / "lightcurves" / f"{_safe(t.name)}_{ctx['s'].night}.wav"
    if _stale(out, cfg):
        sonify_night(cfg, t.name, out, night=ctx["s"].night)
    return FileResponse(out, media_type="audio/wav", filename=out.name)


# A star name may hold a '/' (``{name:path}``); this route comes after the PNG and the sound,
# so ".../lightcurve.png" is never read as part of a name.
@router.get("/target/{name:path}")
def target(request: Request, name: str, night: str | None = None) -> Response:
    """One target: the light curve with its text alternative, the data table, the sound."""
    ctx = context(request, night, "target")
    t = _find_target(ctx, name)
    pts = t.points
    hours = (pts[-1].jd - pts[0].jd) * 24.0
    alt = (f"Light curve of {t.name} on the night of {ctx['s'].night}: {len(pts)} "
           f"measurement(s) over {hours:.1f} hours, magnitude {pts[0].magnitude:.2f} at the "
           f"start and {pts[-1].magnitude:.2f} at the end (brighter is higher). The data are "
           "in the table below.")
    rows = [{"time": _utc(p.jd, p.scale), "magnitude": f"{p.magnitude:.3f}",
             "error": f"{p.uncertainty:.3f}",
             "quality": _QUALITY_MARK.get(p.quality, p.quality),
             "reported": "yes" if p.reported else "no"} for p in pts]
    section = render_html(_night(_cfg(request), ctx["snap"], ctx["s"].night, t.name), level=3,
                          legend=False)  # the legend stands by the sound
    ctx.update(t=t, alt=alt, rows=rows, summary_html=section, legend=sound_legend(),
               current=t.name)
    return _templates(request).TemplateResponse(request, "target.html", ctx)


@router.get("/summary.txt")
def summary_txt(request: Request, night: str | None = None) -> Response:
    """The summary as plain text."""
    cfg = _cfg(request)
    return PlainTextResponse(render_text(_night(cfg, load_snapshot(cfg), night)))


def _inside(path: Path, root: Path) -> bool:
    """A regular file (not a symbolic link) that really lies inside ``root``: a link planted in
    the outbox must not serve /etc/passwd."""
    try:
        return (not path.is_symlink() and path.is_file()
                and path.resolve(strict=True).is_relative_to(root))
    except OSError:
        return False


@router.get("/outbox/{night}/{filename}")
def outbox_file(request: Request, night: str, filename: str) -> Response:
    """A report file of the outbox (only the files the outbox lists, never a free path)."""
    from ...aavso.outbox import outbox_dir

    root = outbox_dir(_cfg(request)).resolve()
    for o in load_snapshot(_cfg(request)).outbox:
        p = Path(str(o["path"]))
        if o.get("night") == night and p.name == filename and _inside(p, root):
            return FileResponse(p, media_type="text/plain", filename=p.name)
    raise HTTPException(404, f"no outbox file {filename} for the night of {night}")
