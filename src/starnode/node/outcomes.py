"""What becomes of a frame's outcome: the ledger row, the sinks, the log line.

An outcome is written only by the claim's owner (the ledger refuses it otherwise, and then
nothing else happens: the frame is someone else's). A measured frame's check star and starlist
are kept first (:func:`starnode.node.keep.keep`), then its row is written and the measurement
handed to each sink (:mod:`starnode.node.sinks`: the AAVSO outbox, the hub queue); one whose
submission never completed (the node was killed between the two) is handed again on the next
start (:meth:`Outcomes.resubmit`; each sink takes the same measurement twice without writing it
twice).

Write faults that end must heal without a restart (:meth:`Outcomes.heal`, called by the node's
every step): an outcome whose ledger commit failed (disk full, read-only data folder) is kept
in memory and written again, rather than leaving the frame ``processing`` for its whole lease;
a frame whose submission failed for a passing reason is submitted again every
:attr:`Outcomes.resubmit_every` seconds. Before each write the ledger file is checked to be the
one opened at start: a ledger deleted or replaced under the node stops it loudly
(:class:`~starnode.errors.StoreError`) instead of starting a fresh, empty one.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import time
from collections import Counter
from typing import Any

from ..config import Config
from ..errors import FrameState
from ..records import Measurement
from ..store import Frame, Ledger
from ..store.frame import json_safe
from ..util.fsio import private_dir, remove_stale_temporaries
from .keep import keep
from .lines import frame_line, short_reason
from .pool import MeasuredFrame, Outcome, SkippedFrame
from .sinks import FrameInfo, Sink, SinkAnswer, SubmitFn, build_sinks

log = logging.getLogger("starnode.node")

__all__ = ["Outcomes", "SubmitFn"]


class Outcomes:
    """Records outcomes for one node.

    Parameters
    ----------
    config : Config
        The node's configuration (``node.sinks``).
    ledger : Ledger
        Where outcomes are written.
    owner : str
        The node's claim owner.
    submit : callable or bool
        The ``aavso`` sink: True: :func:`starnode.aavso.submit`; a function
        ``submit(measurement, config)`` in its place; False: none.
    hub : Forwarder, optional
        The ``hub`` sink's forwarder (None: ``hub.url`` is not set).
    """

    def __init__(self, config: Config, ledger: Ledger, owner: str,
                 submit: SubmitFn | bool, *, hub: Any = None) -> None:
        self.config = config
        self.ledger = ledger
        self.owner = owner
        self._submit_fn = submit
        #: where each measurement goes, in the order of ``node.sinks``
        self.sinks: list[Sink] = build_sinks(config, submit=submit, hub=hub)
        self.counts: Counter[str] = Counter()
        self.latencies: list[float] = []  # file mtime -> reported, seconds
        self.frame_seconds: list[float] = []  # worker time per frame
        #: seconds between two retries of submissions that failed for a passing reason
        self.resubmit_every = 60.0
        self._last_resubmit = time.monotonic()
        self._unwritten: list[tuple[Frame, Outcome]] = []  # outcomes whose commit failed

    def start(self) -> None:
        """Start of a run, under the data-directory lock: make the data folder owner-only and
        remove the temporary copies a killed writer left behind (nobody else writes now)."""
        data_dir = self.config.data_dir
        private_dir(data_dir)
        n = remove_stale_temporaries(data_dir)
        if n:
            log.info("removed %d temporary file(s) left by a stopped node", n)
        from ..astrometry.solverdb import remove_leftovers  # a killed 'starnode solver-db'

        remove_leftovers(data_dir / "astrometry")

    @property
    def submit_fn(self) -> SubmitFn | bool:
        """The submit function (True: :func:`starnode.aavso.submit`; False: none)."""
        return self._submit_fn

    @property
    def reports_to_aavso(self) -> bool:
        """Whether the AAVSO outbox is one of the sinks (its files are this node's)."""
        return any(s.name == "aavso" for s in self.sinks)

    def heal(self) -> None:
        """Retry what a write fault that has since ended left undone (see the module doc)."""
        if self._unwritten:
            pending, self._unwritten = self._unwritten, []
            for frame, outcome in pending:
                self.record(frame, outcome)
        if time.monotonic() - self._last_resubmit >= self.resubmit_every:
            self._last_resubmit = time.monotonic()
            for frame in self.ledger.to_submit():
                # a passing failure ("retry"), or a submission that raised before its answer
                # was recorded (disk full): both are submitted again, without a restart
                if frame.submission is None or frame.submission.get("retry"):
                    log.info("%s: submitting again (%s)", frame.name,
                             (frame.submission or {}).get("message") or "not submitted yet")
                    self.submit(frame.id)

    def _write(self, frame: Frame, outcome: Outcome) -> str | None:
        """Write an outcome to the ledger; returns the counter it adds to (None: not ours)."""
        if isinstance(outcome, MeasuredFrame):
            ok = self.ledger.record_measured(frame.id, self.owner, outcome.result)
            return "measured" if ok else None
        if isinstance(outcome, SkippedFrame):
            reason = short_reason(str(outcome.reason), frame.path)
            ok = self.ledger.record_skipped(frame.id, self.owner, reason, outcome.category)
            return "skipped" if ok else None
        ok = self.ledger.record_failed(frame.id, self.owner, str(outcome.error),
                                       crashed=outcome.crashed, category=outcome.category)
        return "failed" if ok else None

    def record(self, frame: Frame, outcome: Outcome) -> bool:
        """Record ``outcome`` of ``frame``, hand a measurement to the sinks, log the frame's
        line.

        Returns
        -------
        bool
            False when the ledger refused it (the claim is no longer this node's).
        """
        if isinstance(outcome.seconds, float) and not outcome.retried:
            self.frame_seconds.append(outcome.seconds)
        self.ledger.store.verify()
        if isinstance(outcome, MeasuredFrame) and not outcome.retried:
            # the night's check star and the starlist, kept once (not again on a retry)
            result = keep(self.config, outcome, self.ledger.store)
            outcome = dataclasses.replace(outcome, result=result, starlist=None, check=None)
        try:
            counter = self._write(frame, outcome)
        except (sqlite3.Error, OSError) as exc:  # disk full, read-only: keep it, retry later
            log.error("%s: its outcome cannot be written to the ledger (%s); retrying until "
                      "it can", frame.name, exc)
            self._unwritten.append((frame, dataclasses.replace(outcome, retried=True)))
            return False
        if counter is None:
            return False
        self.counts[counter] += 1
        if isinstance(outcome, MeasuredFrame):
            self.submit(frame.id, outcome, frame)
        final = self.ledger.get(frame.id)
        if final is not None:
            level = logging.WARNING if final.state == FrameState.FAILED else logging.INFO
            log.log(level, "%s", frame_line(final))
        return True

    def _hand(self, m: Measurement, info: FrameInfo, name: str) -> SinkAnswer | None:
        """Hand ``m`` to every sink; the answer of the first that reports (None: none
        does)."""
        answer: SinkAnswer | None = None
        for sink in self.sinks:
            try:
                got = sink.accept(m, info)
            except Exception as exc:
                log.error("%s: %s: submission failed: %s: %s", name, sink.name,
                          type(exc).__name__, exc, exc_info=log.isEnabledFor(logging.DEBUG))
                got = SinkAnswer.failed(sink.name, exc)
            if sink.reports and answer is None:
                answer = got
        return answer

    def submit(self, fid: int, outcome: MeasuredFrame | None = None,
               frame: Frame | None = None) -> None:
        """Hand the measurement of row ``fid`` to the sinks and record the answer.

        Parameters
        ----------
        fid : int
            The ledger row.
        outcome, frame : MeasuredFrame and Frame, optional
            The worker's outcome just written and the claimed row (the measurement and the
            hash are used as they are, the row is not read back); None: the row's stored
            measurement (a submission again).
        """
        if not self.sinks:
            return
        if outcome is None or frame is None:
            outcome, frame = None, self.ledger.get(fid)
            if frame is None or frame.result is None:
                return
            result = frame.result
        else:
            result = outcome.result
        # the record's one rebuilding in the node, with the values the ledger keeps (NaN: None)
        m = Measurement.from_dict(json_safe(result))
        info = FrameInfo(fid, frame.path, frame.size, frame.mtime_ns,
                         outcome.sha256 if outcome is not None else None)
        self.ledger.store.verify()
        answer = self._hand(m, info, frame.name)
        if answer is None:
            return
        try:
            state = self.ledger.record_submission(fid, answer.to_dict())
        except (sqlite3.Error, OSError) as exc:  # disk full: heal() submits it again
            log.error("%s: the submission's answer cannot be recorded (%s); submitting again "
                      "when it can", frame.name, exc)
            return
        if state == FrameState.REPORTED:
            self.counts["reported"] += 1
            self.latencies.append(time.time() - frame.mtime_ns / 1e9)

    def resubmit(self, ids: set[int] | None = None) -> int:
        """Submit measured frames whose submission never completed (after a crash).

        Parameters
        ----------
        ids : set of int, optional
            Only these rows (``starnode process``).

        Returns
        -------
        int
            How many frames were submitted.
        """
        frames = self.ledger.to_submit()
        if ids is not None:
            frames = [f for f in frames if f.id in ids]
        for frame in frames:
            log.info("%s: measured before the last stop, submitting now", frame.name)
            self.submit(frame.id)
        return len(frames)

    def flush(self) -> None:
        """End of a session: each sink closes what is open (``aavso.flush`` closes the time
        bins; uploads in webobs mode), when something was reported."""
        if not self.counts.get("reported"):
            return
        for sink in self.sinks:
            sink.flush()
