"""The scheduling thread, fed recorded watch events; API writes are recorded, not sent.

These exercise the core's own logic (assume before bind, forget on failure,
parking with reasons, preemption timing). Everything that talks to a real
API server is covered by tests/integration/scheduler.
"""

from __future__ import annotations

import datetime as dt
import queue
import time
from typing import Any

from ballast.api import wellknown as wk
from ballast.clock import FakeClock
from ballast.scheduler.actions import RESULT
from ballast.scheduler.core import Config, Scheduler
from ballast.scheduler.informer import Event


class RecordingActions:
    """Stands in for the API writers; records calls so tests can answer them."""

    def __init__(self) -> None:
        self.binds: list[tuple[str, str, dict[str, str]]] = []
        self.conditions: dict[str, tuple[str, str]] = {}
        self.checkpoints: list[str] = []
        self.evictions: list[str] = []
        self.events: list[tuple[str, str]] = []
        self.statuses: dict[str, Any] = {}

    def bind(self, pod: dict[str, Any], node: str, annotations: dict[str, str]) -> None:
        self.binds.append((pod["metadata"]["name"], node, dict(annotations)))

    def set_condition(
        self, pod: dict[str, Any], reason: str, message: str, nominated: str | None = None
    ) -> None:
        self.conditions[pod["metadata"]["name"]] = (reason, message)

    def request_checkpoint(self, victim: dict[str, Any], annotation: str, message: str) -> None:
        self.checkpoints.append(victim["metadata"]["name"])

    def evict(self, victim: dict[str, Any], preemptor_uid: str) -> None:
        self.evictions.append(victim["metadata"]["name"])

    def event(self, obj: dict[str, Any], type_: str, reason: str, note: str, **_: Any) -> None:
        self.events.append((obj["metadata"].get("name", ""), reason))

    def patch_status(self, path: str, status: dict[str, Any]) -> None:
        self.statuses[path] = status


def node(name: str, gpus: int = 8) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {wk.LABEL_GPU_PRODUCT: "H100", wk.LABEL_GPU_MEMORY_MIB: "81559"},
        },
        "status": {
            "allocatable": {"cpu": "192", "memory": "2048Gi", wk.GPU_RESOURCE: str(gpus)},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def pod(
    name: str, gpus: int = 1, cls: str | None = None, node_name: str | None = None, ns: str = "team"
) -> dict[str, Any]:
    labels = {wk.LABEL_CLASS: cls} if cls else {}
    spec: dict[str, Any] = {
        "schedulerName": "ballast",
        "containers": [{"name": "c", "resources": {"limits": {wk.GPU_RESOURCE: str(gpus)}}}],
    }
    if node_name:
        spec["nodeName"] = node_name
    return {
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": f"uid-{name}",
            "labels": labels,
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": spec,
        "status": {"phase": "Running" if node_name else "Pending"},
    }


def wlc(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": spec}


def make(
    *objects: tuple[str, dict[str, Any]],
) -> tuple[Scheduler, RecordingActions, queue.Queue[Event]]:
    q: queue.Queue[Event] = queue.Queue()
    actions = RecordingActions()
    clock = FakeClock(dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC))
    s = Scheduler(actions, q, clock, Config())  # type: ignore[arg-type]
    for kind in s.required:
        q.put(Event(kind, "RELIST", {}))
    for kind, obj in objects:
        q.put(Event(kind, "SYNC", obj))
    for kind in s.required:
        q.put(Event(kind, "SYNCED", {}))
    return s, actions, q


def run(s: Scheduler, steps: int = 5) -> None:
    for _ in range(steps):
        s.step(0)


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
    time.sleep(1.1)  # RETRY_BIND_S
    run(s)
    assert [b[0] for b in actions.binds] == ["p", "p"]


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
    time.sleep(0.35)
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
    assert len({p.node for p in s.preemptions.values()}) == 3


def test_retries_after_a_change_stop_after_a_streak_of_failures() -> None:
    from ballast.scheduler.core import RETRY_STREAK

    objs = [("nodes", node("a", 1)), ("pods", pod("theirs", node_name="a"))]
    objs += [("pods", pod(f"w{i}")) for i in range(300)]
    s, actions, q = make(*objs)
    for _ in range(5):
        s.step(0)
    assert len(s.parked) == 300
    before = s.decisions
    q.put(Event("nodes", "MODIFIED", node("a", 1)))  # a change: parked pods get another try
    for _ in range(5):
        s.step(0)
    assert s.decisions - before <= RETRY_STREAK + 1
    assert len(s.parked) == 300 and not s.active
    # A new pod is still tried at once.
    q.put(Event("pods", "ADDED", pod("fresh")))
    s.step(0)
    assert actions.conditions["fresh"][0] == "Unschedulable"
