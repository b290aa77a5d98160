"""The hub's HTTP API (FastAPI, served by uvicorn; TLS by a reverse proxy in front).

Why the checks are all at the door: a node's request either stores everything it carries or
nothing, with a 4xx that names the problem (401 unknown token, 403 another node's name or an
admin-only call, 413 too large, 422 a field out of range or unsafe for a report, an unknown
schema version, 429 too many requests). The node keeps what was refused, with the reason, and
never retries it; what was accepted is acknowledged per key, so a resent batch is harmless.

Tokens come only in the ``Authorization: Bearer`` header (never in a URL, so never in an access
log) and are compared by their SHA-256 only.

Endpoints (``/api/v1``): ``GET health``, ``GET whoami``, ``POST measurements`` (a
:class:`~.wire.Batch`), ``POST heartbeat``, ``GET nodes`` (admin), ``POST crosscheck?night=``
(admin), ``GET targets/{name}/lightcurve[.png]``, ``GET reports/{obscode}/{night}`` (admin or
the member's own node).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ValidationError

from .. import __version__
from .store import HubError, HubStore, Principal
from .wire import SCHEMA_VERSION, SUPPORTED_VERSIONS, Batch, Heartbeat

log = logging.getLogger(__name__)

__all__ = ["RateLimiter", "create_app"]

#: The environment variable through which ``starnode hub serve`` hands uvicorn's workers the
#: configuration file.
CONFIG_ENV = "STARNODE_HUB_CONFIG"


class RateLimiter:
    """A token bucket per node: ``per_minute`` requests, bursts up to the same number."""

    def __init__(self, per_minute: int) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self._buckets: dict[int, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: int) -> float:
        """0 when allowed, else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            level, last = self._buckets.get(key, (self.capacity, now))
            level = min(self.capacity, level + (now - last) * self.rate)
            if level >= 1.0:
                self._buckets[key] = (level - 1.0, now)
                return 0.0
            self._buckets[key] = (level, now)
            return (1.0 - level) / self.rate


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": message, **extra}, status_code=status)


def _validation(exc: ValidationError) -> JSONResponse:
    errors = []
    rejected: dict[int, str] = {}
    for e in exc.errors(include_url=False, include_input=False):
        loc = [str(x) for x in e.get("loc", ())]
        msg = str(e.get("msg", "invalid"))
        errors.append({"loc": loc, "msg": msg})
        if len(loc) >= 2 and loc[0] == "measurements" and loc[1].isdigit():
            rejected.setdefault(int(loc[1]), f"{'.'.join(loc[2:]) or 'record'}: {msg}")
    first = errors[0] if errors else {"loc": [], "msg": "invalid"}
    return _error(422, f"invalid request, nothing stored: {'.'.join(first['loc'])}: "
                  f"{first['msg']}", errors=errors[:50],
                  rejected={str(k): v for k, v in rejected.items()})


def create_app(config: Any = None, store: HubStore | None = None) -> FastAPI:
    """The FastAPI application over ``store`` (or one opened, and migrated, from ``config``;
    without either, from the file named by ``$STARNODE_HUB_CONFIG``)."""
    if store is None:
        store = HubStore(config if config is not None else os.environ.get(CONFIG_ENV))
    hub = store.cfg.hub
    limit = int(float(hub.max_body_kb) * 1024)
    limiter = RateLimiter(int(hub.rate_limit_per_minute))
    app = FastAPI(title="starnode hub", version=__version__,
                  description="Measurements of a network of starnode telescopes: store and "
                  "forward, cross-validation, per-member AAVSO reports.")
    app.state.store = store

    async def body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise HubError(f"request body of {declared} bytes is over the limit of {limit}",
                           413)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HubError(f"request body is over the limit of {limit} bytes", 413)
            chunks.append(chunk)
        return b"".join(chunks)

    def principal(request: Request) -> Principal:
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HubError("missing 'Authorization: Bearer <token>' header", 401)
        who = store.authenticate(token.strip())
        if who is None:
            raise HubError("unknown or revoked token", 401)
        if who.role == "node" and who.node_id is not None:
            wait = limiter.take(who.node_id)
            if wait > 0:
                raise HubError(f"rate limit of {hub.rate_limit_per_minute} requests/min "
                               f"reached; retry in {wait:.1f} s", 429)
        return who

    def admin(request: Request) -> Principal:
        who = principal(request)
        if who.role != "admin":
            raise HubError("this needs an admin token", 403)
        return who

    @app.exception_handler(HubError)
    async def _hub_error(_request: Request, exc: HubError) -> JSONResponse:
        headers = {}
        if exc.status == 429:
            headers["Retry-After"] = "5"
        resp = _error(exc.status, str(exc))
        resp.headers.update(headers)
        return resp

    @app.exception_handler(ValidationError)
    async def _invalid(_request: Request, exc: ValidationError) -> JSONResponse:
        return _validation(exc)

    def parse(raw: bytes, model: Any) -> Any:
        try:  # pydantic's own JSON parser: one pass, no intermediate dicts
            return model.model_validate_json(raw)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False)
            if errors and errors[0].get("type") == "json_invalid":
                raise HubError(f"the body is not JSON: {errors[0].get('msg')}", 400) from None
            if any(e.get("loc") == ("schema_version",) for e in errors):
                raise HubError(f"schema_version is not supported by this hub (it knows "
                               f"{sorted(SUPPORTED_VERSIONS)}); nothing stored", 422) from None
            raise

    @app.get("/api/v1/health")
    def health() -> dict[str, Any]:
        return {"ok": True, "version": __version__, "schema_version": SCHEMA_VERSION}

    @app.get("/api/v1/whoami")
    def whoami(request: Request) -> dict[str, Any]:
        who = principal(request)
        return {"role": who.role, "node": who.node, "observer_code": who.observer_code,
                "held": who.held, "schema_version": SCHEMA_VERSION}

    @app.post("/api/v1/measurements")
    async def push(request: Request) -> dict[str, Any]:
        who = await run_in_threadpool(principal, request)
        raw = await body(request)

        def work() -> dict[str, Any]:
            return store.push(who, parse(raw, Batch))
        return await run_in_threadpool(work)

    @app.post("/api/v1/heartbeat")
    async def heartbeat(request: Request) -> dict[str, Any]:
        who = await run_in_threadpool(principal, request)
        raw = await body(request)

        def work() -> dict[str, Any]:
            store.heartbeat(who, parse(raw, Heartbeat))
            return {"ok": True}
        return await run_in_threadpool(work)

    @app.get("/api/v1/nodes")
    def list_nodes(request: Request) -> dict[str, Any]:
        admin(request)
        return {"nodes": store.nodes()}

    @app.post("/api/v1/crosscheck")
    def run_crosscheck(request: Request, night: str) -> dict[str, Any]:
        from .consensus import crosscheck

        admin(request)
        return crosscheck(store, _night(night))

    @app.get("/api/v1/targets/{target}/lightcurve")
    def curve_json(request: Request, target: str, night: str | None = None,
                   band: str | None = None) -> dict[str, Any]:
        from .consensus import lightcurve

        principal(request)
        return lightcurve(store, target, _night(night) if night else None, band)

    @app.get("/api/v1/targets/{target}/lightcurve.png")
    def curve_png(request: Request, target: str, night: str | None = None,
                  band: str | None = None) -> Response:
        from .consensus import lightcurve, lightcurve_png

        principal(request)
        data = lightcurve(store, target, _night(night) if night else None, band)
        return Response(lightcurve_png(data), media_type="image/png")

    @app.get("/api/v1/reports/{obscode}/{night}")
    def report(request: Request, obscode: str, night: str) -> PlainTextResponse:
        from .reports import member_report

        who = principal(request)
        if who.role != "admin" and (who.observer_code or "").upper() != obscode.upper():
            raise HubError("a node may only fetch its own member's reports", 403)
        return PlainTextResponse(member_report(store, obscode, _night(night))["text"])

    return app


def _night(text: str) -> str:
    import datetime as dt

    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise HubError(f"night {text!r} must be a date YYYY-MM-DD", 422) from None
