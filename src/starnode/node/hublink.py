"""The node's link to the hub: what went wrong, whether it is permanent, and the doctor's check.

Why apart from the forwarder: ``starnode status`` and ``starnode doctor`` run in other
processes than the forwarder thread. The forwarder records the link's state (reachable, token
refused, hub down) in a small JSON file beside the node's database each time it changes, so
``status`` (and ``--json``) can say "the hub refused the token: permanent" instead of only
"N queued"; ``doctor`` asks the hub itself (reachable, token valid, schema version accepted).

A hub answer is classified by :func:`classify`: 401 and 403 are permanent (a wrong or revoked
token does not heal by retrying); 408, 429 and 5xx are temporary (``Retry-After`` honoured);
any other 4xx refuses the records themselves (the forwarder sets them aside with the reason).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Config

if TYPE_CHECKING:
    from ..diagnostics import Check

log = logging.getLogger(__name__)

__all__ = ["LINK_FILE", "OK", "REFUSED", "TEMPORARY", "UNREACHABLE", "classify", "health",
           "read_link", "retry_after", "write_link"]

TOKEN_ENV = "STARNODE_HUB_TOKEN"
#: The link file's name, beside the node's database.
LINK_FILE = "hub-link.json"
#: Link states.
OK, UNREACHABLE, REFUSED, TEMPORARY = "ok", "unreachable", "token refused", "hub error"
#: What an answer means for the forwarder.
SENT, PERMANENT_LINK, RETRY, REFUSE_RECORDS = "sent", "permanent", "retry", "refuse"


def classify(status: int) -> str:
    """What a hub answer means.

    Parameters
    ----------
    status : int
        The HTTP status.

    Returns
    -------
    str
        ``sent`` (2xx), ``permanent`` (401, 403: the token; nothing heals by retrying),
        ``retry`` (408, 429, 5xx and anything unknown: try again later) or ``refuse`` (any
        other 4xx: the records themselves are refused for good).
    """
    if 200 <= status < 300:
        return SENT
    if status in (401, 403):
        return PERMANENT_LINK
    if status in (408, 429) or status >= 500 or status < 400:
        return RETRY
    return REFUSE_RECORDS


def retry_after(headers: Any, default: float | None = None) -> float | None:
    """A ``Retry-After`` header in seconds (delta-seconds form), else ``default``.

    Parameters
    ----------
    headers : Mapping
        The response's headers.
    default : float, optional
        When the header is missing or not a number.

    Returns
    -------
    float or None
    """
    value = headers.get("retry-after") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else default
    except ValueError:
        return default


def link_path(cfg: Config) -> Path:
    """Where the link state of the node of ``cfg`` is kept."""
    return cfg.data_dir / LINK_FILE


def write_link(cfg: Config, state: str, error: str | None = None, *,
               permanent: bool = False) -> dict[str, Any]:
    """Record the link's state (atomically; the ``since`` time is kept while it lasts).

    Parameters
    ----------
    cfg : Config
        The node's configuration.
    state : str
        :data:`OK`, :data:`UNREACHABLE`, :data:`REFUSED` or :data:`TEMPORARY`.
    error : str, optional
        What the hub or the network said.
    permanent : bool
        True when retrying cannot help (a refused token).

    Returns
    -------
    dict
        The state written.
    """
    now = time.time()
    old = read_link(cfg) or {}
    since = old.get("since") if old.get("state") == state else now
    data = {"url": cfg.hub.url, "state": state, "error": error, "permanent": permanent,
            "since": since, "updated": now, "pid": os.getpid()}
    path = link_path(cfg)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:  # the status is a convenience: never stop the forwarder for it
        log.debug("cannot write %s: %s", path, exc)
        with contextlib.suppress(OSError):
            tmp.unlink()
    return data


def read_link(cfg: Config) -> dict[str, Any] | None:
    """The link's last recorded state, or None (never forwarded, or for another hub).

    Parameters
    ----------
    cfg : Config
        The node's configuration.

    Returns
    -------
    dict or None
        ``url``, ``state``, ``error``, ``permanent``, ``since``, ``updated``.
    """
    try:
        data = json.loads(link_path(cfg).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("url") != cfg.hub.url:
        return None
    return data


def link_error(link: dict[str, Any] | None) -> str | None:
    """The line ``starnode status`` shows for a link that is not ok, else None.

    Parameters
    ----------
    link : dict or None
        :func:`read_link`'s answer.

    Returns
    -------
    str or None
    """
    if not link or link.get("state") == OK:
        return None
    age = max(0.0, time.time() - float(link.get("since") or time.time()))
    when = f"since {age / 60:.0f} min" if age >= 60 else f"since {age:.0f} s"
    kind = ("PERMANENT: fix the token (hub.token or $STARNODE_HUB_TOKEN) and restart"
            if link.get("permanent") else "temporary: retrying")
    last = max(0.0, time.time() - float(link.get("updated") or time.time()))
    if last > 600:  # the forwarder has not run lately: this is the last thing it saw
        kind += f"; last seen {last / 3600:.1f} h ago"
    return f"hub {link.get('state')} ({when}; {kind}): {link.get('error') or ''}".rstrip(": ")


def token_of(cfg: Config) -> str | None:
    """The node's hub token: ``$STARNODE_HUB_TOKEN``, else ``hub.token``."""
    return os.environ.get(TOKEN_ENV) or cfg.hub.token


def health(config: Config) -> list[Check]:
    """``starnode doctor``'s hub checks: reachable, token valid, schema version accepted.

    Parameters
    ----------
    config : Config
        The node's configuration (nothing is checked without ``hub.url``).

    Returns
    -------
    list of Check
    """
    from ..diagnostics import Check, Level

    cfg = config
    url = cfg.hub.url
    if not url:
        return []
    try:
        import httpx
    except ModuleNotFoundError:
        return [Check(Level.FAIL, "hub", "hub.url is set but httpx is missing: "
                      "pip install 'starnode[hub]'")]
    from ..records import SCHEMA_VERSION

    token = token_of(cfg)
    base = str(url).rstrip("/")
    timeout = min(float(cfg.hub.http_timeout), 10.0)
    try:
        r = httpx.get(f"{base}/api/v1/health", timeout=timeout)
    except httpx.HTTPError as exc:
        return [Check(Level.FAIL, "hub", f"{base} is not reachable: {type(exc).__name__}: "
                      f"{exc}")]
    if r.status_code != 200:
        return [Check(Level.FAIL, "hub", f"{base} answers HTTP {r.status_code} to its health "
                      "check (is it a starnode hub? is its database up?)")]
    out = [Check(Level.OK, "hub", f"{base} is reachable")]
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        theirs = int(r.json().get("schema_version"))
        if theirs < SCHEMA_VERSION:
            out.append(Check(Level.FAIL, "hub schema", f"the hub accepts record versions up "
                             f"to {theirs}; this node sends {SCHEMA_VERSION}: upgrade the hub"))
        else:
            out.append(Check(Level.OK, "hub schema", f"the hub accepts version "
                             f"{SCHEMA_VERSION} (it writes {theirs})"))
    if not token:
        out.append(Check(Level.FAIL, "hub token", f"no token: set ${TOKEN_ENV} or hub.token"))
        return out
    try:
        w = httpx.get(f"{base}/api/v1/whoami", headers={"Authorization": f"Bearer {token}"},
                      timeout=timeout)
    except httpx.HTTPError as exc:
        out.append(Check(Level.FAIL, "hub token", f"cannot ask the hub: {exc}"))
        return out
    if w.status_code == 200:
        who = w.json()
        out.append(Check(Level.OK, "hub token", f"valid: node {who.get('node')} of observer "
                         f"{who.get('observer_code')}" + (" (HELD for review)"
                                                          if who.get("held") else "")))
    elif w.status_code in (401, 403):
        out.append(Check(Level.FAIL, "hub token", f"the hub refuses the token (HTTP "
                         f"{w.status_code}): unknown or revoked; ask the hub's operator"))
    else:
        out.append(Check(Level.WARN, "hub token", f"the hub answered HTTP {w.status_code}"))
    return out
