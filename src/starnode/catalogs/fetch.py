"""How the catalogue clients ask: one polite request layer and one answer cache.

:class:`CatalogClient` owns the HTTP sessions (:func:`starnode.util.http.make_session`: timeout,
retries with a capped Retry-After, User-Agent) and the memory of servers that failed
(:class:`~starnode.util.http.QuietHosts`). :func:`cached` puts the cache in front of it: a fresh
entry, else the network, else a stale entry with a WARNING; ``catalogs.offline`` never makes a
request. The cache table belongs to :class:`starnode.store.CatalogCache`.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from starnode.config import Config
from starnode.errors import CatalogError
from starnode.store import CatalogCache, CatalogEntry
from starnode.util.http import QuietHosts, describe_failure, make_session

from .types import snippet

log = logging.getLogger("starnode.catalogs")

__all__ = ["CLIENT", "CatalogClient", "Got", "HTTPStatusError", "cached", "failure_kind",
           "warn_unavailable"]


class HTTPStatusError(CatalogError):
    """A catalogue server answered with a 4xx status (not retried)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message, kind=f"HTTP {status}")
        self.status = status


class CatalogClient:
    """Catalogue requests: sessions per retry policy, and the servers left alone for a while."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[tuple[int, float, float], requests.Session] = {}
        self.quiet = QuietHosts()

    def _session(self, cfg: Config) -> requests.Session:
        ph = cfg.catalogs
        key = (int(ph.http_retries), float(ph.http_backoff), float(ph.http_timeout))
        with self._lock:
            s = self._sessions.get(key)
            if s is None:
                s = make_session(attempts=key[0], backoff=key[1], timeout=key[2],
                                 retry_methods=frozenset({"GET", "POST", "HEAD"}))
                # A host that cannot be reached at all (no network at a dark site, DNS down,
                # refused) is not retried with back-off: the host goes quiet at once and the
                # cache answers. Read errors and 5xx answers are still retried.
                for adapter in s.adapters.values():
                    retries = getattr(adapter, "max_retries", None)
                    if retries is not None:
                        adapter.max_retries = retries.new(connect=0)  # type: ignore[attr-defined]
                self._sessions[key] = s
            return s

    def request(self, cfg: Config, method: str, url: str, *, what: str,
                params: Mapping[str, Any] | None = None,
                data: Mapping[str, Any] | None = None) -> requests.Response:
        """One catalogue request with the configured timeout and retries.

        Parameters
        ----------
        cfg : Config
            ``catalogs.http_*`` and ``catalogs.offline`` are used.
        method, url : str
            The request.
        what : str
            What is asked, for messages ("VSP", "Gaia DR3 TAP").
        params, data : mapping, optional
            Query parameters, form body.

        Returns
        -------
        requests.Response
            A 2xx/3xx answer.

        Raises
        ------
        CatalogError
            Offline, the server is resting after a failure, every attempt failed, or a 4xx
            answer (:class:`HTTPStatusError`, not retried).
        """
        ph = cfg.catalogs
        if ph.offline:
            raise CatalogError(f"{what}: catalogs.offline is set, not asking {url}",
                               kind="offline")
        quiet = self.quiet.why_quiet(url)
        if quiet is not None:
            raise CatalogError(f"{what}: {quiet}; not asking it again before "
                               f"catalogs.http_quiet_minutes = {ph.http_quiet_minutes:g} "
                               f"have passed", kind=self.quiet.reason(url) or "not answering")
        attempts = int(ph.http_retries)
        try:
            resp = self._session(cfg).request(method, url, params=params, data=data,
                                              timeout=float(ph.http_timeout))
        except (requests.ConnectionError, requests.Timeout) as exc:
            last = describe_failure(exc, float(ph.http_timeout))
        except requests.RequestException as exc:
            raise CatalogError(f"{what}: cannot ask {url}: {exc}",
                               kind=type(exc).__name__) from exc
        else:
            status = resp.status_code
            if status < 400:
                return resp
            if status != 429 and status < 500:
                raise HTTPStatusError(
                    f"{what}: HTTP {status} from {resp.url}: {snippet(resp.text)!r}", status)
            last = f"HTTP {status}"
        self.quiet.failed(url, last, float(ph.http_quiet_minutes) * 60.0)
        raise CatalogError(f"{what}: {last} from {url} after {attempts} attempt(s)", kind=last)

    def reset(self) -> None:
        """Forget failed servers and the warnings already said (a fixed network; tests)."""
        self.quiet.clear()
        with _warned_lock:
            _warned.clear()

    def get_json(self, cfg: Config, url: str, params: Mapping[str, Any], *, what: str) -> Any:
        """GET ``url`` and decode its JSON answer (:class:`CatalogError` when it is not JSON)."""
        resp = self.request(cfg, "GET", url, params=params, what=what)
        try:
            return json.loads(resp.text)
        except ValueError as exc:
            raise CatalogError(f"{what}: the answer from {resp.url} is not JSON "
                               f"({exc}): {snippet(resp.text)!r}", kind="not JSON") from exc


#: The catalogue clients' one HTTP layer (sessions and failed-server memory of this process).
CLIENT = CatalogClient()


@dataclass(frozen=True)
class Got:
    """A parsed catalogue answer and where it came from."""

    value: Any
    origin: str  # "network" | "cache" | "cache (stale)"
    url: str | None
    fetched_at: float


def _from_cache(cache: CatalogCache, kind: str, key: str, what: str,
                parse: Callable[[Any], Any]) -> tuple[CatalogEntry, Any] | None:
    entry = cache.get(kind, key)
    if entry is None:
        return None
    try:
        return entry, parse(entry.payload)
    except CatalogError as exc:
        log.warning("cached %s for %s unusable (%s); asking again", what, key, exc)
        return None


#: A repeated catalogue WARNING (same source, same kind of problem) is said at most this often.
WARN_EVERY_S = 3600.0
_warned: dict[tuple[str, ...], float] = {}
_warned_lock = threading.Lock()
_NUMBERS = re.compile(r"\d+(?:\.\d+)?")


def failure_kind(exc: BaseException) -> str:
    """The kind of a catalogue failure, the same for every frame it hits: the error's
    :attr:`~starnode.errors.CatalogError.kind`, else its message with the numbers taken out
    (a message saying "failed 12 s ago" changes every second)."""
    kind = getattr(exc, "kind", None)
    return str(kind) if kind else _NUMBERS.sub("#", str(exc))


def _warn_once(key: tuple[str, ...], msg: str, *args: Any) -> None:
    """WARNING the first time for ``key`` (catalogue source, kind of problem) in an hour, DEBUG
    after: the message itself changes ("failed 12 s ago") so it cannot be the key. The key
    goes with the record (``dedupe``), so the node says it once an hour across its worker
    processes too (:class:`starnode.node.pool`'s relay)."""
    now = time.monotonic()
    with _warned_lock:
        last = _warned.get(key)
        loud = last is None or now - last >= WARN_EVERY_S
        if loud:
            _warned[key] = now
    log.log(logging.WARNING if loud else logging.DEBUG, msg, *args,
            extra={"dedupe": "catalogue:" + "|".join(key)})


def warn_unavailable(source: str, exc: BaseException, msg: str, *args: Any) -> None:
    """Say once an hour per ``source`` (``VSX``, ``VSP``, ``Gaia``) and kind of failure
    (:func:`failure_kind`) that a catalogue could not be had and what is used instead."""
    _warn_once((source, failure_kind(exc)), msg, *args)


def _stale(hit: tuple[CatalogEntry, Any]) -> Got:
    return Got(hit[1], "cache (stale)", hit[0].url, hit[0].fetched_at)


def cached(cfg: Config, kind: str, key: str, *, what: str,
           fetch: Callable[[], tuple[Any, str]], parse: Callable[[Any], Any]) -> Got:
    """A fresh cache entry, else the network (answer parsed, then kept), else a stale entry.

    Parameters
    ----------
    cfg : Config
        ``catalogs.cache_days``, ``catalogs.offline`` and ``db_path`` are used.
    kind, key : str
        The cache entry (``vsx``, ``vsx-cone``, ``vsp``, ``gaia``; the normalised request).
    what : str
        What is asked, for messages.
    fetch : callable
        Returns ``(raw JSON-able answer, url)``; raises :class:`CatalogError`.
    parse : callable
        Turns a raw answer into the value; raises :class:`CatalogError` for an answer that must
        not be cached.

    Returns
    -------
    Got
        The value and its origin.

    Raises
    ------
    CatalogError
        Nothing usable: not cached (or offline) and the network failed.
    """
    ph = cfg.catalogs
    cache = CatalogCache(cfg.db_path)
    hit = _from_cache(cache, kind, key, what, parse)
    if hit is not None and hit[0].age_days <= float(ph.cache_days):
        log.debug("%s for %s from the cache (%.1f days old)", what, key, hit[0].age_days)
        return Got(hit[1], "cache", hit[0].url, hit[0].fetched_at)
    if ph.offline:
        if hit is None:
            raise CatalogError(f"{what} for {key}: catalogs.offline is set and it is not "
                               "cached", kind="offline, not cached")
        _warn_once((kind, "offline"), "offline: using the %s for %s cached %.1f days ago "
                   "(older than catalogs.cache_days = %g)", what, key, hit[0].age_days,
                   ph.cache_days)
        return _stale(hit)
    try:
        raw, url = fetch()
        value = parse(raw)
    except CatalogError as exc:
        if hit is None:
            raise
        _warn_once((kind, "stale", failure_kind(exc)), "%s; using the %s for %s cached %.1f days "
                   "ago instead (said once an hour; set catalogs.offline: true when this node "
                   "has no network)", exc, what, key, hit[0].age_days)
        return _stale(hit)
    cache.put(kind, key, url, raw)
    return Got(value, "network", url, time.time())
