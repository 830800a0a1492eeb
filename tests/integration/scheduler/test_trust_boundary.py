"""Hostile and broken objects on a real API server: the scheduler stays up and correct.

Issue 7's reproductions: a pre-bound pod with ``ballast.dev/gpu-ids: "999"``
(which used to kill the scheduler on every restart), ``"-1"`` (which silently
charged another GPU), a window that never fires, a tenant claiming a class
its namespace may not use, and a preemptor that goes away mid-plan.
"""

from __future__ import annotations

import time
import urllib.request
from typing import Any

from kutil import wait_for
from sutil import (
    gpu_node,
    gpu_pod,
    node_of,
    pod,
    pod_events,
    scheduler_view,
    wait_ready,
    waiting_reason,
    wlc,
)

from ballast.kube.raw import BATCHWINDOWS, NAMESPACES, PODS, Kube
from ballast.localcluster.ballast_procs import BallastProcess


def _bound_pod(
    kube: Kube, namespace: str, name: str, node: str, tid: str, ann: dict[str, str]
) -> None:
    """A pod created already bound (spec.nodeName), as a tenant or another scheduler can."""
    kube.create(PODS.path(namespace=namespace), {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "annotations": ann},
        "spec": {
            "nodeName": node,
            "tolerations": [{"key": "ballast.dev/test", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{"name": "main", "image": "registry.local/x:1",
                            "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
            "terminationGracePeriodSeconds": 0,
        },
    })  # fmt: skip


def _metric(proc: Any, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{proc.metrics_port}/metrics", timeout=5).read()
    total = 0.0
    for line in text.decode().splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_hostile_gpu_ids_are_charged_conservatively_and_survive_a_restart(
    scheduler: BallastProcess, kube: Kube, namespace: str, tid: str
) -> None:
    a, b = f"tb-{tid}-a", f"tb-{tid}-b"
    gpu_node(kube, a, test=tid, gpus=4)
    gpu_node(kube, b, test=tid, gpus=4)
    wait_ready(kube, tid, 2)
    errors_before = _metric(scheduler, "ballast_scheduler_errors_total")
    for name, ids in (("h-999", "999"), ("h-minus", "-1"), ("h-twice", "0,0")):
        _bound_pod(kube, namespace, name, a, tid, {"ballast.dev/gpu-ids": ids})
    wait_for(
        lambda: all(
            any(e["reason"] == "InvalidGPUAssignment" for e in pod_events(kube, namespace, n))
            for n in ("h-999", "h-minus", "h-twice")
        ),
        timeout=30,
        what="an InvalidGPUAssignment event on each hostile pod",
    )
    # Ordinary work next to it: five 1-GPU pods fit exactly (node a has one GPU left).
    names = [f"ok-{i}" for i in range(5)]
    for n in names:
        gpu_pod(kube, namespace, n, test=tid)
    wait_for(lambda: all(node_of(kube, namespace, n) for n in names), timeout=60,
             what="ordinary pods placed", explain=lambda: scheduler_view(scheduler))  # fmt: skip
    on_a = [n for n in names if node_of(kube, namespace, n) == a]
    assert len(on_a) == 1
    # The three hostile pods were charged GPUs 0, 1 and 2: the ordinary pod got 3.
    assert (pod(kube, namespace, on_a[0]) or {})["metadata"]["annotations"][
        "ballast.dev/gpu-ids"
    ] == "3"
    # Handled by validation, not by the catch-all.
    assert _metric(scheduler, "ballast_scheduler_errors_total") == errors_before
    # A restart relists the hostile pods: the scheduler must come up and stay up.
    scheduler.kill()
    time.sleep(0.5)
    scheduler.start()
    gpu_pod(kube, namespace, "after-restart", test=tid)
    time.sleep(3)
    assert scheduler.alive(), scheduler.log_tail()
    cond = wait_for(lambda: waiting_reason(kube, namespace, "after-restart", "Unschedulable"),
                    timeout=30, what="the cluster is full, so the new pod waits")  # fmt: skip
    assert "2 insufficient GPUs" in cond["message"], cond
    assert _metric(scheduler, "ballast_scheduler_errors_total") == 0  # a new process


def test_window_that_never_fires_holds_its_pods_with_a_reason(
    scheduler: BallastProcess, kube: Kube, namespace: str, tid: str
) -> None:
    window, cls = f"never-{tid}", f"feb30-{tid}"
    kube.create(BATCHWINDOWS.path(), {
        "apiVersion": "ballast.dev/v1alpha1", "kind": "BatchWindow", "metadata": {"name": window},
        "spec": {"schedule": "0 0 30 2 *", "duration": "1h"},
    })  # fmt: skip
    wlc(kube, cls, tier="Offline", window=window)
    gpu_node(kube, f"nf-{tid}", test=tid, gpus=2)
    wait_ready(kube, tid, 1)
    time.sleep(0.5)
    gpu_pod(kube, namespace, "held", test=tid, cls=cls)
    gpu_pod(kube, namespace, "free", test=tid)
    wait_for(lambda: node_of(kube, namespace, "free"), timeout=30, what="ordinary pod placed")
    cond = wait_for(
        lambda: waiting_reason(kube, namespace, "held", "InvalidSchedule"),
        timeout=30,
        what="the windowed pod waits with InvalidSchedule",
    )
    assert window in cond["message"]
    assert scheduler.alive(), scheduler.log_tail()


def test_namespace_selector_keeps_a_tenant_out_of_a_class(
    scheduler: BallastProcess, kube: Kube, namespace: str, tid: str
) -> None:
    cls = f"vip-{tid}"
    wlc(kube, cls, tier="Interactive", namespaceSelector={"matchLabels": {f"vip-{tid}": "yes"}})
    gpu_node(kube, f"ns-{tid}", test=tid, gpus=2)
    wait_ready(kube, tid, 1)
    time.sleep(0.5)
    gpu_pod(kube, namespace, "claimer", test=tid, cls=cls)
    cond = wait_for(lambda: waiting_reason(kube, namespace, "claimer", "ClassNotAllowed"),
                    timeout=30, what="ClassNotAllowed")  # fmt: skip
    assert namespace in cond["message"]
    kube.patch(NAMESPACES.path(namespace), {"metadata": {"labels": {f"vip-{tid}": "yes"}}})
    wait_for(lambda: node_of(kube, namespace, "claimer"), timeout=30,
             what="placed once the namespace is selected")  # fmt: skip


def test_a_deleted_preemptor_withdraws_its_checkpoint_request(
    scheduler: BallastProcess, kube: Kube, namespace: str, tid: str
) -> None:
    off, chat = f"off-{tid}", f"chat-{tid}"
    wlc(kube, off, tier="Offline", preemption={"gracePeriodSeconds": 8})
    wlc(kube, chat, tier="Interactive", preemption={"policy": "LowerTier", "preemptible": False})
    gpu_node(kube, f"pre-{tid}", test=tid, gpus=2)
    wait_ready(kube, tid, 1)
    time.sleep(0.5)
    gpu_pod(kube, namespace, "victim", test=tid, cls=off, gpus=2)
    wait_for(lambda: node_of(kube, namespace, "victim"), timeout=30, what="victim placed")
    gpu_pod(kube, namespace, "preemptor", test=tid, cls=chat, gpus=2)
    ann = "ballast.dev/checkpoint-requested-at"
    wait_for(lambda: ann in ((pod(kube, namespace, "victim") or {})["metadata"].get("annotations") or {}),
             timeout=30, what="checkpoint requested")  # fmt: skip
    kube.delete(PODS.path("preemptor", namespace))
    wait_for(lambda: ann not in ((pod(kube, namespace, "victim") or {})["metadata"].get("annotations") or {}),
             timeout=30, what="checkpoint request withdrawn")  # fmt: skip
    time.sleep(10)  # past the grace period: no eviction follows
    victim = pod(kube, namespace, "victim")
    assert victim is not None and not victim["metadata"].get("deletionTimestamp")
