"""The application and the server of ``starnode serve`` (wiring only; pages in :mod:`.routes`).

Why apart: building the app (static files, templates, the guard, the routes, the error page)
and running it with uvicorn are the two things a test or the command needs; the pages and the
access rule live in their own modules.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from ...config import ConfigLike, resolve
from .auth import install_guard, token_for
from .routes import router

log = logging.getLogger(__name__)

__all__ = ["create_app", "serve"]

HERE = Path(__file__).parent


def create_app(config: ConfigLike, *, token: str | None = None) -> FastAPI:
    """The FastAPI application over a data_dir.

    Parameters
    ----------
    config : Config or anything :func:`starnode.config.resolve` accepts
        The data_dir to show.
    token : str, optional
        Required on every request when set (see :mod:`starnode.morning.web.auth`).

    Returns
    -------
    FastAPI
        Read only: every route is a GET.
    """
    app = FastAPI(title="starnode", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.config = resolve(config)
    templates = app.state.templates = Jinja2Templates(directory=HERE / "templates")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    install_guard(app, token)
    app.include_router(router)

    @app.exception_handler(StarletteHTTPException)
    async def _error_page(request: Request, exc: StarletteHTTPException) -> Response:
        return templates.TemplateResponse(
            request, "error.html", {"request": request, "status": exc.status_code,
                                    "message": exc.detail, "page": "error", "nightq": "",
                                    "targets": [], "quote": quote, "s": None},
            status_code=exc.status_code)

    return app


def serve(config: ConfigLike, host: str = "127.0.0.1", port: int = 8765,
          token: str | None = None, on_start: Callable[[str], None] | None = None) -> None:
    """Run the page with uvicorn until interrupted.

    Parameters
    ----------
    config : Config or anything :func:`starnode.config.resolve` accepts
        The data_dir to show.
    host : str
        The address to bind (loopback by default: no token needed).
    port : int
        The port.
    token : str, optional
        The token; off loopback one is always required (:func:`~.auth.token_for`).
    on_start : callable, optional
        Given the page's address (with the token) once the port is bound, before serving.

    Raises
    ------
    starnode.util.net.ListenError
        The address cannot be listened on (the port is in use...): nothing was printed.
    """
    import uvicorn

    from ...util.net import bind_listen

    cfg = resolve(config)
    token = token_for(host, token)
    app = create_app(cfg, token=token)
    sock = bind_listen(host, port)  # before the address is shown: a busy port is no success
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    log.info("serving %s at %s (read only%s)", cfg.data_dir, url,
             ", token required" if token else "")
    if on_start is not None:
        on_start(url)
    try:
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    finally:
        sock.close()
