"""The whole telemetry path on the real API server: fake NVML → agent → record → scheduler.

A kwok node gets a real ``ballast agent`` (over the fake NVML library, as
``make demo`` runs them) that publishes its GPUNodeTelemetry record every
2 s. An XID on one GPU makes the scheduler avoid that GPU within two report
intervals; a stopped agent makes the node's record stale, and the decisions
say so; a class that requires fresh telemetry then skips the node.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kutil import wait_for
from sutil import gpu_node, gpu_pod, node_of, pod, pod_events, wait_ready, waiting_reason, wlc

from ballast.kube.raw import GPUNODETELEMETRIES, Kube
from ballast.localcluster.agents import NodeAgents
from ballast.localcluster.cluster import LocalCluster
from ballast.localcluster.fakegpu import FakeGPUError

INTERVAL_S = 2.0
HEARTBEAT_S = 4.0  # a record is stale once HEARTBEAT_S + 2 x INTERVAL_S passed unwritten


@pytest.fixture
def agents(
    kubeconfig: Path, cluster: LocalCluster | None, kube: Kube, tmp_path: Path
) -> Iterator[NodeAgents]:
    root = cluster.layout.root if cluster is not None else tmp_path
    try:
        fleet = NodeAgents(kubeconfig, root, interval_s=INTERVAL_S, heartbeat_s=HEARTBEAT_S)
    except FakeGPUError as exc:
        pytest.skip(str(exc))
    yield fleet
    fleet.stop_all()
    for node in fleet.started:
        kube.delete(GPUNODETELEMETRIES.path(node))


def record_health(kube: Kube, node: str) -> list[bool] | None:
    obj = kube.get(GPUNODETELEMETRIES.path(node)) or {}
    gpus = (obj.get("status") or {}).get("gpus")
    return [bool(g.get("healthy")) for g in gpus] if gpus else None


def gpu_ids(kube: Kube, namespace: str, name: str) -> str:
    p: dict[str, Any] = pod(kube, namespace, name) or {}
    return str(((p.get("metadata") or {}).get("annotations") or {}).get("ballast.dev/gpu-ids"))


def scheduled_note(kube: Kube, namespace: str, name: str) -> str | None:
    for e in pod_events(kube, namespace, name):
        if e.get("reason") == "Scheduled" and e.get("reportingController") != "default-scheduler":
            return str(e.get("note") or "")
    return None


def test_xid_is_avoided_and_a_stopped_agent_goes_stale(
    scheduler: Any, kube: Kube, namespace: str, tid: str, agents: NodeAgents
) -> None:
    name = f"agent-{tid}"
    gpu_node(kube, name, test=tid, gpus=3)
    wait_ready(kube, tid, 1)
    agents.start_node(name, "NVIDIA-H100-80GB-HBM3", 3, 81559)
    wait_for(lambda: record_health(kube, name) == [True] * 3, timeout=60, what="agent's record")

    # XID 79 (fallen off the bus) on GPU 0: the agent publishes at once.
    raised = time.monotonic()
    agents.fixture(name).raise_xid(0, 79)
    wait_for(lambda: record_health(kube, name) == [False, True, True], timeout=30,
             what="GPU 0 unhealthy in the record")  # fmt: skip
    gpu_pod(kube, namespace, "after-xid", test=tid)
    assert wait_for(lambda: node_of(kube, namespace, "after-xid"), what="bound") == name
    avoided_s = time.monotonic() - raised
    assert gpu_ids(kube, namespace, "after-xid") != "0"
    assert avoided_s < 2 * INTERVAL_S + 10, avoided_s  # two intervals, plus API round trips

    # The agent stops: once a heartbeat is missed the record is stale. The decision
    # says so, and GPU 0 (last reported unhealthy) stays out of use.
    agents.stop(name)
    time.sleep(HEARTBEAT_S + 2 * INTERVAL_S + 3)
    gpu_pod(kube, namespace, "stale", test=tid)
    assert wait_for(lambda: node_of(kube, namespace, "stale"), what="bound") == name
    assert gpu_ids(kube, namespace, "stale") not in ("0", gpu_ids(kube, namespace, "after-xid"))
    note = wait_for(lambda: scheduled_note(kube, namespace, "stale"), what="Scheduled event")
    assert f"telemetry of {name} is stale or missing" in note

    # A class that requires fresh telemetry does not use the node now.
    strict = f"fresh-{tid}"
    wlc(kube, strict, tier="Nearline", placement={"requireFreshTelemetry": True})
    kube.delete(f"/api/v1/namespaces/{namespace}/pods/stale", grace_seconds=0)
    gpu_pod(kube, namespace, "strict", test=tid, cls=strict)
    cond = wait_for(lambda: waiting_reason(kube, namespace, "strict", "Unschedulable"),
                    what="strict pod pending")  # fmt: skip
    assert "stale telemetry" in cond["message"]
