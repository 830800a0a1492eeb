"""A preemptor blocked only by its victims' minimum runtime is tried again when it ends.

Nothing happens in the cluster at the instant a victim's ``minRuntimeSeconds``
passes, so no event wakes the preemptor: without a timer it waited for an
unrelated change or the periodic flush (``Config.flush_s``, 300 s).
"""

from __future__ import annotations

import datetime as dt

from sched_builders import RecordingActions, make, node, pod, run, wlc

from ballast.placement.preemption import plan_outlook
from ballast.scheduler.core import Scheduler
from ballast.scheduler.informer import Event


def _started(name: str, at: dt.datetime, cls: str = "batch") -> dict[str, object]:
    p = pod(name, cls=cls, node_name="a")
    p["status"]["startTime"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return p


def _cluster(
    min_runtime: int, started_ago_s: list[int], victim_tier: str = "Offline"
) -> tuple[Scheduler, RecordingActions, object]:
    now = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
    objs = [
        ("workloadclasses", wlc("batch", tier=victim_tier,
                                preemption={"minRuntimeSeconds": min_runtime})),
        ("workloadclasses", wlc("chat", tier="Interactive", preemption={"policy": "LowerTier"})),
        ("nodes", node("a", len(started_ago_s))),
    ]  # fmt: skip
    objs += [
        ("pods", _started(f"b{i}", now - dt.timedelta(seconds=ago)))
        for i, ago in enumerate(started_ago_s)
    ]
    objs.append(("pods", pod("c", cls="chat")))
    return make(*objs)


def test_the_preemptor_is_tried_when_the_first_minimum_runtime_ends() -> None:
    s, actions, _q = _cluster(60, [10, 40])  # b1 is takeable in 20 s, b0 in 50 s
    run(s)
    assert actions.conditions["c"][0] == "Unschedulable"
    assert actions.checkpoints == []
    s.clock.advance(19)
    run(s)
    assert actions.checkpoints == []  # still protected: nothing to take
    s.clock.advance(1.5)
    run(s)  # no event arrived: the timer alone woke it
    assert actions.conditions["c"][0] == "Preempting"
    assert actions.checkpoints == ["b1"]


def test_the_outlook_names_when_the_first_protected_victim_is_free() -> None:
    s, _actions, _q = _cluster(60, [10, 40])
    run(s)
    rec = next(r for r in s.pods.records.values() if r.name == "c")
    now = s.clock.now().timestamp()
    outlook = plan_outlook(s.engine, s.snapshot, rec.pod, now=now)
    assert outlook.plan is None
    assert outlook.protected_until is not None
    assert abs(outlook.protected_until - (now + 20)) < 1.0
    # Once it has passed there is a plan, and no instant to wait for.
    later = plan_outlook(s.engine, s.snapshot, rec.pod, now=now + 21)
    assert later.plan is not None and later.protected_until is None


def test_pods_the_preemptor_may_never_take_set_no_timer() -> None:
    # Victims of the preemptor's own tier: a LowerTier class may never take them,
    # however long they run, so their minimum runtime is no instant to wait for.
    s, actions, _q = _cluster(60, [10, 40], victim_tier="Interactive")
    run(s)
    assert actions.conditions["c"][0] == "Unschedulable"
    rec = next(r for r in s.pods.records.values() if r.name == "c")
    now = s.clock.now().timestamp()
    assert plan_outlook(s.engine, s.snapshot, rec.pod, now=now) == (None, None)
    assert s._victims_free_at is None


def test_a_pod_ballast_placed_is_protected_from_when_its_node_started_it() -> None:
    # Ballast assumes a pod when it decides; the node starts it later. The
    # victim's minimum runtime counts from status.startTime, not the decision.
    s, actions, q = make(
        ("workloadclasses", wlc("batch", tier="Offline", preemption={"minRuntimeSeconds": 60})),
        ("workloadclasses", wlc("chat", tier="Interactive", preemption={"policy": "LowerTier"})),
        ("nodes", node("a", 1)),
        ("pods", pod("b", cls="batch")),
    )
    run(s)
    assert [b[:2] for b in actions.binds] == [("b", "a")]
    decided = s.clock.now()
    bound = pod("b", cls="batch", node_name="a")
    started = decided + dt.timedelta(seconds=30)  # the node started it 30 s after the decision
    bound["status"]["startTime"] = started.strftime("%Y-%m-%dT%H:%M:%SZ")
    q.put(Event("pods", "MODIFIED", bound))
    run(s)
    s.clock.advance(61)  # past the minimum runtime counted from the decision
    q.put(Event("pods", "ADDED", pod("c", cls="chat")))
    run(s)
    assert actions.conditions["c"][0] == "Unschedulable"
    assert actions.checkpoints == []
    s.clock.advance(30)  # past it counted from the start: the timer wakes the preemptor
    run(s)
    assert actions.checkpoints == ["b"]


def test_a_start_earlier_than_the_decision_does_not_shorten_the_protection() -> None:
    s, _actions, _q = _cluster(60, [10])
    run(s)
    placed = next(iter(s.snapshot.pods.values()))
    s.snapshot.started(placed.uid, placed.start_time - 100)
    assert s.snapshot.pods[placed.uid].start_time == placed.start_time
    s.snapshot.started(placed.uid, placed.start_time + 5)
    assert s.snapshot.pods[placed.uid].start_time == placed.start_time + 5
    assert s.snapshot.placements_on("a")[0].start_time == placed.start_time + 5
