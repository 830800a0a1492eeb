"""The scheduling thread, fed recorded watch events; API writes are recorded, not sent.

These exercise the core's own logic (assume before bind, forget on failure,
parking with reasons, preemption timing). Everything that talks to a real
API server is covered by tests/integration/scheduler.
"""

from __future__ import annotations

from sched_builders import make, node, pod, run, wlc

from ballast.scheduler.actions import RESULT
from ballast.scheduler.informer import Event


def test_burst_never_double_allocates_before_binds_complete() -> None:
    objs = [("nodes", node("a", 4)), ("nodes", node("b", 4))]
    objs += [("pods", pod(f"p{i}")) for i in range(10)]
    s, actions, _ = make(*objs)
    run(s)
    # Binds are still in flight (no results fed back), yet only 8 GPUs were handed out.
    assert len(actions.binds) == 8
    per_node_gpu = [(n, a[mapping_key]) for _, n, a in actions.binds for mapping_key in a]
    assert len(set(per_node_gpu)) == 8
    waiting = {
        name for name, (reason, _) in actions.conditions.items() if reason == "Unschedulable"
    }
    assert len(waiting) == 2


def test_failed_bind_is_forgotten_and_retried() -> None:
    s, actions, q = make(("nodes", node("a", 1)), ("pods", pod("p")))
    run(s)
    assert actions.binds == [("p", "a", {"ballast.dev/gpu-ids": "0"})]
    q.put(Event(RESULT, "bind", {"uid": "uid-p", "ok": False, "status": 500, "error": "boom"}))
    run(s, 1)
    assert "uid-p" not in s.snapshot.pods  # the assumption was undone
    s.clock.advance(1.5)  # the first retry backs off about a second
    run(s)
    assert [b[0] for b in actions.binds] == ["p", "p"]


def test_an_update_written_before_the_bind_and_seen_after_its_result_binds_nothing_twice() -> None:
    """The watch may deliver a pre-bind update (a condition, a label) after the bind
    result: nodeName is never unset, so the pod stays where it was bound."""
    s, actions, q = make(("nodes", node("a", 2)), ("pods", pod("p")))
    run(s)
    assert [b[0] for b in actions.binds] == ["p"]
    q.put(Event(RESULT, "bind", {"uid": "uid-p", "ok": True, "node": "a"}))
    run(s, 1)
    stale = pod("p")
    stale["status"]["conditions"] = [{"type": "PodScheduled", "status": "False"}]
    q.put(Event("pods", "MODIFIED", stale))  # older than the bind, seen after it
    s.clock.advance(5)
    run(s)
    assert [b[0] for b in actions.binds] == ["p"]  # not decided again
    assert s.snapshot.pods["uid-p"].node == "a"  # still charged where it is bound
    q.put(Event("pods", "MODIFIED", pod("p", node_name="a")))
    run(s)
    assert [b[0] for b in actions.binds] == ["p"] and s.snapshot.pods["uid-p"].node == "a"


def test_bound_pods_of_other_schedulers_are_counted() -> None:
    s, actions, _ = make(
        ("nodes", node("a", 2)), ("pods", pod("theirs", 2, node_name="a")), ("pods", pod("mine"))
    )
    run(s)
    assert actions.binds == []
    assert actions.conditions["mine"][0] == "Unschedulable"


def test_unknown_class_waits_until_created() -> None:
    s, actions, q = make(("nodes", node("a")), ("pods", pod("p", cls="later")))
    run(s)
    assert actions.conditions["p"][0] == "UnknownClass"
    q.put(Event("workloadclasses", "ADDED", wlc("later", tier="Nearline")))
    run(s)
    assert [b[0] for b in actions.binds] == ["p"]


def test_preemption_waits_for_grace_then_evicts() -> None:
    objs = [
        ("workloadclasses", wlc("batch", tier="Offline", preemption={"gracePeriodSeconds": 0.3})),
        ("workloadclasses", wlc("chat", tier="Interactive", preemption={"policy": "LowerTier"})),
        ("nodes", node("a", 2)),
        ("pods", pod("b0", cls="batch", node_name="a")),
        ("pods", pod("b1", cls="batch", node_name="a")),
        ("pods", pod("c", cls="chat")),
    ]
    s, actions, q = make(*objs)
    run(s)
    assert actions.checkpoints == ["b1"] or actions.checkpoints == ["b0"]
    assert actions.conditions["c"][0] == "Preempting"
    assert actions.evictions == []
    s.clock.advance(0.35)
    run(s)
    assert actions.evictions == actions.checkpoints
    victim = actions.evictions[0]
    q.put(Event("pods", "DELETED", pod(victim, cls="batch", node_name="a")))
    run(s)
    assert ("c", "a", {"ballast.dev/gpu-ids": "1" if victim == "b1" else "0"}) in actions.binds


def test_relist_drops_pods_that_vanished() -> None:
    s, _actions, q = make(("nodes", node("a", 1)), ("pods", pod("old", node_name="a")))
    run(s)
    assert "uid-old" in s.snapshot.pods
    q.put(Event("pods", "RELIST", {}))
    q.put(Event("pods", "SYNCED", {}))
    run(s)
    assert "uid-old" not in s.snapshot.pods


def test_concurrent_preemptors_spread_over_nodes() -> None:
    objs = [
        ("workloadclasses", wlc("off", tier="Offline", preemption={"gracePeriodSeconds": 0})),
        ("workloadclasses", wlc("chat", tier="Interactive", preemption={"policy": "LowerTier"})),
    ]
    objs += [("nodes", node(f"n{i}", 2)) for i in range(3)]
    objs += [
        ("pods", pod(f"o{i}-{g}", cls="off", node_name=f"n{i}")) for i in range(3) for g in range(2)
    ]
    objs += [("pods", pod(f"chat{k}", gpus=2, cls="chat")) for k in range(3)]
    s, actions, _ = make(*objs)
    run(s)
    assert {actions.conditions[f"chat{k}"][0] for k in range(3)} == {"Preempting"}
    # Every victim is claimed once: three preemptions on three different nodes.
    assert sorted(actions.checkpoints) == sorted(f"o{i}-{g}" for i in range(3) for g in range(2))
    assert len(s.preemptions.nodes()) == 3


def test_retries_after_a_flush_stop_after_a_streak_of_failures() -> None:
    from ballast.scheduler.core import RETRY_STREAK

    objs = [("nodes", node("a", 1)), ("pods", pod("theirs", node_name="a"))]
    objs += [("pods", pod(f"w{i}")) for i in range(300)]
    s, actions, q = make(*objs)
    for _ in range(5):
        s.step(0)
    assert len(s.queue.parked) == 300
    before = s.decisions
    s.clock.advance(s.config.flush_s + 1)  # the flush: every parked pod gets another try
    for _ in range(5):
        s.step(0)
    assert s.decisions - before <= RETRY_STREAK + 1
    assert len(s.queue.parked) == 300 and not s.queue.active
    # A new pod is still tried at once.
    q.put(Event("pods", "ADDED", pod("fresh")))
    s.step(0)
    assert actions.conditions["fresh"][0] == "Unschedulable"
