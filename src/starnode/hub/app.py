"""The hub's HTTP API (FastAPI, served by uvicorn; TLS by a reverse proxy in front).

Why the checks are all at the door: a node's request either stores everything it carries or
nothing, with a 4xx that names the problem (401 unknown token, 403 another node's name or an
admin-only call, 408 a body too slow to arrive, 413 too large, 422 a field out of range or
unsafe for a report, a NUL or control character, NaN, a boolean for a number, a record that
breaks a cross-field rule, an unknown schema version, 429 too many requests, from a node or
from an address without a valid token), never a 500; 503 while the database is down. The node
keeps what was refused, with the reason, and never retries it; what was accepted is
acknowledged per key, so a resent batch is harmless.

Tokens come only in the ``Authorization: Bearer`` header (a token in a URL is refused, and
written as ``***`` by the access log) and are compared by their SHA-256 only. Requests without
a valid token are rate-limited per client address (:class:`AddressLimiter`).

Endpoints (``/api/v1``): ``GET health``, ``GET whoami``, ``POST measurements`` (a
:class:`~.wire.Batch`), ``POST heartbeat``, ``GET nodes`` (admin), ``POST crosscheck?night=``
(admin), ``GET targets/{name}/lightcurve[.png]``, ``GET reports/{obscode}/{night}`` (admin or
the member's own node); the network's nights (docs/hub.md): the heartbeat's answer carries the
node's assignment and alerts, ``POST assignments/ack``, ``POST alerts/{id}/ack`` (node),
``POST alerts``, ``GET|POST plan?night=`` (admin), ``POST requests``, ``GET requests/{member}``;
``GET /`` is the hub's page (a member's request form, in plain accessible HTML).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ValidationError

from .._version import __version__
from ..config import ConfigLike
from . import db
from .store import HubError, HubStore, Principal
from .wire import (
    SCHEMA_VERSION,
    SUPPORTED_VERSIONS,
    AlertAck,
    AssignmentAck,
    Batch,
    Heartbeat,
    StarRequest,
)

log = logging.getLogger(__name__)

__all__ = ["AddressLimiter", "RateLimiter", "create_app", "router"]

#: The environment variable through which ``starnode hub serve`` hands uvicorn's workers the
#: configuration file.
CONFIG_ENV = "STARNODE_HUB_CONFIG"
#: The supervisor's process id, handed to the workers (they die with it: :func:`die_with`).
SUPERVISOR_ENV = "STARNODE_HUB_SUPERVISOR"


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


class AddressLimiter:
    """Requests without a valid token, per client address: ``per_minute``, bursts up to the
    same number, for at most ``max_addresses`` addresses (the least recently seen are
    forgotten first, so an attacker changing addresses cannot grow the memory).

    Only failures are taken (:meth:`failed`); :meth:`blocked` asks without taking, before the
    token is looked up, so a flood of random tokens costs no database query.
    """

    def __init__(self, per_minute: int, max_addresses: int = 4096) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self.max_addresses = max_addresses
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _level(self, address: str, now: float) -> float:
        level, last = self._buckets.get(address, (self.capacity, now))
        return min(self.capacity, level + (now - last) * self.rate)

    def blocked(self, address: str) -> float:
        """Seconds ``address`` must wait (0: it may try a token).

        Parameters
        ----------
        address : str
            The client's address.

        Returns
        -------
        float
        """
        now = time.monotonic()
        with self._lock:
            if address not in self._buckets:
                return 0.0
            level = self._level(address, now)
        return 0.0 if level >= 1.0 else (1.0 - level) / self.rate

    def failed(self, address: str) -> None:
        """Count a request of ``address`` without a valid token.

        Parameters
        ----------
        address : str
            The client's address.
        """
        now = time.monotonic()
        with self._lock:
            level = self._level(address, now)
            self._buckets[address] = (max(0.0, level - 1.0), now)
            self._buckets.move_to_end(address)
            while len(self._buckets) > self.max_addresses:
                self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)


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
        self.strangers = AddressLimiter(int(hub.unauthenticated_per_minute))
        #: Hashes of tokens that were valid lately (bounded): never locked out by an address.
        self.known: OrderedDict[str, None] = OrderedDict()
        self._known_lock = threading.Lock()
        self.body_timeout = float(hub.body_timeout)

    async def body(self, request: Request) -> bytes:
        """The request body, refused (413) as soon as it passes the limit, and (408) when it
        has not all arrived within ``hub.body_timeout`` seconds (a slow body must not hold
        a connection)."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            raise HubError(f"request body of {declared} bytes is over the limit of "
                           f"{self.limit}", 413)

        async def read() -> bytes:
            chunks, size = [], 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > self.limit:
                    raise HubError(f"request body is over the limit of {self.limit} bytes",
                                   413)
                chunks.append(chunk)
            return b"".join(chunks)
        try:
            return await asyncio.wait_for(read(), self.body_timeout)
        except TimeoutError:
            raise HubError(f"the request body did not arrive within {self.body_timeout:g} s",
                           408) from None

    @staticmethod
    def _address(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def _stranger(self, request: Request, token: str) -> None:
        """429 when this address sent too many requests without a valid token (a token that
        was valid lately is still looked up: a node behind the same address is not locked
        out)."""
        if db.hash_token(token) in self.known:
            return
        wait = self.strangers.blocked(self._address(request))
        if wait > 0:
            raise HubError(f"too many requests without a valid token from this address; "
                           f"retry in {wait:.0f} s", 429)

    def _remember(self, token: str, who: Principal | None) -> Principal | None:
        if who is not None:
            key = db.hash_token(token)
            with self._known_lock:
                self.known[key] = None
                self.known.move_to_end(key)
                while len(self.known) > 10000:
                    self.known.popitem(last=False)
        return who

    def _unknown(self, request: Request) -> HubError:
        self.strangers.failed(self._address(request))
        return HubError("unknown or revoked token", 401)

    def _token(self, request: Request) -> str:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            self._stranger(request, "")
            self.strangers.failed(self._address(request))
            raise HubError("missing 'Authorization: Bearer <token>' header", 401)
        return token.strip()

    def _admit(self, request: Request, who: Principal | None) -> Principal:
        if who is None:
            raise self._unknown(request)
        if who.role == "node" and who.node_id is not None:
            wait = self.limiter.take(who.node_id)
            if wait > 0:
                raise HubError(f"rate limit of {self.per_minute} requests/min reached; "
                               f"retry in {wait:.1f} s", 429)
        return who

    def principal(self, request: Request) -> Principal:
        """Who sent the request (401 unknown, 429 over the rate limit); blocking."""
        token = self._token(request)
        hit = self.store.cached_principal(token)
        if hit is None:
            self._stranger(request, token)
            return self._admit(request, self._remember(token, self.store.authenticate(token)))
        return self._admit(request, hit[0])

    async def aprincipal(self, request: Request) -> Principal:
        """:meth:`principal` without leaving the event loop when the token is cached."""
        token = self._token(request)
        hit = self.store.cached_principal(token)
        if hit is None:
            self._stranger(request, token)
            who = await run_in_threadpool(self.store.authenticate, token)
            return self._admit(request, self._remember(token, who))
        return self._admit(request, hit[0])

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


def _admin_store(request: Request) -> HubStore:
    """The hub's store, once the request carries an admin token (403 otherwise)."""
    door = _door(request)
    door.admin(request)
    return door.store


router = APIRouter(prefix="/api/v1")


@router.get("/health")
def health(request: Request) -> Response:
    """Liveness, the database, and versions (no token needed); 503 while the database is
    down, so a node waiting for the hub knows when to resume."""
    ok = _door(request).store.ping()
    return JSONResponse({"ok": ok, "database": "ok" if ok else "unavailable",
                         "version": __version__, "schema_version": SCHEMA_VERSION},
                        status_code=200 if ok else 503, headers=None if ok else
                        {"Retry-After": "5"})


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
        from .nightplans import heartbeat_answer

        door.store.heartbeat(who, _parse(raw, Heartbeat))
        return heartbeat_answer(door.store, who)
    return await run_in_threadpool(work)


@router.post("/assignments/ack")
async def assignment_ack(request: Request) -> dict[str, Any]:
    """A node's answer to its assignment (:class:`~.wire.AssignmentAck`)."""
    from .nightplans import ack_assignment

    door = _door(request)
    who = await door.aprincipal(request)
    raw = await door.body(request)
    return await run_in_threadpool(
        lambda: ack_assignment(door.store, who, _parse(raw, AssignmentAck)))


@router.post("/alerts/{alert_id}/ack")
async def alert_ack(request: Request, alert_id: int) -> dict[str, Any]:
    """A node's answer to an alert (:class:`~.wire.AlertAck`): scheduled at T, or refused."""
    from .nightplans import ack_alert

    door = _door(request)
    who = await door.aprincipal(request)
    raw = await door.body(request)
    return await run_in_threadpool(
        lambda: ack_alert(door.store, who, alert_id, _parse(raw, AlertAck)))


@router.post("/alerts")
async def new_alert(request: Request) -> dict[str, Any]:
    """Post an alert (admin): ``target``, ``ra``, ``dec``, optional ``until``, ``note``,
    ``nodes``."""
    door = _door(request)
    who = await door.aprincipal(request)
    if who.role != "admin":
        raise HubError("this needs an admin token", 403)
    raw = await door.body(request)
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise HubError(f"the body is not JSON: {exc}", 400) from None
    return await run_in_threadpool(lambda: _post_alert(door.store, body))


def _post_alert(store: HubStore, body: Any) -> dict[str, Any]:
    from .nightplans import post_alert

    try:
        name = str(body["target"]).strip()
        ra, dec = float(body["ra"]), float(body["dec"])
    except (KeyError, TypeError, ValueError):
        raise HubError("an alert needs target, ra and dec (degrees)", 422) from None
    until = _night(str(body["until"])) if body.get("until") else None
    nodes = body.get("nodes")
    if nodes is not None and not (isinstance(nodes, list)
                                  and all(isinstance(n, str) for n in nodes)):
        raise HubError("nodes must be a list of node names", 422)
    note = body.get("note")
    return post_alert(store, name, ra, dec, until=until,
                      note=str(note)[:500] if note is not None else None, nodes=nodes)


@router.get("/plan")
def get_plan(request: Request, night: str) -> dict[str, Any]:
    """The stored allocation of a night (admin)."""
    from .nightplans import load_plan

    return load_plan(_admin_store(request), _night(night))


@router.post("/plan")
def make_plan(request: Request, night: str) -> dict[str, Any]:
    """Allocate a night now (admin)."""
    from .nightplans import plan_night

    return plan_night(_admin_store(request), _night(night), force=True)


@router.post("/requests")
async def star_request(request: Request) -> dict[str, Any]:
    """A member asks for a star (:class:`~.wire.StarRequest`; admin, or the member's node)."""
    from .requests import add_request

    door = _door(request)
    who = await door.aprincipal(request)
    raw = await door.body(request)
    return await run_in_threadpool(lambda: add_request(door.store, who,
                                                       _parse(raw, StarRequest)))


@router.get("/requests/{member}")
def request_news(request: Request, member: str) -> dict[str, Any]:
    """What became of a member's requests, in words (admin, or the member's node)."""
    from .requests import news

    door = _door(request)
    who = door.principal(request)
    if who.role != "admin" and (who.observer_code or "").upper() != member.upper():
        raise HubError("a node may only read its own member's requests", 403)
    return news(door.store, member)


@router.get("/nodes")
def list_nodes(request: Request) -> dict[str, Any]:
    """Every node's state (admin)."""
    return {"nodes": _admin_store(request).nodes()}


@router.post("/crosscheck")
def run_crosscheck(request: Request, night: str) -> dict[str, Any]:
    """Cross-validate a night (admin)."""
    from .consensus import crosscheck

    return crosscheck(_admin_store(request), _night(night))


@router.get("/targets/{target}/lightcurve")
def curve_json(request: Request, target: str, night: str | None = None,
               band: str | None = None) -> dict[str, Any]:
    """The consensus light curve of a target, with each node's points."""
    from .consensus import lightcurve

    door = _door(request)
    door.principal(request)
    return lightcurve(door.store, _target(target), _night(night) if night else None,
                      _band(band))


@router.get("/targets/{target}/lightcurve.png")
def curve_png(request: Request, target: str, night: str | None = None,
              band: str | None = None) -> Response:
    """The light curve as a PNG."""
    from .consensus import lightcurve, lightcurve_png

    door = _door(request)
    door.principal(request)
    data = lightcurve(door.store, _target(target), _night(night) if night else None,
                      _band(band))
    return Response(lightcurve_png(data), media_type="image/png")


@router.get("/reports/{obscode}/{night}")
def report(request: Request, obscode: str, night: str) -> PlainTextResponse:
    """A member's AAVSO report of a night (admin, or the member's own node).

    A read: it never runs the network-wide cross-check (``POST crosscheck`` or ``starnode hub
    crosscheck`` does); the report is written from the verdicts stored."""
    from .reports import member_report

    door = _door(request)
    who = door.principal(request)
    if who.role != "admin" and (who.observer_code or "").upper() != obscode.upper():
        raise HubError("a node may only fetch its own member's reports", 403)
    return PlainTextResponse(member_report(door.store, _obscode(obscode), _night(night),
                                           check=False)["text"])


async def _hub_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HubError)
    resp = _error(exc.status, str(exc))
    if exc.status in (429, 503):
        resp.headers["Retry-After"] = "5"
    return resp


async def _database_down(_request: Request, exc: Exception) -> JSONResponse:
    """503 (with ``Retry-After``) while the database cannot be reached: a node retries."""
    log.error("hub database unavailable: %s", str(exc).splitlines()[0] if str(exc) else exc)
    resp = _error(503, "the hub's database is unavailable; retry later")
    resp.headers["Retry-After"] = "5"
    return resp


async def _database_refused(_request: Request, exc: Exception) -> JSONResponse:
    """422 for a value the database refuses that the door did not catch (never a 500)."""
    log.warning("hub database refused a value: %s", str(exc).splitlines()[0])
    return _error(422, "a value was refused by the database; nothing stored")


async def _invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ValidationError)
    return _validation(exc)


def create_app(config: ConfigLike = None, store: HubStore | None = None) -> FastAPI:
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
    import sqlalchemy.exc as sa_exc

    quiet_access_log()
    if store is None:
        if os.environ.get(SUPERVISOR_ENV):
            die_with(int(os.environ[SUPERVISOR_ENV]))
        store = HubStore(config if config is not None else os.environ.get(CONFIG_ENV))
    # No /docs, /redoc or /openapi.json: the API is described in docs/hub.md, and a hub on the
    # internet should not hand out its map.
    app = FastAPI(title="starnode hub", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url=None, lifespan=_lifespan)
    app.state.store = store
    app.state.door = _Door(store)
    app.add_exception_handler(HubError, _hub_error)
    app.add_exception_handler(ValidationError, _invalid)
    for exc in (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError):
        app.add_exception_handler(exc, _database_down)
    app.add_exception_handler(sa_exc.DataError, _database_refused)
    app.include_router(router)
    from .page import page_router

    app.include_router(page_router)
    return app


class _NoSecretsInAccessLog(logging.Filter):
    """Redact ``token=`` (and the like) in the request lines uvicorn logs: the hub refuses a
    token in a URL, but the access log would still have kept it."""

    def filter(self, record: logging.LogRecord) -> bool:
        from ..config import redact_url

        if isinstance(record.args, tuple):
            record.args = tuple(redact_url(a) if isinstance(a, str) else a
                                for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact_url(record.msg)
        return True


def quiet_access_log() -> None:
    """Install the access log's redaction (once per process)."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _NoSecretsInAccessLog) for f in logger.filters):
        logger.addFilter(_NoSecretsInAccessLog())


def die_with(parent: int) -> None:
    """Make this process die when ``parent`` (the ``hub serve`` supervisor) dies.

    Linux's ``PR_SET_PDEATHSIG``: a SIGKILLed supervisor cannot stop its uvicorn workers,
    which would go on serving and hold the port, so a restart would fail with "address in
    use". Elsewhere nothing is done. If the parent is gone already, exit now.

    Parameters
    ----------
    parent : int
        The supervisor's process id.
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError) as exc:
        log.warning("cannot tie this worker to its supervisor: %s", exc)
        return
    if os.getppid() != parent:
        os._exit(1)


def _target(text: str) -> str:
    """A target name from a URL, or 422 (no control characters, at most 64 characters)."""
    if len(text) > 64 or not text.isprintable() or not text.strip():
        raise HubError("the target must be a star name of at most 64 printable characters",
                       422)
    return text


def _band(text: str | None) -> str | None:
    """A filter code from a URL, or 422."""
    if text is None:
        return None
    from ..aavso.spec import FILTER_CODES

    if text.strip().upper() not in FILTER_CODES:
        raise HubError(f"{text[:16]!r} is not an AAVSO filter code", 422)
    return text.strip().upper()


def _obscode(text: str) -> str:
    """``text`` as an observer code (letters and digits), or 422."""
    code = text.strip().upper()
    if not (1 <= len(code) <= 16 and code.isascii() and code.isalnum()):
        raise HubError(f"{text[:40]!r} is not an AAVSO observer code (letters and digits)",
                       422)
    return code
@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs the periodic allocation (:func:`.nightplans.auto_plan`) while the app is served:
    in a daemon thread, every ``hub.plan_interval`` seconds, each night is allocated before
    its first dusk and again whenever its inputs change (idempotent: the same inputs write
    nothing)."""
    from .nightplans import auto_plan

    store: HubStore = app.state.store
    interval = float(store.cfg.hub.plan_interval)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                auto_plan(store)
            except Exception:  # logged; the next round tries again
                log.exception("hub: the periodic allocation failed")
            stop.wait(interval)
    if interval > 0:
        threading.Thread(target=loop, name="starnode-hub-planner", daemon=True).start()
    try:
        yield
    finally:
        stop.set()


def _night(text: str) -> str:
    """``text`` as an ISO night, or 422."""
    import datetime as dt

    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise HubError(f"night {text!r} must be a date YYYY-MM-DD", 422) from None
