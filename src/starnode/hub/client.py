"""The node's side of the hub: a durable queue and a forwarder thread (store and forward).

Why a queue in the node's own SQLite file: the hub may be down, the network may drop, the node
may be killed; none of that may lose a measurement or stop the node from measuring. So a
measurement is first written to ``hub_queue`` (a local insert, keyed by the frame's SHA-256 and
JD: the same frame never enters twice), and a background thread pushes the queue in batches,
retrying with exponential backoff. The hub acknowledges each key and stores each once (``ON
CONFLICT DO NOTHING``), so a batch resent after a lost answer is harmless: exactly once end to
end. What the hub refuses as invalid (HTTP 422, per record) is kept with the reason and never
resent; ``starnode status`` shows the queue.

:func:`wire_measurement` is the one place where the node's result dict becomes the hub's wire
record (:mod:`.wire`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .. import __version__
from ..config import Config, resolve
from ..db import connect
from . import SCHEMA_VERSION

log = logging.getLogger(__name__)

__all__ = ["TOKEN_ENV", "Forwarder", "HubQueue", "attach", "queue_summary", "wire_measurement"]

TOKEN_ENV = "STARNODE_HUB_TOKEN"
QUEUED, SENT, REJECTED = "queued", "sent", "rejected"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hub_queue (
    key TEXT PRIMARY KEY,
    frame_id INTEGER,
    payload TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created REAL NOT NULL,
    sent REAL
);
CREATE INDEX IF NOT EXISTS hub_queue_state ON hub_queue (state, created);
"""

_COMP_KEYS = ("name", "auid", "label", "catalog_mag", "catalog_err", "instrumental_mag",
              "residual", "used")
_CHECK_KEYS = ("name", "label", "auid", "mag", "catalog_mag", "instrumental_mag", "deviation",
               "error")
_KEYS = ("target_name", "auid", "filter", "band", "jd", "hjd", "magnitude", "uncertainty",
         "quality_flag", "quality_reasons", "transformed", "comparison_stars", "chart_id",
         "sequence_source", "airmass", "exptime", "instrumental_mag", "time_uncertainty_s",
         "snr", "fwhm_arcsec", "zero_point", "zp_error", "frame_kind", "telescope")


def wire_measurement(result: Mapping[str, Any], *, frame_sha256: str,
                     site_longitude: float | None) -> dict[str, Any]:
    """The node's photometry result dict (docs/INTERFACES.md) -> the hub's wire record.

    The only mapping between the two (to become ``Measurement.to_dict()`` when the typed record
    lands). The frame travels as its bare file name and content hash, never its path.
    """
    out: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    out.update({k: result.get(k) for k in _KEYS if result.get(k) is not None})
    out["comps"] = [{k: c.get(k) for k in _COMP_KEYS} for c in (result.get("comps") or [])
                    if isinstance(c, Mapping)]
    check = result.get("check_star")
    out["check_star"] = ({k: check.get(k) for k in _CHECK_KEYS}
                         if isinstance(check, Mapping) else None)
    out["file"] = Path(str(result.get("file") or "unknown")).name
    out["frame_sha256"] = frame_sha256
    telescope = str(result.get("telescope") or "")
    out["synthetic"] = bool(result.get("synthetic")) or "synthetic" in telescope.lower()
    out["site_longitude"] = site_longitude
    return out


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _token(cfg: Config) -> str | None:
    return os.environ.get(TOKEN_ENV) or cfg.hub.token


class HubQueue:
    """The ``hub_queue`` table of the node's database (one connection per instance)."""

    def __init__(self, config: Any) -> None:
        self.cfg = resolve(config)
        self.conn = connect(self.cfg.db_path)
        self.conn.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self.conn.close()

    def enqueue(self, result: Mapping[str, Any], *, frame_id: int | None = None,
                identity: tuple[str, int, int] | None = None) -> bool:
        """Queue one result (False: it was queued before). The frame's content hash is read
        from the file; if the file is gone, from its (path, size, mtime) identity."""
        path = str(result.get("file") or "")
        try:
            sha = file_sha256(path)
        except OSError:
            ident = identity or (path, 0, 0)
            sha = hashlib.sha256("|".join(map(str, ident)).encode()).hexdigest()
        payload = wire_measurement(result, frame_sha256=sha,
                                   site_longitude=result.get("site_longitude"))
        key = f"{sha}|{float(payload.get('jd') or 0.0):.6f}"
        with self._lock:
            cur = self.conn.execute(
                "INSERT OR IGNORE INTO hub_queue (key, frame_id, payload, created) "
                "VALUES (?, ?, ?, ?)", (key, frame_id, json.dumps(payload), time.time()))
        return cur.rowcount == 1

    def pending(self, limit: int) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT key, payload FROM hub_queue WHERE state = ? ORDER BY created, key "
                "LIMIT ?", (QUEUED, limit)).fetchall()
        return [(r["key"], json.loads(r["payload"])) for r in rows]

    def mark(self, keys: list[str], state: str, error: str | None = None) -> None:
        if not keys:
            return
        now = time.time()
        with self._lock:
            self.conn.executemany(
                "UPDATE hub_queue SET state = ?, last_error = ?, sent = ?, "
                "attempts = attempts + 1 WHERE key = ?",
                [(state, error, now if state == SENT else None, k) for k in keys])

    def failed_attempt(self, keys: list[str], error: str) -> None:
        with self._lock:
            self.conn.executemany("UPDATE hub_queue SET attempts = attempts + 1, "
                                  "last_error = ? WHERE key = ?", [(error, k) for k in keys])

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self.conn.execute("SELECT state, COUNT(*) FROM hub_queue GROUP BY state")
            return {r[0]: r[1] for r in rows}


def queue_summary(config: Any) -> dict[str, Any] | None:
    """The hub queue for ``starnode status`` (None when the node has none)."""
    cfg = resolve(config)
    if not cfg.db_path.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{cfg.db_path}?mode=ro", uri=True, timeout=10)
        conn.row_factory = sqlite3.Row
        try:
            counts = dict(conn.execute("SELECT state, COUNT(*) FROM hub_queue GROUP BY state")
                          .fetchall())
            last = conn.execute("SELECT MAX(sent) FROM hub_queue").fetchone()[0]
            errors = [dict(r) for r in conn.execute(
                "SELECT key, last_error, state FROM hub_queue WHERE last_error IS NOT NULL "
                "AND state != 'sent' ORDER BY created DESC LIMIT 5")]
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return {"url": cfg.hub.url, "counts": counts, "last_sent": last, "errors": errors}


class Forwarder:
    """Pushes the queue to the hub from a daemon thread; never blocks the node."""

    def __init__(self, config: Any, *, watch_mode: Callable[[], str | None] | None = None
                 ) -> None:
        import httpx

        self.cfg = resolve(config)
        h = self.cfg.hub
        if not h.url:
            raise ValueError("hub.url is not set")
        token = _token(self.cfg)
        if not token:
            raise ValueError(f"hub.url is set but no token: set ${TOKEN_ENV} or hub.token")
        self.queue = HubQueue(self.cfg)
        self.batch_size = int(h.batch_size)
        self.watch_mode = watch_mode
        self.node: str | None = None
        self.errors: list[str] = []
        self.pushed = 0
        self._http = httpx.Client(base_url=str(h.url).rstrip("/"),
                                  headers={"Authorization": f"Bearer {token}"},
                                  timeout=float(h.http_timeout))
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._draining = False
        self._backoff = 0.0
        self._next_heartbeat = 0.0
        self._thread = threading.Thread(target=self._run, name="starnode-hub-forwarder",
                                        daemon=True)

    def start(self) -> Forwarder:
        self._thread.start()
        return self

    def enqueue(self, result: Mapping[str, Any], **kw: Any) -> None:
        """Queue a measurement (a local insert) and wake the thread. Never raises."""
        try:
            self.queue.enqueue(result, **kw)
        except Exception as exc:  # the node goes on; the reason is logged
            log.error("hub: cannot queue %s: %s: %s", result.get("file"), type(exc).__name__,
                      exc)
            return
        self._wake.set()

    def close(self, flush_timeout: float | None = None) -> None:
        """Stop after pushing what is queued, for at most ``flush_timeout`` seconds."""
        timeout = float(self.cfg.hub.flush_timeout if flush_timeout is None else flush_timeout)
        self._draining = True
        self._wake.set()
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and time.monotonic() < deadline:
            if not self.queue.counts().get(QUEUED):
                break
            time.sleep(0.05)
        left = self.queue.counts().get(QUEUED, 0)
        if left:
            log.warning("hub: %d measurement(s) still queued; they are pushed by the next run",
                        left)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=float(self.cfg.hub.http_timeout) + 5)
        self._http.close()
        self.queue.close()

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self._cycle()
            except Exception as exc:  # never dies: log, back off
                worked = False
                self._failed(f"{type(exc).__name__}: {exc}")
            if self._stop.is_set():
                break
            if self._backoff > 0:
                self._stop.wait(self._backoff)
            elif not worked:
                self._wake.wait(0.2 if self._draining else 1.0)
                self._wake.clear()

    def _failed(self, error: str) -> None:
        h = self.cfg.hub
        self._backoff = min(float(h.max_backoff),
                            max(float(h.retry_backoff), self._backoff * 2))
        self.errors = ([*self.errors, error])[-5:]
        log.warning("hub: %s; retrying in %.1f s", error, self._backoff)

    def _cycle(self) -> bool:
        import httpx

        if self.node is None:
            try:
                r = self._http.get("/api/v1/whoami")
            except httpx.HTTPError as exc:
                self._failed(f"hub unreachable: {type(exc).__name__}: {exc}")
                return False
            if r.status_code != 200:
                self._failed(f"hub refused the token: HTTP {r.status_code} {_detail(r)}")
                return False
            self.node = str(r.json()["node"])
            log.info("hub: connected to %s as node %s", self.cfg.hub.url, self.node)
        if time.monotonic() >= self._next_heartbeat:
            self._heartbeat()
        batch = self.queue.pending(self.batch_size)
        if not batch:
            self._backoff = 0.0
            return False
        body = {"schema_version": SCHEMA_VERSION, "node": self.node,
                "measurements": [p for _k, p in batch]}
        keys = [k for k, _p in batch]
        try:
            r = self._http.post("/api/v1/measurements", json=body)
        except httpx.HTTPError as exc:
            self.queue.failed_attempt(keys, f"{type(exc).__name__}: {exc}")
            self._failed(f"push failed: {type(exc).__name__}: {exc}")
            return False
        if r.status_code == 200:
            self.queue.mark(keys, SENT)
            self.pushed += len(keys)
            self._backoff = 0.0
            log.debug("hub: pushed %d measurement(s): %s", len(keys), r.json().get("stored"))
            return True
        detail = _detail(r)
        if r.status_code == 422:
            rejected = (r.json().get("rejected") or {}) if _is_json(r) else {}
            if rejected:
                bad = {keys[int(i)]: why for i, why in rejected.items() if int(i) < len(keys)}
                for k, why in bad.items():
                    self.queue.mark([k], REJECTED, f"refused by the hub: {why}")
                    log.error("hub: measurement %s refused, kept locally: %s", k, why)
                return True
        if r.status_code == 413 and len(keys) > 1:
            self.batch_size = max(1, len(keys) // 2)
            return True
        if r.status_code == 413:
            self.queue.mark(keys, REJECTED, f"refused by the hub: {detail}")
            return True
        if r.status_code == 429:
            with contextlib.suppress(ValueError):
                self._backoff = float(r.headers.get("retry-after", "5")) / 2
        self.queue.failed_attempt(keys, f"HTTP {r.status_code}: {detail}")
        self._failed(f"push refused: HTTP {r.status_code} {detail}")
        return False

    def _heartbeat(self) -> None:
        import httpx

        self._next_heartbeat = time.monotonic() + float(self.cfg.hub.heartbeat_interval)
        try:
            r = self._http.post("/api/v1/heartbeat", json=self.heartbeat())
            if r.status_code != 200:
                log.warning("hub: heartbeat refused: HTTP %d %s", r.status_code, _detail(r))
        except httpx.HTTPError as exc:
            log.debug("hub: heartbeat failed: %s", exc)

    def heartbeat(self) -> dict[str, Any]:
        """What the operator sees of this node (``starnode hub nodes``)."""
        counts = self.queue.counts()
        hb: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "node": self.node,
                              "version": __version__, "queue_length": counts.get(QUEUED, 0),
                              "recent_errors": list(self.errors[-3:])}
        with contextlib.suppress(Exception):
            hb["watch_mode"] = self.watch_mode() if self.watch_mode else None
        with contextlib.suppress(OSError):
            hb["free_disk_gb"] = shutil.disk_usage(self.cfg.data_dir).free / 1e9
        with contextlib.suppress(sqlite3.Error), self.queue._lock:
            c = self.queue.conn
            last = c.execute("SELECT path, updated FROM frames ORDER BY updated DESC "
                             "LIMIT 1").fetchone()
            if last is not None:
                hb["last_frame"] = Path(last["path"]).name[:300]
                hb["last_frame_time"] = last["updated"]
            hb["frames"] = dict(c.execute("SELECT state, COUNT(*) FROM frames GROUP BY state")
                                .fetchall())
            hb["recent_errors"] += [str(r[0])[:500] for r in c.execute(
                "SELECT reason FROM frames WHERE state = 'failed' AND updated > ? "
                "ORDER BY updated DESC LIMIT 3", (time.time() - 3600,))]
        return hb


def _is_json(r: Any) -> bool:
    return "json" in r.headers.get("content-type", "")


def _detail(r: Any) -> str:
    if _is_json(r):
        with contextlib.suppress(ValueError):
            return str(r.json().get("detail", ""))[:300]
    return r.text[:200]


def attach(node: Any) -> Forwarder | None:
    """The node's forwarder, started, when ``hub.url`` is set (None otherwise, or when it
    cannot start: the node then measures and reports locally as always, and says why)."""
    cfg = node.config
    if not cfg.hub.url:
        return None
    try:
        fwd = Forwarder(cfg, watch_mode=lambda: getattr(node._watcher, "active_mode", None))
    except Exception as exc:
        log.error("hub: not forwarding to %s: %s", cfg.hub.url, exc)
        return None
    return fwd.start()
