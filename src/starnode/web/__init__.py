"""``starnode serve``: the morning after, as a small local web page.

Why: the terminal and a PNG serve only some observers. This page gives everyone -- screen
reader, keyboard only, 200 % zoom, high-contrast mode -- tonight's status, the frames and why
some were skipped, each target's light curve (the PNG with a real text alternative, the data as
a table, the sound), the plain-language summary and the outbox files to download.

Server-rendered HTML (FastAPI + Jinja2, the hub's framework), one static CSS file, no
JavaScript. Read only: every route is a GET; nothing on the page changes the ledger or the
outbox (the PNG and WAV it serves are derived files, drawn again when the ledger changes).
On loopback (the default, 127.0.0.1) no login is needed; bound to any other address it asks for
a token (``--token`` or ``$STARNODE_WEB_TOKEN``, else a random one printed at start), given
once as ``?token=...`` (then kept in a cookie) or as ``Authorization: Bearer ...``.

All reads of the ledger go through :func:`starnode.summary.load_snapshot`.
"""

from __future__ import annotations

import datetime as _dt
import hmac
import ipaddress
import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..config import Config, resolve
from ..summary import (
    REASON_WORDS,
    Snapshot,
    build_night,
    frame_target,
    load_snapshot,
    night_frames,
    render_html,
    render_text,
    sound_legend,
)

log = logging.getLogger(__name__)

__all__ = ["create_app", "is_loopback", "serve"]

HERE = Path(__file__).parent
TOKEN_ENV = "STARNODE_WEB_TOKEN"
_COOKIE = "starnode_token"

_STATE_WORDS = {"measured": "measured, not reported", "reported": "measured and reported",
                "skipped": "skipped", "failed": "failed", "pending": "waiting",
                "processing": "being measured"}
_QUALITY_MARK = {"good": "✓ good", "acceptable": "~ acceptable", "poor": "✗ poor"}


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _utc(jd: float | None) -> str:
    if jd is None:
        return ""
    t = _dt.datetime.fromtimestamp((jd - 2440587.5) * 86400.0, _dt.UTC)
    return f"{t:%Y-%m-%d %H:%M} UTC"


def _why(category: str | None, reason: str | None) -> str:
    words = REASON_WORDS.get(category or "")
    return words[0] if words else (reason or "")


def create_app(config: Config | Any, *, token: str | None = None) -> FastAPI:
    """The FastAPI application over ``config``'s data_dir (``token``: required when set)."""
    cfg = resolve(config)
    app = FastAPI(title="starnode", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")

    @app.middleware("http")
    async def _guard(request: Request, call_next: Any) -> Any:
        if request.method not in ("GET", "HEAD"):
            return PlainTextResponse("read only", status_code=405)
        if token:
            given = request.query_params.get("token") or request.cookies.get(_COOKIE) or ""
            auth = request.headers.get("authorization", "")
            if auth.lower().startswith("bearer "):
                given = auth[7:].strip()
            if not hmac.compare_digest(given.encode(), token.encode()):
                return PlainTextResponse("a token is needed: open the address printed by "
                                         "'starnode serve' (it ends in ?token=...)",
                                         status_code=401)
            response = await call_next(request)
            if request.query_params.get("token"):
                response.set_cookie(_COOKIE, token, httponly=True, samesite="strict")
            return response
        return await call_next(request)

    def snapshot() -> Snapshot:
        return load_snapshot(cfg)

    def context(request: Request, night: str | None, page: str) -> dict[str, Any]:
        snap = snapshot()
        q = cfg.quality
        s = build_night(snap, night, good_check=float(q.good_max_check_deviation),
                        acceptable_check=float(q.acceptable_max_check_deviation))
        if night is not None and night not in s.nights:
            raise HTTPException(404, f"no frames on the night of {night}")
        return {"request": request, "s": s, "snap": snap, "page": page,
                "nightq": f"?night={s.night}" if s.night else "",
                "targets": [t for t in s.targets if t.points], "quote": quote}

    @app.get("/")
    def index(request: Request, night: str | None = None) -> Response:
        ctx = context(request, night, "index")
        s = ctx["s"]
        outbox = [o for o in ctx["snap"].outbox if o.get("night") == s.night and o.get("exists")]
        counts: dict[str, int] = {}
        for f in night_frames(ctx["snap"], s.night):
            counts[f.state] = counts.get(f.state, 0) + 1
        ctx.update(summary_html=render_html(s, level=3), outbox=outbox,
                   counts=[(_STATE_WORDS.get(k, k), n) for k, n in counts.items()],
                   outbox_name=lambda o: Path(str(o["path"])).name)
        return templates.TemplateResponse(request, "index.html", ctx)

    @app.get("/frames")
    def frames(request: Request, night: str | None = None) -> Response:
        ctx = context(request, night, "frames")
        snap = ctx["snap"]
        known = {f.target.upper(): f.target for f in snap.frames if f.target}
        rows = [{"name": f.name, "target": frame_target(f, known) or "unknown",
                 "state": _STATE_WORDS.get(f.state, f.state), "time": _utc(f.jd),
                 "magnitude": "" if f.magnitude is None else f"{f.magnitude:.3f}",
                 "quality": _QUALITY_MARK.get(f.quality or "", ""),
                 "why": _why(f.category, f.reason) if f.state in ("skipped", "failed") else "",
                 "detail": f.reason or (f.submission_message if f.state == "measured" else "")
                 or ""} for f in night_frames(snap, ctx["s"].night)]
        ctx.update(rows=rows)
        return templates.TemplateResponse(request, "frames.html", ctx)

    def find_target(ctx: dict[str, Any], name: str) -> Any:
        t = next((t for t in ctx["s"].targets if t.name.lower() == name.lower()), None)
        if t is None or not t.points:
            raise HTTPException(404, f"no measurements of {name} on this night")
        return t

    @app.get("/target/{name}")
    def target(request: Request, name: str, night: str | None = None) -> Response:
        ctx = context(request, night, "target")
        t = find_target(ctx, name)
        pts = t.points
        first, last = pts[0], pts[-1]
        hours = (last.jd - first.jd) * 24.0
        alt = (f"Light curve of {t.name} on the night of {ctx['s'].night}: {len(pts)} "
               f"measurement(s) over {hours:.1f} hours, magnitude {first.magnitude:.2f} at the "
               f"start and {last.magnitude:.2f} at the end (brighter is higher). The data are "
               "in the table below.")
        rows = [{"time": _utc(p.jd), "magnitude": f"{p.magnitude:.3f}",
                 "error": f"{p.uncertainty:.3f}", "quality": _QUALITY_MARK.get(p.quality,
                                                                              p.quality),
                 "reported": "yes" if p.reported else "no"} for p in pts]
        section = render_html(build_night(ctx["snap"], ctx["s"].night, t.name), level=3,
                              legend=False)  # the legend stands by the sound
        ctx.update(t=t, alt=alt, rows=rows, summary_html=section, legend=sound_legend(),
                   current=t.name)
        return templates.TemplateResponse(request, "target.html", ctx)

    @app.get("/target/{name}/lightcurve.png")
    def lightcurve_png(request: Request, name: str, night: str | None = None) -> Response:
        from ..lightcurve import plot_lightcurve

        t = find_target(context(request, night, "png"), name)
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in t.name)
        out = cfg.data_dir / "lightcurves" / f"{safe}.png"
        if not out.exists() or out.stat().st_mtime < _ledger_mtime(cfg):
            plot_lightcurve(cfg, t.name, out)
        return FileResponse(out, media_type="image/png")

    @app.get("/target/{name}/sound.wav")
    def sound(request: Request, name: str, night: str | None = None) -> Response:
        from ..sonify import sonify_night

        ctx = context(request, night, "wav")
        t = find_target(ctx, name)
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in t.name)
        out = cfg.data_dir / "lightcurves" / f"{safe}_{ctx['s'].night}.wav"
        if not out.exists() or out.stat().st_mtime < _ledger_mtime(cfg):
            sonify_night(cfg, t.name, out, night=ctx["s"].night)
        return FileResponse(out, media_type="audio/wav", filename=out.name)

    @app.get("/summary.txt")
    def summary_txt(night: str | None = None) -> Response:
        q = cfg.quality
        s = build_night(snapshot(), night, good_check=float(q.good_max_check_deviation),
                        acceptable_check=float(q.acceptable_max_check_deviation))
        return PlainTextResponse(render_text(s))

    @app.get("/outbox/{night}/{filename}")
    def outbox_file(night: str, filename: str) -> Response:
        for o in snapshot().outbox:  # only the files the outbox lists, never a free path
            p = Path(str(o["path"]))
            if o.get("night") == night and p.name == filename and p.is_file():
                return FileResponse(p, media_type="text/plain", filename=p.name)
        raise HTTPException(404, f"no outbox file {filename} for the night of {night}")

    @app.exception_handler(StarletteHTTPException)
    async def _not_found(request: Request, exc: StarletteHTTPException) -> Response:
        return templates.TemplateResponse(
            request, "error.html", {"request": request, "status": exc.status_code,
                                    "message": exc.detail, "page": "error", "nightq": "",
                                    "targets": [], "quote": quote, "s": None},
            status_code=exc.status_code)

    return app


def _ledger_mtime(cfg: Config) -> float:
    newest = 0.0
    for suffix in ("", "-wal"):
        p = Path(str(cfg.db_path) + suffix)
        if p.exists():
            newest = max(newest, p.stat().st_mtime)
    return newest


def serve(config: Config | Any, host: str = "127.0.0.1", port: int = 8765,
          token: str | None = None, on_start: Callable[[str], None] | None = None) -> None:
    """Run the page until interrupted (uvicorn). A token is required off loopback;
    ``on_start`` is given the page's address (with the token) before serving."""
    import uvicorn

    cfg = resolve(config)
    if not is_loopback(host):
        token = token or os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(18)
    else:
        token = token or None
    app = create_app(cfg, token=token)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    log.info("serving %s at %s (read only%s)", cfg.data_dir, url,
             ", token required" if token else "")
    if on_start is not None:
        on_start(url)
    uvicorn.run(app, host=host, port=port, log_level="warning")
