"""starnode.util.http: one session with retries, a capped Retry-After, timeouts, User-Agent.

Against the real loopback HTTP server (tests/loopback.py); no timing is asserted: the waits
the retry policy would make are read from the policy itself.
"""

from __future__ import annotations

import logging

import pytest
import requests
from urllib3.util.retry import Retry

from loopback import LoopbackServer, Request, Response
from starnode import __version__
from starnode.util.http import (
    USER_AGENT,
    PoliteRetry,
    QuietHosts,
    describe_failure,
    make_session,
    retry_after_seconds,
)


@pytest.fixture(scope="module")
def srv():
    with LoopbackServer() as s:
        yield s


@pytest.fixture(autouse=True)
def _clean(srv):
    srv.reset()


def test_retry_after_values():
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_retry_after_is_capped_and_bad_values_ignored():
    class Answer:  # the two things Retry reads of a response
        def __init__(self, value: str) -> None:
            self.headers = {"Retry-After": value}

    r = PoliteRetry(total=3, max_retry_after=5.0)
    assert r.get_retry_after(Answer("3600")) == 5.0
    assert r.get_retry_after(Answer("2")) == 2.0
    assert r.get_retry_after(Answer("whenever")) is None


def test_backoff_doubles_from_the_first_retry_and_is_capped():
    r = PoliteRetry(total=10, backoff_factor=2.0, backoff_max=10.0)
    waits = []
    for _ in range(5):
        r = r.increment(method="GET", url="/x", error=requests.ConnectionError("down"))
        waits.append(r.get_backoff_time())
    assert waits == [2.0, 4.0, 8.0, 10.0, 10.0]
    assert isinstance(r, PoliteRetry) and r.max_retry_after == 60.0


def test_session_retries_5xx_and_429_then_succeeds(srv, caplog):
    answers: list[Response] = [(503, {"Retry-After": "0"}, b"busy"),
                               (429, {"Retry-After": "0"}, b"slow down"),
                               (200, {"Content-Type": "text/plain"}, b"ok")]

    def flaky(_req: Request) -> Response:
        return answers.pop(0)

    srv.route("GET", "/flaky", handler=flaky)
    s = make_session(attempts=3, backoff=0, timeout=5)
    with caplog.at_level(logging.WARNING, logger="starnode.util.http"):
        resp = s.get(srv.url("/flaky"))
    assert resp.status_code == 200 and resp.text == "ok"
    assert len(srv.requests) == 3
    assert "HTTP 503" in caplog.text and "HTTP 429" in caplog.text
    assert srv.requests[0].headers["user-agent"] == USER_AGENT
    assert USER_AGENT.startswith(f"starnode/{__version__} ")


def test_session_gives_the_last_answer_after_the_last_attempt(srv):
    srv.route("GET", "/down", status=500, body="down")
    resp = make_session(attempts=2, backoff=0, timeout=5).get(srv.url("/down"))
    assert resp.status_code == 500 and len(srv.requests) == 2


def test_4xx_is_not_retried(srv):
    resp = make_session(attempts=3, backoff=0, timeout=5).get(srv.url("/nothing-here"))
    assert resp.status_code == 404 and len(srv.requests) == 1


def test_post_is_retried_only_when_asked(srv):
    srv.route("POST", "/q", status=502, body="bad gateway")
    make_session(attempts=3, backoff=0, timeout=5).post(srv.url("/q"), data={"a": 1})
    assert len(srv.requests) == 1  # urllib3's default: POST is not idempotent
    srv.requests.clear()
    make_session(attempts=3, backoff=0, timeout=5,
                 retry_methods=frozenset({"GET", "POST"})).post(srv.url("/q"), data={"a": 1})
    assert len(srv.requests) == 3


def test_connection_failure_is_described():
    s = make_session(attempts=2, backoff=0, timeout=2)
    with pytest.raises(requests.ConnectionError) as info:
        s.get("http://127.0.0.1:9/nothing")  # discard port: nothing listens
    assert describe_failure(info.value, 2).startswith("connection failed (")
    assert describe_failure(requests.ReadTimeout("slow"), 0.5) == "no answer within 0.5 s"


def test_quiet_hosts():
    q = QuietHosts()
    assert q.why_quiet("http://a.example:80/x") is None
    q.failed("http://a.example:80/x", "HTTP 503", 300.0)
    why = q.why_quiet("http://a.example:80/other")
    assert why is not None and "HTTP 503" in why and why.startswith("a.example:80 failed")
    assert q.why_quiet("http://b.example/x") is None
    q.failed("http://b.example/x", "down", 0.0)  # quiet time 0: not remembered
    assert q.why_quiet("http://b.example/x") is None
    q.clear()
    assert q.why_quiet("http://a.example:80/x") is None


def test_policy_is_urllib3_retry():
    assert issubclass(PoliteRetry, Retry)
