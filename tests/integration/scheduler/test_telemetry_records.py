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
from sutil import gpu_node, gpu_pod, node_of, pod, wait_ready

from ballast.api import wellknown as wk
from ballast.kube.raw import GPUNODETELEMETRIES, Kube


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


def test_stale_record_is_neutral(
    scheduler: Any, kube: Kube, namespace: str, tid: str, records: list[str]
) -> None:
    name = f"gnt-stale-{tid}"
    records.append(name)
    # Its only GPU is "unhealthy", but ten minutes old with a 10 s interval (fresh for 30 s):
    # the record is ignored, so the GPU is usable (fresh, the pod could not be placed at all).
    publish(kube, name, [False], age_s=600)
    gpu_node(kube, name, test=tid, gpus=1)
    wait_ready(kube, tid, 1)
    gpu_pod(kube, namespace, "one", test=tid)
    assert wait_for(lambda: node_of(kube, namespace, "one"), what="bound") == name
    assert gpu_ids(kube, namespace, "one") == "0"
