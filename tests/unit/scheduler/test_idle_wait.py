"""The scheduling loop waits for events while its active pods are in backoff; it never spins.

In the day replay the loop asked for events without waiting whenever a pod
was active, even when every active pod was backing off: the scheduling
thread spun (py-spy found it in the queue scan and the window check most of
the time), taking a core from the API server on a 2-core machine.
"""

from __future__ import annotations

import time

from sched_builders import make, node, pod, run

from ballast.scheduler.actions import RESULT
from ballast.scheduler.core import Scheduler
from ballast.scheduler.informer import Event


def _steps_in(s: Scheduler, seconds: float) -> int:
    n, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        s.step(0.05)
        n += 1
    return n


def _backing_off() -> Scheduler:
    """A scheduler whose one pod failed its bind and waits about a second (fake clock)."""
    s, actions, q = make(("nodes", node("a", 1)), ("pods", pod("p")))
    run(s)
    assert [b[0] for b in actions.binds] == ["p"]
    q.put(Event(RESULT, "bind", {"uid": "uid-p", "ok": False, "status": 500, "error": "boom"}))
    run(s, 1)
    assert s.queue.active and s.queue.next_due() is not None
    assert s.queue.next_due() > s.clock.monotonic()  # type: ignore[operator]
    return s


def test_pods_in_backoff_do_not_make_the_loop_spin() -> None:
    s = _backing_off()
    assert _steps_in(s, 0.3) <= 8  # about one step per 50 ms, not thousands


def test_a_pod_due_now_is_tried_without_waiting() -> None:
    s = _backing_off()
    s.clock.advance(2)  # its backoff is over
    t0 = time.monotonic()
    s.step(0.05)
    assert time.monotonic() - t0 < 0.04
    assert not s.queue.active or s.queue.next_due() > s.clock.monotonic()  # type: ignore[operator]


def test_a_replica_that_is_not_leading_waits_too() -> None:
    s = _backing_off()
    s.clock.advance(2)  # due, but this replica may not decide it
    s.leader = False
    assert _steps_in(s, 0.3) <= 8
