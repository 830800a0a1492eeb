"""A class's scaling carried out by the real KEDA, Prometheus and HPA controller.

The session's local cluster runs KEDA's operator and metrics API server
(built from its Go module) behind the aggregation layer; the HPA controller
in kube-controller-manager reads the external metrics KEDA serves, which
KEDA reads from the session's Prometheus, which scrapes a serving stand-in
whose queue depth the test sets. Pods run on a kwok node (bound by
``nodeName``; no scheduler is needed to count replicas).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kutil import condition, wait_for
from sutil import gpu_node, new_test_id, wait_ready
from tcpproxy import TcpProxy

from ballast.controller import scaling as logic
from ballast.controller.scaling_sync import SCALED_OBJECTS, keda_served
from ballast.kube.raw import NODES, PODS, WORKLOADCLASSES, Kube, Resource
from ballast.localcluster import LocalCluster
from ballast.localcluster.serving import ServingExporter

DEPLOYMENTS = Resource("apps", "v1", "deployments", True)
HPAS = Resource("autoscaling", "v2", "horizontalpodautoscalers", True)
HPA_SYNC_SECONDS = 5.0  # the local cluster's --horizontal-pod-autoscaler-sync-period
TARGET_QUEUE = 5
SCALE_DOWN_WINDOW = 10


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def node(kube: Kube) -> Iterator[str]:
    tid = new_test_id()
    name = f"hpa-{tid}"
    gpu_node(kube, name, test=tid, gpus=1)
    wait_ready(kube, tid, 1)
    yield name
    kube.delete(NODES.path(name))


def make_class(kube: Kube, name: str, **scaling: Any) -> None:
    kube.create(WORKLOADCLASSES.path(), {
        "apiVersion": "ballast.dev/v1alpha1", "kind": "WorkloadClass", "metadata": {"name": name},
        "spec": {"tier": "Interactive", "scaling": {
            "minReplicas": 1, "maxReplicas": 4, "targetQueueDepth": TARGET_QUEUE,
            "pollingIntervalSeconds": 2,
            "behavior": {"scaleUpStabilizationSeconds": 0,
                         "scaleDownStabilizationSeconds": SCALE_DOWN_WINDOW},
            **scaling,
        }},
    })  # fmt: skip


def make_deployment(kube: Kube, ns: str, name: str, cls: str, node: str) -> None:
    labels = {"app": name, "ballast.dev/class": cls}
    kube.create(DEPLOYMENTS.path(namespace=ns), {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": labels}, "spec": {
                "nodeName": node,
                "terminationGracePeriodSeconds": 0,
                "tolerations": [{"operator": "Exists"}],
                "containers": [{"name": "serve", "image": "registry.local/vllm:1"}],
            }},
        },
    })  # fmt: skip


def scaling_ready(kube: Kube, cls: str) -> dict[str, Any] | None:
    return condition(kube.get(WORKLOADCLASSES.path(cls)), "ScalingReady")


def replicas(kube: Kube, ns: str, name: str) -> int:
    obj = kube.get(DEPLOYMENTS.path(name, ns)) or {}
    return int((obj.get("spec") or {}).get("replicas") or 0)


def running_pods(kube: Kube, ns: str, app: str) -> list[str]:
    pods = kube.list(PODS.path(namespace=ns), labelSelector=f"app={app}")["items"]
    return sorted(
        p["metadata"]["name"]
        for p in pods
        if (p.get("status") or {}).get("phase") == "Running"
        and not p["metadata"].get("deletionTimestamp")
    )


def hpa_view(kube: Kube, ns: str, so_name: str) -> str:
    hpa = kube.get(HPAS.path(f"keda-hpa-{so_name}", ns)) or {}
    return f"hpa status: {hpa.get('status')}"


def test_without_keda_the_class_says_what_to_install(operator: Any, kube: Kube) -> None:
    if keda_served(kube):
        pytest.skip("KEDA was installed earlier in this session (reused cluster)")
    cls = uniq("noked")
    make_class(kube, cls)
    try:
        cond = wait_for(
            lambda: (c := scaling_ready(kube, cls)) and c["reason"] == "KEDANotInstalled" and c,
            timeout=30, what="ScalingReady=False KEDANotInstalled",
        )  # fmt: skip
        assert cond["status"] == "False"
        assert "ballast cluster up --keda" in cond["message"] and "KEDA" in cond["message"]
    finally:
        kube.delete(WORKLOADCLASSES.path(cls))


def test_queue_depth_scales_out_then_back_after_the_window(
    keda: LocalCluster, operator: Any, kube: Kube, serving: ServingExporter, namespace: str,
    node: str,
) -> None:  # fmt: skip
    cls, app = uniq("chat"), uniq("chat")
    make_class(kube, cls)
    make_deployment(kube, namespace, app, cls, node)
    so_name = logic.scaled_object_name(logic.Workload("Deployment", namespace, app))
    try:
        so = wait_for(lambda: kube.get(SCALED_OBJECTS.path(so_name, namespace)), timeout=30,
                      what="the ScaledObject")  # fmt: skip
        assert so["spec"]["scaleTargetRef"]["name"] == app
        cond = wait_for(
            lambda: (c := scaling_ready(kube, cls)) and c["status"] == "True" and c,
            timeout=60, what="ScalingReady=True",
            explain=lambda: f"{scaling_ready(kube, cls)}",
        )  # fmt: skip
        assert cond["reason"] == "ScaledObjectsReady" and so_name in cond["message"]
        hpa = wait_for(lambda: kube.get(HPAS.path(f"keda-hpa-{so_name}", namespace)),
                       timeout=60, what="KEDA's HPA")  # fmt: skip
        metric = hpa["spec"]["metrics"][0]
        assert metric["type"] == "External"
        assert metric["external"]["target"] == {"type": "AverageValue", "averageValue": "5"}
        assert (
            hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == SCALE_DOWN_WINDOW
        )

        first = wait_for(lambda: running_pods(kube, namespace, app), timeout=60,
                         what="the first pod running")[0]  # fmt: skip
        # Three times the target, all waiting in one pod: the HPA wants 3 replicas.
        serving.set_queue(namespace, first, 3 * TARGET_QUEUE)
        wait_for(lambda: replicas(kube, namespace, app) == 3, timeout=120,
                 what="3 replicas", explain=lambda: hpa_view(kube, namespace, so_name))  # fmt: skip
        wait_for(lambda: len(running_pods(kube, namespace, app)) == 3, timeout=60,
                 what="3 pods running")  # fmt: skip

        serving.set_queue(namespace, first, 0)
        lowered = time.monotonic()
        wait_for(lambda: replicas(kube, namespace, app) == 1, timeout=120,
                 what="back to 1 replica", explain=lambda: hpa_view(kube, namespace, so_name))  # fmt: skip
        held = time.monotonic() - lowered
        # The last high recommendation came at most one HPA period before the drop, and
        # none below it counts until the window has passed since.
        assert held >= SCALE_DOWN_WINDOW - HPA_SYNC_SECONDS, f"scaled down after {held:.1f}s"
    finally:
        kube.delete(DEPLOYMENTS.path(app, namespace))
        kube.delete(WORKLOADCLASSES.path(cls))


def test_fallback_holds_replicas_while_prometheus_is_unreachable(
    keda: LocalCluster, operator: Any, kube: Kube, serving: ServingExporter, namespace: str,
    node: str, prometheus_proxy: TcpProxy,
) -> None:  # fmt: skip
    cls, app = uniq("fb"), uniq("fb")
    make_class(kube, cls, fallbackReplicas=2)
    make_deployment(kube, namespace, app, cls, node)
    so_name = logic.scaled_object_name(logic.Workload("Deployment", namespace, app))
    try:
        wait_for(lambda: kube.get(HPAS.path(f"keda-hpa-{so_name}", namespace)), timeout=60,
                 what="KEDA's HPA")  # fmt: skip
        first = wait_for(lambda: running_pods(kube, namespace, app), timeout=60,
                         what="the first pod running")[0]  # fmt: skip
        serving.set_queue(namespace, first, 0)
        assert replicas(kube, namespace, app) == 1
        prometheus_proxy.cut()  # the triggers' serverAddress is the session operator's proxy
        try:
            wait_for(lambda: replicas(kube, namespace, app) == 2, timeout=90,
                     what="the fallback's 2 replicas",
                     explain=lambda: hpa_view(kube, namespace, so_name))  # fmt: skip
        finally:
            prometheus_proxy.resume()
        wait_for(lambda: replicas(kube, namespace, app) == 1, timeout=90,
                 what="back to 1 once Prometheus answers",
                 explain=lambda: hpa_view(kube, namespace, so_name))  # fmt: skip
    finally:
        kube.delete(DEPLOYMENTS.path(app, namespace))
        kube.delete(WORKLOADCLASSES.path(cls))


def test_scaled_objects_are_restored_and_removed_with_scaling(
    keda: LocalCluster, operator: Any, kube: Kube, namespace: str, node: str
) -> None:
    cls, app = uniq("drift"), uniq("drift")
    make_class(kube, cls)
    make_deployment(kube, namespace, app, cls, node)
    so_name = logic.scaled_object_name(logic.Workload("Deployment", namespace, app))
    path = SCALED_OBJECTS.path(so_name, namespace)
    try:
        so = wait_for(lambda: kube.get(path), timeout=30, what="the ScaledObject")
        kube.patch(path, {"spec": {"maxReplicaCount": 40}})
        wait_for(lambda: (kube.get(path) or {}).get("spec", {}).get("maxReplicaCount") == 4,
                 timeout=30, what="maxReplicaCount restored")  # fmt: skip
        kube.delete(path)
        again = wait_for(
            lambda: (o := kube.get(path)) and o["metadata"]["uid"] != so["metadata"]["uid"] and o,
            timeout=60, what="the ScaledObject recreated",
        )  # fmt: skip
        assert again["metadata"]["labels"]["ballast.dev/class"] == cls
        # Without scaling the class has no ScaledObject and no ScalingReady.
        kube.patch(WORKLOADCLASSES.path(cls), {"spec": {"scaling": None}})
        wait_for(lambda: kube.get(path) is None, timeout=60, what="the ScaledObject deleted")
        wait_for(lambda: scaling_ready(kube, cls) is None, timeout=30,
                 what="ScalingReady removed")  # fmt: skip
    finally:
        kube.delete(DEPLOYMENTS.path(app, namespace))
        kube.delete(WORKLOADCLASSES.path(cls))


def test_a_scaling_ready_brought_back_by_a_stale_status_write_is_removed(
    keda: LocalCluster, operator: Any, kube: Kube
) -> None:
    """The class's reconcile writes its conditions whole, from the copy its handler got:
    a copy older than the removal of ScalingReady brings it back. The operator removes
    it again (this race made test_scaled_objects_are_restored_and_removed_with_scaling
    fail one run in three)."""
    cls = uniq("stale")
    kube.create(WORKLOADCLASSES.path(), {
        "apiVersion": "ballast.dev/v1alpha1", "kind": "WorkloadClass", "metadata": {"name": cls},
        "spec": {"tier": "Nearline"},
    })  # fmt: skip
    try:
        obj = wait_for(
            lambda: (o := kube.get(WORKLOADCLASSES.path(cls))) and condition(o, "Ready") and o,
            timeout=30, what="the class reconciled",
        )  # fmt: skip
        stale = {"type": "ScalingReady", "status": "False", "reason": "ScaledObjectNotReady",
                 "message": "left by a stale write", "lastTransitionTime": "2026-01-01T00:00:00Z"}  # fmt: skip
        kube.patch(WORKLOADCLASSES.path(cls, sub="status"), {
            "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
            "status": {"conditions": [*obj["status"]["conditions"], stale]},
        })  # fmt: skip
        assert scaling_ready(kube, cls) is not None
        wait_for(lambda: scaling_ready(kube, cls) is None, timeout=30,
                 what="ScalingReady removed")  # fmt: skip
        assert condition(kube.get(WORKLOADCLASSES.path(cls)), "Ready") is not None  # the rest kept
    finally:
        kube.delete(WORKLOADCLASSES.path(cls))
