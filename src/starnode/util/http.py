"""One HTTP layer for every network client (catalogues, WebObs).

Like astroquery's ``query.py``, starnode asks remote services through one place that sets the
timeouts, the retries and the ``User-Agent``. The retry policy is urllib3's :class:`Retry`
(mounted on a :class:`requests.Session`), with three changes an unattended node needs, made in
:class:`PoliteRetry`:

- a ``Retry-After`` header is honoured but never waited on for more than ``max_retry_after``
  seconds (a server asking for an hour must not stall the node), and an unreadable one is
  ignored instead of raising;
- the backoff doubles from the *first* retry (``backoff``, ``2 x backoff``, ...; urllib3 2
  waits nothing before the first retry), capped at ``backoff_max``;
- every retry is logged at WARNING with its reason, so a flaky server is visible in the log.

:class:`QuietHosts` remembers servers that failed every attempt, so that the next frames fail at
once (with the reason) for a while instead of each waiting through the retries again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader, MaxRetryError, NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util.retry import Retry

from starnode._version import __version__

log = logging.getLogger(__name__)

__all__ = [
    "MAX_RETRY_AFTER_S",
    "RETRY_STATUSES",
    "USER_AGENT",
    "PoliteRetry",
    "QuietHosts",
    "describe_failure",
    "make_session",
    "retry_after_seconds",
]

#: ``User-Agent`` of every request: AAVSO and ESA can see who asks, and which version.
USER_AGENT = f"starnode/{__version__} (+https://github.com/starnode/starnode)"

#: Longest wait between two attempts, whatever Retry-After says (an unattended node must go on).
MAX_RETRY_AFTER_S = 60.0

#: Statuses worth another attempt: rate limiting and server errors.
RETRY_STATUSES = frozenset({429, *range(500, 600)})


class PoliteRetry(Retry):
    """urllib3 :class:`Retry` with a capped ``Retry-After``, doubling backoff and logging.

    Parameters
    ----------
    *args, **kwargs
        As for :class:`urllib3.util.retry.Retry`.
    max_retry_after : float
        Longest wait a ``Retry-After`` header may impose (seconds).
    """

    def __init__(self, *args: Any, max_retry_after: float = MAX_RETRY_AFTER_S,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_retry_after = float(max_retry_after)

    def new(self, **kw: Any) -> PoliteRetry:
        """A copy with some counters changed (urllib3 calls it on every attempt)."""
        out = super().new(**kw)
        out.max_retry_after = self.max_retry_after
        return out

    def get_backoff_time(self) -> float:
        """``backoff_factor * 2**(n-1)`` before the n-th retry, at most ``backoff_max``."""
        n = len(self.history)
        if n == 0:
            return 0.0
        return float(min(self.backoff_max, self.backoff_factor * 2 ** (n - 1)))

    def get_retry_after(self, response: Any) -> float | None:
        """The server's ``Retry-After`` in seconds, capped; None when absent or unreadable."""
        try:
            wait = super().get_retry_after(response)
        except InvalidHeader:
            return None
        return None if wait is None else min(wait, self.max_retry_after)

    def increment(self, method: str | None = None, url: str | None = None,
                  response: Any = None, error: Exception | None = None,
                  _pool: Any = None, _stacktrace: Any = None) -> PoliteRetry:
        """Count one failed attempt (raises ``MaxRetryError`` when none is left) and log it."""
        new = super().increment(method, url, response, error, _pool, _stacktrace)
        why = (describe_failure(error) if error is not None
               else f"HTTP {response.status}" if response is not None else "failed")
        where = f"{getattr(_pool, 'host', '')}{url or ''}"
        left = new.total if isinstance(new.total, int) else 0
        attempts = len(new.history) + left + 1
        log.warning("%s from %s (attempt %d of %d), retrying", why, where, len(new.history),
                    attempts)
        return new


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` value (delta-seconds or an HTTP date), uncapped.

    Parameters
    ----------
    value : str or None
        The header's text.

    Returns
    -------
    float or None
        Seconds to wait (0 for a date in the past); None when absent or unreadable.
    """
    if not value or not value.strip():
        return None
    try:
        return Retry().parse_retry_after(value.strip())
    except InvalidHeader:
        return None


class _TimeoutAdapter(HTTPAdapter):
    """An adapter that applies a default timeout to requests that give none."""

    def __init__(self, timeout: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.timeout = timeout

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: Any = None, verify: bool | str = True, cert: Any = None,
             proxies: Any = None) -> requests.Response:
        return super().send(request, stream=stream,
                            timeout=self.timeout if timeout is None else timeout,
                            verify=verify, cert=cert, proxies=proxies)


def make_session(*, attempts: int = 3, backoff: float = 2.0, timeout: float = 20.0,
                 max_retry_after: float = MAX_RETRY_AFTER_S, backoff_max: float = 60.0,
                 retry_methods: Collection[str] | None = Retry.DEFAULT_ALLOWED_METHODS,
                 accept: str = "application/json, text/csv, */*") -> requests.Session:
    """A :class:`requests.Session` with starnode's timeouts, retries and User-Agent.

    Parameters
    ----------
    attempts : int
        Attempts per request (1 = no retry). Retried: connection errors, timeouts, HTTP 429
        and 5xx; other 4xx answers are returned at once.
    backoff : float
        Seconds before the first retry; doubles each retry, at most ``backoff_max``.
    timeout : float
        Seconds per attempt when the call gives no ``timeout``.
    max_retry_after : float
        Cap on a server's ``Retry-After`` wait.
    backoff_max : float
        Cap on the backoff.
    retry_methods : collection of str or None
        HTTP methods that are retried (None: all). The default is urllib3's idempotent set;
        pass ``POST`` explicitly for queries that are safe to repeat.
    accept : str
        The ``Accept`` header.

    Returns
    -------
    requests.Session
        After every retry the final answer is returned (``raise_on_status`` is off), so the
        caller sees the last status; exhausted connection errors raise
        :class:`requests.ConnectionError` (see :func:`describe_failure`).
    """
    retry = PoliteRetry(total=max(0, int(attempts) - 1), redirect=False,
                        status_forcelist=RETRY_STATUSES, allowed_methods=retry_methods,
                        backoff_factor=float(backoff), backoff_max=float(backoff_max),
                        respect_retry_after_header=True, raise_on_status=False,
                        max_retry_after=max_retry_after)
    session = requests.Session()
    adapter = _TimeoutAdapter(float(timeout), max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update({"User-Agent": USER_AGENT, "Accept": accept})
    return session


def describe_failure(exc: BaseException | None, timeout: float | None = None) -> str:
    """A short reason for a request that got no answer: a timeout or a failed connection.

    Parameters
    ----------
    exc : BaseException or None
        What requests or urllib3 raised.
    timeout : float, optional
        The timeout in force, for the message.

    Returns
    -------
    str
        ``"no answer within 5 s"`` or ``"connection failed (NewConnectionError)"``.
    """
    reason: BaseException | None = exc
    for _ in range(4):  # requests wraps urllib3's MaxRetryError, which wraps the cause
        inner = reason.args[0] if reason is not None and reason.args else None
        if isinstance(reason, MaxRetryError) and reason.reason is not None:
            reason = reason.reason
        elif isinstance(inner, BaseException):
            reason = inner
        else:
            break
    # urllib3 2 derives NewConnectionError (refused, unreachable) from ConnectTimeoutError
    timed_out = isinstance(exc, requests.Timeout) or isinstance(reason, Urllib3Timeout)
    if timed_out and not isinstance(reason, NewConnectionError):
        return f"no answer within {timeout:g} s" if timeout is not None else "no answer"
    return f"connection failed ({type(reason).__name__})"


class QuietHosts:
    """Servers that failed every attempt, left alone for a while (thread-safe).

    A network outage must not make every frame wait through all the retries again: after a
    failure the host is "quiet" for ``quiet_s`` seconds and :meth:`why_quiet` says why.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down: dict[str, tuple[float, str, float]] = {}

    @staticmethod
    def host(url: str) -> str:
        """The ``host:port`` part of a URL (the unit that is left alone)."""
        return urlsplit(url).netloc

    def why_quiet(self, url: str) -> str | None:
        """Why the URL's host is not to be asked now, or None when it may be asked.

        Parameters
        ----------
        url : str
            The URL about to be requested.

        Returns
        -------
        str or None
            ``"<host> failed 12 s ago (HTTP 503)"`` while the host is quiet.
        """
        host = self.host(url)
        with self._lock:
            down = self._down.get(host)
            if down is None:
                return None
            if time.monotonic() >= down[0]:
                del self._down[host]
                return None
        return f"{host} failed {time.time() - down[2]:.0f} s ago ({down[1]})"

    def reason(self, url: str) -> str | None:
        """The kind of the last failure of the URL's host (``HTTP 503``), while it is quiet."""
        with self._lock:
            down = self._down.get(self.host(url))
        return down[1] if down is not None else None

    def failed(self, url: str, why: str, quiet_s: float) -> None:
        """Record that the URL's host failed every attempt; quiet for ``quiet_s`` seconds."""
        if quiet_s <= 0:
            return
        with self._lock:
            self._down[self.host(url)] = (time.monotonic() + quiet_s, why, time.time())

    def clear(self) -> None:
        """Forget every failure (tests; a user who fixed the network)."""
        with self._lock:
            self._down.clear()
