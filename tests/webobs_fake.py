"""A fake AAVSO WebObs for the loopback HTTP server (tests/loopback.py): counts hits and rows,
answers like a confirmation page, a login page, 500 or a stall."""

from __future__ import annotations

import base64
import time
from email.parser import BytesParser
from email.policy import HTTP

from loopback import Request, Response

USER, PASSWORD = "observer", "s3cret-Pa55word"
LOGIN_PAGE = (b"<html><body><h1>Log in</h1><form method=post action=/login>"
              b"<input name=username><input type=password name=password></form></body></html>")
class FakeWebObs:
    """Counts hits and rows; answers like a confirmation page, a login page, 500 or a stall."""

    def __init__(self) -> None:
        self.script: list[str] = []   # what to play per hit; "ok" once the list is empty
        self.hits = 0
        self.accepted_rows: list[str] = []
        self.files: list[str] = []

    def __call__(self, req: Request) -> Response:
        self.hits += 1
        play = self.script.pop(0) if self.script else "ok"
        msg = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + req.headers["content-type"].encode() + b"\r\n\r\n" + req.body)
        (part,) = [p for p in msg.iter_parts() if p.get_filename()]
        text = part.get_payload(decode=True).decode("ascii")
        self.files.append(text)
        rows = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
        auth = req.headers.get("authorization", "")
        good_auth = auth == "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if play == "stall":
            time.sleep(1.5)
        if play == "500":
            return 500, {"Content-Type": "text/html"}, b"<h1>Server Error (500)</h1>"
        if play == "login" or not good_auth:
            return 200, {"Content-Type": "text/html"}, LOGIN_PAGE
        self.accepted_rows += rows
        body = (f"<html><p>Thank you. {len(rows)} observations were uploaded.</p>"
                f"<p>echo: {PASSWORD if play == 'echo' else ''}</p></html>").encode()
        return 200, {"Content-Type": "text/html"}, body
