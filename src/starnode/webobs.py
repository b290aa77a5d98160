"""The opt-in WebObs uploader (``aavso.mode: webobs``).

The AAVSO publishes no upload API; WebObs has a file page behind a login. This uploader POSTs a
validated report as the multipart field ``file`` to ``aavso.webobs_url`` with HTTP basic
credentials, and trusts nothing but a recognised confirmation page:

- **accepted** only for HTTP 200 whose body matches ``aavso.webobs_success_pattern`` (a regular
  expression; when it has a group, the group must equal the number of rows sent) and has no
  password field (a login page that happens to quote the marker is not a confirmation);
- **rejected** for any other definite answer: a login or challenge page with HTTP 200, 4xx;
- **error** after ``aavso.http_retries`` attempts that failed transiently: the connection could
  not be made (refused, connect timeout) or the server answered 5xx / 429; backoff
  ``aavso.retry_backoff`` x 2^attempt seconds;
- **uncertain** when the request may have reached the server but no answer came (read timeout,
  connection dropped mid-answer, a partial count). It is never resent automatically: the
  observer checks WebObs and settles it (:func:`starnode.aavso.resolve_uncertain`).

Every raw answer is kept in the audit folder, with the password (if echoed) and cookies
redacted. Credentials come from the environment (``aavso.username_env`` / ``password_env``) or
``aavso.credentials_file`` (``username:password``; refused when group/world readable). They are
never logged, never written, and never part of an exception message.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from .config import Config

log = logging.getLogger(__name__)

__all__ = ["Credentials", "CredentialsError", "UploadOutcome", "load_credentials", "upload"]

_PASSWORD_FIELD = re.compile(rb"""type\s*=\s*["']?password""", re.IGNORECASE)
_LOGIN_WORDS = re.compile(rb"log\s*in|sign\s*in|auth0|captcha|challenge", re.IGNORECASE)


class CredentialsError(RuntimeError):
    """No usable WebObs credentials (the message says where they were looked for)."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    def __repr__(self) -> str:  # never show the password, even in a traceback
        return f"Credentials(username={self.username!r}, password=***)"


def load_credentials(cfg: Config) -> Credentials:
    """Environment variables first, then ``aavso.credentials_file`` (owner-only permissions)."""
    a = cfg.aavso
    user = os.environ.get(a.username_env, "")
    password = os.environ.get(a.password_env, "")
    if user and password:
        return Credentials(user, password)
    path = a.credentials_file
    if not path:
        raise CredentialsError(
            f"webobs mode needs credentials: set the environment variables {a.username_env} and "
            f"{a.password_env}, or aavso.credentials_file")
    p = Path(os.path.expandvars(path)).expanduser()
    try:
        st = p.stat()
    except OSError as exc:
        raise CredentialsError(f"aavso.credentials_file {p}: {exc.strerror}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialsError(
            f"aavso.credentials_file {p} is readable by others (mode {stat.S_IMODE(st.st_mode):o}"
            f"); run 'chmod 600 {p}' - refusing to use it")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise CredentialsError(f"aavso.credentials_file {p} is not owned by this user")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise CredentialsError(f"aavso.credentials_file {p} cannot be read") from None
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    user, sep, password = line.partition(":")
    if not sep or not user.strip() or not password:
        raise CredentialsError(f"aavso.credentials_file {p} must hold one line "
                               "'username:password'")
    return Credentials(user.strip(), password)


@dataclass
class UploadOutcome:
    status: str                       # accepted | rejected | error | uncertain
    reason: str
    http_status: int | None = None
    attempts: int = 0
    response_files: list[str] = field(default_factory=list)
    count: int | None = None          # rows WebObs said it took, when the page says

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason, "http_status": self.http_status,
                "attempts": self.attempts, "response_files": self.response_files,
                "count": self.count}


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request certainly did not reach the server (safe to retry)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        text = repr(exc)
        return any(w in text for w in ("NewConnectionError", "NameResolutionError",
                                       "Connection refused", "Failed to establish"))
    return False


def _keep_response(folder: Path, name: str, resp: requests.Response | None, note: str,
                   secret: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    parts: list[bytes] = [f"# {note}\n".encode()]
    if resp is not None:
        parts.append(f"# HTTP {resp.status_code} {resp.url}\n".encode())
        for k, v in resp.headers.items():
            if k.lower() in ("set-cookie", "authorization", "cookie"):
                v = "<redacted>"
            parts.append(f"# {k}: {v}\n".encode("latin-1", "replace"))
        parts.append(b"\n")
        body = resp.content
        if secret:
            body = body.replace(secret.encode("utf-8"), b"<redacted>")
        parts.append(body)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        fh.write(b"".join(parts))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return str(path)


def _judge(resp: requests.Response, cfg: Config, n_rows: int) -> UploadOutcome:
    body = resp.content
    code = resp.status_code
    if code != 200:
        return UploadOutcome("rejected", f"WebObs answered HTTP {code}", code)
    if _PASSWORD_FIELD.search(body):
        return UploadOutcome("rejected", "WebObs answered with a login page (HTTP 200): the "
                             "credentials were not accepted", code)
    pattern = re.compile(cfg.aavso.webobs_success_pattern.encode(), re.IGNORECASE)
    match = pattern.search(body)
    if match is None:
        what = "a login or challenge page" if _LOGIN_WORDS.search(body) else "an unknown page"
        return UploadOutcome("rejected", f"HTTP 200 but {what}: no confirmation "
                             "(aavso.webobs_success_pattern) found", code)
    count = None
    if match.groups():
        try:
            count = int(match.group(1))
        except (TypeError, ValueError):
            count = None
        if count != n_rows:
            return UploadOutcome("uncertain", f"WebObs confirmed {match.group(1)!r} rows but "
                                 f"{n_rows} were sent: check WebObs before sending again",
                                 code, count=count)
    return UploadOutcome("accepted", "WebObs confirmed the upload", code, count=count)


def upload(data: bytes, filename: str, n_rows: int, cfg: Config, creds: Credentials,
           response_dir: Path, upload_id: str) -> UploadOutcome:
    """Send one report file; see the module docstring for how the answer is judged."""
    a = cfg.aavso
    tries = int(a.http_retries)
    timeout = float(a.http_timeout)
    files_kept: list[str] = []
    last = UploadOutcome("error", "not attempted")
    with requests.Session() as session:
        session.trust_env = False  # no .netrc credentials, no proxy surprises
        for attempt in range(1, tries + 1):
            resp = None
            try:
                resp = session.post(a.webobs_url, files={"file": (filename, data, "text/plain")},
                                    auth=(creds.username, creds.password),
                                    timeout=(timeout, timeout), allow_redirects=True)
            except requests.RequestException as exc:
                kind = type(exc).__name__
                if _never_sent(exc):
                    last = UploadOutcome("error", f"could not connect to {a.webobs_url} "
                                         f"({kind})")
                    files_kept.append(_keep_response(response_dir, f"{upload_id}-{attempt}.txt",
                                                     None, last.reason, creds.password))
                else:
                    last = UploadOutcome(
                        "uncertain", f"no answer from {a.webobs_url} after the file was sent "
                        f"({kind}); it may or may not have been received - check WebObs")
                    files_kept.append(_keep_response(response_dir, f"{upload_id}-{attempt}.txt",
                                                     None, last.reason, creds.password))
                    last.attempts, last.response_files = attempt, files_kept
                    return last
            else:
                transient = resp.status_code >= 500 or resp.status_code == 429
                if transient:
                    last = UploadOutcome("error", f"WebObs answered HTTP {resp.status_code}",
                                         resp.status_code)
                else:
                    last = _judge(resp, cfg, n_rows)
                files_kept.append(_keep_response(response_dir, f"{upload_id}-{attempt}.txt",
                                                 resp, last.reason, creds.password))
                if not transient:
                    last.attempts, last.response_files = attempt, files_kept
                    return last
            if attempt < tries:
                delay = float(a.retry_backoff) * 2 ** (attempt - 1)
                log.warning("WebObs upload %s attempt %d/%d failed (%s); retrying in %.1f s",
                            upload_id, attempt, tries, last.reason, delay)
                time.sleep(delay)
    last.attempts, last.response_files = tries, files_kept
    last.reason += f" (gave up after {tries} attempts)"
    return last
