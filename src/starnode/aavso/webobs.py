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

Every answer is kept in the audit folder (owner-only), reduced to what the audit needs (status
and URL of each hop, a few headers, the body) with the password redacted in every encoding a
server might echo it in (raw, base64 of ``user:pass``, URL-encoded, HTML- and JSON-escaped).
Credentials are sent as UTF-8 (RFC 7617); a failure before anything is sent (a bad URL) is an
``error`` and leaves the rows ``pending``, never ``uncertain``. Credentials come from the
environment (``aavso.username_env`` / ``password_env``) or
``aavso.credentials_file`` (``username:password``; refused when group/world readable). They are
never logged, never written, and never part of an exception message.

The session comes from :func:`starnode.util.http.make_session` (User-Agent, default timeout)
with its automatic retries switched off (``attempts=1``): an upload is not idempotent, so this
module decides each retry itself - only when the request certainly never reached WebObs or
WebObs answered 5xx/429 - and keeps every answer in the audit.

:func:`upload_pending` is the batch step the submission code calls: it marks the rows
``uploading`` before sending (so a crash mid-upload leaves them ``uncertain``, never resent),
sends one validated file per report, and records the outcome per row; rows WebObs confirmed
make their frames ``reported`` (``accepted``), so ``starnode status`` tells one story.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import html
import json
import logging
import os
import re
import stat
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import requests
import requests.auth

from starnode.config import Config
from starnode.errors import CredentialsError
from starnode.store import ReportRows
from starnode.util.fsio import atomic_write, private_dir
from starnode.util.http import make_session

from .outbox import audit, outbox_dir, write_file
from .reportfile import FILE_MODE
from .rows import file_text
from .validator import validate_text

log = logging.getLogger(__name__)

__all__ = ["Credentials", "CredentialsError", "UploadOutcome", "load_credentials", "upload",
           "upload_pending"]

_PASSWORD_FIELD = re.compile(rb"""type\s*=\s*["']?password""", re.IGNORECASE)
_LOGIN_WORDS = re.compile(rb"log\s*in|sign\s*in|auth0|captcha|challenge", re.IGNORECASE)


@dataclass(frozen=True)
class Credentials:
    """A WebObs login; the password never appears in a repr."""

    username: str
    password: str = field(repr=False)

    def __repr__(self) -> str:  # never show the password, even in a traceback
        return f"Credentials(username={self.username!r}, password=***)"


def load_credentials(cfg: Config) -> Credentials:
    """Environment variables first, then ``aavso.credentials_file`` (owner-only permissions).

    Parameters
    ----------
    cfg : Config
        Its ``aavso`` section names the variables and the file.

    Returns
    -------
    Credentials

    Raises
    ------
    CredentialsError
        None found, or the file is unsafe or malformed (the message never holds the password).
    """
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
    """How one upload ended (see the module docstring for the statuses)."""

    status: str                       # accepted | rejected | error | uncertain
    reason: str
    http_status: int | None = None
    attempts: int = 0
    response_files: list[str] = field(default_factory=list)
    count: int | None = None          # rows WebObs said it took, when the page says

    def as_dict(self) -> dict[str, Any]:
        """The outcome as a plain dict (for the audit)."""
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


#: Response headers worth keeping in the audit; every other header is dropped (a server may
#: echo anything, the credentials included, in a header).
_KEPT_HEADERS = ("content-type", "content-length", "date", "location", "server")


def secret_forms(creds: Credentials | None) -> list[bytes]:
    """Every encoding in which a server might echo the password: raw (UTF-8 and Latin-1),
    base64 and URL-safe base64 of ``user:pass`` and of the password alone (with and without
    padding), hex, URL-encoded once and twice, HTML-escaped, HTML numeric character references
    and JSON-escaped; longest first, so a longer form is redacted before a form inside it."""
    if creds is None or not creds.password:
        return []
    pw = creds.password
    texts = {pw, html.escape(pw), html.escape(pw, quote=False),
             html.escape(pw).replace("&#x27;", "&#39;"), quote(pw), quote(pw, safe=""),
             quote_plus(pw), json.dumps(pw)[1:-1], json.dumps(pw, ensure_ascii=False)[1:-1]}
    forms = {t.encode("utf-8") for t in texts}
    forms |= {t.lower().encode("utf-8") for t in texts if "%" in t}
    with contextlib.suppress(UnicodeEncodeError):
        forms.add(pw.encode("latin-1"))
    for enc in ("utf-8", "latin-1"):
        with contextlib.suppress(UnicodeEncodeError):
            for raw in (f"{creds.username}:{pw}".encode(enc), pw.encode(enc)):
                for b64 in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
                    forms |= {b64, b64.rstrip(b"=")}
                forms |= {raw.hex().encode(), raw.hex().upper().encode()}
    forms |= _more_forms(pw)
    return sorted((f for f in forms if f), key=len, reverse=True)


def _more_forms(pw: str) -> set[bytes]:
    """Double URL-encoding (upper and lower case) and HTML numeric character references
    (decimal and hexadecimal, every character) of the password."""
    once = quote(pw, safe="")
    twice = {quote(once, safe=""), quote(once.lower(), safe=""), quote_plus(quote_plus(pw))}
    entities = {"".join(f"&#{ord(c)};" for c in pw), "".join(f"&#x{ord(c):x};" for c in pw),
                "".join(f"&#x{ord(c):X};" for c in pw), "".join(f"&#X{ord(c):x};" for c in pw)}
    return {t.encode("utf-8") for t in twice | entities}


def redact(data: bytes, forms: list[bytes]) -> bytes:
    """``data`` with every form of the secret (:func:`secret_forms`) replaced."""
    for form in forms:
        data = data.replace(form, b"<redacted>")
    return data


def _keep_response(folder: Path, name: str, resp: requests.Response | None, note: str,
                   creds: Credentials | None) -> str:
    """Keep what the audit needs of an answer (status, URL, a few headers, the body), with
    every encoding of the password redacted, owner-only."""
    forms = secret_forms(creds)
    path = folder / name
    parts: list[bytes] = [f"# {note}\n".encode()]
    if resp is not None:
        for hop in [*resp.history, resp]:
            parts.append(f"# HTTP {hop.status_code} {hop.url}\n".encode("utf-8", "replace"))
        for k, v in resp.headers.items():
            if k.lower() in _KEPT_HEADERS:
                parts.append(f"# {k}: {v}\n".encode("latin-1", "replace"))
        parts.append(b"\n")
        parts.append(resp.content)
    private_dir(folder)
    atomic_write(path, redact(b"".join(parts), forms), mode=FILE_MODE)
    return str(path)


def _utf8_auth(creds: Credentials) -> requests.auth.HTTPBasicAuth:
    """HTTP basic credentials encoded as UTF-8 (RFC 7617), so a password outside Latin-1
    works instead of failing locally on every upload."""
    return requests.auth.HTTPBasicAuth(creds.username.encode("utf-8"),  # type: ignore[arg-type]
                                       creds.password.encode("utf-8"))  # type: ignore[arg-type]


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
    """Send one report file; see the module docstring for how the answer is judged.

    Parameters
    ----------
    data : bytes
        The validated report.
    filename : str
        Its name in the multipart form.
    n_rows : int
        Rows in it (a confirmation must count as many).
    cfg : Config
        The ``aavso`` section: URL, timeouts, retries, success pattern.
    creds : Credentials
        The login.
    response_dir : Path
        Where every answer is kept (redacted).
    upload_id : str
        Names the kept answers.

    Returns
    -------
    UploadOutcome
    """
    a = cfg.aavso
    tries = int(a.http_retries)
    timeout = float(a.http_timeout)
    files_kept: list[str] = []
    last = UploadOutcome("error", "not attempted")
    with make_session(attempts=1, timeout=timeout, accept="text/html, */*") as session:
        session.trust_env = False  # no .netrc credentials, no proxy surprises
        for attempt in range(1, tries + 1):
            resp = None
            try:  # everything that can fail locally fails here, before a byte is sent
                request = session.prepare_request(requests.Request(
                    "POST", a.webobs_url, files={"file": (filename, data, "text/plain")},
                    auth=_utf8_auth(creds)))
            except (requests.RequestException, ValueError) as exc:
                last = UploadOutcome("error", f"the upload could not be prepared, nothing was "
                                     f"sent ({type(exc).__name__}: check aavso.webobs_url)")
                last.attempts = attempt
                return last
            try:
                resp = session.send(request, timeout=(timeout, timeout), allow_redirects=True)
            except requests.RequestException as exc:
                kind = type(exc).__name__
                if _never_sent(exc):
                    last = UploadOutcome("error", f"could not connect to {a.webobs_url} "
                                         f"({kind})")
                    files_kept.append(_keep_response(response_dir, f"{upload_id}-{attempt}.txt",
                                                     None, last.reason, creds))
                else:
                    last = UploadOutcome(
                        "uncertain", f"no answer from {a.webobs_url} after the file was sent "
                        f"({kind}); it may or may not have been received - check WebObs")
                    files_kept.append(_keep_response(response_dir, f"{upload_id}-{attempt}.txt",
                                                     None, last.reason, creds))
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
                                                 resp, last.reason, creds))
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


# ---------------------------------------------------------------------------------------------
# the batch step: pending rows -> one upload per report file
# ---------------------------------------------------------------------------------------------

def _summary() -> dict[str, Any]:
    return {"accepted": 0, "rejected": 0, "messages": [], "outcomes": {}}


def _ready(cfg: Config, summary: dict[str, Any]) -> Credentials | None:
    """The credentials, or None (with the reason in ``summary``) when uploading cannot start."""
    try:
        re.compile(cfg.aavso.webobs_success_pattern)
    except re.error as exc:
        msg = f"aavso.webobs_success_pattern is not a valid regular expression: {exc}"
        log.error("WebObs upload not attempted: %s", msg)
        summary["messages"].append(msg)
        return None
    try:
        return load_credentials(cfg)
    except CredentialsError as exc:
        log.error("WebObs upload not attempted: %s", exc)
        summary["messages"].append(str(exc))
        return None


def _claim(table: ReportRows, files: list[str] | None) -> dict[str, tuple[str, list[Any]]]:
    """Mark the pending rows ``uploading``, one upload id per file (one transaction)."""
    batches: dict[str, tuple[str, list[Any]]] = {}
    with table.transaction():
        for r in table.pending_uploads(files):
            if r["file"] not in batches:
                batches[r["file"]] = (uuid.uuid4().hex[:12], [])
            batches[r["file"]][1].append(r)
        for upload_id, rows in batches.values():
            table.set_uploading(upload_id, [r["row_key"] for r in rows])
    return batches


def _send(cfg: Config, creds: Credentials, rel: str, upload_id: str,
          rows: list[Any]) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """Validate, keep a copy, upload: ``(outcome, new row state, audit fields)``."""
    outbox = outbox_dir(cfg)
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    upload_name = f"{stamp}_{upload_id}_{Path(rel).name}"
    text = file_text(rows)
    report = validate_text(text, upload_name)
    sent_copy = outbox / "audit" / "uploads" / upload_name
    sha = write_file(sent_copy, text)
    fields = {"file": str(sent_copy), "sha256": sha, "validator": report.as_dict()}
    if not report.ok:
        return ({"status": "error", "reason": "upload file does not validate: "
                 + "; ".join(str(f) for f in report.errors[:5])}, "pending", fields)
    log.info("WebObs: uploading %d row(s) of %s (%s)", len(rows), rel, upload_id)
    try:
        outcome = upload(text.encode("ascii"), Path(rel).name, len(rows), cfg, creds,
                         outbox / "audit" / "responses", upload_id).as_dict()
    except Exception as exc:  # unknown whether anything was sent: never resend blindly
        log.exception("WebObs upload %s failed unexpectedly", upload_id)
        outcome = {"status": "uncertain", "reason": f"unexpected {type(exc).__name__} during "
                   "the upload; check WebObs before sending again"}
    state = {"accepted": "sent", "uncertain": "uncertain"}.get(outcome["status"], "pending")
    return outcome, state, fields


def _count(summary: dict[str, Any], rel: str, n: int, outcome: dict[str, Any]) -> None:
    status = outcome["status"]
    summary["outcomes"][rel] = status
    if status == "accepted":
        summary["accepted"] += n
        log.info("WebObs accepted %d row(s) of %s", n, rel)
        return
    if status == "rejected":
        summary["rejected"] += n
    summary["messages"].append(f"WebObs {status}: {outcome['reason']}")
    log.error("WebObs upload of %s %s: %s", rel, status, outcome["reason"])


def upload_pending(table: ReportRows, cfg: Config,
                   files: list[str] | None = None) -> dict[str, Any]:
    """Upload every closed, pending real row (optionally only of ``files``).

    Parameters
    ----------
    table : ReportRows
        The report tables.
    cfg : Config
        The ``aavso`` section.
    files : list of str, optional
        Report files (relative to the outbox) to limit the upload to.

    Returns
    -------
    dict
        ``accepted`` / ``rejected`` (row counts), ``messages`` (why not accepted), ``outcomes``
        (report file -> status).
    """
    summary = _summary()
    if not table.pending_uploads(files):
        return summary
    creds = _ready(cfg, summary)
    if creds is None:
        return summary
    for rel, (upload_id, rows) in _claim(table, files).items():
        outcome, state, fields = _send(cfg, creds, rel, upload_id, rows)
        keys = [r["row_key"] for r in rows]
        with table.transaction():
            table.set_upload_outcome(upload_id, keys, state)
            if state == "sent":  # the frames of these rows tell the same story
                table.confirm_frames(keys, f"WebObs confirmed the upload of {rel}")
            audit(outbox_dir(cfg), rel, {
                "event": "upload", "upload_id": upload_id, "url": cfg.aavso.webobs_url,
                "rows": [r["line"] for r in rows], "row_keys": keys,
                **fields, "outcome": outcome, "state": state}, table=table)
        _count(summary, rel, len(rows), outcome)
    return summary
