"""PodDisruptionBudgets of non-preemptible classes, on the real API server and controllers.

Pods run on a kwok node (bound by ``nodeName``; no scheduler runs here), so
the disruption controller in kube-controller-manager counts them healthy and
the Eviction API enforces the budget.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kutil import ready, wait_for
from sutil import gpu_node, new_test_id, wait_ready

from ballast.api import wellknown as wk
from ballast.kube.raw import NAMESPACES, NODES, PDBS, PODS, WORKLOADCLASSES, Kube, KubeError


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def node(kube: Kube) -> Iterator[str]:
    tid = new_test_id()
    name = f"pdb-{tid}"
    gpu_node(kube, name, test=tid, gpus=1)
    wait_ready(kube, tid, 1)
    yield name
    kube.delete(NODES.path(name))


@pytest.fixture
def other_namespace(kube: Kube) -> Iterator[str]:
    name = uniq("t-pdb")
    kube.create(NAMESPACES.path(), {"apiVersion": "v1", "kind": "Namespace",
                                    "metadata": {"name": name}})  # fmt: skip
    wait_for(lambda: kube.get(f"/api/v1/namespaces/{name}/serviceaccounts/default"), what="sa")
    yield name
    kube.delete(NAMESPACES.path(name))


def protected_class(kube: Kube, name: str, **preemption: Any) -> None:
    kube.create(WORKLOADCLASSES.path(), {
        "apiVersion": "ballast.dev/v1alpha1", "kind": "WorkloadClass", "metadata": {"name": name},
        "spec": {"tier": "Interactive", "preemption": {"preemptible": False, **preemption}},
    })  # fmt: skip
    wait_for(lambda: ready(kube, WORKLOADCLASSES, name), timeout=30, what=f"class {name} Ready")


def class_pod(kube: Kube, ns: str, name: str, cls: str, node: str | None) -> None:
    spec: dict[str, Any] = {
        "schedulerName": "ballast",
        "terminationGracePeriodSeconds": 0,
        "tolerations": [{"operator": "Exists"}],
        "containers": [{"name": "main", "image": "registry.local/serve:1"}],
    }
    if node:
        spec["nodeName"] = node
    kube.create(PODS.path(namespace=ns), {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {wk.LABEL_CLASS: cls}},
        "spec": spec,
    })  # fmt: skip


def deployment(kube: Kube, ns: str, name: str, cls: str, node: str, replicas: int) -> None:
    labels = {wk.LABEL_CLASS: cls, "app": name}
    kube.create(f"/apis/apps/v1/namespaces/{ns}/deployments", {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {
            "replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": labels}, "spec": {
                "nodeName": node, "terminationGracePeriodSeconds": 0,
                "tolerations": [{"operator": "Exists"}],
                "containers": [{"name": "main", "image": "registry.local/serve:1"}],
            }},
        },
    })  # fmt: skip


def running(kube: Kube, ns: str, cls: str) -> list[str]:
    items = kube.list(PODS.path(namespace=ns), labelSelector=f"{wk.LABEL_CLASS}={cls}")["items"]
    return [
        p["metadata"]["name"]
        for p in items
        if (p.get("status") or {}).get("phase") == "Running"
        and not p["metadata"].get("deletionTimestamp")
    ]


def pdb(kube: Kube, ns: str, cls: str) -> dict[str, Any] | None:
    return kube.get(PDBS.path(f"ballast-{cls}", ns))


def test_pdb_per_namespace_follows_pods_budget_and_drift(
    operator: object, kube: Kube, namespace: str, other_namespace: str, node: str
) -> None:
    cls = uniq("chat")
    protected_class(kube, cls)
    deployment(kube, namespace, "serve", cls, node, 2)
    class_pod(kube, other_namespace, "b0", cls, None)
    class_pod(kube, other_namespace, "b1", cls, None)

    first = wait_for(lambda: pdb(kube, namespace, cls), what="PDB in the first namespace")
    assert wait_for(lambda: pdb(kube, other_namespace, cls), what="PDB in the second namespace")
    meta = first["metadata"]
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "ballast"
    assert meta["labels"]["ballast.dev/owner"] == f"workloadclass.{cls}"
    owner = meta["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("WorkloadClass", cls)
    assert first["spec"]["maxUnavailable"] == 1
    assert first["spec"]["selector"] == {"matchLabels": {wk.LABEL_CLASS: cls}}
    assert first["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert any(m.get("manager") == wk.FIELD_MANAGER for m in meta["managedFields"])

    # Bare pods: the disruption controller cannot read a scale, so the same
    # "one at a time" is written as minAvailable n-1.
    bare = pdb(kube, other_namespace, cls)
    assert bare["spec"].get("minAvailable") == 1 and "maxUnavailable" not in bare["spec"]  # type: ignore[index]

    # Idempotent: resyncs (every 3 s here) do not rewrite an unchanged PDB (the
    # disruption controller keeps writing its status, so compare what Ballast owns).
    def ours() -> tuple[Any, ...]:
        obj = pdb(kube, namespace, cls) or {}
        meta = obj.get("metadata") or {}
        mine = [m for m in meta.get("managedFields") or () if m.get("manager") == wk.FIELD_MANAGER]
        return meta.get("generation"), meta.get("labels"), mine

    before = ours()
    time.sleep(7.0)
    assert ours() == before

    # Drift is repaired: an edited budget and a deleted PDB come back.
    kube.patch(PDBS.path(f"ballast-{cls}", namespace), {"spec": {"maxUnavailable": 5}})
    wait_for(
        lambda: (pdb(kube, namespace, cls) or {}).get("spec", {}).get("maxUnavailable") == 1,
        what="edited PDB restored",
    )
    kube.delete(PDBS.path(f"ballast-{cls}", other_namespace))
    wait_for(lambda: pdb(kube, other_namespace, cls), what="deleted PDB recreated")

    # The class sets its own budget.
    kube.patch(WORKLOADCLASSES.path(cls),
               {"spec": {"preemption": {"disruptionBudget": {"minAvailable": "50%"}}}})  # fmt: skip
    wait_for(
        lambda: (
            (pdb(kube, namespace, cls) or {}).get("spec", {}).get("minAvailable") == "50%"
            and "maxUnavailable" not in pdb(kube, namespace, cls)["spec"]
        ),  # type: ignore[index]
        what="budget follows the class",
    )

    # No pods left in a namespace: its PDB goes.
    kube.delete(PODS.path("b0", other_namespace))
    kube.delete(PODS.path("b1", other_namespace))
    wait_for(lambda: pdb(kube, other_namespace, cls) is None, what="PDB removed with the pods")
    assert pdb(kube, namespace, cls) is not None

    # Preemptible again: every PDB goes.
    kube.patch(WORKLOADCLASSES.path(cls),
               {"spec": {"preemption": {"preemptible": True, "disruptionBudget": None}}})  # fmt: skip
    wait_for(lambda: pdb(kube, namespace, cls) is None, what="PDB removed when preemptible")


def test_the_budget_refuses_a_second_eviction_until_the_first_pod_is_replaced(
    operator: object, kube: Kube, namespace: str, node: str
) -> None:
    """The PDB acts: with two healthy pods and maxUnavailable 1, one eviction goes
    through and the next is refused (429) until the replacement is healthy.

    kwok makes a replacement Ready within a second, which would race the second
    eviction; so the node goes away before the first eviction (the replacement,
    bound to it by ``nodeName``, cannot start) and comes back afterwards.
    """
    cls = uniq("serve")
    protected_class(kube, cls)
    deployment(kube, namespace, "serve", cls, node, 2)
    a0, a1 = wait_for(
        lambda: running(kube, namespace, cls) if len(running(kube, namespace, cls)) == 2 else None,
        what="2 running replicas",
    )

    def allowed() -> Any:
        return ((pdb(kube, namespace, cls) or {}).get("status") or {}).get("disruptionsAllowed")

    wait_for(lambda: allowed() == 1, timeout=30, what="disruption controller counts both pods healthy",
             explain=lambda: str((pdb(kube, namespace, cls) or {}).get("status")))  # fmt: skip
    saved = kube.get(NODES.path(node))
    assert saved is not None
    kube.delete(NODES.path(node))
    wait_for(lambda: kube.get(NODES.path(node)) is None, what="node gone")

    evict = {"apiVersion": "policy/v1", "kind": "Eviction"}
    kube.create(PODS.path(a0, namespace, sub="eviction"),
                {**evict, "metadata": {"name": a0, "namespace": namespace}})  # fmt: skip
    with pytest.raises(KubeError) as refused:
        kube.create(PODS.path(a1, namespace, sub="eviction"),
                    {**evict, "metadata": {"name": a1, "namespace": namespace}})  # fmt: skip
    assert refused.value.status == 429, refused.value

    # The node returns, the replacement runs, and the budget allows one again.
    test = saved["metadata"]["labels"]["ballast.dev/test"]
    gpu_node(kube, node, test=test, gpus=1)
    wait_ready(kube, test, 1)
    wait_for(
        lambda: len(running(kube, namespace, cls)) == 2, timeout=60, what="replacement running"
    )
    wait_for(lambda: allowed() == 1, timeout=30, what="budget allows one eviction again")
    kube.create(PODS.path(a1, namespace, sub="eviction"),
                {**evict, "metadata": {"name": a1, "namespace": namespace}})  # fmt: skip


def test_pdbs_go_with_the_class_and_preemptible_classes_get_none(
    operator: object, kube: Kube, namespace: str
) -> None:
    cls, free = uniq("rag"), uniq("batch")
    protected_class(kube, cls)
    kube.create(WORKLOADCLASSES.path(), {
        "apiVersion": "ballast.dev/v1alpha1", "kind": "WorkloadClass", "metadata": {"name": free},
        "spec": {"tier": "Offline"},
    })  # fmt: skip
    class_pod(kube, namespace, "p", cls, None)
    class_pod(kube, namespace, "q", free, None)
    wait_for(lambda: pdb(kube, namespace, cls), what="PDB created")
    assert pdb(kube, namespace, free) is None
    kube.delete(WORKLOADCLASSES.path(cls))
    # The garbage collector (kube-controller-manager) follows the owner reference.
    wait_for(lambda: pdb(kube, namespace, cls) is None, timeout=60, what="PDB garbage-collected")
    time.sleep(1.0)
    assert pdb(kube, namespace, free) is None


def test_disruption_budget_needs_a_protected_class(operator: object, kube: Kube) -> None:
    with pytest.raises(KubeError) as rejected:
        kube.create(WORKLOADCLASSES.path(), {
            "apiVersion": "ballast.dev/v1alpha1", "kind": "WorkloadClass",
            "metadata": {"name": uniq("bad")},
            "spec": {"tier": "Nearline",
                     "preemption": {"disruptionBudget": {"maxUnavailable": "120%"}}},
        })  # fmt: skip
    message = rejected.value.message
    assert "spec.preemption.disruptionBudget" in message
    assert "not preemptible" in message
    assert "percentage" in message
