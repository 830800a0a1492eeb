"""Gangs in the scheduling thread: all or nothing, reservations with a timeout, bad groups,
competing gangs, preemption for and of a whole group. API writes are recorded, not sent."""

from __future__ import annotations

from typing import Any

from sched_builders import make, node, pod, run, wlc

from ballast.scheduler.groups import KUBE_KIND, PLUGINS_KIND, POD_GROUP_LABEL
from ballast.scheduler.informer import Event


def member(
    name: str, group: str, gpus: int = 8, cls: str | None = None, **kw: Any
) -> dict[str, Any]:
    p = pod(name, gpus, cls=cls, **kw)
    p["metadata"]["labels"][POD_GROUP_LABEL] = group
    return p


def podgroup(name: str, min_member: Any, ns: str = "team", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "scheduling.x-k8s.io/v1alpha1",
        "kind": "PodGroup",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"minMember": min_member, **spec},
    }


def gang(name: str, n: int, gpus: int = 8, cls: str | None = None) -> list[tuple[str, Any]]:
    return [("pods", member(f"{name}-{i}", name, gpus, cls)) for i in range(n)]


def bound(actions: Any) -> set[str]:
    return {b[0] for b in actions.binds}


def test_gang_waits_whole_then_starts_whole() -> None:
    objs = [("nodes", node(f"n{i}")) for i in range(3)]
    objs += [(PLUGINS_KIND, podgroup("train", 4)), *gang("train", 4)]
    s, actions, q = make(*objs)
    run(s)
    assert actions.binds == []
    reason, message = actions.conditions["train-0"]
    assert reason == "Unschedulable"
    assert "waiting: 3 of 4 members fit; 1 needs 8 GPUs on one node" in message
    assert not s.snapshot.pods  # nothing held while waiting
    q.put(Event("nodes", "ADDED", node("n3")))
    run(s)
    assert bound(actions) == {f"train-{i}" for i in range(4)}
    assert len({b[1] for b in actions.binds}) == 4
    assert ("train", "GroupScheduled") in actions.events  # on the PodGroup itself


def test_missing_and_invalid_groups_are_reasons_not_crashes() -> None:
    objs: list[tuple[str, Any]] = [("nodes", node("n0")), ("nodes", node("n1"))]
    objs += gang("later", 2, 4) + gang("zero", 1) + gang("huge", 1)
    objs += [(PLUGINS_KIND, podgroup("zero", 0)), (PLUGINS_KIND, podgroup("huge", 10**9))]
    objs += [("pods", member("bad", "Not_A/Name"))]
    objs += [(PLUGINS_KIND, {"metadata": {"name": "junk", "namespace": "team"}, "spec": "x"})]
    objs += [(KUBE_KIND, {"metadata": {"name": "k", "namespace": "team"}, "spec": {}})]
    s, actions, q = make(*objs)
    run(s)
    assert actions.conditions["later-0"][0] == "WaitingForGroup"
    assert actions.conditions["zero-0"][0] == "InvalidGroup"
    assert "minMember must be between 1 and 4096" in actions.conditions["zero-0"][1]
    assert actions.conditions["huge-0"][0] == "InvalidGroup"
    assert actions.conditions["bad"][0] == "InvalidGroup"
    assert ("zero", "InvalidGroup") in actions.events
    assert actions.binds == []
    q.put(Event(PLUGINS_KIND, "ADDED", podgroup("later", 2)))
    run(s)
    assert bound(actions) == {"later-0", "later-1"}


def test_reservation_holds_room_for_late_members_until_timeout() -> None:
    objs = [("nodes", node("n0")), ("nodes", node("n1"))]
    objs += [(PLUGINS_KIND, podgroup("g", 2, scheduleTimeoutSeconds=30)), *gang("g", 1)]
    s, actions, q = make(*objs)
    run(s)
    assert actions.conditions["g-0"][0] == "WaitingForMembers"
    assert "reserved" in actions.conditions["g-0"][1]
    assert actions.binds == []  # reserved in the snapshot, nothing bound
    q.put(Event("pods", "ADDED", pod("single", 8)))
    run(s)
    q.put(Event("pods", "ADDED", member("g-1", "g")))
    run(s)
    # The single pod took the one node not reserved; the late member had its place.
    assert bound(actions) == {"single"}
    assert actions.conditions["g-1"][0] == "Unschedulable"


def test_reservation_is_given_back_after_the_timeout() -> None:
    objs = [("nodes", node("n0"))]
    objs += [(PLUGINS_KIND, podgroup("g", 2, scheduleTimeoutSeconds=30)), *gang("g", 1)]
    s, actions, q = make(*objs)
    run(s)
    assert len(s.snapshot.pods) == 1
    q.put(Event("pods", "ADDED", pod("single", 8)))
    run(s)
    assert actions.binds == []
    s.clock.advance(31)
    run(s)
    assert ("g-0", "GroupTimeout") in actions.events
    s.clock.advance(s.config.flush_s + 1)
    run(s)
    assert bound(actions) == {"single"}


def test_two_competing_gangs_never_deadlock() -> None:
    objs = [("nodes", node(f"n{i}")) for i in range(4)]
    objs += [(PLUGINS_KIND, podgroup("a", 3)), (PLUGINS_KIND, podgroup("b", 3))]
    objs += [x for pair in zip(gang("a", 3), gang("b", 3), strict=True) for x in pair]
    s, actions, q = make(*objs)
    run(s)
    first = {b[0].split("-")[0] for b in actions.binds}
    assert len(first) == 1 and len(actions.binds) == 3  # one whole gang, the other nothing
    winner = first.pop()
    loser = "b" if winner == "a" else "a"
    for i in range(3):
        node_name = next(b[1] for b in actions.binds if b[0] == f"{winner}-{i}")
        q.put(Event("pods", "DELETED", member(f"{winner}-{i}", winner, node_name=node_name)))
    run(s)
    assert {b[0] for b in actions.binds[3:]} == {f"{loser}-{i}" for i in range(3)}


def test_kube_podgroup_gang_and_basic_policies() -> None:
    def kube_pod(name: str, group: str) -> dict[str, Any]:
        p = pod(name, 8)
        p["spec"]["schedulingGroup"] = {"podGroupName": group}
        return p

    def kube_group(name: str, policy: dict[str, Any]) -> dict[str, Any]:
        return {
            "metadata": {"name": name, "namespace": "team"},
            "spec": {"schedulingPolicy": policy},
        }

    objs = [("nodes", node("n0")), ("nodes", node("n1"))]
    objs += [(KUBE_KIND, kube_group("g", {"gang": {"minCount": 3}}))]
    objs += [(KUBE_KIND, kube_group("b", {"basic": {}}))]
    objs += [("pods", kube_pod(f"g-{i}", "g")) for i in range(3)]
    objs += [("pods", kube_pod("b-0", "b"))]
    s, actions, _ = make(*objs)
    run(s)
    assert bound(actions) == {"b-0"}  # basic: alone; the gang of 3 cannot fit on what is left
    assert "waiting: 1 of 3 members fit; 2 need 8 GPUs" in actions.conditions["g-0"][1]


def test_group_preemption_takes_victims_for_the_whole_group_or_none() -> None:
    objs = [
        ("workloadclasses", wlc("batch", tier="Offline", preemption={"gracePeriodSeconds": 0})),
        ("workloadclasses", wlc("train", tier="Nearline", preemption={"policy": "LowerTier"})),
        *[("nodes", node(f"n{i}")) for i in range(3)],
        ("pods", pod("run0", 8, cls="batch", node_name="n0")),
        ("pods", pod("run1", 8, cls="batch", node_name="n1")),
        (PLUGINS_KIND, podgroup("t", 3)),
        *gang("t", 3, cls="train"),
    ]
    s, actions, _ = make(*objs)
    run(s)
    assert sorted(actions.checkpoints) == ["run0", "run1"]
    assert actions.binds == []
    assert all(actions.conditions[f"t-{i}"][0] == "Preempting" for i in range(3))


def test_no_preemption_when_the_group_cannot_fit_even_so() -> None:
    objs = [
        ("workloadclasses", wlc("batch", tier="Offline", preemption={"gracePeriodSeconds": 0})),
        ("workloadclasses", wlc("train", tier="Nearline", preemption={"policy": "LowerTier"})),
        *[("nodes", node(f"n{i}")) for i in range(2)],
        ("pods", pod("run0", 8, cls="batch", node_name="n0")),
        (PLUGINS_KIND, podgroup("t", 3)),
        *gang("t", 3, cls="train"),
    ]
    s, actions, _ = make(*objs)
    run(s)
    assert actions.checkpoints == [] and actions.binds == []
    assert actions.conditions["t-0"][0] == "Unschedulable"


def test_a_gang_is_preempted_whole_never_one_member() -> None:
    objs = [
        ("workloadclasses", wlc("batch", tier="Offline", preemption={"gracePeriodSeconds": 0})),
        ("workloadclasses", wlc("chat", tier="Interactive", preemption={"policy": "LowerTier"})),
        ("nodes", node("n0")),
        ("nodes", node("n1")),
        ("pods", member("g-0", "g", 8, "batch", node_name="n0")),
        ("pods", member("g-1", "g", 8, "batch", node_name="n1")),
        (PLUGINS_KIND, podgroup("g", 2)),
        ("pods", pod("c", 8, cls="chat")),
    ]
    s, actions, _ = make(*objs)
    run(s)
    assert sorted(actions.checkpoints) == ["g-0", "g-1"]
