"""Sinks: where the node hands each measurement once it is in the ledger.

A sink is a report format or a destination: the AAVSO outbox (``aavso``, :func:`starnode.aavso
.submit`) and the hub's queue (``hub``, :meth:`starnode.node.forwarder.Forwarder.enqueue`) are
the two today, named in ``node.sinks`` (the hub's only while ``hub.url`` is set). A new report
format is one new class here with a ``name``, ``reports``, ``accept`` and ``flush``, and its
name in :data:`starnode.config.schema.SINK_NAMES`.

Each sink answers with a :class:`SinkAnswer`; the answer of the sink that ``reports`` (the
AAVSO outbox) is the frame's submission in the ledger (``measured`` -> ``reported``), the others
keep their own state (the hub's queue). A sink is called again for a frame whose submission did
not complete (after a crash, or a passing failure): each sink must take the same measurement
twice without writing it twice (``submit`` and the hub queue both have an exactly-once key).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..config import Config
from ..errors import SubmitStatus
from ..records import Measurement

log = logging.getLogger("starnode.node")

__all__ = ["AavsoSink", "FrameInfo", "FunctionSink", "HubSink", "Sink", "SinkAnswer",
           "SubmitFn", "build_sinks"]

#: A stand-in for :func:`starnode.aavso.submit` (tests): ``fn(measurement, config)`` returns
#: an answer mapping with ``status`` and ``message``.
SubmitFn = Callable[[Measurement, Config], Mapping[str, Any]]


@dataclass(frozen=True)
class FrameInfo:
    """The frame a measurement comes from, as the node knows it (no sink opens the file)."""

    frame_id: int
    path: str
    size: int
    mtime_ns: int
    #: SHA-256 of the content, computed by the worker from the bytes it read (None: the
    #: measurement is from an earlier run, or no sink asked for it).
    sha256: str | None = None


@dataclass(frozen=True)
class SinkAnswer:
    """What a sink did with one measurement.

    ``status`` is a :class:`~starnode.errors.SubmitStatus` value for the AAVSO outbox
    (``queued``, ``duplicate``, ``skipped``, ``error``...), the sink's own word otherwise;
    ``retry`` asks the node to hand the measurement again later (a passing failure);
    ``record`` is the sink's full answer as the ledger keeps it (``submit``'s dict).
    """

    sink: str
    status: str
    message: str = ""
    retry: bool = False
    record: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, sink: str, answer: Mapping[str, Any]) -> SinkAnswer:
        """The answer of a function that answers with a dict (``submit``'s).

        Parameters
        ----------
        sink : str
            The sink's name.
        answer : Mapping
            ``status``, ``message``, optionally ``retry`` and any other keys.

        Returns
        -------
        SinkAnswer
        """
        return cls(sink, str(answer.get("status", "")), str(answer.get("message") or ""),
                   bool(answer.get("retry")), dict(answer))

    @classmethod
    def failed(cls, sink: str, exc: BaseException) -> SinkAnswer:
        """A sink that raised: an error, tried again later."""
        message = f"{type(exc).__name__}: {exc}"
        return cls(sink, str(SubmitStatus.ERROR), message, True,
                   {"status": SubmitStatus.ERROR, "message": message, "retry": True})

    def to_dict(self) -> dict[str, Any]:
        """What the ledger keeps as the frame's submission."""
        return {**self.record, "status": self.record.get("status", self.status),
                "message": self.record.get("message", self.message)}


class Sink(Protocol):
    """A destination for measurements (see the module docstring)."""

    #: The name in ``node.sinks``.
    name: str
    #: Its answer is the frame's submission in the ledger.
    reports: bool

    def accept(self, measurement: Measurement, frame: FrameInfo) -> SinkAnswer:
        """Take one measurement (called in the node process; may raise: the node records
        an error and hands it again later)."""
        ...

    def flush(self) -> None:
        """End of a session (close what is open; upload what waits)."""
        ...


class AavsoSink:
    """The AAVSO outbox: :func:`starnode.aavso.submit` (exactly once per observation)."""

    name = "aavso"
    reports = True

    def __init__(self, config: Config) -> None:
        self.config = config

    def accept(self, measurement: Measurement, frame: FrameInfo) -> SinkAnswer:
        from ..aavso import submit

        return SinkAnswer.from_mapping(self.name, submit(measurement, self.config))

    def flush(self) -> None:
        """Close open time bins (``aavso.flush``; uploads in webobs mode)."""
        from ..aavso import flush

        try:
            answer = flush(self.config)
        except Exception as exc:
            log.error("closing the AAVSO report bins failed: %s: %s", type(exc).__name__, exc)
            return
        log.info("AAVSO outbox: %s", answer.get("message"))


class FunctionSink:
    """A function in the place of :func:`starnode.aavso.submit` (``Node(submit=fn)``)."""

    name = "submit"
    reports = True

    def __init__(self, fn: SubmitFn, config: Config) -> None:
        self.fn = fn
        self.config = config

    def accept(self, measurement: Measurement, frame: FrameInfo) -> SinkAnswer:
        return SinkAnswer.from_mapping(self.name, self.fn(measurement, self.config))

    def flush(self) -> None:
        return None


class HubSink:
    """The hub's durable queue (:class:`~starnode.node.forwarder.Forwarder`): a local insert
    keyed by the frame's SHA-256 and JD; the forwarder's thread pushes it."""

    name = "hub"
    reports = False

    def __init__(self, forwarder: Any) -> None:
        self.forwarder = forwarder

    def accept(self, measurement: Measurement, frame: FrameInfo) -> SinkAnswer:
        new = self.forwarder.enqueue(measurement, frame_id=frame.frame_id,
                                     identity=(frame.path, frame.size, frame.mtime_ns),
                                     sha256=frame.sha256)
        return SinkAnswer(self.name, "queued" if new else "not queued",
                          "" if new else "queued before, or refused (logged)")

    def flush(self) -> None:
        return None


def build_sinks(config: Config, *, submit: SubmitFn | bool = True,
                hub: Any = None) -> list[Sink]:
    """The node's sinks, in the order of ``node.sinks``.

    Parameters
    ----------
    config : Config
    submit : callable or bool
        True: the AAVSO outbox for ``aavso``; a function: it instead (tests); False: no
        ``aavso`` sink (measure only).
    hub : Forwarder, optional
        The node's hub forwarder (None: ``hub.url`` is not set, no ``hub`` sink).

    Returns
    -------
    list of Sink
    """
    sinks: list[Sink] = []
    for name in config.node.sinks:
        if name == "aavso" and submit is not False:
            sinks.append(AavsoSink(config) if submit is True else FunctionSink(submit, config))
        elif name == "hub" and hub is not None:
            sinks.append(HubSink(hub))
    return sinks
