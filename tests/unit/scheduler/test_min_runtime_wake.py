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
