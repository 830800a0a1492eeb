"""DRA on a real API server: claims from templates allocated and bound, bad input reported.

The test DRA driver (ballast.localcluster.dradriver) publishes NVIDIA-shaped
ResourceSlices for this test's KWOK nodes, which carry no ``nvidia.com/gpu``
extended resource: their GPUs exist only as DRA devices. The real
resourceclaim controller creates the claims from templates.
"""

from __future__ import annotations

from typing import Any

import pytest
from kutil import wait_for
from sutil import gpu_node, node_of, pod, pod_events, wait_ready, waiting_reason

from ballast.api import wellknown as wk
from ballast.kube.raw import NODES, PODS, Kube
from ballast.localcluster import dradriver
from ballast.scheduler.dra_writes import RESOURCECLAIMS, RESOURCESLICES

TEMPLATES = "/apis/resource.k8s.io/v1/namespaces/{ns}/resourceclaimtemplates"


def dra_node(kube: Kube, name: str, tid: str, gpus: int = 4) -> None:
    gpu_node(kube, name, test=tid, gpus=gpus, labels={dradriver.LABEL_GPUS: str(gpus)})
    zero = {wk.GPU_RESOURCE: "0"}
    kube.patch(NODES.path(name, sub="status"), {"status": {"capacity": zero, "allocatable": zero}})


def request(count: int, expr: str = "", cls: str = "gpu.nvidia.com") -> dict[str, Any]:
    sels = [{"cel": {"expression": expr}}] if expr else []
    return {"devices": {"requests": [{"name": "gpu", "exactly": {
        "deviceClassName": cls, "count": count, "selectors": sels}}]}}  # fmt: skip


def claim_pod(kube: Kube, ns: str, name: str, tid: str, **claim_ref: str) -> None:
    kube.create(PODS.path(namespace=ns), {
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "schedulerName": "ballast",
            "nodeSelector": {"ballast.dev/test": tid},
            "tolerations": [{"key": "ballast.dev/test", "operator": "Exists"}],
            "resourceClaims": [{"name": "gpu", **claim_ref}],
            "containers": [{"name": "main", "image": "registry.local/x:1",
                            "resources": {"claims": [{"name": "gpu"}]}}],
            "terminationGracePeriodSeconds": 0,
        },
    })  # fmt: skip


@pytest.fixture
def dra(kube: Kube, tid: str) -> str:
    dra_node(kube, f"dra-{tid}", tid)
    dradriver.sync(kube)
    wait_ready(kube, tid, 1)
    return f"dra-{tid}"


def test_a_template_claim_is_allocated_on_the_node_and_the_pod_bound(
    scheduler: Any, kube: Kube, namespace: str, tid: str, dra: str
) -> None:
    kube.create(TEMPLATES.format(ns=namespace), {
        "metadata": {"name": "pair", "namespace": namespace},
        "spec": {"spec": request(2, 'device.attributes["gpu.nvidia.com"].architecture == "Hopper"')},
    })  # fmt: skip
    claim_pod(kube, namespace, "trainer", tid, resourceClaimTemplateName="pair")
    assert wait_for(lambda: node_of(kube, namespace, "trainer"), what="bound") == dra
    p = pod(kube, namespace, "trainer") or {}
    (status,) = p["status"]["resourceClaimStatuses"]
    claim = kube.get(RESOURCECLAIMS.path(status["resourceClaimName"], namespace)) or {}
    results = claim["status"]["allocation"]["devices"]["results"]
    assert len(results) == 2 and {r["pool"] for r in results} == {dra}
    assert {r["driver"] for r in results} == {"gpu.nvidia.com"}
    assert [r["uid"] for r in claim["status"]["reservedFor"]] == [p["metadata"]["uid"]]


def test_an_unsatisfiable_claim_waits_with_the_reason(
    scheduler: Any, kube: Kube, namespace: str, tid: str, dra: str
) -> None:
    kube.create(RESOURCECLAIMS.path(namespace=namespace), {
        "metadata": {"name": "b200s", "namespace": namespace},
        "spec": request(2, 'device.attributes["gpu.nvidia.com"].productName == "NVIDIA B200"'),
    })  # fmt: skip
    claim_pod(kube, namespace, "waits", tid, resourceClaimName="b200s")
    cond = wait_for(lambda: waiting_reason(kube, namespace, "waits", "Unschedulable"),
                    what="Unschedulable")  # fmt: skip
    assert "request gpu: 0 device(s) match" in cond["message"]


def test_a_selector_that_does_not_compile_is_an_event_naming_it(
    scheduler: Any, kube: Kube, namespace: str, tid: str, dra: str
) -> None:
    kube.create(RESOURCECLAIMS.path(namespace=namespace), {
        "metadata": {"name": "broken", "namespace": namespace},
        # Kubernetes' CEL accepts the optional field syntax; cel-python does not parse it.
        "spec": request(1, 'device.attributes["gpu.nvidia.com"].?productName.orValue("") != ""'),
    })  # fmt: skip
    claim_pod(kube, namespace, "bad", tid, resourceClaimName="broken")

    def event() -> dict[str, Any] | None:
        evs = pod_events(kube, namespace, "bad")
        return next((e for e in evs if e.get("reason") == "InvalidDeviceSelector"), None)

    ev = wait_for(event, what="InvalidDeviceSelector event")
    assert "broken" in ev["note"] and "does not compile" in ev["note"]


def test_a_garbage_slice_is_ignored_with_a_warning(
    scheduler: Any, kube: Kube, tid: str, dra: str
) -> None:
    labels = {dradriver.LABEL_GPUS: "2"}
    (body,) = dradriver.slices_for({"metadata": {"name": dra, "labels": labels}})
    body["metadata"] = {"name": f"garbage-{tid}"}
    body["spec"]["pool"]["name"] = f"garbage-{tid}"
    body["spec"]["devices"][0]["capacity"]["memory"] = {"value": "100Ei"}  # past any GPU
    kube.create(RESOURCESLICES.path(), body)
    try:

        def event() -> dict[str, Any] | None:
            evs = kube.list("/apis/events.k8s.io/v1/namespaces/default/events",
                            fieldSelector=f"regarding.name=garbage-{tid}")["items"]  # fmt: skip
            return next((e for e in evs if e.get("reason") == "InvalidResourceSlice"), None)

        ev = wait_for(event, what="InvalidResourceSlice event")
        assert "memory" in ev["note"]
        assert scheduler.alive()
    finally:
        kube.delete(RESOURCESLICES.path(f"garbage-{tid}"))
