"""Node pools on the real API server: members labelled and tainted, pending join, conflicts,
dwell, drift repair and release (the session operator runs with a 5 s dwell).

Each test gives its kwok nodes a GPU product of its own, so its classes match only its nodes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kutil import condition, wait_for
from sutil import gpu_node, new_test_id, wait_ready

from ballast.api import wellknown as wk
from ballast.controller import nodepool_views as views
from ballast.kube.raw import NODES, PODS, WORKLOADCLASSES, Kube

TIMEOUT = 60.0


@pytest.fixture
def tid(kube: Kube) -> Iterator[str]:
    t = new_test_id()
    yield t
    for n in kube.list(NODES.path(), labelSelector=f"ballast.dev/test={t}")["items"]:
        kube.delete(NODES.path(n["metadata"]["name"]))


def product(tid: str) -> tuple[str, int]:
    return (f"TEST-GPU-{tid}", 81559)


def make_class(kube: Kube, name: str, pool: dict[str, Any] | None) -> None:
    spec: dict[str, Any] = {"tier": "Nearline"}
    if pool is not None:
        spec["nodePool"] = pool
    kube.create(WORKLOADCLASSES.path(), {"apiVersion": "ballast.dev/v1alpha1",
                "kind": "WorkloadClass", "metadata": {"name": name}, "spec": spec})  # fmt: skip


def node_state(kube: Kube, name: str) -> tuple[str | None, list[str], dict[str, str]]:
    """(pool label, pool taint values, Ballast's pool annotations) of a node."""
    n = kube.get(NODES.path(name)) or {}
    meta = n.get("metadata") or {}
    taints = [t.get("value", "") for t in (n.get("spec") or {}).get("taints") or ()
              if t.get("key") == wk.TAINT_POOL and t.get("effect") == "NoSchedule"]  # fmt: skip
    ann = {k: v for k, v in (meta.get("annotations") or {}).items() if "pool-" in k}
    return (meta.get("labels") or {}).get(wk.LABEL_POOL), taints, ann


def in_pool(kube: Kube, node: str, pool: str, phase: str = "Joined") -> bool:
    label, taints, ann = node_state(kube, node)
    return label == pool and taints == [pool] and ann.get(views.ANNOTATION_PHASE) == phase


def out_of_pool(kube: Kube, node: str) -> bool:
    label, taints, ann = node_state(kube, node)
    n = kube.get(NODES.path(node)) or {}
    test_taint = any(t["key"] == "ballast.dev/test" for t in n["spec"].get("taints") or ())
    return label is None and taints == [] and ann == {} and test_taint


def pool_status(kube: Kube, cls: str) -> dict[str, Any]:
    return dict(((kube.get(WORKLOADCLASSES.path(cls)) or {}).get("status") or {}).get("pool") or {})


def pool_ready(kube: Kube, cls: str) -> dict[str, Any] | None:
    return condition(kube.get(WORKLOADCLASSES.path(cls)), "PoolReady")


def reason_is(kube: Kube, cls: str, reason: str) -> dict[str, Any] | None:
    c = pool_ready(kube, cls)
    return c if c is not None and c["reason"] == reason else None


def test_reserved_nodes_are_labelled_tainted_repaired_shrunk_and_returned(
    operator: Any, kube: Kube, tid: str
) -> None:
    gpu = product(tid)
    for n in ("a", "b", "c"):
        gpu_node(kube, f"np-{tid}-{n}", test=tid, gpu=gpu)
    gpu_node(kube, f"np-{tid}-l4", test=tid, gpu=("NVIDIA-L4", 23034))
    wait_ready(kube, tid, 4)
    a, b, c = (f"np-{tid}-{n}" for n in ("a", "b", "c"))
    cls, pool = f"np-{tid}", f"pool-{tid}"
    make_class(kube, cls, {"name": pool, "gpuProducts": [gpu[0]], "reservedNodes": 2})
    try:
        wait_for(lambda: in_pool(kube, a, pool) and in_pool(kube, b, pool), timeout=TIMEOUT,
                 what="a and b in the pool", explain=lambda: str([node_state(kube, x) for x in (a, b)]))  # fmt: skip
        assert out_of_pool(kube, c) and out_of_pool(kube, f"np-{tid}-l4")
        ready = wait_for(lambda: reason_is(kube, cls, "Filled"), timeout=TIMEOUT, what="Filled")
        assert ready["status"] == "True"
        st = pool_status(kube, cls)
        assert st["members"] == [a, b] and st["reservedGPUs"] == 16 and st["wantedNodes"] == 2
        assert st["pendingNodes"] == [] and st["borrowable"] is True
        assert node_state(kube, a)[2][views.ANNOTATION_BORROWABLE] == "true"

        # Drift: someone removes the label and the pool taint by hand; both come back.
        node = kube.get(NODES.path(a)) or {}
        others = [t for t in node["spec"]["taints"] if t["key"] != wk.TAINT_POOL]
        kube.patch(NODES.path(a), {"metadata": {"labels": {wk.LABEL_POOL: None}},
                                   "spec": {"taints": others}})  # fmt: skip
        wait_for(lambda: in_pool(kube, a, pool), timeout=TIMEOUT, what="drift repaired")

        # Shrink: b stays for the dwell (5 s here), then goes back, keeping its other taint.
        kube.patch(WORKLOADCLASSES.path(cls), {"spec": {"nodePool": {"reservedNodes": 1}}})
        wait_for(lambda: out_of_pool(kube, b), timeout=TIMEOUT, what="b released after the dwell")
        assert in_pool(kube, a, pool)
        wait_for(lambda: pool_status(kube, cls).get("members") == [a], timeout=TIMEOUT,
                 what="status members [a]")  # fmt: skip
    finally:
        kube.delete(WORKLOADCLASSES.path(cls))
    # Deleting the class returns its nodes.
    wait_for(lambda: out_of_pool(kube, a), timeout=TIMEOUT, what="a returned on class deletion")


def test_pending_join_conflict_and_removing_the_pool(
    operator: Any, kube: Kube, namespace: str, tid: str
) -> None:
    gpu = product(tid)
    a = f"np-{tid}-a"
    gpu_node(kube, a, test=tid, gpu=gpu)
    wait_ready(kube, tid, 1)
    # A pod of another class runs on the node (bound by name; kwok runs it). It tolerates
    # only the test's taint: a pod that tolerates the pool's taint would not hold the node.
    kube.create(PODS.path(namespace=namespace), {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "batch", "namespace": namespace, "labels": {wk.LABEL_CLASS: "batch"}},
        "spec": {"nodeName": a, "terminationGracePeriodSeconds": 0,
                 "tolerations": [{"key": "ballast.dev/test", "operator": "Exists"}],
                 "containers": [{"name": "main", "image": "registry.local/batch:1"}]},
    })  # fmt: skip
    wait_for(lambda: ((kube.get(PODS.path("batch", namespace)) or {}).get("status") or {})
             .get("phase") == "Running", timeout=TIMEOUT, what="foreign pod Running")  # fmt: skip
    old, young = f"np-{tid}-old", f"np-{tid}-young"
    make_class(kube, old, {"name": f"old-{tid}", "gpuProducts": [gpu[0]], "reservedNodes": 1})
    try:
        # Chosen, but the other class's pod is never touched: pending join (tainted, so no new
        # work of other classes lands there).
        cond = wait_for(lambda: reason_is(kube, old, "PendingJoin"), timeout=TIMEOUT,
                        what="PendingJoin")  # fmt: skip
        assert cond["status"] == "False" and a in cond["message"]
        assert in_pool(kube, a, f"old-{tid}", phase="Pending")
        assert pool_status(kube, old)["pendingNodes"] == [a]
        assert (kube.get(PODS.path("batch", namespace)) or {}).get("status", {}).get(
            "phase"
        ) == "Running"

        # A younger class wants the same kind of node: the member is not taken from the pool.
        make_class(kube, young, {"name": f"young-{tid}", "gpuProducts": [gpu[0]],
                                 "reservedNodes": 1})  # fmt: skip
        lost = wait_for(lambda: reason_is(kube, young, "PoolConflict"), timeout=TIMEOUT,
                        what="PoolConflict on the younger class")  # fmt: skip
        assert lost["status"] == "False" and f"old-{tid}" in lost["message"]
        assert "0 of 1" in lost["message"]

        # The foreign pod finishes: the node joins.
        kube.delete(PODS.path("batch", namespace), grace_seconds=0)
        wait_for(lambda: reason_is(kube, old, "Filled"), timeout=TIMEOUT, what="joined")
        assert in_pool(kube, a, f"old-{tid}")

        # The old class drops its pool: the node is returned, and the younger class gets it.
        kube.patch(WORKLOADCLASSES.path(old), {"spec": {"nodePool": None}})
        wait_for(lambda: in_pool(kube, a, f"young-{tid}"), timeout=TIMEOUT, what="young gets a")
        wait_for(lambda: reason_is(kube, young, "Filled"), timeout=TIMEOUT, what="young Filled")
        wait_for(lambda: pool_ready(kube, old) is None and not pool_status(kube, old),
                 timeout=TIMEOUT, what="old's pool status cleared")  # fmt: skip
    finally:
        kube.delete(WORKLOADCLASSES.path(old))
        kube.delete(WORKLOADCLASSES.path(young))
    wait_for(lambda: out_of_pool(kube, a), timeout=TIMEOUT, what="a returned")
