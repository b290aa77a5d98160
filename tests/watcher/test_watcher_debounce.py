"""starnode.watcher.debounce: the seed's debounce timers as a deadline table, without threads.

The clock is passed in, so every case is exact: no sleeping, nothing timed.
"""

from __future__ import annotations

import pytest

from starnode.watcher import Debouncer, ImageWatcher


def test_a_path_is_due_when_its_delay_passed_without_a_reset() -> None:
    d = Debouncer(2.0)
    assert d.schedule("a.fits", now=10.0) is True
    assert d.pending() == {"a.fits": 12.0}
    assert d.due(11.999) == []
    assert d.due(12.0) == ["a.fits"]
    assert d.pending() == {} and d.due(100.0) == []


def test_a_new_event_resets_the_timer() -> None:
    d = Debouncer(2.0)
    d.schedule("a.fits", now=0.0)
    assert d.schedule("a.fits", now=1.5) is False  # later deadline: no need to wake anyone
    assert d.due(2.0) == []                         # the old deadline passed: not due
    assert d.pending() == {"a.fits": 3.5}
    assert d.next_deadline() is not None
    assert d.due(3.5) == ["a.fits"]
    assert d.next_deadline() is None


def test_paths_are_due_in_deadline_order_and_independent() -> None:
    d = Debouncer(1.0)
    d.schedule("b", now=0.5)
    d.schedule("a", now=0.0)
    d.schedule("c", now=0.2, delay=5.0)
    assert d.due(1.6) == ["a", "b"]
    assert "c" in d and len(d) == 1
    assert d.due(5.2) == ["c"]


def test_earlier_deadline_wakes_the_scheduler() -> None:
    d = Debouncer(10.0)
    assert d.schedule("slow", now=0.0) is True
    assert d.schedule("fast", now=0.0, delay=1.0) is True   # new earliest deadline
    assert d.schedule("later", now=0.0, delay=20.0) is False
    assert d.next_deadline() == 1.0


def test_not_after_caps_a_timer_that_keeps_being_reset() -> None:
    d = Debouncer(2.0)
    for t in range(10):
        d.schedule("busy.fits", now=float(t), not_after=5.0)
    assert d.pending() == {"busy.fits": 5.0}
    assert d.due(5.0) == ["busy.fits"]


def test_cancel_and_clear() -> None:
    d = Debouncer(1.0)
    d.schedule("a", now=0.0)
    d.schedule("b", now=0.0)
    assert d.cancel("a") is True and d.cancel("a") is False
    assert d.due(2.0) == ["b"]
    d.schedule("c", now=0.0)
    timers = d.timers
    d.clear()
    assert timers == {} and d.timers is timers  # cleared in place (the seed's timers dict)
    assert d.due(10.0) == [] and d.next_deadline() is None


def test_many_resets_do_not_grow_without_bound() -> None:
    d = Debouncer(1.0)
    for i in range(5000):
        d.schedule("x", now=i * 0.001, delay=1.0 - i * 0.0001)  # each one earlier: pushed
    assert len(d._heap) <= 2 * len(d) + 1025
    assert d.due(10.0) == ["x"]


def test_negative_delay_is_refused() -> None:
    with pytest.raises(ValueError, match="delay"):
        Debouncer(-1.0)


def test_the_watcher_exposes_its_debouncer(tmp_path: object) -> None:
    w = ImageWatcher(str(tmp_path), print, 3.0)
    assert isinstance(w.debouncer, Debouncer) and w.debouncer.delay == 3.0
    assert w.debouncer.pending() == {}
