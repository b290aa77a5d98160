"""The node's store-and-forward client against a real hub: measurements queued while the hub is
down arrive once it is up, a hub restarted mid-stream loses and doubles nothing, a record the
hub refuses is kept locally with the reason and never resent."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

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
from starnode.store.hub_queue import HubQueue
from waiting import wait_for


def _results(start: int, n: int) -> list[dict[str, Any]]:
    return [result(11.8, JD0 + i * 0.002, seed=i) for i in range(start, start + n)]


def test_store_and_forward_exactly_once(tmp_path: Path, db_url: str,  # noqa: F811
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    store = HubStore(hub_config(tmp_path, db_url))
    token = store.add_node("scope-a", "ABC")
    port = free_port()
    monkeypatch.setenv("STARNODE_HUB_TOKEN", token)
    node_cfg = {"data_dir": str(tmp_path / "node"),
                "hub": {"url": f"http://127.0.0.1:{port}", "batch_size": 7,
                        "retry_backoff": 0.05, "max_backoff": 0.3, "heartbeat_interval": 1,
                        "http_timeout": 5}}
    fwd = Forwarder(Config(node_cfg)).start()
    try:
        first = _results(0, 30)
        for i, r in enumerate(first):
            fwd.enqueue(r, identity=(r["file"], 1000 + i, 0))
        bad = result(11.8, JD0 + 0.5, seed=999, target_name="SS Cyg,V")  # unsafe for a report
        fwd.enqueue(bad, identity=(bad["file"], 1, 0))
        time.sleep(0.5)  # the hub is down: everything waits in the queue
        assert fwd.queue.counts() == {"queued": 31}
        assert fwd.errors and "unreachable" in fwd.errors[-1]
        with serve(store, port):
            wait_for(lambda: store.measurement_count() == 30, 30, "the queue to drain")
            wait_for(lambda: fwd.queue.counts().get("rejected") == 1, 10, "the rejection")
        # the hub goes away again; the node keeps measuring meanwhile
        more = _results(30, 12)
        for i, r in enumerate(more):
            fwd.enqueue(r, identity=(r["file"], 2000 + i, 0))
        time.sleep(0.3)
        with serve(store, port):
            wait_for(lambda: store.measurement_count() == 42, 30, "the second drain")
            # queueing the same frames again adds nothing anywhere
            for i, r in enumerate(first):
                assert not fwd.enqueue(r, identity=(r["file"], 1000 + i, 0))
            wait_for(lambda: store.nodes()[0]["heartbeat"].get("node") == "scope-a", 10,
                  "a heartbeat")
    finally:
        fwd.close(flush_timeout=0)
    assert store.measurement_count() == 42
    q = HubQueue(node_cfg)
    try:
        assert q.counts() == {"sent": 42, "rejected": 1}
    finally:
        q.close()
    summary = queue_summary(Config(node_cfg))
    assert summary is not None and summary["counts"]["rejected"] == 1
    assert "target_name" in summary["errors"][0]["last_error"]
    store.close()


def test_forwarder_refuses_to_start_without_a_token(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STARNODE_HUB_TOKEN", raising=False)
    with pytest.raises(ValueError, match="STARNODE_HUB_TOKEN"):
        Forwarder(Config({"data_dir": str(tmp_path), "hub": {"url": "http://127.0.0.1:9"}}))
