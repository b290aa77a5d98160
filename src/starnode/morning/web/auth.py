"""Who may read the page: nobody needs a login on loopback; elsewhere a token is required.

Why a token off loopback: the page shows the observer's frames, data folder and report files;
bound to a LAN address anyone on that network could read them. The token is given once as
``?token=...`` (then kept in an http-only, same-site cookie) or as ``Authorization: Bearer``,
and compared in constant time. Every method but GET and HEAD is refused: the page is read only.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

__all__ = ["COOKIE", "TOKEN_ENV", "install_guard", "is_loopback", "token_for"]

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

    @app.middleware("http")
    async def _guard(request: Request, call_next: Next) -> Response:
        if request.method not in ("GET", "HEAD"):
            return PlainTextResponse("read only", status_code=405)
        if not token:
            return await call_next(request)
        if not hmac.compare_digest(_given(request).encode(), token.encode()):
            return PlainTextResponse("a token is needed: open the address printed by "
                                     "'starnode serve' (it ends in ?token=...)",
                                     status_code=401)
        response = await call_next(request)
        if request.query_params.get("token"):
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return response
