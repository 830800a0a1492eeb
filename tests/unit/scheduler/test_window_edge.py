"""A batch window's opening wakes the pods it held, whatever else is being decided then."""

from __future__ import annotations

import dataclasses
import queue

from sched_builders import RecordingActions, make, node, pod, run, wlc

from ballast.clock import FakeClock
from ballast.scheduler.core import Scheduler
from ballast.scheduler.informer import Event

NIGHT = {
    "metadata": {"name": "night"},
    "spec": {"schedule": "0 13 * * *", "duration": "1h", "timeZone": "UTC"},
}


def _held() -> tuple[Scheduler, RecordingActions, queue.Queue[Event]]:
    s, actions, q = make(
        ("nodes", node("a", 4)),
        ("batchwindows", NIGHT),
        ("workloadclasses", wlc("batch", tier="Offline", window="night")),
        ("pods", pod("held", cls="batch")),
    )
    # No periodic flush of every parked pod within the test: only the edge may wake them.
    s.config = dataclasses.replace(s.config, flush_s=1e9)
    run(s)  # 12:00: the window opens at 13:00
    assert actions.binds == [] and actions.conditions["held"][0] == "WindowClosed"
    return s, actions, q


def _advance(s: Scheduler, seconds: float) -> None:
    assert isinstance(s.clock, FakeClock)
    s.clock.advance(seconds)


def test_the_opening_wakes_held_pods_while_other_pods_are_being_decided() -> None:
    s, actions, q = _held()
    _advance(s, 3601)
    # A pod arrives in the same step as the edge: the cycle that decides it
    # must not swallow the edge the held pods are waiting for.
    q.put(Event("pods", "ADDED", pod("busy")))
    run(s)
    assert sorted(b[0] for b in actions.binds) == ["busy", "held"]


def test_the_opening_wakes_held_pods_on_a_quiet_queue() -> None:
    s, actions, _ = _held()
    _advance(s, 3601)
    run(s)
    assert [b[0] for b in actions.binds] == ["held"]
