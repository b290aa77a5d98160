"""The debounce timers of the seed document, as one deadline table instead of one thread each.

The seed describes a ``threading.Timer`` per pending path, cancelled and restarted on every
event. A burst of 500 frames would then mean 500 threads. :class:`Debouncer` keeps the same
semantics - one deadline per path, a new event resets it, a path is due when its deadline
passes without a reset - as a dict (the seed's "timers dict") plus a heap with lazy
cancellation, served by a single scheduler thread in :class:`~starnode.watcher.ImageWatcher`.

It has no threads, no lock and no clock of its own: the caller passes ``now`` (a
``time.monotonic()`` value) and holds its own lock. That makes it the public seam tests use to
check debounce behaviour deterministically.
"""

from __future__ import annotations

import heapq
import itertools

__all__ = ["Debouncer"]


class Debouncer:
    """Per-path deadlines: ``schedule`` (re)starts a path's timer, ``due`` pops expired ones.

    Parameters
    ----------
    delay : float
        Default seconds from the last :meth:`schedule` of a path to its deadline.

    Examples
    --------
    >>> d = Debouncer(2.0)
    >>> d.schedule("a.fits", now=0.0)
    True
    >>> d.schedule("a.fits", now=1.5)   # a new event resets the timer
    False
    >>> d.due(3.0), d.due(3.5)
    ([], ['a.fits'])
    """

    def __init__(self, delay: float) -> None:
        if delay < 0:
            raise ValueError(f"delay must be >= 0, not {delay!r}")
        self.delay = float(delay)
        #: path -> deadline; the seed's "timers dict" (cleared in place, never replaced)
        self.timers: dict[str, float] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self.timers)

    def __contains__(self, path: object) -> bool:
        return path in self.timers

    def schedule(self, path: str, now: float, *, delay: float | None = None,
                 not_after: float | None = None) -> bool:
        """(Re)start the timer of ``path``.

        Parameters
        ----------
        path : str
            The key (an absolute file path in the watcher).
        now : float
            The current monotonic time.
        delay : float, optional
            Seconds to the deadline; default :attr:`delay`.
        not_after : float, optional
            A cap on the deadline (the watcher's ``max_wait``).

        Returns
        -------
        bool
            True when this deadline is now the earliest one, i.e. a scheduler sleeping until
            the previous earliest deadline must be woken.
        """
        deadline = now + (self.delay if delay is None else delay)
        if not_after is not None:
            deadline = min(deadline, not_after)
        old = self.timers.get(path)
        self.timers[path] = deadline
        if old is not None and deadline >= old:
            return False  # the existing heap entry comes first; due() re-queues it
        seq = next(self._seq)
        heapq.heappush(self._heap, (deadline, seq, path))
        self._compact()
        return self._heap[0][1] == seq

    def cancel(self, path: str) -> bool:
        """Forget the timer of ``path``; True if it had one."""
        return self.timers.pop(path, None) is not None

    def due(self, now: float) -> list[str]:
        """Pop and return every path whose deadline is ``<= now``, earliest first.

        Parameters
        ----------
        now : float
            The current monotonic time.

        Returns
        -------
        list of str
            The expired paths; they no longer have a timer.
        """
        heap, timers = self._heap, self.timers
        out: list[str] = []
        while heap and heap[0][0] <= now:
            _, _, path = heapq.heappop(heap)
            current = timers.get(path)
            if current is None:
                continue  # cancelled, or already returned through another entry
            if current > now:  # reset meanwhile: re-queue at its new deadline
                heapq.heappush(heap, (current, next(self._seq), path))
                continue
            del timers[path]
            out.append(path)
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`due` may next return something (None: no timer at all).

        It can be earlier than any live deadline (a reset timer's old entry): a scheduler
        woken then simply finds nothing due and sleeps again.
        """
        if not self.timers:
            self._heap.clear()
            return None
        return self._heap[0][0] if self._heap else None

    def pending(self) -> dict[str, float]:
        """A copy of the live timers: path -> deadline."""
        return dict(self.timers)

    def clear(self) -> None:
        """Cancel every timer (the dict is cleared in place)."""
        self.timers.clear()
        self._heap.clear()

    def _compact(self) -> None:
        """Drop stale heap entries once they outnumber the live timers by far."""
        if len(self._heap) > 2 * len(self.timers) + 1024:
            self._heap[:] = [(d, next(self._seq), p) for p, d in self.timers.items()]
            heapq.heapify(self._heap)
