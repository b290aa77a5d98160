"""What becomes of a frame's outcome: the ledger row, the AAVSO submission, the log line.

An outcome is written only by the claim's owner (the ledger refuses it otherwise, and then
nothing else happens: the frame is someone else's). A measured frame is submitted at once; one
whose submission never completed (the node was killed between the two) is submitted again on
the next start (:meth:`Outcomes.resubmit`; ``submit`` never writes the same observation twice).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from ..config import Config
from ..errors import FrameState
from ..store import Frame, Ledger
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
                                       crashed=bool(outcome.get("crashed")))
        return "failed" if ok else None

    def record(self, frame: Frame, outcome: Outcome) -> bool:
        """Record ``outcome`` of ``frame``, submit a measurement, log the frame's line.

        Returns
        -------
        bool
            False when the ledger refused it (the claim is no longer this node's).
        """
        if isinstance(outcome.get("seconds"), float):
            self.frame_seconds.append(outcome["seconds"])
        counter = self._write(frame, outcome)
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
        try:
            sub = dict(fn(frame.result, self.config))
        except Exception as exc:
            log.error("%s: submission failed: %s: %s", frame.name, type(exc).__name__, exc,
                      exc_info=log.isEnabledFor(logging.DEBUG))
            sub = {"status": "error", "message": f"{type(exc).__name__}: {exc}"}
        if self.ledger.record_submission(fid, sub) == FrameState.REPORTED:
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
