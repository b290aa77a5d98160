"""Issue 16, sections 3 and 4, the node's side: a record the hub refuses for good is set aside
with its reason and never blocks the queue (F1); a wrong token is permanent and said so in
``status`` (and ``--json``); a hub that is down is shown; a recovered node leaves ``failing``
(F10); a node resumes promptly when the hub returns (F11) and honours ``Retry-After``."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from starnode.config import Config

pytest.importorskip("httpx", reason="the hub extra is not installed")

from hub_helpers import (
    JD0,
    db_url,  # noqa: F401
    free_port,
    hub_config,
    pg_cluster,  # noqa: F401
    result,
    serve,
)
from starnode.hub.store import HubStore
from starnode.node.forwarder import Forwarder, queue_summary
from waiting import wait_for


def _node_cfg(tmp_path: Path, port: int, **hub: Any) -> dict[str, Any]:
    return {"data_dir": str(tmp_path / "node"),
            "hub": {"url": f"http://127.0.0.1:{port}", "batch_size": 50,
                    "retry_backoff": 0.05, "max_backoff": 0.3, "heartbeat_interval": 1,
                    "http_timeout": 5, **hub}}


def _enqueue(fwd: Forwarder, items: list[dict[str, Any]]) -> None:
    for i, r in enumerate(items):
        assert fwd.enqueue(r, identity=(r["file"], 1000 + i, 0))


def test_a_poisoned_record_is_set_aside_and_the_rest_stored(
        tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """F1: 1 record with a NUL + 20 good ones: the 20 are stored, the bad one is set aside
    with the hub's reason, and status (and --json) shows it."""
    store = HubStore(hub_config(tmp_path, db_url))
    monkeypatch.setenv("STARNODE_HUB_TOKEN", store.add_node("scope-a", "ABC"))
    port = free_port()
    cfg = _node_cfg(tmp_path, port)
    items = [result(11.8, JD0 + i * 0.002, seed=i) for i in range(20)]
    items.insert(3, result(11.8, JD0 + 0.3, seed=99, telescope="Seestar\x00S50"))
    with serve(store, port):
        fwd = Forwarder(Config(cfg)).start()
        try:
            _enqueue(fwd, items)
            wait_for(lambda: store.measurement_count() == 20, 20, "the 20 good records")
            wait_for(lambda: fwd.queue.counts() == {"sent": 20, "rejected": 1}, 10,
                  "the bad record set aside")
        finally:
            fwd.close(flush_timeout=0)
    summary = queue_summary(Config(cfg))
    assert summary is not None
    assert summary["counts"] == {"sent": 20, "rejected": 1}
    assert any("telescope" in str(e["last_error"]) for e in summary["errors"])
    store.close()


class _PickyHub(BaseHTTPRequestHandler):
    """A hub that refuses a whole batch (400, no index) when any record has magnitude 13:
    the node must find the one record by itself."""

    stored: ClassVar[list[float]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._send(200, {"node": "scope-a", "ok": True})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        if self.path.endswith("/heartbeat"):
            self._send(200, {"ok": True})
            return
        mags = [m["magnitude"] for m in body["measurements"]]
        if 13.0 in mags:
            self._send(400, {"detail": "something in this batch is wrong"})
            return
        type(self).stored.extend(mags)
        self._send(200, {"stored": len(mags)})


@pytest.fixture
def picky_hub() -> Iterator[int]:
    _PickyHub.stored = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PickyHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_a_batch_refused_without_an_index_is_narrowed_down(
        tmp_path: Path, picky_hub: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """F1: a 4xx that names no record: the node halves the batch until it finds the bad
    one, sets it aside, and sends every other record."""
    monkeypatch.setenv("STARNODE_HUB_TOKEN", "snn_whatever")
    cfg = _node_cfg(tmp_path, picky_hub, batch_size=16)
    items = [result(11.0 + 0.01 * i, JD0 + i * 0.002, seed=i) for i in range(30)]
    items[17] = result(13.0, JD0 + 0.9, seed=77)
    fwd = Forwarder(Config(cfg)).start()
    try:
        _enqueue(fwd, items)
        wait_for(lambda: fwd.queue.counts() == {"sent": 29, "rejected": 1}, 20,
              "the queue to drain around the bad record")
    finally:
        fwd.close(flush_timeout=0)
    assert len(_PickyHub.stored) == 29 and 13.0 not in _PickyHub.stored
    assert fwd.batch_size == 16  # back to full batches once found
    summary = queue_summary(Config(cfg))
    assert summary is not None
    assert any("HTTP 400" in str(e["last_error"]) for e in summary["errors"])


def test_a_wrong_token_is_permanent_and_shown(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Section 4: a 401 is permanent: status and --json say so (not only "N queued"), and the
    node does not hammer the hub with it."""
    from starnode.config import Config
    from starnode.node.status import status_data, status_lines

    store = HubStore(hub_config(tmp_path, f"sqlite:///{tmp_path / 'hub.sqlite3'}"))
    store.add_node("scope-a", "ABC")
    monkeypatch.setenv("STARNODE_HUB_TOKEN", "snn_not-the-right-one")
    port = free_port()
    cfg = _node_cfg(tmp_path, port, max_backoff=60)
    with serve(store, port):
        fwd = Forwarder(Config(cfg)).start()
        try:
            _enqueue(fwd, [result(11.8, JD0, seed=1)])
            wait_for(lambda: bool(fwd.errors), 10, "the refusal")
            time.sleep(1.0)
            assert len(fwd.errors) == 1  # not retried as if temporary
        finally:
            fwd.close(flush_timeout=0)
    data = status_data(Config(cfg))
    errors = data["hub"]["errors"]
    assert errors and errors[0]["permanent"] and "401" in errors[0]["last_error"]
    text = "\n".join(status_lines(data))
    assert "PERMANENT" in text and "token" in text
    json.dumps(data, default=str)  # what status --json prints
    store.close()


def test_a_hub_that_is_down_is_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Section 4: nothing listens at hub.url: status says the hub is unreachable."""
    from starnode.config import Config
    from starnode.node.status import status_data, status_lines

    monkeypatch.setenv("STARNODE_HUB_TOKEN", "snn_x")
    cfg = _node_cfg(tmp_path, free_port())
    fwd = Forwarder(Config(cfg)).start()
    try:
        _enqueue(fwd, [result(11.8, JD0, seed=1)])
        wait_for(lambda: bool(fwd.errors), 10, "the failure")
    finally:
        fwd.close(flush_timeout=0)
    data = status_data(Config(cfg))
    assert data["hub"]["errors"][0]["state"] == "link"
    assert not data["hub"]["errors"][0]["permanent"]
    assert "unreachable" in "\n".join(status_lines(data))


def test_a_recovered_node_leaves_failing_and_resumes_promptly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """F10: once the hub answers again the node's next heartbeat carries no error, so the
    hub shows it ``ok`` without a restart. F11: the node's backoff has grown to 30 s, yet it
    resumes within a few seconds of the hub's return (it probes the hub's health)."""
    store = HubStore(hub_config(tmp_path, f"sqlite:///{tmp_path / 'hub.sqlite3'}"))
    monkeypatch.setenv("STARNODE_HUB_TOKEN", store.add_node("scope-a", "ABC"))
    port = free_port()
    cfg = _node_cfg(tmp_path, port, retry_backoff=30, max_backoff=300)
    fwd = Forwarder(Config(cfg)).start()
    try:
        wait_for(lambda: bool(fwd.errors), 10, "the failure")  # the hub is down
        with serve(store, port):
            t0 = time.monotonic()
            wait_for(lambda: store.nodes()[0]["state"] == "ok", 15, "the node to be ok")
            assert time.monotonic() - t0 < 10  # not when the 30-s backoff ends
            assert store.nodes()[0]["heartbeat"]["recent_errors"] == []
            _enqueue(fwd, [result(11.8, JD0, seed=1)])
            wait_for(lambda: store.measurement_count() == 1, 15, "the push")
    finally:
        fwd.close(flush_timeout=0)
    store.close()


def test_postgresql_down_503_retry_after_and_one_line(
        tmp_path: Path, pg_cluster: Any, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    """F15: while PostgreSQL is down the hub answers 503 with Retry-After (not 500); the node
    honours it and resumes when the database is back. Section 4/5: ``hub nodes`` and ``hub
    serve`` print one line, no traceback."""
    import httpx
    import yaml

    from starnode.cli import main

    url = pg_cluster.create_database("t_down")
    store = HubStore(hub_config(tmp_path, url))
    monkeypatch.setenv("STARNODE_HUB_TOKEN", store.add_node("scope-a", "ABC"))
    hub_yaml = tmp_path / "hub.yaml"
    hub_yaml.write_text(yaml.safe_dump(hub_config(tmp_path, url)))
    port = free_port()
    cfg = _node_cfg(tmp_path, port)
    with serve(store, port) as base:
        fwd = Forwarder(Config(cfg)).start()
        try:
            wait_for(lambda: fwd.node == "scope-a", 10, "the node to connect")
            pg_cluster.pause()
            try:
                r = httpx.post(f"{base}/api/v1/measurements", json={
                    "schema_version": 3, "node": "scope-a", "measurements": [
                        __import__("hub_helpers").wire(result(seed=5), seed=5)]},
                    headers={"Authorization": "Bearer x"}, timeout=30)
                assert r.status_code in (401, 503), r.text  # an unknown token: no DB needed
                r = httpx.get(f"{base}/api/v1/health", timeout=30)
                assert r.status_code == 503 and r.headers["retry-after"]
                store._auth_cache.clear()
                _enqueue(fwd, [result(11.8, JD0, seed=1)])
                wait_for(lambda: any("503" in e for e in fwd.errors), 30, "a 503")
                assert fwd._told  # Retry-After honoured
                capsys.readouterr()
                assert main(["--config", str(hub_yaml), "hub", "nodes"]) == 2
                err = capsys.readouterr().err
                assert err.count("\n") == 1 and "cannot reach the hub database" in err
                assert "Traceback" not in err
            finally:
                pg_cluster.resume()
            wait_for(lambda: store.measurement_count() == 1, 30, "the push after the return")
        finally:
            fwd.close(flush_timeout=0)
    store.close()


def test_the_heartbeat_is_never_refused_for_a_detail(tmp_path: Path, db_url: str,  # noqa: F811
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The node's own heartbeat carries a failure reason with an escape sequence (from a
    FITS header): it is cleaned, so the hub stores the heartbeat instead of refusing it."""
    store = HubStore(hub_config(tmp_path, db_url))
    monkeypatch.setenv("STARNODE_HUB_TOKEN", store.add_node("scope-a", "ABC"))
    port = free_port()
    fwd = Forwarder(Config(_node_cfg(tmp_path, port)))
    fwd.node = "scope-a"
    fwd.errors = ["frame x.fit: OBJECT='\x1b[2J\x00' is not a star", "y" * 2000]
    try:
        hb = fwd.heartbeat()
    finally:
        fwd.close(flush_timeout=0)
    import httpx

    with serve(store, port) as url:
        r = httpx.post(f"{url}/api/v1/heartbeat", json=hb, headers={
            "Authorization": f"Bearer {os.environ['STARNODE_HUB_TOKEN']}"})
        assert r.status_code == 200, r.text
    errors = store.nodes()[0]["heartbeat"]["recent_errors"]
    assert "\x1b" not in errors[0] and "\x00" not in errors[0] and "not a star" in errors[0]
    store.close()
