"""Crash safety and leader election: every pod bound exactly once, no GPU over-committed."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from kutil import wait_for
from sutil import gpu_node, gpu_pod, wait_ready

from ballast.kube.raw import PODS, Kube
from ballast.localcluster.ballast_procs import BallastProcess


def check_no_overcommit(kube: Kube, namespace: str, names: list[str], gpus_per_node: int) -> None:
    pods = [kube.get(PODS.path(n, namespace)) or {} for n in names]
    assert all(p["spec"].get("nodeName") for p in pods), "some pods are not bound"
    per_gpu: Counter[tuple[str, str]] = Counter()
    per_node: Counter[str] = Counter()
    for p in pods:
        node = p["spec"]["nodeName"]
        per_node[node] += 1
        ids = (p["metadata"].get("annotations") or {}).get("ballast.dev/gpu-ids", "")
        assert ids, f"{p['metadata']['name']} has no GPU assignment"
        for g in ids.split(","):
            per_gpu[(node, g)] += 1
    assert max(per_node.values()) <= gpus_per_node, per_node
    doubles = {k: v for k, v in per_gpu.items() if v > 1}
    assert not doubles, f"GPUs handed out twice: {doubles}"


def scheduled_events(kube: Kube, namespace: str) -> Counter[str]:
    items = kube.list(f"/apis/events.k8s.io/v1/namespaces/{namespace}/events")["items"]
    return Counter(e["regarding"]["name"] for e in items if e["reason"] == "Scheduled")


def test_sigkill_mid_burst_binds_every_pod_once(
    scheduler: BallastProcess, kube: Kube, namespace: str, tid: str
) -> None:
    nodes, per_node = 6, 8
    for i in range(nodes):
        gpu_node(kube, f"crash-{tid}-{i}", test=tid, gpus=per_node)
    wait_ready(kube, tid, nodes)
    names = [f"burst-{i}" for i in range(nodes * per_node)]
    for i, n in enumerate(names):
        gpu_pod(kube, namespace, n, test=tid)
        if i == len(names) // 3:
            scheduler.kill()
    time.sleep(0.5)
    scheduler.start()
    wait_for(
        lambda: all(
            (kube.get(PODS.path(n, namespace)) or {}).get("spec", {}).get("nodeName") for n in names
        ),
        timeout=90,
        what="every pod bound after the restart",
    )
    check_no_overcommit(kube, namespace, names, per_node)


@pytest.fixture
def replicas(crds: None, kubeconfig: Path, tmp_path: Path) -> Any:
    lease = f"ha-{uuid.uuid4().hex[:8]}"
    procs = [
        BallastProcess(
            f"ha-{i}",
            [
                "scheduler",
                "--scheduler-name",
                "ballast-ha",
                "--leader-elect",
                "--lease-name",
                lease,
                "--kube-api-qps",
                "0",
            ],
            kubeconfig,
            tmp_path,
        )
        for i in range(2)
    ]
    for p in procs:
        p.start()
    yield procs
    for p in procs:
        p.stop()


def test_two_replicas_one_leader_and_fast_takeover(
    replicas: list[BallastProcess], kube: Kube, namespace: str, tid: str
) -> None:
    nodes, per_node = 4, 8
    for i in range(nodes):
        gpu_node(kube, f"ha-{tid}-{i}", test=tid, gpus=per_node)
    wait_ready(kube, tid, nodes)
    first = [f"a-{i}" for i in range(16)]
    for n in first:
        gpu_pod(kube, namespace, n, test=tid, scheduler="ballast-ha")
    wait_for(
        lambda: all(
            (kube.get(PODS.path(n, namespace)) or {}).get("spec", {}).get("nodeName") for n in first
        ),
        timeout=60,
        what="first batch bound",
    )
    leaders = [p for p in replicas if "became leader" in p.log_tail(200)]
    assert len(leaders) == 1, [p.log_tail(5) for p in replicas]
    leader = leaders[0]
    standby = next(p for p in replicas if p is not leader)
    leader.kill()
    killed_at = time.monotonic()
    second = [f"b-{i}" for i in range(16)]
    for n in second:
        gpu_pod(kube, namespace, n, test=tid, scheduler="ballast-ha")
    wait_for(
        lambda: "became leader" in standby.log_tail(200), timeout=30, what="standby takes over"
    )
    takeover = time.monotonic() - killed_at
    # Lease 8 s (docs/scheduler.md): a standby acts about 9 s after the last renewal;
    # 20 s leaves room for a loaded 2-core machine.
    assert takeover < 20, f"takeover took {takeover:.1f}s"
    wait_for(
        lambda: all(
            (kube.get(PODS.path(n, namespace)) or {}).get("spec", {}).get("nodeName")
            for n in second
        ),
        timeout=60,
        what="second batch bound",
    )
    check_no_overcommit(kube, namespace, first + second, per_node)
    twice = {k: v for k, v in scheduled_events(kube, namespace).items() if v > 1}
    assert not twice, f"pods scheduled twice: {twice}"
