"""Issue 18, item 3: the node hands each measurement to a list of named sinks (``node.sinks``),
each answering with a typed :class:`SinkAnswer`; the AAVSO outbox's answer is the frame's
submission in the ledger; a new report format is one more sink; the hub sink keys on the hash
the worker computed and never reads the frame again. Real ledger, real outbox, real queue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aavso_helpers import at, make_config
from starnode.config import Config, resolve
from starnode.errors import ConfigError, FrameState
from starnode.node.outcomes import Outcomes
from starnode.node.pool import MeasuredFrame
from starnode.node.sinks import AavsoSink, FrameInfo, HubSink, SinkAnswer, build_sinks
from starnode.records import Measurement
from starnode.store import Ledger


def test_sink_names_are_checked_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"node\.sinks.*unknown sink 'hbu' \(did you mean "
                                          r"'hub'\?\)"):
        resolve({"node": {"sinks": ["aavso", "hbu"]}})
    with pytest.raises(ConfigError, match="twice"):
        resolve({"node": {"sinks": ["aavso", "aavso"]}})
    assert resolve({}).node.sinks == ["aavso", "hub"]


def test_sinks_by_name_and_order() -> None:
    cfg = resolve({})
    assert [s.name for s in build_sinks(cfg)] == ["aavso"]  # no hub.url: no hub sink
    fwd = object()
    assert [s.name for s in build_sinks(cfg, hub=fwd)] == ["aavso", "hub"]
    assert [s.name for s in build_sinks(cfg, submit=False, hub=fwd)] == ["hub"]
    swapped = resolve({"node": {"sinks": ["hub", "aavso"]}})
    sinks = build_sinks(swapped, hub=fwd)
    assert [type(s) for s in sinks] == [HubSink, AavsoSink]
    assert build_sinks(resolve({"node": {"sinks": []}}), hub=fwd) == []


class _Format:
    """A new report format: one more sink."""

    name = "csv-archive"
    reports = False

    def __init__(self) -> None:
        self.got: list[tuple[Measurement, FrameInfo]] = []

    def accept(self, measurement: Measurement, frame: FrameInfo) -> SinkAnswer:
        self.got.append((measurement, frame))
        return SinkAnswer(self.name, "written")

    def flush(self) -> None:
        return None


class _Broken(_Format):
    name = "broken"

    def accept(self, measurement: Measurement, frame: FrameInfo) -> SinkAnswer:
        raise OSError("disk on fire")


def test_each_sink_takes_the_typed_record_and_the_outbox_answer_is_kept(
        tmp_path: Path) -> None:
    cfg = Config(make_config(tmp_path))
    frames = tmp_path / "frames"
    frames.mkdir()
    p = frames / "Light_a.fit"
    p.write_bytes(b"x")
    with Ledger(cfg) as ledger:
        outcomes = Outcomes(cfg, ledger, "owner", submit=True)
        extra, broken = _Format(), _Broken()
        outcomes.sinks += [broken, extra]
        ledger.add(p)
        (frame,) = ledger.claim("owner", ids=[ledger.find(p)[0].id])
        assert outcomes.record(frame, MeasuredFrame(at(0), sha256="ab" * 32))
        (m, info), = extra.got
        assert isinstance(m, Measurement) and m.magnitude == at(0)["magnitude"]
        assert info == FrameInfo(frame.id, frame.path, frame.size, frame.mtime_ns, "ab" * 32)
        row = ledger.get(frame.id)
        assert row is not None and row.state == FrameState.REPORTED  # a broken sink blocks none
        assert row.submission is not None and row.submission["status"] == "queued"
        assert row.submission["report_path"]
        outcomes.submit(frame.id)  # handed again (a restart): from the ledger, no hash known
        assert extra.got[-1][1].sha256 is None and extra.got[-1][0] == m


def test_the_hub_sink_keys_on_the_workers_hash_without_reading_the_frame(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("httpx", reason="the hub extra is not installed")
    from starnode.node.forwarder import Forwarder, file_sha256

    monkeypatch.setenv("STARNODE_HUB_TOKEN", "t0ken")
    cfg = resolve({"data_dir": str(tmp_path / "data"), "hub": {"url": "http://127.0.0.1:9"}})
    frame = tmp_path / "Light_a.fit"
    frame.write_bytes(b"SIMPLE  = T")
    fwd = Forwarder(cfg)  # not started: the queue only
    try:
        sink = HubSink(fwd)
        m = Measurement.from_dict(at(0, file=str(frame)))
        info: dict[str, Any] = {"frame_id": 1, "path": str(frame), "size": 11, "mtime_ns": 0}
        given = "c" * 64
        assert sink.accept(m, FrameInfo(**info, sha256=given)).status == "queued"
        assert sink.accept(m, FrameInfo(**info, sha256=given)).status == "not queued"
        frame.unlink()  # the worker's hash is used as it is: the file is not read again
        (key, payload), = fwd.queue.pending(10)
        assert key.startswith(given + "|") and payload["frame_sha256"] == given
        # a measurement of an earlier run (no hash known) is hashed from the file, as before
        frame.write_bytes(b"SIMPLE  = F")
        m2 = Measurement.from_dict(at(1, file=str(frame)))
        assert sink.accept(m2, FrameInfo(**info)).status == "queued"
        keys = [k for k, _ in fwd.queue.pending(10)]
        assert keys[1].startswith(file_sha256(frame) + "|")
    finally:
        fwd.close(flush_timeout=0)
