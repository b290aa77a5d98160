"""Issue 16, the local page (``starnode serve``) over real HTTP: no symlink out of the outbox
(F6), loopback names only without a token (F7, DNS rebinding), HEAD where GET is, star names
with a '/' (F15)."""

from __future__ import annotations

import http.client
import os
from pathlib import Path
from typing import Any

from loopback import AppServer
from morning_night import night, server  # noqa: F401
from starnode.config import Config


def _req(port: int, path: str, host: str | None = None, method: str = "GET",
         headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.putrequest(method, path, skip_host=True)
        conn.putheader("Host", host or f"127.0.0.1:{port}")
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.read(), r.headers
    finally:
        conn.close()


def test_only_loopback_names_without_a_token(server: Any, night: Config) -> None:  # noqa: F811
    """F7: a page without a token answers only to loopback names (DNS rebinding)."""
    port = server.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"):
        assert _req(port, "/summary.txt", host)[0] == 200, host
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example"):
        status, body, _ = _req(port, "/summary.txt", host)
        assert status == 421, (host, status)
        assert b"DNS rebinding" in body
    from starnode.morning.web import create_app
    with AppServer(create_app(night, token="s3cret")) as s:  # a token: any name, with it
        assert _req(s.port, "/summary.txt", "hub.lan", headers={
            "Authorization": "Bearer s3cret"})[0] == 200
        assert _req(s.port, "/summary.txt", "hub.lan")[0] == 401


def test_head_where_get_is(server: Any) -> None:  # noqa: F811
    """F15: HEAD answers as GET does, without a body (was 405)."""
    for path in ("/", "/summary.txt", "/target/SS%20Cyg/lightcurve.png", "/static/style.css"):
        get = _req(server.port, path)
        head = _req(server.port, path, method="HEAD")
        if get[0] != 200:
            continue  # a static file this version does not have
        assert head[0] == 200 and head[1] == b"", path
        assert head[2]["content-type"] == get[2]["content-type"]


def test_a_star_name_with_a_slash_can_be_opened(server: Any) -> None:  # noqa: F811
    """F15: /target/NAME with a '/' in NAME reaches the page (here: nothing measured of it,
    said by name), and the PNG and sound routes still work."""
    status, body, _ = _req(server.port, "/target/V1500%2FCyg")
    assert status == 404 and b"V1500/Cyg" in body
    status, body, _ = _req(server.port, "/target/V1500/Cyg")
    assert status == 404 and b"V1500/Cyg" in body
    assert _req(server.port, "/target/SS%20Cyg")[0] == 200
    assert _req(server.port, "/target/SS%20Cyg/lightcurve.png")[1][:4] == b"\x89PNG"


def test_no_symlink_out_of_the_outbox(server: Any, night: Config, tmp_path: Path) -> None:  # noqa: F811
    """F6: a report file replaced by a symbolic link to a file outside the outbox is not
    served (it was: /etc/passwd)."""
    listed = next(night.data_dir.glob("outbox/**/2025-09-14_SS_Cyg_DEMO.txt"))
    url = f"/outbox/2025-09-14/{listed.name}"
    assert _req(server.port, url)[0] == 200
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0\n")
    kept = listed.with_name("kept.txt")
    os.replace(listed, kept)
    try:
        os.symlink(secret, listed)
        status, body, _ = _req(server.port, url)
        assert status == 404 and b"root:x" not in body
    finally:
        listed.unlink()
        os.replace(kept, listed)
    assert _req(server.port, url)[0] == 200
