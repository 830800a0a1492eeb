"""Builders for scheduler integration tests: fake GPU nodes and GPU pods (raw JSON)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import orjson

from ballast.api import wellknown as wk
from ballast.kube.raw import NODES, PODS, Kube
from ballast.localcluster.nodes import NodeSpec, build_node, idle_telemetry

H100 = ("NVIDIA-H100-80GB-HBM3", 81559)
L4 = ("NVIDIA-L4", 23034)


def new_test_id() -> str:
    return uuid.uuid4().hex[:8]


def gpu_node(
    kube: Kube,
    name: str,
    *,
    test: str,
    gpus: int = 8,
    gpu: tuple[str, int] = H100,
    labels: dict[str, str] | None = None,
    models: tuple[str, ...] = (),
    region: str = "us-central1",
    zone: str = "us-central1-a",
    telemetry_raw: str | None = None,
    taints: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Create a kwok GPU node labelled ``ballast.dev/test=<test>`` (so pods can target it)."""
    import random

    spec = NodeSpec(
        name=name,
        product=gpu[0],
        gpus=gpus,
        gpu_memory_mib=gpu[1],
        cpu_milli=gpus * 16_000,
        memory_mib=gpus * 128 * 1024,
        zone=zone,
        region=region,
        cache=wk.CacheInventory(
            2_000_000_000_000,
            tuple(wk.CacheItem("model", m, 30_000_000_000) for m in models),
        ),
        telemetry=idle_telemetry(random.Random(name), gpus, gpu[1], 60.0),
    )
    node = build_node(spec, dt.datetime.now(dt.UTC))
    node["metadata"]["labels"].update({"ballast.dev/test": test, **(labels or {})})
    if telemetry_raw is not None:
        node["metadata"]["annotations"][wk.ANNOTATION_TELEMETRY] = telemetry_raw
    # The taint keeps every other pod of the shared test cluster (the examples'
    # Deployments, other tests) off this test's nodes; test pods tolerate it.
    node["spec"]["taints"] = [
        {"key": "ballast.dev/test", "value": test, "effect": "NoSchedule"},
        *(taints or []),
    ]
    created = kube.create(NODES.path(), node)
    if wk.GPU_RESOURCE not in ((created.get("status") or {}).get("capacity") or {}):
        kube.patch(NODES.path(name, sub="status"), {"status": node["status"]})
    return created


def wait_ready(kube: Kube, test: str, count: int, timeout: float = 30.0) -> None:
    """Wait until ``count`` nodes of this test are Ready (kwok has taken them over)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        nodes = kube.list(NODES.path(), labelSelector=f"ballast.dev/test={test}")["items"]
        ready = [
            n
            for n in nodes
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in (n.get("status") or {}).get("conditions") or ()
            )
        ]
        if len(ready) >= count:
            time.sleep(1.0)  # let the scheduler's watch catch up with the same state
            return
        time.sleep(0.1)
    raise AssertionError(f"{count} nodes of test {test} not Ready after {timeout}s")


def gpu_pod(
    kube: Kube,
    namespace: str,
    name: str,
    *,
    test: str,
    cls: str | None = None,
    gpus: int = 1,
    models: tuple[str, ...] = (),
    scheduler: str = "ballast",
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    select_test: bool = True,
) -> dict[str, Any]:
    """Create a pod asking ``gpus`` GPUs, restricted to this test's nodes."""
    ann = dict(annotations or {})
    if models:
        ann[wk.ANNOTATION_MODELS] = ",".join(models)
    lab = dict(labels or {})
    if cls:
        lab[wk.LABEL_CLASS] = cls
    resources: dict[str, Any] = {"requests": {"cpu": "100m", "memory": "128Mi"}}
    if gpus:
        resources["limits"] = {wk.GPU_RESOURCE: str(gpus)}
        resources["requests"][wk.GPU_RESOURCE] = str(gpus)
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": lab, "annotations": ann},
        "spec": {
            "schedulerName": scheduler,
            "nodeSelector": {"ballast.dev/test": test} if select_test else {},
            "tolerations": [
                {"key": "ballast.dev/test", "operator": "Exists", "effect": "NoSchedule"}
            ],
            "containers": [
                {"name": "main", "image": "registry.local/serve:1", "resources": resources}
            ],
            "terminationGracePeriodSeconds": 0,
        },
    }
    return kube.create(PODS.path(namespace=namespace), body)


def pod(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    return kube.get(PODS.path(name, namespace))


def node_of(kube: Kube, namespace: str, name: str) -> str | None:
    p = pod(kube, namespace, name)
    return ((p or {}).get("spec") or {}).get("nodeName")


def scheduled_condition(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    p = pod(kube, namespace, name)
    for c in ((p or {}).get("status") or {}).get("conditions") or ():
        if c.get("type") == "PodScheduled":
            return dict(c)
    return None


def waiting_reason(kube: Kube, namespace: str, name: str, reason: str) -> dict[str, Any] | None:
    c = scheduled_condition(kube, namespace, name)
    return c if c and c.get("status") == "False" and c.get("reason") == reason else None


def pod_events(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    items = kube.list(
        f"/apis/events.k8s.io/v1/namespaces/{namespace}/events",
        fieldSelector=f"regarding.name={name}",
    )["items"]
    return list(items)


def wlc(kube: Kube, name: str, **spec: Any) -> None:
    kube.create(
        "/apis/ballast.dev/v1alpha1/workloadclasses",
        {
            "apiVersion": "ballast.dev/v1alpha1",
            "kind": "WorkloadClass",
            "metadata": {"name": name},
            "spec": spec,
        },
    )


def delete_nodes(kube: Kube, test: str) -> None:
    for n in kube.list(NODES.path(), labelSelector=f"ballast.dev/test={test}")["items"]:
        kube.delete(NODES.path(n["metadata"]["name"]))


def dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def scheduler_view(proc: Any) -> str:
    """Ask a running scheduler (SIGUSR1) to log its view of the nodes and return those lines."""
    import os
    import signal
    import time

    os.kill(proc.pid, signal.SIGUSR1)
    time.sleep(1.0)
    lines = [
        line
        for line in proc.log_tail(400).splitlines()
        if "node view" in line or "queue view" in line
    ]
    return "scheduler view:\n" + "\n".join(lines[-60:])
