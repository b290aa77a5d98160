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
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .. import __version__
from ..config import Config, resolve
from ..records import Measurement
from ..store import Ledger, Store
from ..store.hub_queue import QUEUED, REJECTED, SENT, HubQueue
from . import SCHEMA_VERSION

log = logging.getLogger(__name__)

__all__ = ["TOKEN_ENV", "Forwarder", "attach", "file_sha256", "queue_key", "queue_summary",
           "wire_measurement"]

TOKEN_ENV = "STARNODE_HUB_TOKEN"

#: The keys of :meth:`Measurement.to_dict` that travel (about 1 KB); the hub's model
#: (:class:`.wire.MeasurementIn`) ignores any other. Diagnostics (astrometry, aperture, pixel
#: positions) and the raw OBJECT card stay on the node.
_KEYS = ("schema_version", "target_name", "auid", "filter", "band", "jd", "hjd", "magnitude",
         "uncertainty", "quality_flag", "quality_reasons", "transformed", "comparison_stars",
         "chart_id", "sequence_source", "airmass", "exptime", "instrumental_mag",
         "time_uncertainty_s", "snr", "fwhm_arcsec", "zero_point", "zp_error", "frame_kind",
         "telescope", "synthetic", "site_longitude", "site_latitude", "site_height", "night")
_COMP_KEYS = ("name", "auid", "label", "catalog_mag", "catalog_err", "instrumental_mag",
              "residual", "used")


def wire_measurement(result: Measurement | Mapping[str, Any], *,
                     frame_sha256: str) -> dict[str, Any]:
    """The hub's wire record of a measurement (the node's result dict or the typed record).

    Parameters
    ----------
    result : Measurement or Mapping
        A :class:`~starnode.records.Measurement` or its dict form (any schema version:
        :meth:`Measurement.from_dict` reads it).
    frame_sha256 : str
        SHA-256 of the frame file's content (part of the exactly-once key).

    Returns
    -------
    dict
        :meth:`Measurement.to_dict`'s keys that travel, with the site and the observing night
        as the pipeline recorded them; the frame as its bare file name, never its path.

    Raises
    ------
    TypeError
        ``result`` is not a measurement.
    """
    m = result if isinstance(result, Measurement) else Measurement.from_dict(result)
    d = m.to_dict()
    out: dict[str, Any] = {k: d[k] for k in _KEYS if d.get(k) is not None}
    out["schema_version"] = SCHEMA_VERSION  # to_dict() is the current layout, whatever it read
    out["comps"] = [{k: c.get(k) for k in _COMP_KEYS} for c in d.get("comps") or []]
    check = d.get("check_star")
    out["check_star"] = ({k: v for k, v in check.items() if v is not None}
                         if isinstance(check, Mapping) else None)
    out["file"] = Path(str(m.file or "unknown")).name
    out["frame_sha256"] = frame_sha256
    out["synthetic"] = bool(m.synthetic) or "synthetic" in str(m.telescope or "").lower()
    return out


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's content.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    str
        64 lowercase hex digits.

    Raises
    ------
    OSError
        The file cannot be read.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def queue_key(frame_sha256: str, jd: float) -> str:
    """The node-side exactly-once key of a measurement (the hub adds the node).

    Parameters
    ----------
    frame_sha256 : str
        The frame's content hash.
    jd : float
        Mid-exposure JD (to 1e-6 day).

    Returns
    -------
    str
    """
    return f"{frame_sha256}|{float(jd):.6f}"


def queue_summary(config: Any) -> dict[str, Any] | None:
    """The hub queue for ``starnode status``.

    Parameters
    ----------
    config : Config or anything :func:`starnode.config.resolve` accepts
        The node's configuration.

    Returns
    -------
    dict or None
        ``url`` and :meth:`HubQueue.summary`'s keys; None when the node has no database yet.
    """
    cfg = resolve(config)
    if not cfg.db_path.exists():
        return None
    with HubQueue(cfg) as q:
        return {"url": cfg.hub.url, **q.summary()}


def _token(cfg: Config) -> str | None:
    return os.environ.get(TOKEN_ENV) or cfg.hub.token


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
        self.store = Store.open(self.cfg)
        self.queue = HubQueue(self.store)
        self.ledger = Ledger(store=self.store)
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
        """Start the pushing thread.

        Returns
        -------
        Forwarder
            ``self``.
        """
        self._thread.start()
        return self

    def enqueue(self, result: Measurement | Mapping[str, Any], *, frame_id: int | None = None,
                identity: tuple[str, int, int] | None = None) -> bool:
        """Queue a measurement (a local insert) and wake the thread. Never raises.

        Parameters
        ----------
        result : Measurement or Mapping
            The measurement (its ``file`` is hashed for the exactly-once key).
        frame_id : int, optional
            Its ledger row.
        identity : (path, size, mtime_ns), optional
            The frame's identity, hashed instead when the file is gone.

        Returns
        -------
        bool
            True when it was queued now (False: queued before, or it could not be: logged).
        """
        try:
            m = result if isinstance(result, Measurement) else Measurement.from_dict(result)
            path = str(m.file or "")
            try:
                sha = file_sha256(path)
            except OSError:
                ident = identity or (path, 0, 0)
                sha = hashlib.sha256("|".join(map(str, ident)).encode()).hexdigest()
            payload = wire_measurement(m, frame_sha256=sha)
            new = self.queue.enqueue(queue_key(sha, m.jd), payload, frame_id)
        except Exception as exc:  # the node goes on; the reason is logged
            name = result.file if isinstance(result, Measurement) else result.get("file")
            log.error("hub: cannot queue %s: %s: %s", name, type(exc).__name__, exc)
            return False
        self._wake.set()
        return new

    def close(self, flush_timeout: float | None = None) -> None:
        """Stop after pushing what is queued, for at most ``flush_timeout`` seconds.

        Parameters
        ----------
        flush_timeout : float, optional
            Default ``hub.flush_timeout``; what is left is pushed by the next run.
        """
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
        self.store.close()

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
        """What the operator sees of this node (``starnode hub nodes``).

        Returns
        -------
        dict
            A :class:`~.wire.Heartbeat`: version, watch mode, queue length, free disk, last
            frame, frames by state, recent errors.
        """
        counts = self.queue.counts()
        hb: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "node": self.node,
                              "version": __version__, "queue_length": counts.get(QUEUED, 0),
                              "recent_errors": list(self.errors[-3:])}
        with contextlib.suppress(Exception):
            hb["watch_mode"] = self.watch_mode() if self.watch_mode else None
        with contextlib.suppress(OSError):
            hb["free_disk_gb"] = shutil.disk_usage(self.cfg.data_dir).free / 1e9
        with contextlib.suppress(Exception):  # the heartbeat never fails for a detail
            frames = self._frames_state()
            hb["recent_errors"] += frames.pop("recent_errors")
            hb.update(frames)
        with contextlib.suppress(Exception):  # a failed park is the operator's first concern
            from ..telescope.status import telescope_status

            alarm = (telescope_status(self.cfg, last=0) or {}).get("alarm")
            if alarm:
                hb["recent_errors"] = [f"TELESCOPE ALARM: {alarm}"[:500],
                                       *hb["recent_errors"]][:20]
        return hb

    def _frames_state(self) -> dict[str, Any]:
        """The ledger's side of the heartbeat: last frame, frames by state, recent failures."""
        out: dict[str, Any] = {"frames": {k: n for k, n in self.ledger.counts().items() if n}}
        last = self.ledger.frames(limit=1, newest_first=True)
        if last:
            out["last_frame"] = Path(last[0].path).name[:300]
            out["last_frame_time"] = last[0].updated
        hour_ago = time.time() - 3600
        out["recent_errors"] = [str(f.reason)[:500] for f in self.ledger.frames(
            states=["failed"], limit=3, newest_first=True) if f.updated > hour_ago]
        return out


def _is_json(r: Any) -> bool:
    return "json" in r.headers.get("content-type", "")


def _detail(r: Any) -> str:
    if _is_json(r):
        with contextlib.suppress(ValueError):
            return str(r.json().get("detail", ""))[:300]
    return r.text[:200]


def attach(node: Any) -> Forwarder | None:
    """The node's forwarder, started, when ``hub.url`` is set.

    Parameters
    ----------
    node : Node
        The node service (its ``config`` and watcher).

    Returns
    -------
    Forwarder or None
        None without ``hub.url``, or when it cannot start (no token, database error): the node
        then measures and reports locally as always, and the reason is logged.
    """
    cfg = node.config
    if not cfg.hub.url:
        return None
    try:
        fwd = Forwarder(cfg, watch_mode=lambda: getattr(node._watcher, "active_mode", None))
    except Exception as exc:
        log.error("hub: not forwarding to %s: %s", cfg.hub.url, exc)
        return None
    return fwd.start()
