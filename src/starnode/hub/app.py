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

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ValidationError

from .._version import __version__
from .store import HubError, HubStore, Principal
from .wire import SCHEMA_VERSION, SUPPORTED_VERSIONS, Batch, Heartbeat

log = logging.getLogger(__name__)

__all__ = ["RateLimiter", "create_app", "router"]

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
        """Take one request from ``key``'s bucket.

        Parameters
        ----------
        key : int
            The node's id.

        Returns
        -------
        float
            0 when allowed, else the seconds to wait.
        """
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


class _Door:
    """What every request passes: the body size limit, the token, the rate limit, the model."""

    def __init__(self, store: HubStore) -> None:
        self.store = store
        hub = store.cfg.hub
        self.limit = int(float(hub.max_body_kb) * 1024)
        self.per_minute = int(hub.rate_limit_per_minute)
        self.limiter = RateLimiter(self.per_minute)

    async def body(self, request: Request) -> bytes:
        """The request body, refused (413) as soon as it passes the limit."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            raise HubError(f"request body of {declared} bytes is over the limit of "
                           f"{self.limit}", 413)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.limit:
                raise HubError(f"request body is over the limit of {self.limit} bytes", 413)
            chunks.append(chunk)
        return b"".join(chunks)

    def _token(self, request: Request) -> str:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HubError("missing 'Authorization: Bearer <token>' header", 401)
        return token.strip()

    def _admit(self, who: Principal | None) -> Principal:
        if who is None:
            raise HubError("unknown or revoked token", 401)
        if who.role == "node" and who.node_id is not None:
            wait = self.limiter.take(who.node_id)
            if wait > 0:
                raise HubError(f"rate limit of {self.per_minute} requests/min reached; "
                               f"retry in {wait:.1f} s", 429)
        return who

    def principal(self, request: Request) -> Principal:
        """Who sent the request (401 unknown, 429 over the rate limit); blocking."""
        return self._admit(self.store.authenticate(self._token(request)))

    async def aprincipal(self, request: Request) -> Principal:
        """:meth:`principal` without leaving the event loop when the token is cached."""
        token = self._token(request)
        hit = self.store.cached_principal(token)
        if hit is None:
            return self._admit(await run_in_threadpool(self.store.authenticate, token))
        return self._admit(hit[0])

    def admin(self, request: Request) -> Principal:
        """:meth:`principal`, refused (403) unless it is an admin."""
        who = self.principal(request)
        if who.role != "admin":
            raise HubError("this needs an admin token", 403)
        return who


def _parse(raw: bytes, model: Any) -> Any:
    """``raw`` validated as ``model`` by pydantic's own JSON parser (one pass, no dicts)."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if errors and errors[0].get("type") == "json_invalid":
            raise HubError(f"the body is not JSON: {errors[0].get('msg')}", 400) from None
        if any(e.get("loc") == ("schema_version",) for e in errors):
            raise HubError(f"schema_version is not supported by this hub (it knows "
                           f"{sorted(SUPPORTED_VERSIONS)}); nothing stored", 422) from None
        raise


def _door(request: Request) -> _Door:
    door: _Door = request.app.state.door
    return door


router = APIRouter(prefix="/api/v1")


@router.get("/health")
def health() -> dict[str, Any]:
    """Liveness and versions (no token needed)."""
    return {"ok": True, "version": __version__, "schema_version": SCHEMA_VERSION}


@router.get("/whoami")
async def whoami(request: Request) -> dict[str, Any]:
    """The token's owner."""
    who = await _door(request).aprincipal(request)
    return {"role": who.role, "node": who.node, "observer_code": who.observer_code,
            "held": who.held, "schema_version": SCHEMA_VERSION}


@router.post("/measurements")
async def push(request: Request) -> Response:
    """Store a :class:`~.wire.Batch` exactly once; answers per key."""
    door = _door(request)
    who = await door.aprincipal(request)
    raw = await door.body(request)

    def work() -> bytes:
        return door.store.push_json(who, _parse(raw, Batch))
    return Response(await run_in_threadpool(work), media_type="application/json")


@router.post("/heartbeat")
async def heartbeat(request: Request) -> dict[str, Any]:
    """Record a node's :class:`~.wire.Heartbeat`."""
    door = _door(request)
    who = await door.aprincipal(request)
    raw = await door.body(request)

    def work() -> dict[str, Any]:
        door.store.heartbeat(who, _parse(raw, Heartbeat))
        return {"ok": True}
    return await run_in_threadpool(work)


@router.get("/nodes")
def list_nodes(request: Request) -> dict[str, Any]:
    """Every node's state (admin)."""
    door = _door(request)
    door.admin(request)
    return {"nodes": door.store.nodes()}


@router.post("/crosscheck")
def run_crosscheck(request: Request, night: str) -> dict[str, Any]:
    """Cross-validate a night (admin)."""
    from .consensus import crosscheck

    door = _door(request)
    door.admin(request)
    return crosscheck(door.store, _night(night))


@router.get("/targets/{target}/lightcurve")
def curve_json(request: Request, target: str, night: str | None = None,
               band: str | None = None) -> dict[str, Any]:
    """The consensus light curve of a target, with each node's points."""
    from .consensus import lightcurve

    door = _door(request)
    door.principal(request)
    return lightcurve(door.store, target, _night(night) if night else None, band)


@router.get("/targets/{target}/lightcurve.png")
def curve_png(request: Request, target: str, night: str | None = None,
              band: str | None = None) -> Response:
    """The light curve as a PNG."""
    from .consensus import lightcurve, lightcurve_png

    door = _door(request)
    door.principal(request)
    data = lightcurve(door.store, target, _night(night) if night else None, band)
    return Response(lightcurve_png(data), media_type="image/png")


@router.get("/reports/{obscode}/{night}")
def report(request: Request, obscode: str, night: str) -> PlainTextResponse:
    """A member's AAVSO report of a night (admin, or the member's own node)."""
    from .reports import member_report

    door = _door(request)
    who = door.principal(request)
    if who.role != "admin" and (who.observer_code or "").upper() != obscode.upper():
        raise HubError("a node may only fetch its own member's reports", 403)
    return PlainTextResponse(member_report(door.store, obscode, _night(night))["text"])


async def _hub_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HubError)
    resp = _error(exc.status, str(exc))
    if exc.status == 429:
        resp.headers["Retry-After"] = "5"
    return resp


async def _invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ValidationError)
    return _validation(exc)


def create_app(config: Any = None, store: HubStore | None = None) -> FastAPI:
    """The hub's FastAPI application.

    Parameters
    ----------
    config : Config or anything :func:`starnode.config.resolve` accepts, optional
        Opens (and migrates) the store when ``store`` is not given; without either, the file
        named by ``$STARNODE_HUB_CONFIG`` (how ``hub serve`` hands uvicorn's workers it).
    store : HubStore, optional
        An open store to serve.

    Returns
    -------
    FastAPI
        The app (``uvicorn.run(create_app(...))``).
    """
    if store is None:
        store = HubStore(config if config is not None else os.environ.get(CONFIG_ENV))
    app = FastAPI(title="starnode hub", version=__version__,
                  description="Measurements of a network of starnode telescopes: store and "
                  "forward, cross-validation, per-member AAVSO reports.")
    app.state.store = store
    app.state.door = _Door(store)
    app.add_exception_handler(HubError, _hub_error)
    app.add_exception_handler(ValidationError, _invalid)
    app.include_router(router)
    return app


def _night(text: str) -> str:
    """``text`` as an ISO night, or 422."""
    import datetime as dt

    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise HubError(f"night {text!r} must be a date YYYY-MM-DD", 422) from None
