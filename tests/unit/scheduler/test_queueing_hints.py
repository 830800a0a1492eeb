"""Queueing hints: a change wakes only the parked pods it can help, and never strands one.

The pure rules (hints.py) are checked directly; the property drives the real
scheduler core and engine through random clusters and random changes and
checks, after every change, that no parked pod is one the engine would place
now (the change that made it placeable woke it), and that the flush wakes
everything.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sched_builders import make, node, pod, run, wlc
from test_record_source import RECORDS, record
from test_record_source import make as make_records

from ballast.scheduler.core import Scheduler
from ballast.scheduler.hints import Change, Changes, Size, helps, sized, wakes_for
from ballast.scheduler.informer import Event


# ------------------------------------------------------------------ pure rules
def test_reasons_map_to_the_changes_that_lift_them() -> None:
    full = wakes_for("Unschedulable", {"insufficient GPUs": 3})
    assert full & Change.ROOM and not full & (Change.HEALTH | Change.WINDOW | Change.VICTIMS)
    labels = wakes_for("Unschedulable", {"pool mismatch": 2, "untolerated taint": 1})
    assert labels & Change.NODE and not labels & Change.ROOM
    assert wakes_for("Unschedulable", {"unhealthy": 1}) & Change.HEALTH
    assert wakes_for("Unschedulable", {"stale telemetry": 1}) & Change.TELEMETRY
    assert wakes_for("Unschedulable", {"insufficient GPUs": 1}, preempts=True) & Change.VICTIMS
    assert wakes_for("WindowClosed") & Change.WINDOW and not wakes_for("WindowClosed") & Change.ROOM
    assert wakes_for("QuotaExceeded") & Change.ROOM
    # Unknown reasons (a filter added later) wake on everything.
    assert wakes_for("Unschedulable", {"something new": 1}) == Change.ALL
    assert wakes_for("SomethingNew") == Change.ALL
    # Every parked pod is woken by a policy change (its view is rebuilt).
    for reason in ("Unschedulable", "QuotaExceeded", "WindowClosed", "UnknownClass"):
        assert wakes_for(reason, {"pool mismatch": 1}) & Change.POLICY


def test_room_wakes_only_pods_that_fit_where_it_was_freed() -> None:
    wake = wakes_for("Unschedulable", {"insufficient GPUs": 4})
    assert sized(wake, "Unschedulable", ["insufficient GPUs"])
    changes = Changes()
    changes.add(Change.ROOM, "n1")
    one, four = Size(gpus=1), Size(gpus=4)
    rooms = [Size(gpus=2, milli=1000, cpu_milli=8000, memory_mib=1 << 16)]
    assert helps(wake, one, changes, rooms)
    assert not helps(wake, four, changes, rooms)
    assert helps(wake, four, changes, None)  # room freed somewhere unknown: everyone
    # A quota-parked pod waits for usage to fall anywhere, not for room on one node.
    quota = wakes_for("QuotaExceeded")
    assert not sized(quota, "QuotaExceeded", [])
    assert helps(quota, None, changes, rooms)
    # A pod that also waits for a node change is woken by that regardless of size.
    both = wakes_for("Unschedulable", {"insufficient GPUs": 1, "pool mismatch": 1})
    changes.add(Change.NODE)
    assert helps(both, four, changes, rooms)


@given(
    rejections=st.lists(
        st.sampled_from(
            ["insufficient GPUs", "insufficient cpu", "pool mismatch", "untolerated taint",
             "unhealthy", "stale telemetry", "GPU model mismatch", "unschedulable"]
        ),
        max_size=4,
    ),
    kinds=st.integers(0, int(Change.ALL)),
)  # fmt: skip
def test_a_change_of_a_kind_a_pod_waits_for_always_wakes_it_without_a_size(
    rejections: list[str], kinds: int
) -> None:
    wake = wakes_for("Unschedulable", dict.fromkeys(rejections, 1))
    changes = Changes(Change(kinds))
    assert helps(wake, None, changes, []) == bool(wake & Change(kinds))


# --------------------------------------------------- the scheduler, end to end
POOLS = ["a", "b", "c"]


def pool_node(name: str, gpus: int, pool: str, taint: bool = False) -> dict[str, Any]:
    obj = node(name, gpus)
    obj["metadata"]["labels"]["pool"] = pool
    if taint:
        obj["spec"] = {"taints": [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]}
    return obj


def pool_pod(name: str, gpus: int, pool: str | None, **kw: Any) -> dict[str, Any]:
    obj = pod(name, gpus, **kw)
    if pool:
        obj["spec"]["nodeSelector"] = {"pool": pool}
    return obj


def placeable_but_parked(s: Scheduler) -> list[str]:
    """Parked pods the engine would place now: a hint missed the change that allows it."""
    now = s.clock.now().timestamp()
    out = []
    for rec in s.queue.parked.values():
        if rec.reason != "Unschedulable" or rec.pod is None:
            continue
        if s.engine.decide(s.snapshot, rec.pod, now=now, seed=s.config.seed).node is not None:
            out.append(rec.name)
    return out


nodes_st = st.lists(
    st.tuples(st.integers(1, 4), st.sampled_from(POOLS), st.booleans()), min_size=1, max_size=2
)
bound_st = st.lists(st.tuples(st.integers(0, 2), st.integers(1, 2)), max_size=6)
pending_st = st.lists(
    st.tuples(st.integers(1, 4), st.sampled_from([None, *POOLS])), min_size=2, max_size=8
)
change_st = st.lists(
    st.one_of(
        st.tuples(st.just("delete"), st.integers(0, 5)),
        st.tuples(st.just("relabel"), st.integers(0, 2), st.sampled_from(POOLS)),
        st.tuples(st.just("untaint"), st.integers(0, 2)),
        st.tuples(st.just("grow"), st.integers(0, 2), st.integers(1, 8)),
        st.tuples(st.just("add"), st.integers(1, 4), st.sampled_from(POOLS)),
        st.tuples(st.just("heartbeat"), st.integers(0, 2)),
    ),
    min_size=2,
    max_size=6,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nodes=nodes_st, bound=bound_st, pending=pending_st, changes=change_st)
def test_every_change_wakes_each_pod_it_makes_placeable(
    nodes: list[tuple[int, str, bool]],
    bound: list[tuple[int, int]],
    pending: list[tuple[int, str | None]],
    changes: list[tuple[Any, ...]],
) -> None:
    shape = {f"n{i}": list(n) for i, n in enumerate(nodes)}
    objs: list[tuple[str, dict[str, Any]]] = [
        ("nodes", pool_node(name, g, p, t)) for name, (g, p, t) in shape.items()
    ]
    # Other schedulers' pods fill some GPUs (each charged only where it fits).
    held: list[dict[str, Any]] = []
    for i, (where, gpus) in enumerate(bound):
        name = f"n{where % len(nodes)}"
        obj = pod(f"b{i}", gpus, node_name=name)
        objs.append(("pods", obj))
        held.append(obj)
    objs += [("pods", pool_pod(f"w{i}", g, p)) for i, (g, p) in enumerate(pending)]
    s, _actions, q = make(*objs)
    run(s)
    assert not placeable_but_parked(s)
    extra = 0
    for change in changes:
        kind = change[0]
        if kind == "delete" and held:
            q.put(Event("pods", "DELETED", held.pop(change[1] % len(held))))
        elif kind in ("relabel", "untaint", "grow", "heartbeat"):
            name = list(shape)[change[1] % len(shape)]
            gpus, pool, taint = shape[name]
            if kind == "relabel":
                pool = change[2]
            elif kind == "untaint":
                taint = False
            elif kind == "grow":
                gpus = change[2]
            shape[name] = [gpus, pool, taint]
            q.put(Event("nodes", "MODIFIED", pool_node(name, gpus, pool, taint)))
        elif kind == "add":
            name = f"x{extra}"
            extra += 1
            shape[name] = [change[1], change[2], False]
            q.put(Event("nodes", "ADDED", pool_node(name, change[1], change[2])))
        run(s, 3)  # the clock stands still: no flush helps
        assert not placeable_but_parked(s), change


# ---------------------------------------------------------- what is not woken
def _full_cluster(n_waiting: int) -> tuple[Scheduler, Any, Any]:
    objs = [
        ("workloadclasses", wlc("off", tier="Offline", preemption={"gracePeriodSeconds": 0})),
        ("workloadclasses", wlc("chat", tier="Interactive", preemption={"policy": "LowerTier"})),
        ("nodes", node("a", 2)),
        ("nodes", node("b", 2)),
    ]
    objs += [("pods", pod(f"o{n}{g}", cls="off", node_name=n)) for n in "ab" for g in range(2)]
    objs += [("pods", pod(f"w{i}", cls="off")) for i in range(n_waiting)]
    objs += [("pods", pod(f"big{i}", gpus=2, cls="off")) for i in range(3)]
    s, actions, q = make(*objs)
    run(s)
    assert len(s.queue.parked) == n_waiting + 3
    return s, actions, q


def test_a_heartbeat_wakes_no_one() -> None:
    s, _, q = _full_cluster(20)
    before = s.decisions
    q.put(Event("nodes", "MODIFIED", node("a", 2)))
    run(s)
    assert s.decisions == before


def test_one_freed_gpu_wakes_the_pods_that_fit_not_the_bigger_ones() -> None:
    s, actions, q = _full_cluster(20)
    q.put(Event("pods", "DELETED", pod("oa0", cls="off", node_name="a")))
    run(s)
    assert [b[0] for b in actions.binds] == ["w0"]  # oldest first (same tier and priority)
    # No 2-GPU pod was woken by room for one; the streak cut the 1-GPU retries.
    assert all(s.queue.parked[f"uid-big{i}"].stage == "parked" for i in range(3))
    q.put(Event("nodes", "MODIFIED", {**node("a", 2), "metadata": {
        **node("a", 2)["metadata"], "labels": {**node("a", 2)["metadata"]["labels"], "z": "1"}}}))  # fmt: skip
    before = s.decisions
    run(s)
    assert s.decisions == before  # a label change cannot help pods short of GPUs


def test_an_interactive_pod_takes_the_room_its_preemption_made_before_the_backlog() -> None:
    s, actions, q = _full_cluster(200)
    q.put(Event("pods", "ADDED", pod("chat", cls="chat")))
    run(s, 2)
    assert actions.conditions["chat"][0] == "Preempting"
    victim = actions.evictions[0]
    before = s.decisions
    q.put(Event("pods", "DELETED", pod(victim, cls="off", node_name=victim[1])))
    run(s)
    assert actions.binds[-1][0] == "chat"
    # The room went to the preemptor before any parked pod was woken, so none was.
    assert s.decisions - before == 1
    assert len(s.queue.parked) == 203 and not s.queue.active


def test_the_flush_wakes_every_parked_pod() -> None:
    s, _, _ = _full_cluster(10)
    before = s.decisions
    run(s)
    assert s.decisions == before  # nothing changed: nothing retried
    s.clock.advance(s.config.flush_s + 1)
    s.step(0)
    assert s.decisions - before == 13


# ------------------------------------------- each kind of change, one by one
@pytest.mark.parametrize(
    ("case", "start", "waiting", "change"),
    [
        ("label", [pool_node("n0", 2, "a")], pool_pod("w", 1, "b"),
         Event("nodes", "MODIFIED", pool_node("n0", 2, "b"))),
        ("taint", [pool_node("n0", 2, "a", taint=True)], pool_pod("w", 1, None),
         Event("nodes", "MODIFIED", pool_node("n0", 2, "a"))),
        ("capacity", [pool_node("n0", 1, "a")], pool_pod("w", 2, None),
         Event("nodes", "MODIFIED", pool_node("n0", 4, "a"))),
        ("new node", [pool_node("n0", 1, "a")], pool_pod("w", 1, "c"),
         Event("nodes", "ADDED", pool_node("n1", 1, "c"))),
        ("pod left", [pool_node("n0", 1, "a")], pool_pod("w", 1, None),
         Event("pods", "DELETED", pod("held", 1, node_name="n0"))),
    ],
)  # fmt: skip
def test_each_kind_of_change_wakes_the_pod_it_helps(
    case: str, start: list[dict[str, Any]], waiting: dict[str, Any], change: Event
) -> None:
    objs = [("nodes", n) for n in start] + [("pods", pod("held", 1, node_name="n0"))]
    objs += [("pods", pool_pod("other", 1, "zzz")), ("pods", waiting)]
    s, actions, q = make(*objs)
    run(s)
    assert actions.conditions["w"][0] == "Unschedulable", case
    before = s.decisions
    q.put(change)
    run(s)
    assert [b[0] for b in actions.binds] == ["w"], case
    # The pod no node label can help (pool "zzz") was woken only by a node change.
    woken_other = s.decisions - before - 1
    assert woken_other == (1 if change.kind == "nodes" else 0), case


def test_a_gpu_recovering_wakes_the_pods_that_waited_for_healthy_gpus() -> None:
    s, actions = make_records(
        ("nodes", node("n", gpus=2)),
        (RECORDS, record("n", [False, True])),
        ("pods", pod("w", 2)),
    )
    run(s)
    assert actions.conditions["w"] == ("Unschedulable", "0/1 nodes: 1 unhealthy")
    before = s.decisions
    s.events.put(Event(RECORDS, "MODIFIED", record("n", [False, True], age_s=-1)))
    run(s)
    assert s.decisions == before  # a new report, the same sick GPU: no one to wake
    s.events.put(Event(RECORDS, "MODIFIED", record("n", [True, True], age_s=-2)))
    run(s)
    assert [b[0] for b in actions.binds] == ["w"]


def test_a_parked_pod_that_changes_is_tried_again_at_once() -> None:
    s, actions, q = make(("nodes", pool_node("n0", 1, "a", taint=True)), ("pods", pod("w")))
    run(s)
    assert actions.conditions["w"] == ("Unschedulable", "0/1 nodes: 1 untolerated taint")
    tolerant = pod("w")
    tolerant["spec"]["tolerations"] = [{"key": "dedicated", "operator": "Exists"}]
    q.put(Event("pods", "MODIFIED", tolerant))
    run(s)
    assert [b[0] for b in actions.binds] == ["w"]


def test_a_status_write_to_a_class_or_quota_wakes_no_one_but_a_spec_change_does() -> None:
    s, _, q = _full_cluster(20)
    before, generation = s.decisions, s.policies.generation
    counted = {**wlc("off", tier="Offline", preemption={"gracePeriodSeconds": 0}),
               "status": {"pods": {"running": 4, "pending": 23}}}  # fmt: skip
    q.put(Event("workloadclasses", "MODIFIED", counted))
    run(s)
    assert s.decisions == before and s.policies.generation == generation
    q.put(Event("workloadclasses", "MODIFIED", wlc("off", tier="Offline")))  # grace period gone
    run(s)
    assert s.policies.generation > generation
    assert s.decisions - before == 23  # every parked pod retried, its view rebuilt
