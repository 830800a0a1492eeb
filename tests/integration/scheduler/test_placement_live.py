"""The scheduler on a real API server with KWOK GPU nodes: placement, waiting, bad input."""

from __future__ import annotations

from typing import Any

from kutil import wait_for
from sutil import (
    L4,
    gpu_node,
    gpu_pod,
    node_of,
    pod_events,
    wait_ready,
    waiting_reason,
    wlc,
)

from ballast.api import wellknown as wk
from ballast.kube.raw import Kube


def test_locality_decides_placement(scheduler: Any, kube: Kube, namespace: str, tid: str) -> None:
    model = f"llama-{tid}"
    for i in range(3):
        gpu_node(kube, f"loc-{tid}-{i}", test=tid, models=(model,) if i == 1 else ())
    wait_ready(kube, tid, 3)
    gpu_pod(kube, namespace, "serve", test=tid, models=(model,))
    node = wait_for(lambda: node_of(kube, namespace, "serve"), what="bound")
    assert node == f"loc-{tid}-1"
    events = wait_for(
        lambda: [e for e in pod_events(kube, namespace, "serve") if e["reason"] == "Scheduled"],
        what="Scheduled event",
    )
    assert "DataLocality" in events[0]["note"], events[0]["note"]


def test_pool_and_gpu_model_filter(scheduler: Any, kube: Kube, namespace: str, tid: str) -> None:
    cls = f"serving-{tid}"
    wlc(
        kube,
        cls,
        tier="Interactive",
        nodePool={"name": "serving", "gpuProducts": ["NVIDIA-H100-80GB-HBM3"]},
    )
    gpu_node(kube, f"pool-{tid}-l4", test=tid, gpu=L4, labels={wk.LABEL_POOL: "serving"})
    gpu_node(kube, f"pool-{tid}-free", test=tid)
    gpu_node(kube, f"pool-{tid}-h100", test=tid, labels={wk.LABEL_POOL: "serving"})
    wait_ready(kube, tid, 3)
    gpu_pod(kube, namespace, "chat", test=tid, cls=cls)
    assert wait_for(lambda: node_of(kube, namespace, "chat"), what="bound") == f"pool-{tid}-h100"


def test_residency(scheduler: Any, kube: Kube, namespace: str, tid: str) -> None:
    cls = f"eu-only-{tid}"
    wlc(kube, cls, tier="Nearline", placement={"residency": {"regions": ["eu-west"]}})
    gpu_node(kube, f"res-{tid}-us", test=tid)
    gpu_node(kube, f"res-{tid}-eu", test=tid, region="eu-west", zone="eu-west-b")
    wait_ready(kube, tid, 2)
    for i in range(3):
        gpu_pod(kube, namespace, f"job-{i}", test=tid, cls=cls)
    for i in range(3):
        assert (
            wait_for(lambda i=i: node_of(kube, namespace, f"job-{i}"), what="bound")
            == f"res-{tid}-eu"
        )


def test_no_fit_waits_with_summary_then_places_when_node_added(
    scheduler: Any, kube: Kube, namespace: str, tid: str
) -> None:
    gpu_node(kube, f"fit-{tid}-a", test=tid, gpus=8)
    wait_ready(kube, tid, 1)
    gpu_pod(kube, namespace, "big", test=tid, gpus=16)
    cond = wait_for(
        lambda: waiting_reason(kube, namespace, "big", "Unschedulable"), what="Unschedulable"
    )
    assert cond["message"].startswith("0/"), cond["message"]
    assert "1 insufficient GPUs" in cond["message"], cond["message"]
    gpu_node(kube, f"fit-{tid}-b", test=tid, gpus=16)
    assert (
        wait_for(lambda: node_of(kube, namespace, "big"), timeout=30, what="bound")
        == f"fit-{tid}-b"
    )


def test_bad_input_is_reported_and_scheduler_survives(
    scheduler: Any, kube: Kube, namespace: str, tid: str
) -> None:
    gpu_node(kube, f"bad-{tid}-garbage", test=tid, telemetry_raw="{not json")
    wait_ready(kube, tid, 1)
    gpu_pod(kube, namespace, "no-class", test=tid, cls=f"missing-{tid}")
    gpu_pod(
        kube,
        namespace,
        "bad-share",
        test=tid,
        gpus=0,
        annotations={wk.ANNOTATION_GPU_MILLI: "lots"},
    )
    gpu_pod(kube, namespace, "impossible", test=tid, gpus=100)
    gpu_pod(kube, namespace, "fine", test=tid)
    c = wait_for(
        lambda: waiting_reason(kube, namespace, "no-class", "UnknownClass"), what="UnknownClass"
    )
    assert f"missing-{tid}" in c["message"]
    c = wait_for(
        lambda: waiting_reason(kube, namespace, "bad-share", "InvalidRequest"),
        what="InvalidRequest",
    )
    assert wk.ANNOTATION_GPU_MILLI in c["message"]
    wait_for(
        lambda: waiting_reason(kube, namespace, "impossible", "Unschedulable"), what="Unschedulable"
    )
    # A node whose telemetry is garbage is still usable (telemetry scores neutral).
    assert wait_for(lambda: node_of(kube, namespace, "fine"), what="bound") == f"bad-{tid}-garbage"
    node_events = kube.list(
        "/apis/events.k8s.io/v1/namespaces/default/events",
        fieldSelector=f"regarding.name=bad-{tid}-garbage",
    )["items"]
    assert any(e["reason"] == "InvalidNodeData" for e in node_events)
    # Creating the missing class lets its pod go.
    wlc(kube, f"missing-{tid}", tier="Nearline")
    assert wait_for(
        lambda: node_of(kube, namespace, "no-class"), timeout=30, what="bound after class"
    )
    assert scheduler.alive()


def test_share_pods_pack_onto_one_gpu(scheduler: Any, kube: Kube, namespace: str, tid: str) -> None:
    gpu_node(kube, f"share-{tid}", test=tid, gpus=2)
    wait_ready(kube, tid, 1)
    for i in range(4):
        gpu_pod(
            kube, namespace, f"s{i}", test=tid, gpus=0, annotations={wk.ANNOTATION_GPU_MILLI: "250"}
        )
    for i in range(4):
        wait_for(lambda i=i: node_of(kube, namespace, f"s{i}"), what="bound")
    ids = set()
    for i in range(4):
        p = kube.get(f"/api/v1/namespaces/{namespace}/pods/s{i}") or {}
        ids.add(p["metadata"]["annotations"]["ballast.dev/gpu-ids"])
    assert len(ids) == 1, f"four quarter-GPU pods should share one GPU, got {ids}"


def test_metrics_endpoint(scheduler: Any, kube: Kube, namespace: str, tid: str) -> None:
    import urllib.request

    gpu_node(kube, f"metrics-{tid}", test=tid)
    wait_ready(kube, tid, 1)
    gpu_pod(kube, namespace, "counted", test=tid)
    wait_for(lambda: node_of(kube, namespace, "counted"), what="bound")

    def scrape() -> dict[str, float]:
        text = (
            urllib.request.urlopen(f"http://127.0.0.1:{scheduler.metrics_port}/metrics", timeout=5)
            .read()
            .decode()
        )
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    series = wait_for(
        lambda: (m := scrape()).get("ballast_scheduler_binds_total", 0) >= 1 and m,
        what="binds counted",
    )
    assert series['ballast_scheduler_attempts_total{result="scheduled"}'] >= 1
    assert series["ballast_scheduler_decision_seconds_count"] >= 1
    assert 'ballast_scheduler_pending_pods{tier="Interactive"}' in series
    assert any(k.startswith("ballast_scheduler_pod_scheduling_seconds_count{") for k in series)
    # The probes on the same port: the scheduler has listed everything, and its loop runs.
    for probe in ("readyz", "healthz"):
        url = f"http://127.0.0.1:{scheduler.metrics_port}/{probe}"
        assert urllib.request.urlopen(url, timeout=5).read() == b"ok\n"
