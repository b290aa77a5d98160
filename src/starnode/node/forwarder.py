"""The node's side of the hub: a durable queue and a forwarder thread (store and forward).

Why a queue in the node's own SQLite file: the hub may be down, the network may drop, the node
may be killed; none of that may lose a measurement or stop the node from measuring. So a
measurement is first written to ``hub_queue`` (a local insert, keyed by the frame's SHA-256 and
JD: the same frame never enters twice), and a background thread pushes the queue in batches,
retrying with exponential backoff. The hub acknowledges each key and stores each once (``ON
CONFLICT DO NOTHING``), so a batch resent after a lost answer is harmless: exactly once end to
end. What the hub refuses for good (a 422 naming records, or any 4xx but 401, 403, 408 and
429, narrowed down to the one record by halving the batch) is set aside with the reason and
never resent, so one bad record never blocks the queue; a refused token is permanent (said so,
not retried as if temporary); while the hub is away its health is probed so the node resumes
within seconds of its return. ``starnode status`` shows the queue and the link
(:mod:`.link`).

:func:`wire_measurement` is the one place where the node's result dict becomes the hub's wire
record (:mod:`starnode.hub.wire`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .._version import __version__
from ..config import Config
from ..records import SCHEMA_VERSION, Measurement, consistency_problems
from ..store import Ledger, Store
from ..store.hub_queue import QUEUED, REJECTED, SENT, HubQueue
from . import hublink
from .assignment import current_assignment, pending_alerts, record_alert_outcome

log = logging.getLogger(__name__)

__all__ = ["TOKEN_ENV", "Forwarder", "attach", "current_assignment", "file_sha256",
           "pending_alerts", "queue_key", "queue_summary", "record_alert_outcome",
           "wire_measurement"]

TOKEN_ENV = "STARNODE_HUB_TOKEN"

#: The keys of :meth:`Measurement.to_dict` that travel (about 1 KB); the hub's model
#: (:class:`starnode.hub.wire.MeasurementIn`) ignores any other. Diagnostics (astrometry,
#: aperture, pixel positions) and the raw OBJECT card stay on the node.
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


def _content_key(path: str, identity: tuple[str, int, int] | None) -> str:
    """The file's SHA-256; of its identity when it is gone."""
    try:
        return file_sha256(path)
    except OSError:
        ident = identity or (path, 0, 0)
        return hashlib.sha256("|".join(map(str, ident)).encode()).hexdigest()


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


def queue_summary(config: Config) -> dict[str, Any] | None:
    """The hub queue for ``starnode status``.

    Parameters
    ----------
    config : Config
        The node's configuration.

    Returns
    -------
    dict or None
        ``url`` and :meth:`HubQueue.summary`'s keys; None when the node has no database yet.
    """
    cfg = config
    if not cfg.db_path.exists():
        return None
    with HubQueue(cfg) as q:
        out = {"url": cfg.hub.url, **q.summary()}
    link = hublink.read_link(cfg)
    out["link"] = link
    problem = hublink.link_error(link)
    if problem:
        out["errors"] = [{"key": None, "state": "link", "last_error": problem,
                          "permanent": bool(link and link.get("permanent"))},
                         *out["errors"]]
    return out


def _token(cfg: Config) -> str | None:
    return hublink.token_of(cfg)


class Forwarder:
    """Pushes the queue to the hub from a daemon thread; never blocks the node."""

    def __init__(self, config: Config, *, watch_mode: Callable[[], str | None] | None = None,
                 weather: Callable[[], tuple[bool, str | None] | None] | None = None) -> None:
        import httpx

        self.cfg = config
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
        self.weather = weather
        tel = self.cfg.get("telescope")
        #: A telescope runner applies the assignment (and marks it so, after its journal has
        #: it); without one the assignment is acknowledged once it is kept (``starnode plan``
        #: reads it).
        self.applies = bool(isinstance(tel, Mapping) and tel.get("driver", "none") != "none"
                            and tel.get("motion"))
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
        self._told = False  # the hub said when to come back (Retry-After): no probing
        self._link = ""
        self._bisecting = False
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
                identity: tuple[str, int, int] | None = None,
                sha256: str | None = None) -> bool:
        """Queue a measurement (a local insert) and wake the thread. Never raises.

        Parameters
        ----------
        result : Measurement or Mapping
            The measurement.
        frame_id : int, optional
            Its ledger row.
        identity : (path, size, mtime_ns), optional
            The frame's identity, hashed instead when the file is gone.
        sha256 : str, optional
            The frame's content hash, as the worker computed it from the bytes it measured
            (the exactly-once key). Without it (a measurement of an earlier run handed again)
            the file is read and hashed here.

        Returns
        -------
        bool
            True when it was queued now (False: queued before, or it could not be: logged).
        """
        try:
            m = result if isinstance(result, Measurement) else Measurement.from_dict(result)
            path = str(m.file or "")
            sha = sha256 or _content_key(path, identity)
            payload = wire_measurement(m, frame_sha256=sha)
            problems = consistency_problems(payload)
            if problems:  # the hub would refuse it: keep it on the node, say why
                log.error("hub: %s not queued: %s", Path(path).name, "; ".join(problems))
                return False
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
        if self._thread.is_alive():
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
                self._wait_backoff()
            elif not worked:
                self._wake.wait(0.2 if self._draining else 1.0)
                self._wake.clear()

    #: Seconds between probes of the hub's health while backing off: the node resumes within
    #: this time of the hub (or its database) coming back, whatever the backoff has grown to.
    PROBE_INTERVAL = 3.0

    def _wait_backoff(self) -> None:
        """Wait out the backoff, probing ``/api/v1/health`` meanwhile so a hub that is back
        is used at once (not when a 300-s backoff ends). A ``Retry-After`` is obeyed as is."""
        import httpx

        deadline = time.monotonic() + self._backoff
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self._told or self._link == hublink.REFUSED:
                self._stop.wait(left)
                return
            if self._stop.wait(min(left, self.PROBE_INTERVAL)):
                return
            with contextlib.suppress(httpx.HTTPError):
                if self._http.get("/api/v1/health", timeout=3.0).status_code == 200:
                    log.info("hub: %s answers again; resuming", self.cfg.hub.url)
                    self._backoff = 0.0
                    return

    def _failed(self, error: str, *, state: str = hublink.TEMPORARY, permanent: bool = False,
                wait: float | None = None) -> None:
        h = self.cfg.hub
        if wait is not None:
            self._backoff, self._told = min(float(h.max_backoff), max(wait, 0.1)), True
        else:
            self._backoff = min(float(h.max_backoff),
                                max(float(h.retry_backoff), self._backoff * 2))
            self._told = False
        if permanent:
            self._backoff = float(h.max_backoff)
        self.errors = ([*self.errors, error])[-5:]
        self._set_link(state, error, permanent=permanent)
        log.warning("hub: %s; %s %.1f s", error, "PERMANENT, checking again in" if permanent
                    else "retrying in", self._backoff)

    def _set_link(self, state: str, error: str | None = None, *,
                  permanent: bool = False) -> None:
        if state == self._link and state == hublink.OK:
            return
        self._link = state
        hublink.write_link(self.cfg, state, error, permanent=permanent)

    def _recovered(self) -> None:
        """The hub answered: forget the errors, and tell it at once (not ``failing``)."""
        was = self._link
        self._backoff, self._told = 0.0, False
        self._set_link(hublink.OK)
        if self.errors:
            self.errors = []
            if was and was != hublink.OK:
                self._next_heartbeat = 0.0

    def _connect(self) -> bool:
        """Ask the hub who this token is (once per run); False when it cannot be used now."""
        import httpx

        try:
            r = self._http.get("/api/v1/whoami")
        except httpx.HTTPError as exc:
            self._failed(f"hub unreachable: {type(exc).__name__}: {exc}",
                         state=hublink.UNREACHABLE)
            return False
        if r.status_code != 200:
            self._refused(r, f"hub refused the token: HTTP {r.status_code} {_detail(r)}")
            return False
        self.node = str(r.json()["node"])
        log.info("hub: connected to %s as node %s", self.cfg.hub.url, self.node)
        self._recovered()
        return True

    def _refused(self, r: Any, error: str) -> None:
        """A hub answer that is not about the records: the token, or a hub in trouble."""
        kind = hublink.classify(r.status_code)
        if kind == hublink.PERMANENT_LINK:
            self._failed(error, state=hublink.REFUSED, permanent=True)
        else:
            self._failed(error, wait=hublink.retry_after(r.headers))

    def _cycle(self) -> bool:
        import httpx

        if self.node is None and not self._connect():
            return False
        if time.monotonic() >= self._next_heartbeat:
            self._heartbeat()
        self._send_acks()
        batch = self.queue.pending(self.batch_size)
        if not batch:
            self._backoff = 0.0
            return False
        assert self.node is not None
        body = {"schema_version": SCHEMA_VERSION, "node": self.node,
                "measurements": [p for _k, p in batch]}
        keys = [k for k, _p in batch]
        try:
            r = self._http.post("/api/v1/measurements", json=body)
        except httpx.HTTPError as exc:
            self.queue.failed_attempt(keys, f"{type(exc).__name__}: {exc}")
            self._failed(f"push failed: {type(exc).__name__}: {exc}",
                         state=hublink.UNREACHABLE)
            return False
        if r.status_code == 200:
            self.queue.mark(keys, SENT)
            self.pushed += len(keys)
            self._recovered()
            log.debug("hub: pushed %d measurement(s): %s", len(keys), r.json().get("stored"))
            return True
        return self._not_taken(r, keys)

    def _not_taken(self, r: Any, keys: list[str]) -> bool:
        """A push answered with an error: set aside what is refused for good, retry the rest.

        A 422 naming records sets those aside; any other refusal of the records (4xx but
        401, 403, 408, 429) is narrowed down by halving the batch until the one record is
        found, which is set aside with the hub's reason: a bad record never blocks the queue.
        """
        detail = _detail(r)
        kind = hublink.classify(r.status_code)
        if kind == hublink.REFUSE_RECORDS:
            self._recovered()  # the hub is up and the token good; it is about the records
            rejected = (r.json().get("rejected") or {}) if r.status_code == 422 and _is_json(
                r) else {}
            if rejected:
                bad = {keys[int(i)]: why for i, why in rejected.items()
                       if str(i).isdigit() and int(i) < len(keys)}
                for k, why in bad.items():
                    self._set_aside(k, f"HTTP 422: {why}")
                if bad:
                    return True
            if len(keys) > 1:
                self.batch_size = max(1, len(keys) // 2)
                self._bisecting = self._bisecting or r.status_code != 413
                return True
            self._set_aside(keys[0], f"HTTP {r.status_code}: {detail}")
            return True
        self.queue.failed_attempt(keys, f"HTTP {r.status_code}: {detail}")
        self._refused(r, f"push refused: HTTP {r.status_code} {detail}")
        return False

    def _set_aside(self, key: str, why: str) -> None:
        self.queue.mark([key], REJECTED, f"refused by the hub: {why}")
        log.error("hub: measurement %s refused for good, set aside (kept locally): %s", key,
                  why)
        if self._bisecting:  # found: back to full batches
            self.batch_size, self._bisecting = int(self.cfg.hub.batch_size), False

    def _heartbeat(self) -> None:
        import httpx

        self._next_heartbeat = time.monotonic() + float(self.cfg.hub.heartbeat_interval)
        try:
            r = self._http.post("/api/v1/heartbeat", json=self.heartbeat())
            if r.status_code != 200:
                log.warning("hub: heartbeat refused: HTTP %d %s", r.status_code, _detail(r))
            elif _is_json(r):
                self.apply_answer(r.json())
        except httpx.HTTPError as exc:
            log.debug("hub: heartbeat failed: %s", exc)

    def apply_answer(self, answer: Mapping[str, Any]) -> None:
        """Keep the assignment and alerts of a heartbeat answer (:mod:`.assignment`), each
        written before it is acknowledged; a refused assignment (another node's, expired,
        malformed) is logged and the last good one stays.

        Parameters
        ----------
        answer : Mapping
            The hub's answer to a heartbeat.
        """
        from . import assignment as nodeplan

        data_dir = self.cfg.data_dir
        a = answer.get("assignment")
        if isinstance(a, Mapping) and self.node:
            try:
                nodeplan.store_assignment(data_dir, self.node, dict(a))
            except nodeplan.Refused as exc:
                log.error("hub: assignment refused, keeping the last one: %s", exc)
                self.errors = [*self.errors, f"assignment refused: {exc}"][-5:]
        alerts = answer.get("alerts")
        if isinstance(alerts, list) and alerts:
            try:
                nodeplan.store_alerts(data_dir, [dict(x) for x in alerts])
            except (KeyError, TypeError, ValueError) as exc:
                log.error("hub: malformed alerts in the heartbeat answer: %s", exc)
        self._send_acks()

    def _send_acks(self) -> None:
        """Acknowledge what is kept and not yet acknowledged: the assignment (applied), and
        each alert outcome the runner recorded. A 4xx is final (logged; not resent)."""
        import httpx

        from . import assignment as nodeplan

        data_dir = self.cfg.data_dir
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        todo: list[tuple[str, dict[str, Any], Callable[[str], None]]] = []
        a = nodeplan.unacked_assignment(data_dir, applied_only=self.applies)
        if a is not None:
            night, h = str(a["night"]), str(a["hash"])
            todo.append(("/api/v1/assignments/ack",
                         {"node": self.node, "night": night, "hash": h, "status": "applied",
                          "at": now},
                         lambda _why: nodeplan.mark_assignment_acked(data_dir, night, h)))
        for aid, outcome in nodeplan.unsent_alert_outcomes(data_dir):
            todo.append((f"/api/v1/alerts/{aid}/ack", {"node": self.node, **outcome},
                         functools.partial(nodeplan.mark_alert_sent, data_dir, aid)))
        for url, body, done in todo:
            try:
                r = self._http.post(url, json=body)
            except httpx.HTTPError as exc:
                log.debug("hub: acknowledgement not sent (%s); retried later", exc)
                return
            if r.status_code == 200:
                done("accepted")
            elif 400 <= r.status_code < 500 and r.status_code != 429:
                log.error("hub: acknowledgement %s refused: HTTP %d %s", url, r.status_code,
                          _detail(r))
                done(f"HTTP {r.status_code}: {_detail(r)}")

    def profile(self) -> dict[str, Any]:
        """What the allocation needs to know of this node, from its configuration: ``site``
        (``site.latitude``/``longitude``/``elevation``), ``limits`` and ``instrument`` (the
        ``telescope:`` section, when this starnode has one) and ``weather`` (the veto of the
        weather source given to the forwarder, if any).

        Returns
        -------
        dict
            The heartbeat's optional planning fields that are known.
        """
        out: dict[str, Any] = {}
        site = self.cfg.site
        if site.latitude is not None and site.longitude is not None:
            out["site"] = {"latitude": float(site.latitude),
                           "longitude": float(site.longitude),
                           "height": float(site.elevation or 0.0)}
        tel = self.cfg.get("telescope")
        if isinstance(tel, Mapping):
            limits = {k: tel[k] for k in ("sun_limit", "min_altitude", "max_altitude")
                      if tel.get(k) is not None}
            limits["horizon"] = [list(map(float, p)) for p in tel.get("horizon") or []]
            out["limits"] = limits
            out["instrument"] = self._instrument(tel)
        if self.weather is not None:
            with contextlib.suppress(Exception):
                w = self.weather()
                if w is not None:
                    out["weather"] = {"veto": bool(w[0]), "reason": (w[1] or None)}
        return out

    def _instrument(self, tel: Mapping[str, Any]) -> dict[str, Any]:
        """``model``, ``bright_limit`` and ``faint_limit`` from the instrument profile
        (``telescope.model``, else the S50): the brightest magnitude that does not saturate
        in the shortest allowed frame, the faintest reaching ``planning.min_snr`` in the
        longest (alt-az)."""
        from ..instruments import profile

        inst = profile(tel.get("model") or None)
        pl = self.cfg.get("planning")
        expert = bool(pl.get("expert_exposures", True)) if isinstance(pl, Mapping) else True
        min_snr = float(pl.get("min_snr", 10.0)) if isinstance(pl, Mapping) else 10.0
        options = inst.allowed_exposures(altaz=True, expert=expert)
        bright = round(float(inst.saturation_mag(min(options))), 2)
        faint = round(float(inst.faint_limit(max(options), min_snr)), 2)
        return {"model": str(tel.get("model") or inst.model)[:64],
                "bright_limit": min(bright, faint), "faint_limit": max(bright, faint)}

    def heartbeat(self) -> dict[str, Any]:
        """What the operator sees of this node (``starnode hub nodes``).

        Returns
        -------
        dict
            A :class:`~starnode.hub.wire.Heartbeat`: version, watch mode, queue length, free
            disk, last frame, frames by state, recent errors.
        """
        counts = self.queue.counts()
        hb: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "node": self.node,
                              "version": __version__, "queue_length": counts.get(QUEUED, 0),
                              "recent_errors": list(self.errors[-3:])}
        with contextlib.suppress(Exception):
            hb["watch_mode"] = self.watch_mode() if self.watch_mode else None
        with contextlib.suppress(OSError):
            hb["free_disk_gb"] = shutil.disk_usage(self.cfg.data_dir).free / 1e9
        with contextlib.suppress(Exception):
            hb.update(self.profile())
        with contextlib.suppress(Exception):
            from .assignment import current_assignment

            held = current_assignment(self.cfg.data_dir)
            hb["assignment"] = held["hash"] if held else None
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
        return _printable(hb)

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


#: Characters the hub refuses in a heartbeat's text (:data:`.wire._MULTILINE`).
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _printable(hb: dict[str, Any]) -> dict[str, Any]:
    """The heartbeat with control characters (say, from a FITS header in a failure reason)
    replaced, and texts cut to the hub's limits: the hub must never refuse it for a detail."""
    def clean(text: Any, limit: int, lines: bool = False) -> str:
        out = _UNPRINTABLE.sub("?", str(text))
        return (out if lines else out.replace("\n", " ").replace("\t", " "))[:limit]
    out = dict(hb)
    out["recent_errors"] = [clean(e, 500, lines=True) for e in hb.get("recent_errors", [])
                            ][-20:]
    for key, limit in (("last_frame", 300), ("watch_mode", 64)):
        if out.get(key) is not None:
            out[key] = clean(out[key], limit)
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
        from ..telescope.weather import weather_from_config

        source = weather_from_config(cfg)
        fwd = Forwarder(cfg, watch_mode=lambda: getattr(node._watcher, "active_mode", None),
                        weather=source.veto if source is not None else None)
    except Exception as exc:
        log.error("hub: not forwarding to %s: %s", cfg.hub.url, exc)
        return None
    return fwd.start()
