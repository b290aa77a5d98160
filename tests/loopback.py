"""A real HTTP server on 127.0.0.1 for tests: recorded AAVSO answers, a fake WebObs, failures.

Tests never reach the internet: catalogue and upload URLs in the config point here.

    with LoopbackServer() as srv:
        srv.route("GET", "/vsp/api/chart/", json_body=chart)          # fixed answer
        srv.route("POST", "/webobs/file", handler=my_handler)           # computed answer
        cfg = {"photometry": {"vsp_url": srv.url("/vsp/api/chart/")}}
        ...
        assert srv.requests[0].query["star"] == ["SS Cyg"]

A handler gets the :class:`Request` and returns ``(status, headers, body)``; it may sleep to play a
timeout. Unknown paths answer 404.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Response = tuple[int, dict[str, str], bytes]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Route:
    handler: Callable[[Request], Response]
    hits: int = 0


@dataclass
class LoopbackServer:
    host: str = "127.0.0.1"
    routes: dict[tuple[str, str], _Route] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req = Request(self.command, parts.path, parse_qs(parts.query),
                              {k.lower(): v for k, v in self.headers.items()}, body)
                server.requests.append(req)
                route = server.routes.get((self.command, parts.path))
                if route is None:
                    status, headers, payload = 404, {"Content-Type": "text/plain"}, b"not found"
                else:
                    route.hits += 1
                    status, headers, payload = route.handler(req)
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            do_GET = do_POST = do_PUT = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer((self.host, 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        name="loopback-http")

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def route(self, method: str, path: str, *, handler: Callable[[Request], Response] | None = None,
              json_body: Any = None, body: bytes | str | None = None, status: int = 200,
              content_type: str | None = None) -> _Route:
        if handler is None:
            if json_body is not None:
                payload = json.dumps(json_body).encode()
                ctype = content_type or "application/json"
            else:
                payload = body.encode() if isinstance(body, str) else (body or b"")
                ctype = content_type or "text/html; charset=utf-8"

            def handler(_req: Request) -> Response:
                return status, {"Content-Type": ctype}, payload

        r = _Route(handler)
        self.routes[(method.upper(), path)] = r
        return r

    def reset(self) -> LoopbackServer:
        """Forget the routes and the requests seen (a module-scoped server between tests)."""
        self.routes.clear()
        self.requests.clear()
        return self

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AppServer:
    """An ASGI app (the hub, the morning page) served by a real uvicorn in a thread, on a
    loopback port (a free one unless given)."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        import uvicorn

        self.port = port or free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                   log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> AppServer:
        self.thread.start()
        end = time.monotonic() + 20  # a bounded wait for the socket, not a timing assertion
        while not self.server.started:
            if time.monotonic() > end or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
