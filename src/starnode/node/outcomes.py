"""What becomes of a frame's outcome: the ledger row, the AAVSO submission, the log line.

An outcome is written only by the claim's owner (the ledger refuses it otherwise, and then
nothing else happens: the frame is someone else's). A measured frame is submitted at once; one
whose submission never completed (the node was killed between the two) is submitted again on
the next start (:meth:`Outcomes.resubmit`; ``submit`` never writes the same observation twice).

Write faults that end must heal without a restart (:meth:`Outcomes.heal`, called by the node's
every step): an outcome whose ledger commit failed (disk full, read-only data folder) is kept
in memory and written again, rather than leaving the frame ``processing`` for its whole lease;
a frame whose submission failed for a passing reason is submitted again every
:attr:`Outcomes.resubmit_every` seconds. Before each write the ledger file is checked to be the
one opened at start: a ledger deleted or replaced under the node stops it loudly
(:class:`~starnode.errors.StoreError`) instead of starting a fresh, empty one.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from ..config import Config
from ..errors import FrameState
from ..store import Frame, Ledger
from ..util.fsio import private_dir, remove_stale_temporaries
from .lines import frame_line, short_reason
from .pool import Outcome

log = logging.getLogger("starnode.node")

__all__ = ["Outcomes", "SubmitFn"]

SubmitFn = Callable[[Mapping[str, Any], Config], Mapping[str, Any]]


class Outcomes:
    """Records outcomes for one node.

    Parameters
    ----------
    config : Config
        Passed to the submit function.
    ledger : Ledger
        Where outcomes are written.
    owner : str
        The node's claim owner.
    submit : callable or bool
        ``submit(result, config)``; True: :func:`starnode.aavso.submit`; False: none.
    """

    def __init__(self, config: Config, ledger: Ledger, owner: str,
                 submit: SubmitFn | bool) -> None:
        self.config = config
        self.ledger = ledger
        self.owner = owner
        self._submit_fn = submit
        self.counts: Counter[str] = Counter()
        self.latencies: list[float] = []  # file mtime -> reported, seconds
        self.frame_seconds: list[float] = []  # worker time per frame
        #: called with each measured row before it is submitted (the hub forwarder's enqueue)
        self.forward: Callable[..., Any] | None = None
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
        kind = outcome.get("outcome")
        if kind == "measured":
            ok = self.ledger.record_measured(frame.id, self.owner, outcome["result"])
            return "measured" if ok else None
        if kind == "skipped":
            reason = short_reason(str(outcome.get("reason")), frame.path)
            category = outcome.get("category")
            ok = self.ledger.record_skipped(frame.id, self.owner, reason,
                                            None if category is None else str(category))
            return "skipped" if ok else None
        ok = self.ledger.record_failed(frame.id, self.owner, str(outcome.get("error")),
                                       crashed=bool(outcome.get("crashed")),
                                       category=outcome.get("category"))
        return "failed" if ok else None

    def record(self, frame: Frame, outcome: Outcome) -> bool:
        """Record ``outcome`` of ``frame``, submit a measurement, log the frame's line.

        Returns
        -------
        bool
            False when the ledger refused it (the claim is no longer this node's).
        """
        if isinstance(outcome.get("seconds"), float) and not outcome.get("retried"):
            self.frame_seconds.append(outcome["seconds"])
        self.ledger.store.verify()
        try:
            counter = self._write(frame, outcome)
        except (sqlite3.Error, OSError) as exc:  # disk full, read-only: keep it, retry later
            log.error("%s: its outcome cannot be written to the ledger (%s); retrying until "
                      "it can", frame.name, exc)
            self._unwritten.append((frame, {**outcome, "retried": True}))
            return False
        if counter is None:
            return False
        self.counts[counter] += 1
        if counter == "measured":
            self.submit(frame.id)
        final = self.ledger.get(frame.id)
        if final is not None:
            level = logging.WARNING if final.state == FrameState.FAILED else logging.INFO
            log.log(level, "%s", frame_line(final))
        return True

    def submit(self, fid: int) -> None:
        """Submit the measurement of row ``fid`` and record the answer."""
        frame = self.ledger.get(fid)
        if self.forward is not None and frame is not None and frame.result is not None:
            self.forward(frame.result, frame_id=fid,
                         identity=(frame.path, frame.size, frame.mtime_ns))
        if frame is None or frame.result is None or self._submit_fn is False:
            return
        fn: SubmitFn
        if self._submit_fn is True:
            from ..aavso import submit as fn
        else:
            fn = self._submit_fn
        self.ledger.store.verify()
        try:
            sub = dict(fn(frame.result, self.config))
        except Exception as exc:
            log.error("%s: submission failed: %s: %s", frame.name, type(exc).__name__, exc,
                      exc_info=log.isEnabledFor(logging.DEBUG))
            sub = {"status": "error", "message": f"{type(exc).__name__}: {exc}", "retry": True}
        try:
            state = self.ledger.record_submission(fid, sub)
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
        """End of a session: close open time bins (``aavso.flush``; uploads in webobs mode)."""
        if self._submit_fn is not True or not self.counts.get("reported"):
            return
        from ..aavso import flush

        try:
            answer = flush(self.config)
        except Exception as exc:
            log.error("closing the AAVSO report bins failed: %s: %s", type(exc).__name__, exc)
            return
        log.info("AAVSO outbox: %s", answer.get("message"))
