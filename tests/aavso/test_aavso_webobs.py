"""The opt-in WebObs uploader against a fake WebObs on the loopback HTTP server."""

from __future__ import annotations

import base64
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import pytest

from aavso_helpers import JD0, at, data_lines, make_config, make_result
from loopback import LoopbackServer, Request, Response
from starnode.aavso import flush, outbox_files, resolve_uncertain, submit
from starnode.aavso.webobs import CredentialsError, load_credentials
from starnode.config import Config, resolve
from webobs_fake import LOGIN_PAGE, PASSWORD, USER, FakeWebObs


@pytest.fixture(scope="module")
def server() -> Any:
    with LoopbackServer() as srv:
        yield srv


@pytest.fixture
def webobs(server: LoopbackServer) -> FakeWebObs:
    """A fresh fake WebObs per test (one loopback server per module: stopping one takes 0.5 s)."""
    fake = FakeWebObs()
    server.route("POST", "/webobs/file", handler=fake)
    fake.url = server.url("/webobs/file")  # type: ignore[attr-defined]
    return fake


@pytest.fixture
def creds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STARNODE_AAVSO_USERNAME", USER)
    monkeypatch.setenv("STARNODE_AAVSO_PASSWORD", PASSWORD)


def web_config(tmp_path: Path, fake: Any, **extra: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {"mode": "webobs", "webobs_url": fake.url, "retry_backoff": 0.0,
                                "http_timeout": 5.0}
    settings.update(extra)
    return make_config(tmp_path, **settings)


def login_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str,
                 password: str) -> dict[str, Any]:
    """A webobs-mode config posting to ``url``, logging in as USER with ``password``."""
    monkeypatch.setenv("STARNODE_AAVSO_USERNAME", USER)
    monkeypatch.setenv("STARNODE_AAVSO_PASSWORD", password)
    return make_config(tmp_path, mode="webobs", webobs_url=url, retry_backoff=0.0)


def all_bytes(tmp_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (tmp_path / "data").rglob("*") if p.is_file())


def states(cfg: Config | dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in outbox_files(resolve(cfg)):
        for k, v in f["states"].items():
            out[k] = out.get(k, 0) + v
    return out


def test_success_then_duplicate_never_resent(tmp_path: Path, webobs: FakeWebObs,
                                             creds: None) -> None:
    cfg = web_config(tmp_path, webobs)
    first = submit(at(0), cfg)
    assert first["status"] == "accepted", first
    assert (first["accepted"], first["rejected"], webobs.hits) == (1, 0, 1)
    assert submit(at(0), cfg)["status"] == "duplicate"
    second = submit(at(1), cfg)
    assert second["status"] == "accepted" and webobs.hits == 2
    assert len(webobs.accepted_rows) == 2 and len(set(webobs.accepted_rows)) == 2
    assert len(data_lines(first["report_path"])) == 2      # the night's file holds both
    assert flush(Config(cfg))["accepted"] == 0 and webobs.hits == 2
    assert states(cfg) == {"sent": 2}
    responses = list((tmp_path / "data" / "outbox" / "audit" / "responses").iterdir())
    assert len(responses) == 2 and b"observations were uploaded" in responses[0].read_bytes()


def test_login_page_with_http_200_is_rejected(tmp_path: Path, webobs: FakeWebObs,
                                              creds: None) -> None:
    cfg = web_config(tmp_path, webobs)
    webobs.script = ["login"]
    answer = submit(at(0), cfg)
    assert answer["status"] == "rejected", answer
    assert "login page" in answer["message"] and answer["rejected"] == 1
    assert webobs.hits == 1 and webobs.accepted_rows == []
    assert states(cfg) == {"pending": 1}
    kept = list((tmp_path / "data" / "outbox" / "audit" / "responses").iterdir())
    assert b"type=password" in kept[0].read_bytes()          # the raw answer is kept
    # nothing lost: the next call sends it (with the new row), once
    later = submit(at(1), cfg)
    assert later["status"] == "accepted" and later["accepted"] == 2
    assert webobs.hits == 2 and len(webobs.accepted_rows) == 2
    assert flush(Config(cfg))["accepted"] == 0 and webobs.hits == 2


def test_marker_without_confirmation_is_not_accepted(tmp_path: Path, webobs: FakeWebObs,
                                                     creds: None) -> None:
    cfg = web_config(tmp_path, webobs, webobs_success_pattern=r"(\d+) rows were stored")
    answer = submit(at(0), cfg)
    assert answer["status"] == "rejected" and "no confirmation" in answer["message"]
    assert states(cfg) == {"pending": 1}


def test_http_500_is_retried(tmp_path: Path, webobs: FakeWebObs, creds: None) -> None:
    cfg = web_config(tmp_path, webobs)
    webobs.script = ["500"]
    answer = submit(at(0), cfg)
    assert answer["status"] == "accepted", answer
    assert webobs.hits == 2 and len(webobs.accepted_rows) == 1
    webobs.script = ["500", "500", "500"]
    failed = submit(at(1), cfg)
    assert failed["status"] == "error" and "HTTP 500" in failed["message"]
    assert webobs.hits == 5 and states(cfg) == {"sent": 1, "pending": 1}
    assert flush(Config(cfg))["accepted"] == 1 and webobs.hits == 6
    assert len(webobs.accepted_rows) == 2


def test_timeout_is_uncertain_and_never_resent_blindly(tmp_path: Path, webobs: FakeWebObs,
                                                       creds: None) -> None:
    cfg = web_config(tmp_path, webobs, http_timeout=0.5)
    webobs.script = ["stall"]
    answer = submit(at(0), cfg)
    assert answer["status"] == "error", answer
    assert "may or may not" in answer["message"]
    assert webobs.hits == 1 and states(cfg) == {"uncertain": 1}
    time.sleep(1.2)  # let the stalled handler finish (it counts the rows it took)
    flush(Config(cfg))
    assert webobs.hits == 1                                  # not sent twice
    # the observer looked at WebObs and found it: settle it
    assert resolve_uncertain(Config(cfg), sent=True) == 1
    assert states(cfg) == {"sent": 1}
    assert submit(at(1), cfg)["status"] == "accepted" and webobs.hits == 2


def test_connection_refused_is_retried_then_kept(tmp_path: Path, creds: None) -> None:
    with LoopbackServer() as srv:
        url = srv.url("/webobs/file")
    cfg = make_config(tmp_path, mode="webobs", webobs_url=url, retry_backoff=0.0,
                      http_retries=2)
    answer = submit(at(0), cfg)
    assert answer["status"] == "error" and "could not connect" in answer["message"]
    assert "2 attempts" in answer["message"]
    assert states(cfg) == {"pending": 1}


def test_binned_rows_are_uploaded_only_when_closed(tmp_path: Path, webobs: FakeWebObs,
                                                   creds: None) -> None:
    cfg = web_config(tmp_path, webobs, bin_minutes=5)
    start = ((math.floor(JD0 * 288) + 1) / 288 - JD0) * 1440
    for i in range(3):
        answer = submit(at(start + 0.5 + i), cfg)
        assert answer["status"] == "queued" and "bin closes" in answer["message"]
    assert webobs.hits == 0
    nxt = submit(at(start + 5.5), cfg)       # falls outside: the first bin closes and goes
    assert nxt["status"] == "queued" and nxt["accepted"] == 1
    assert webobs.hits == 1 and "|NBIN=3|" in webobs.accepted_rows[0]
    late = submit(at(start + 3.5), cfg)      # a late frame of the uploaded bin
    assert late["status"] == "skipped" and "already uploaded" in late["message"]
    assert flush(Config(cfg))["accepted"] == 1 and webobs.hits == 2
    assert len(webobs.accepted_rows) == 2


def test_credentials_file_permissions(tmp_path: Path, webobs: FakeWebObs,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STARNODE_AAVSO_USERNAME", raising=False)
    monkeypatch.delenv("STARNODE_AAVSO_PASSWORD", raising=False)
    secret = tmp_path / "webobs.cred"
    secret.write_text(f"{USER}:{PASSWORD}\n")
    secret.chmod(0o644)
    cfg = web_config(tmp_path, webobs, credentials_file=str(secret))
    answer = submit(at(0), cfg)
    assert answer["status"] == "error" and "chmod 600" in answer["message"]
    assert PASSWORD not in answer["message"] and webobs.hits == 0
    assert states(cfg) == {"pending": 1}
    with pytest.raises(CredentialsError):
        load_credentials(resolve(cfg))
    secret.chmod(0o600)
    assert repr(load_credentials(resolve(cfg))).count(PASSWORD) == 0
    assert flush(Config(cfg))["accepted"] == 1 and webobs.hits == 1
    missing = web_config(tmp_path, webobs)
    result = submit(at(1), missing)
    assert result["status"] == "error" and "STARNODE_AAVSO_PASSWORD" in result["message"]


def test_password_never_stored_or_logged(tmp_path: Path, webobs: FakeWebObs, creds: None,
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    cfg = web_config(tmp_path, webobs)
    webobs.script = ["login", "500", "echo"]
    submit(at(0), cfg)
    submit(at(1), cfg)
    assert webobs.hits == 3 and len(webobs.accepted_rows) == 2
    assert PASSWORD.encode() not in all_bytes(tmp_path)
    assert PASSWORD not in caplog.text
    assert not any(os.environ.get("STARNODE_AAVSO_PASSWORD", "") in f
                   for f in webobs.files)


def test_synthetic_data_never_uploaded(tmp_path: Path, webobs: FakeWebObs, creds: None) -> None:
    cfg = web_config(tmp_path, webobs)
    answer = submit(make_result(telescope="starnode synthetic S50"), cfg)
    assert answer["status"] == "skipped" and "synthetic" in answer["message"]
    assert webobs.hits == 0
    outbox = submit(make_result(synthetic=True), make_config(tmp_path))
    assert outbox["status"] == "queued"
    assert "SYNTHETIC DATA" in Path(outbox["report_path"]).read_text()


def test_doctor_line_checks_the_credentials_for_real(tmp_path: Path, webobs: FakeWebObs) -> None:
    from starnode.aavso import health
    from starnode.config import resolve
    from starnode.doctor import Level

    secret = tmp_path / "webobs.cred"
    secret.write_text(f"{USER}:{PASSWORD}\n")
    secret.chmod(0o644)
    cfg = resolve(web_config(tmp_path, webobs, credentials_file=str(secret)))
    (line,) = health(cfg)
    assert line.level == Level.FAIL and "chmod 600" in line.message
    assert PASSWORD not in line.message
    secret.chmod(0o600)
    (line,) = health(cfg)
    assert line.level == Level.OK and PASSWORD not in line.message


# ---------------------------------------------------------------------------------------------
# issue 10: one story in status (item 11), secrets in every encoding (item 12)
# ---------------------------------------------------------------------------------------------

def test_frames_follow_their_rows_when_a_later_batch_confirms_them(
        tmp_path: Path, webobs: FakeWebObs, creds: None) -> None:
    from starnode.errors import FrameState
    from starnode.node.outcomes import Outcomes
    from starnode.node.pool import MeasuredFrame
    from starnode.store import Ledger

    cfg = resolve(web_config(tmp_path, webobs, http_retries=1))
    frames = tmp_path / "frames"
    frames.mkdir()
    with Ledger(cfg) as ledger:
        outcomes = Outcomes(cfg, ledger, "owner", submit=True)
        ids = []
        for i, play in enumerate(["500", "ok"]):
            webobs.script = [play]
            p = frames / f"f{i}.fit"
            p.write_bytes(b"x")
            ledger.add(p)
            (frame,) = ledger.claim("owner", ids=[ledger.find(p)[0].id])
            outcomes.record(frame, MeasuredFrame(at(i)))
            ids.append(frame.id)
        assert states(cfg) == {"sent": 2}
        for fid in ids:                       # the first frame's row went with the second
            f = ledger.get(fid)
            assert f.state == FrameState.REPORTED, f
            assert f.submission["status"] == "accepted", f.submission


def test_a_local_failure_before_sending_leaves_rows_pending(tmp_path: Path, webobs: FakeWebObs,
                                                            creds: None) -> None:
    cfg = web_config(tmp_path, webobs)
    cfg["aavso"]["webobs_url"] = "http://127.0.0.1:99999999/webobs/file"   # cannot be sent
    answer = submit(at(0), cfg)
    assert answer["status"] == "error", answer
    assert states(cfg) == {"pending": 1}          # never 'uncertain': no request was made
    assert webobs.hits == 0


def test_a_password_outside_latin1_works(tmp_path: Path, server: LoopbackServer,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    password = "Stern€nhimmel-Ωmega"
    seen: list[str] = []

    def handler(req: Request) -> Response:
        seen.append(req.headers.get("authorization", ""))
        good = "Basic " + base64.b64encode(f"{USER}:{password}".encode()).decode()
        if seen[-1] != good:
            return 200, {"Content-Type": "text/html"}, LOGIN_PAGE
        return 200, {"Content-Type": "text/html"}, b"<p>1 observations were uploaded.</p>"

    server.route("POST", "/webobs/utf8", handler=handler)
    cfg = login_config(tmp_path, monkeypatch, server.url("/webobs/utf8"), password)
    answer = submit(at(0), cfg)
    assert answer["status"] == "accepted", answer
    assert states(cfg) == {"sent": 1} and len(seen) == 1


ECHO_PASSWORD = "s3cr<&>\"t' w/+%Pa55"


def _encodings(user: str, password: str) -> list[bytes]:
    import html
    import json
    from urllib.parse import quote, quote_plus

    pair = base64.b64encode(f"{user}:{password}".encode())
    return [password.encode(), pair, pair.rstrip(b"="), html.escape(password).encode(),
            html.escape(password, quote=False).encode(), quote(password).encode(),
            quote(password, safe="").encode(), quote_plus(password).encode(),
            json.dumps(password)[1:-1].encode()]


def test_secret_echoed_in_every_encoding_is_redacted_and_files_are_owner_only(
        tmp_path: Path, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import html
    import json
    from urllib.parse import quote, quote_plus

    pair = base64.b64encode(f"{USER}:{ECHO_PASSWORD}".encode()).decode()

    def post(req: Request) -> Response:
        return 302, {"Location": f"/webobs/done?user={USER}&pw={quote(ECHO_PASSWORD, safe='')}",
                     "X-Echo": ECHO_PASSWORD, "X-Auth-Echo": pair}, b""

    def done(req: Request) -> Response:
        body = (f"<p>1 observations were uploaded.</p><p>{ECHO_PASSWORD}</p>"
                f"<p>{html.escape(ECHO_PASSWORD)}</p><a href='?p={quote_plus(ECHO_PASSWORD)}'>"
                f"</a><script>var p = {json.dumps(ECHO_PASSWORD)}; var a = '{pair}';</script>")
        return 200, {"Content-Type": "text/html", "X-Echo": ECHO_PASSWORD,
                     "WWW-Authenticate": f"Basic {pair}"}, body.encode()

    server.route("POST", "/webobs/echo", handler=post)
    server.route("GET", "/webobs/done", handler=done)
    os.umask(0o022)
    cfg = login_config(tmp_path, monkeypatch, server.url("/webobs/echo"), ECHO_PASSWORD)
    answer = submit(at(0), cfg)
    assert answer["status"] == "accepted", answer
    data = tmp_path / "data"
    everything = all_bytes(tmp_path)
    for secret in _encodings(USER, ECHO_PASSWORD):
        assert secret not in everything, secret
    kept = list((data / "outbox" / "audit" / "responses").iterdir())
    assert kept and b"observations were uploaded" in kept[0].read_bytes()
    assert data.stat().st_mode & 0o077 == 0
    for p in data.rglob("*"):
        if p.is_file() and (p.name.startswith("starnode.sqlite3") or "audit" in p.parts):
            assert p.stat().st_mode & 0o077 == 0, p
        if p.is_dir() and "audit" in p.parts:
            assert p.stat().st_mode & 0o077 == 0, p


def _more_encodings(user: str, password: str) -> list[bytes]:
    from urllib.parse import quote

    raw = password.encode()
    pair = f"{user}:{password}".encode()
    out = [base64.b64encode(raw), base64.b64encode(raw).rstrip(b"="),
           base64.urlsafe_b64encode(raw), base64.urlsafe_b64encode(pair),
           base64.urlsafe_b64encode(pair).rstrip(b"="), raw.hex().encode(),
           raw.hex().upper().encode(), quote(quote(password, safe=""), safe="").encode(),
           "".join(f"&#{ord(c)};" for c in password).encode(),
           "".join(f"&#x{ord(c):x};" for c in password).encode()]
    return [b for b in out if b not in _encodings(user, password)]


def test_secret_in_further_encodings_is_redacted(tmp_path: Path, server: LoopbackServer,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 17: base64 of the password alone, URL-safe base64, hex, double URL-encoding and
    HTML numeric character references are redacted from the kept answer too."""
    forms = _more_encodings(USER, ECHO_PASSWORD)
    assert len(forms) >= 8

    def post(req: Request) -> Response:
        body = b"<p>1 observations were uploaded.</p>" + b"".join(
            b"<p>" + f + b"</p>" for f in forms)
        return 200, {"Content-Type": "text/html"}, body

    server.route("POST", "/webobs/echo2", handler=post)
    cfg = login_config(tmp_path, monkeypatch, server.url("/webobs/echo2"), ECHO_PASSWORD)
    answer = submit(at(0), cfg)
    assert answer["status"] == "accepted", answer
    everything = all_bytes(tmp_path)
    for secret in forms:
        assert secret not in everything, secret
    assert b"observations were uploaded" in everything
