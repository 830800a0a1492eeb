"""Pod backoff: a pod that found no room waits before its next attempt, as in kube-scheduler.

A backlog of parked pods woken by every pod that ends would otherwise be
retried many times per bind, on the thread that also places new pods.
"""

from __future__ import annotations

from typing import Any

from sched_builders import make, node, pod, run, wlc

from ballast.scheduler.config import Config
from ballast.scheduler.informer import Event
from ballast.scheduler.schedqueue import unschedulable_backoff


def test_the_backoff_doubles_from_the_initial_to_the_max() -> None:
    waits = [unschedulable_backoff(n, 1.0, 10.0) for n in range(7)]
    assert waits == [0.0, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert unschedulable_backoff(5, 0.0, 10.0) == 0.0  # 0: no backoff
    assert Config().pod_initial_backoff_s == 1.0 and Config().pod_max_backoff_s == 10.0


def _with_backoff(*objs: tuple[str, dict[str, Any]]) -> Any:
    s, actions, q = make(*objs)
    s.config.pod_initial_backoff_s, s.config.pod_max_backoff_s = 1.0, 10.0
    return s, actions, q


def test_a_woken_pod_waits_out_its_backoff_then_is_placed() -> None:
    s, actions, q = _with_backoff(
        ("nodes", node("a", 1)), ("pods", pod("theirs", node_name="a")), ("pods", pod("w"))
    )
    run(s)
    assert actions.conditions["w"][0] == "Unschedulable"
    tried = s.decisions
    q.put(Event("pods", "DELETED", pod("theirs", node_name="a")))  # room for w
    run(s)
    assert s.decisions == tried and not actions.binds  # woken, but backing off (1 s)
    s.clock.advance(1.01)
    run(s)
    assert [b[0] for b in actions.binds] == ["w"]


def test_a_backlog_is_not_retried_on_every_pod_that_ends() -> None:
    objs: list[tuple[str, dict[str, Any]]] = [("nodes", node("a", 4))]
    objs += [("pods", pod(f"r{i}", node_name="a")) for i in range(4)]
    objs += [("pods", pod(f"w{i}", gpus=2)) for i in range(50)]
    s, actions, q = _with_backoff(*objs)
    run(s)
    tried = s.decisions
    # Four pods end one by one within the backoff: each frees room a waiting pod's
    # request does not fit (1 GPU of 2) until the second; none is retried before 1 s.
    for i in range(4):
        q.put(Event("pods", "DELETED", pod(f"r{i}", node_name="a")))
        run(s, 1)
        s.clock.advance(0.2)
    assert s.decisions == tried and not actions.binds
    s.clock.advance(1.0)
    run(s)
    assert len(actions.binds) == 2  # then the room is used at once
    assert s.decisions - tried <= 2 + 64  # bounded by the retry streak, not by the backlog


def test_a_new_pod_and_a_preemptor_are_not_held_by_backoff() -> None:
    objs: list[tuple[str, dict[str, Any]]] = [
        ("workloadclasses", wlc("off", tier="Offline", preemption={"gracePeriodSeconds": 0})),
        ("workloadclasses", wlc("chat", tier="Interactive", preemption={"policy": "LowerTier"})),
        ("nodes", node("a", 1)),
        ("pods", pod("o", cls="off", node_name="a")),
    ]
    s, actions, q = _with_backoff(*objs)
    run(s)
    q.put(Event("pods", "ADDED", pod("chat", cls="chat")))
    run(s, 2)
    assert actions.conditions["chat"][0] == "Preempting"  # tried at once, though new
    q.put(Event("pods", "DELETED", pod("o", cls="off", node_name="a")))
    run(s)  # no clock advance: the preemptor takes the room it made at once
    assert [b[0] for b in actions.binds] == ["chat"]


def test_an_interactive_pod_is_never_held_by_backoff() -> None:
    objs: list[tuple[str, dict[str, Any]]] = [
        ("workloadclasses", wlc("chat", tier="Interactive")),
        ("nodes", node("a", 1)),
        ("pods", pod("theirs", node_name="a")),
        ("pods", pod("chat", cls="chat")),
    ]
    s, actions, q = _with_backoff(*objs)
    run(s)
    assert actions.conditions["chat"][0] == "Unschedulable"
    q.put(Event("pods", "DELETED", pod("theirs", node_name="a")))
    run(s)  # no clock advance
    assert [b[0] for b in actions.binds] == ["chat"]
