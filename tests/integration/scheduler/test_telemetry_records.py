"""GPUNodeTelemetry records on a real API server steer the scheduler's GPU choice.

The session's scheduler runs with the default ``--telemetry-source``: the
``crds`` fixture installs ``gpunodetelemetries.ballast.dev``, so it reads
records (nodes without one keep their annotation telemetry).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from kutil import wait_for
from sutil import gpu_node, gpu_pod, node_of, pod, pod_events, wait_ready, waiting_reason, wlc

from ballast.api import wellknown as wk
from ballast.kube.raw import GPUNODETELEMETRIES, NODES, Kube
from ballast.scheduler.healthtaint import TAINT_KEY


@pytest.fixture
def records(kube: Kube) -> Iterator[list[str]]:
    """Names of GPUNodeTelemetry objects to delete after the test."""
    names: list[str] = []
    yield names
    for name in names:
        kube.delete(GPUNODETELEMETRIES.path(name))


def publish(
    kube: Kube, node: str, healthy: list[bool], *, age_s: float = 0.0, interval_s: float = 10.0
) -> None:
    """Create ``node``'s record and write its status as the agent does."""
    when = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age_s)
    kube.create(
        GPUNODETELEMETRIES.path(),
        {"apiVersion": wk.API_VERSION, "kind": "GPUNodeTelemetry", "metadata": {"name": node}},
    )
    gpus = [
        {
            "index": i,
            "uuid": f"GPU-{node}-{i}",
            "product": "NVIDIA H100 80GB HBM3",
            "memoryTotalMiB": 81559,
            "memoryUsedMiB": 0,
            "utilizationPct": 0.0,
            "healthy": ok,
            **({} if ok else {"unhealthyReasons": ["xid_79"], "xidErrors": 1}),
        }
        for i, ok in enumerate(healthy)
    ]
    status = {
        "nodeName": node,
        "updateTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reportIntervalSeconds": interval_s,
        "gpus": gpus,
    }
    kube.patch(GPUNODETELEMETRIES.path(node, sub="status"), {"status": status})


def gpu_ids(kube: Kube, namespace: str, name: str) -> str:
    p: dict[str, Any] = pod(kube, namespace, name) or {}
    return str(((p.get("metadata") or {}).get("annotations") or {}).get("ballast.dev/gpu-ids"))


def test_unhealthy_gpu_in_record_is_avoided(
    scheduler: Any, kube: Kube, namespace: str, tid: str, records: list[str]
) -> None:
    name = f"gnt-{tid}"
    records.append(name)
    publish(kube, name, [False, True])  # fresh: GPU 0 is sick
    gpu_node(kube, name, test=tid, gpus=2)
    wait_ready(kube, tid, 1)
    gpu_pod(kube, namespace, "one", test=tid)
    assert wait_for(lambda: node_of(kube, namespace, "one"), what="bound") == name
    assert gpu_ids(kube, namespace, "one") == "1"


def scheduled_message(kube: Kube, namespace: str, name: str) -> str | None:
    for e in pod_events(kube, namespace, name):
        if e.get("reason") == "Scheduled" and e.get("reportingController") != "default-scheduler":
            return str(e.get("note") or "")
    return None


def test_stale_record_scores_neutral_and_keeps_its_sick_gpus_out(
    scheduler: Any, kube: Kube, namespace: str, tid: str, records: list[str]
) -> None:
    # Ten minutes old with a 10 s interval (fresh for 30 s): the node scores
    # neutral and the decision says so, but GPU 0, last reported unhealthy,
    # stays out of use (an agent that died after an XID must not revive it).
    name = f"gnt-stale-{tid}"
    records.append(name)
    publish(kube, name, [False, True], age_s=600)
    gpu_node(kube, name, test=tid, gpus=2)
    wait_ready(kube, tid, 1)
    gpu_pod(kube, namespace, "one", test=tid)
    assert wait_for(lambda: node_of(kube, namespace, "one"), what="bound") == name
    assert gpu_ids(kube, namespace, "one") == "1"
    note = wait_for(lambda: scheduled_message(kube, namespace, "one"), what="Scheduled event")
    assert f"telemetry of {name} is stale or missing (scored neutral)" in note
    gpu_pod(kube, namespace, "two", test=tid)
    cond = wait_for(lambda: waiting_reason(kube, namespace, "two", "Unschedulable"),
                    what="second pod pending")  # fmt: skip
    assert "1 unhealthy" in cond["message"]


def test_a_class_that_requires_fresh_telemetry_skips_stale_nodes(
    scheduler: Any, kube: Kube, namespace: str, tid: str, records: list[str]
) -> None:
    cls = f"strict-{tid}"
    wlc(kube, cls, tier="Nearline", placement={"requireFreshTelemetry": True})
    name = f"gnt-strict-{tid}"
    records.append(name)
    publish(kube, name, [True], age_s=600)
    gpu_node(kube, name, test=tid, gpus=1)
    wait_ready(kube, tid, 1)
    gpu_pod(kube, namespace, "strict", test=tid, cls=cls)
    cond = wait_for(lambda: waiting_reason(kube, namespace, "strict", "Unschedulable"),
                    what="strict pod pending")  # fmt: skip
    assert "stale telemetry" in cond["message"]  # (other tests' nodes count too)
    # The agent reports again: the record is fresh and the pod is placed.
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    kube.patch(GPUNODETELEMETRIES.path(name, sub="status"), {"status": {"updateTime": when}})
    assert wait_for(lambda: node_of(kube, namespace, "strict"), timeout=60, what="bound") == name


def test_a_node_with_every_gpu_unhealthy_is_tainted_until_one_recovers(
    scheduler: Any, kube: Kube, tid: str, records: list[str]
) -> None:
    name = f"gnt-taint-{tid}"
    records.append(name)
    gpu_node(kube, name, test=tid, gpus=2)
    wait_ready(kube, tid, 1)
    publish(kube, name, [False, False])

    def taints() -> list[str]:
        node = kube.get(NODES.path(name)) or {}
        return [t["key"] for t in (node.get("spec") or {}).get("taints") or ()]

    wait_for(lambda: TAINT_KEY in taints(), timeout=30, what="gpu-unhealthy taint")
    assert "ballast.dev/test" in taints()  # other taints are kept

    def node_events(reason: str) -> list[dict[str, Any]]:
        items = kube.list("/apis/events.k8s.io/v1/namespaces/default/events",
                          fieldSelector=f"regarding.name={name}")["items"]  # fmt: skip
        return [e for e in items if e.get("reason") == reason]

    [event] = wait_for(lambda: node_events("GPUsUnhealthy"), what="GPUsUnhealthy event")
    assert event["type"] == "Warning" and "all 2 GPUs unhealthy" in event["note"]
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    kube.patch(GPUNODETELEMETRIES.path(name, sub="status"),
               {"status": {"updateTime": when, "gpus": [
                   {"index": 0, "healthy": True}, {"index": 1, "healthy": False}]}})  # fmt: skip
    wait_for(lambda: TAINT_KEY not in taints(), timeout=30, what="taint removed")
    assert "ballast.dev/test" in taints()
    assert wait_for(lambda: node_events("GPUsHealthy"), what="GPUsHealthy event")
