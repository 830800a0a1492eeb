"""GPUNodeTelemetry records in the scheduler: conversion at the boundary, the source, events."""

from __future__ import annotations

import datetime as dt
import queue
from typing import Any

import pytest
from sched_builders import RecordingActions, node, pod, run

from ballast.api.v1alpha1.gpunodetelemetry import to_node_telemetry
from ballast.clock import FakeClock
from ballast.scheduler.core import Config, Scheduler
from ballast.scheduler.informer import Event
from ballast.scheduler.sources import RecordSource

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
RECORDS = "gpunodetelemetries"


def record(
    name: str, healthy: list[bool], *, age_s: float = 0.0, interval: float = 10.0, **status: Any
) -> dict[str, Any]:
    when = (NOW - dt.timedelta(seconds=age_s)).strftime("%Y-%m-%dT%H:%M:%SZ")
    gpus = [
        {"index": i, "memoryTotalMiB": 81559, "memoryUsedMiB": 0, "healthy": ok}
        for i, ok in enumerate(healthy)
    ]
    body = {"nodeName": name, "updateTime": when, "reportIntervalSeconds": interval, "gpus": gpus}
    return {"metadata": {"name": name}, "status": {**body, **status}}


@pytest.mark.parametrize(
    ("case", "obj", "want_problem"),
    [
        ("no status yet", {"metadata": {"name": "n"}}, None),
        ("bad utilisation", record("n", [True], gpus=[{"index": 0, "utilizationPct": 400}]), "utilizationPct"),
        ("not a list", record("n", [True], gpus="lots"), "gpus"),
        ("bad time", record("n", [True], updateTime="yesterday"), "updateTime"),
        ("other node", record("n", [True], nodeName="m"), "nodeName"),
        ("index twice", record("n", [True], gpus=[{"index": 0}, {"index": 0}]), "twice"),
        ("status not an object", {"metadata": {"name": "n"}, "status": [1]}, "status"),
    ],
)  # fmt: skip
def test_garbage_is_no_data_with_a_problem(
    case: str, obj: dict[str, Any], want_problem: str | None
) -> None:
    parsed = to_node_telemetry(obj)
    assert parsed.value.gpus == (), case
    if want_problem is None:
        assert parsed.problems == [], case
    else:
        assert any(want_problem in p for p in parsed.problems), (case, parsed.problems)


def test_freshness_limit_from_interval_or_flag() -> None:
    assert to_node_telemetry(record("n", [True], interval=5)).value.max_age_s == 15
    assert to_node_telemetry(record("n", [True]), max_age_s=7).value.max_age_s == 7
    no_interval = record("n", [True])
    del no_interval["status"]["reportIntervalSeconds"]
    assert to_node_telemetry(no_interval).value.max_age_s is None


def test_source_prefers_record_and_falls_back_to_annotation() -> None:
    src = RecordSource()
    annotated = node("n")
    annotated["metadata"]["annotations"] = {
        "ballast.dev/gpu-telemetry": '{"observedAt": "2026-06-01T12:00:00Z", "gpus": [{"index": 3}]}'
    }
    assert [g.index for g in src.telemetry(annotated).value.gpus] == [3]
    src.on_record(False, record("n", [True, False]))
    assert [g.healthy for g in src.telemetry(annotated).value.gpus] == [True, False]
    src.on_record(True, record("n", []))
    assert [g.index for g in src.telemetry(annotated).value.gpus] == [3]


def make(*objects: tuple[str, dict[str, Any]]) -> tuple[Scheduler, RecordingActions]:
    q: queue.Queue[Event] = queue.Queue()
    actions = RecordingActions()
    cfg = Config(pod_initial_backoff_s=0)  # woken pods tried at once (see test_pod_backoff.py)
    s = Scheduler(actions, q, FakeClock(NOW), cfg, source=RecordSource())  # type: ignore[arg-type]
    s.required.add(RECORDS)
    for kind in s.required:
        q.put(Event(kind, "RELIST", {}))
    for kind, obj in objects:
        q.put(Event(kind, "SYNC", obj))
    for kind in s.required:
        q.put(Event(kind, "SYNCED", {}))
    return s, actions


def gpu_ids(actions: RecordingActions) -> str:
    [(_, _, annotations)] = actions.binds
    return annotations["ballast.dev/gpu-ids"]


@pytest.mark.parametrize(
    ("case", "rec", "want_ids"),
    [
        ("no record", None, "0"),
        ("healthy record", record("n", [True, True]), "0"),
        ("GPU 0 unhealthy", record("n", [False, True]), "1"),
        # The last report's health holds after it goes stale: GPU 0 stays out.
        ("GPU 0 unhealthy, report stale", record("n", [False, True], age_s=31), "1"),
        ("GPU 0 unhealthy, fresh for 3 intervals", record("n", [False, True], age_s=29), "1"),
        ("garbage", record("n", [False, True], updateTime="soon"), "0"),
    ],
)
def test_record_steers_gpu_choice(case: str, rec: dict[str, Any] | None, want_ids: str) -> None:
    objects = [("nodes", node("n", gpus=2))]
    if rec is not None:
        objects.insert(0, (RECORDS, rec))
    s, actions = make(*objects, ("pods", pod("p")))
    run(s)
    assert gpu_ids(actions) == want_ids, case


def test_record_after_node_updates_snapshot_and_garbage_warns_once() -> None:
    s, actions = make(("nodes", node("n", gpus=2)))
    run(s)
    for _ in range(2):
        s.events.put(Event(RECORDS, "MODIFIED", record("n", [True], updateTime="soon")))
    s.events.put(Event(RECORDS, "MODIFIED", record("n", [False, True])))
    s.events.put(Event("pods", "ADDED", pod("p")))
    run(s)
    assert gpu_ids(actions) == "1"
    assert actions.events.count(("n", "InvalidNodeData")) == 1


def test_relist_prunes_vanished_records() -> None:
    s, actions = make(("nodes", node("n", gpus=2)), (RECORDS, record("n", [False, True])))
    run(s)
    assert isinstance(s.source, RecordSource) and "n" in s.source.records
    s.events.put(Event(RECORDS, "RELIST", {}))
    s.events.put(Event(RECORDS, "SYNCED", {}))
    s.events.put(Event("pods", "ADDED", pod("p")))
    run(s)
    assert "n" not in s.source.records
    assert gpu_ids(actions) == "0"


def test_a_node_whose_gpus_are_all_unhealthy_is_tainted_then_untainted() -> None:
    n = node("n", gpus=2)
    n["metadata"]["resourceVersion"] = "7"
    s, actions = make(("nodes", n), (RECORDS, record("n", [False, False])))
    run(s)
    [change] = actions.taints
    assert change.node == "n" and change.tainted and change.resource_version == "7"
    s.events.put(Event(RECORDS, "MODIFIED", record("n", [True, False])))
    run(s)
    # The taint was never written here (a recording fake): a healthy GPU asks to remove
    # nothing, since the node as last seen carries no taint.
    assert len(actions.taints) == 1
    tainted = {**n, "metadata": {**n["metadata"], "resourceVersion": "8"},
               "spec": {"taints": [dict(t) for t in change.taints]}}  # fmt: skip
    s.events.put(Event("nodes", "MODIFIED", tainted))
    run(s)
    assert [c.tainted for c in actions.taints] == [True, False]
    assert actions.taints[-1].resource_version == "8" and actions.taints[-1].taints == ()


def with_pods(rec: dict[str, Any], owners: dict[int, tuple[str, str]]) -> dict[str, Any]:
    """The record with ``owners`` (GPU index -> (pod, source)) attributed."""
    for g in rec["status"]["gpus"]:
        if g["index"] in owners:
            name, source = owners[g["index"]]
            g["pods"] = [{"namespace": "team", "name": name, "source": source}]
    return rec


def test_the_charge_follows_what_the_nodes_kubelet_assigned() -> None:
    bound = pod("b", gpus=1, node_name="n")
    bound["metadata"]["annotations"] = {"ballast.dev/gpu-ids": "0"}
    s, actions = make(("nodes", node("n", gpus=4)), ("pods", bound))
    run(s)
    assert s.snapshot.pods["uid-b"].gpus == (0,)
    # The agent reports the kubelet's allocation: GPU 2, not 0. The charge moves.
    rec = with_pods(record("n", [True] * 4), {2: ("b", "pod-resources")})
    s.events.put(Event(RECORDS, "MODIFIED", rec))
    run(s)
    assert s.snapshot.pods["uid-b"].gpus == (2,)
    assert s.snapshot.free[s.snapshot.row("n")].tolist()[:4] == [1000, 1000, 0, 1000]
    assert any(r == "GPUAssignmentFromNode" for _, r in actions.events)
    # Ballast's own echo (source ballast) says nothing new; nor does an impossible claim.
    s.events.put(Event(RECORDS, "MODIFIED", with_pods(record("n", [True] * 4),
                                                      {1: ("b", "ballast")})))  # fmt: skip
    run(s)
    assert s.snapshot.pods["uid-b"].gpus == (2,)
    other = pod("o", gpus=1, node_name="n")
    other["metadata"]["annotations"] = {"ballast.dev/gpu-ids": "3"}
    s.events.put(Event("pods", "ADDED", other))
    run(s)
    clash = with_pods(record("n", [True] * 4), {3: ("b", "pod-resources")})
    s.events.put(Event(RECORDS, "MODIFIED", clash))
    run(s)
    assert s.snapshot.pods["uid-b"].gpus == (2,) and s.snapshot.pods["uid-o"].gpus == (3,)


def test_a_pod_bound_after_the_record_is_charged_where_the_node_says() -> None:
    rec = with_pods(record("n", [True] * 4), {1: ("late", "pod-resources")})
    late = pod("late", gpus=1, node_name="n")
    late["metadata"]["annotations"] = {"ballast.dev/gpu-ids": "0"}
    s, _ = make((RECORDS, rec), ("nodes", node("n", gpus=4)), ("pods", late))
    run(s)
    assert s.snapshot.pods["uid-late"].gpus == (1,)


def test_a_heartbeat_record_stays_fresh_until_a_heartbeat_is_missed() -> None:
    # Written on change or every 60 s: fresh for 60 + 2 x 10 s, not 3 x 10 s.
    fresh = to_node_telemetry(record("n", [True], age_s=70, interval=10, heartbeatSeconds=60))
    assert fresh.value.max_age_s == 80
    plain = to_node_telemetry(record("n", [True], interval=10))
    assert plain.value.max_age_s == 30
