"""Who may read the page: nobody needs a login on loopback; elsewhere a token is required.

Why a token off loopback: the page shows the observer's frames, data folder and report files;
bound to a LAN address anyone on that network could read them. The token is given once as
``?token=...`` (then kept in an http-only, same-site cookie) or as ``Authorization: Bearer``,
and compared in constant time. Every method but GET and HEAD is refused: the page is read only
(HEAD answers as GET does, without the body).

Why the ``Host`` check without a token: a page on loopback with no token could be read by any
web site the observer visits, through DNS rebinding (a name of the attacker's that resolves to
127.0.0.1). Without a token only loopback names are answered (``localhost``, ``127.x.x.x``,
``[::1]``); with a token any name may be used (the token is the protection).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

__all__ = ["COOKIE", "TOKEN_ENV", "install_guard", "is_loopback", "loopback_host",
           "token_for"]

TOKEN_ENV = "STARNODE_WEB_TOKEN"
COOKIE = "starnode_token"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address.

    Parameters
    ----------
    host : str
        A host name or IP address (IPv6 may be in brackets).

    Returns
    -------
    bool
        True for 127.0.0.0/8, ::1 and ``localhost``.
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def loopback_host(header: str) -> bool:
    """Whether a ``Host`` header names this machine's loopback (any port).

    Parameters
    ----------
    header : str
        The request's ``Host`` header (``name``, ``name:port``, ``[v6]:port``).

    Returns
    -------
    bool
    """
    host = header.strip().lower()
    if host.startswith("["):
        host = host[1:host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".") in ("localhost", "localhost.localdomain") or is_loopback(host)


def token_for(host: str, token: str | None) -> str | None:
    """The token a server bound to ``host`` requires.

    Parameters
    ----------
    host : str
        The address the server binds.
    token : str or None
        The one asked for (``--token``).

    Returns
    -------
    str or None
        None on loopback unless one was asked for; elsewhere the one asked for, else
        ``$STARNODE_WEB_TOKEN``, else a new random one.
    """
    if is_loopback(host):
        return token or None
    return token or os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(18)


def _given(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.query_params.get("token") or request.cookies.get(COOKIE) or ""


def install_guard(app: FastAPI, token: str | None) -> None:
    """Refuse writes, and every request without ``token`` when one is set.

    Parameters
    ----------
    app : FastAPI
        The application.
    token : str or None
        The token required (None: none needed).
    """
    Next = Callable[[Request], Awaitable[Response]]

    async def _answer(request: Request, call_next: Next) -> Response:
        if request.method != "HEAD":
            return await call_next(request)
        request.scope["method"] = "GET"  # HEAD is GET without the body
        response = await call_next(request)
        async for _chunk in response.body_iterator:  # type: ignore[attr-defined]
            pass
        return Response(status_code=response.status_code, headers=dict(response.headers))

    @app.middleware("http")
    async def _guard(request: Request, call_next: Next) -> Response:
        if request.method not in ("GET", "HEAD"):
            return PlainTextResponse("read only", status_code=405)
        if not token:
            if not loopback_host(request.headers.get("host", "")):
                return PlainTextResponse("this page answers only to localhost, 127.0.0.1 or "
                                         "[::1] (a guard against DNS rebinding); to serve it "
                                         "under another name, give it a token", status_code=421)
            return await _answer(request, call_next)
        if not hmac.compare_digest(_given(request).encode(), token.encode()):
            return PlainTextResponse("a token is needed: open the address printed by "
                                     "'starnode serve' (it ends in ?token=...)",
                                     status_code=401)
        response = await _answer(request, call_next)
        if request.query_params.get("token"):
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return response
