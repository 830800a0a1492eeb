"""GPU-to-pod attribution: merging the kubelet's allocations with Ballast's gpu-ids, and its use.

The merge is pure and table-tested; the attributor is exercised over the real
collector (fake NVML library) with in-memory sources, then through the
exporter and the GPUNodeTelemetry status it feeds.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from prometheus_client import generate_latest

from ballast.agent.attribution import (
    BALLAST,
    GPU,
    POD_RESOURCES,
    Allocation,
    BallastPod,
    Conflict,
    Owner,
    ballast_pod,
    device_index,
    merge,
)
from ballast.agent.attributor import Attributor
from ballast.agent.collector import Collector, Snapshot
from ballast.agent.exporter import build_registry
from ballast.agent.record import Publisher, record_status
from ballast.api.v1alpha1.gpunodetelemetry import GPUNodeTelemetryStatus
from ballast.clock import FakeClock
from ballast.telemetry.nvml import Nvml

GPUS = [GPU(0, "GPU-aaaa"), GPU(1, "GPU-bbbb"), GPU(2, "GPU-cccc"), GPU(3, "GPU-dddd")]
T0 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)


def alloc(pod: str, *ids: str, container: str = "main", ns: str = "team-a") -> Allocation:
    return Allocation(ns, pod, container, "nvidia.com/gpu", ids)


def annotated(pod: str, *ids: int, container: str = "main", ns: str = "team-a") -> BallastPod:
    return BallastPod(ns, pod, ids, container)


def pods_of(result: Any, index: int) -> list[tuple[str, str, str]]:
    return [(o.pod, o.container, o.source) for o in result.owners.get(index, ())]


CASES: dict[str, dict[str, Any]] = {
    "kubelet only, by UUID": {
        "kubelet": [alloc("train", "GPU-bbbb", "GPU-dddd")],
        "pods": None,
        "want": {1: [("train", "main", POD_RESOURCES)], 3: [("train", "main", POD_RESOURCES)]},
    },
    "kubelet only, by index; other resources ignored": {
        "kubelet": [
            alloc("train", "2"),
            Allocation("team-a", "train", "main", "example.com/nic", ("0",)),
        ],
        "pods": None,
        "want": {2: [("train", "main", POD_RESOURCES)]},
    },
    "UUIDs match whatever the case; time-slicing replicas name their GPU": {
        "kubelet": [alloc("a", "gpu-AAAA::0"), alloc("b", "GPU-aaaa::1", container="side")],
        "pods": None,
        "want": {0: [("a", "main", POD_RESOURCES), ("b", "side", POD_RESOURCES)]},
    },
    "Ballast's assignment only (no kubelet socket)": {
        "kubelet": None,
        "pods": [annotated("serve", 0), annotated("batch", 2, 3, container="")],
        "want": {
            0: [("serve", "main", BALLAST)],
            2: [("batch", "", BALLAST)],
            3: [("batch", "", BALLAST)],
        },
    },
    "both agree: the kubelet's entry is the one listed": {
        "kubelet": [alloc("train", "GPU-bbbb")],
        "pods": [annotated("train", 1)],
        "want": {1: [("train", "main", POD_RESOURCES)]},
    },
    "they disagree about a pod: the kubelet wins, a conflict": {
        "kubelet": [alloc("train", "GPU-cccc")],
        "pods": [annotated("train", 1)],
        "want": {2: [("train", "main", POD_RESOURCES)]},
        "conflicts": [Conflict("team-a", "train", (2,), (1,))],
    },
    "a share the kubelet does not know about stays attributed": {
        "kubelet": [alloc("train", "GPU-aaaa")],
        "pods": [annotated("chat-1", 3), annotated("chat-2", 3)],
        "want": {
            0: [("train", "main", POD_RESOURCES)],
            3: [("chat-1", "main", BALLAST), ("chat-2", "main", BALLAST)],
        },
    },
    "an annotation naming a GPU the kubelet gave to another pod: a conflict": {
        "kubelet": [alloc("train", "GPU-aaaa")],
        "pods": [annotated("chat", 0)],
        "want": {0: [("chat", "main", BALLAST), ("train", "main", POD_RESOURCES)]},
        "conflicts": [Conflict("team-a", "chat", (), (0,), ("team-a/train",))],
    },
    "an unusable annotation is a problem, not a conflict": {
        "kubelet": [alloc("train", "GPU-aaaa")],
        "pods": [BallastPod("team-a", "train", (), "main", "not a list")],
        "want": {0: [("train", "main", POD_RESOURCES)]},
        "problems": 1,
    },
    "devices and indices the node does not have are problems, not owners": {
        "kubelet": [alloc("mig", "MIG-1234"), alloc("far", "9")],
        "pods": [annotated("lost", 7), BallastPod("team-a", "bad", (), "", "not a list")],
        "want": {},
        "problems": 4,
    },
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_merge(case: dict[str, Any]) -> None:
    result = merge(case["kubelet"], case["pods"], GPUS)
    assert {i: pods_of(result, i) for i in result.owners} == case["want"]
    assert list(result.conflicts) == case.get("conflicts", [])
    assert len(result.problems) == case.get("problems", 0)


def test_nothing_to_merge_attributes_nothing() -> None:
    assert merge(None, None, GPUS).owners == {}
    assert merge([], [], []).owners == {}


def test_owners_are_sorted_and_bounded() -> None:
    many = [annotated(f"p{n:03d}", 1) for n in range(50)]
    owners = merge(None, many, GPUS).owners[1]
    assert len(owners) == 32
    assert list(owners) == sorted(owners)


def test_conflict_lines_name_both_sides() -> None:
    moved = Conflict("ns", "p", (2,), (1,)).describe()
    assert "ns/p" in moved and "2" in moved and "ballast.dev/gpu-ids says 1" in moved
    held = Conflict("ns", "q", (), (0,), ("ns/train",)).describe()
    assert "ns/train" in held


@pytest.mark.parametrize(
    ("device", "want"),
    [("GPU-aaaa", 0), ("GPU-AAAA", 0), ("GPU-dddd::3", 3), ("1", 1), ("4", None), ("MIG-x", None)],
)
def test_device_index(device: str, want: int | None) -> None:
    assert device_index(device, {g.uuid.lower(): g.index for g in GPUS}, {0, 1, 2, 3}) == want


def pod_obj(annotation: str | None, *containers: tuple[str, int]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "p", "namespace": "ns"}
    if annotation is not None:
        meta["annotations"] = {"ballast.dev/gpu-ids": annotation}
    return {
        "metadata": meta,
        "spec": {
            "containers": [
                {"name": n, "resources": {"limits": {"nvidia.com/gpu": str(g)}} if g else {}}
                for n, g in containers
            ]
        },
    }


def test_ballast_pod_reads_the_annotation_like_the_scheduler() -> None:
    assert ballast_pod(pod_obj(None, ("main", 1))) is None
    p = ballast_pod(pod_obj("0, 3", ("sidecar", 0), ("main", 2)))
    assert p == BallastPod("ns", "p", (0, 3), "main")
    only = ballast_pod(pod_obj("1", ("app", 0)))  # a share: no nvidia.com/gpu request
    assert only is not None and only.container == "app"
    two = ballast_pod(pod_obj("1", ("a", 1), ("b", 1)))
    assert two is not None and two.container == ""
    for bad in ("x", "1,1", "-1", ",".join(map(str, range(65)))):
        got = ballast_pod(pod_obj(bad, ("main", 1)))
        assert got is not None and got.gpu_ids == () and "ballast.dev/gpu-ids" in got.problem
    assert ballast_pod({"metadata": "junk"}) is None


# -- the attributor over the real collector -----------------------------------


class Kubelet:
    def __init__(self) -> None:
        self.allocations: list[Allocation] | None = None
        self.calls = 0

    def list(self) -> list[Allocation] | None:
        self.calls += 1
        return self.allocations

    def available(self) -> bool:
        return self.allocations is not None


class Pods:
    def __init__(self) -> None:
        self.pods: list[BallastPod] | None = []

    def current(self) -> list[BallastPod] | None:
        return self.pods

    def request_counts(self) -> dict[str, int]:
        return {"list": 1, "watch": 2}

    def wait_synced(self, timeout_s: float) -> bool:
        return True


@pytest.fixture
def collector(gpus, fake_nvml_lib: str) -> Collector:
    c = Collector(Nvml(fake_nvml_lib), FakeClock(T0))
    c.collect()
    return c


def test_attributor_labels_metrics_and_record(collector: Collector) -> None:
    kubelet, pods = Kubelet(), Pods()
    published: list[Snapshot] = []
    collector.listeners.append(published.append)
    attributor = Attributor(collector, 10.0, pod_resources=kubelet, pods=pods)
    registry, _ = build_registry(collector, "node-a", None, attributor)

    pods.pods = [annotated("chat", 1, ns="serving")]
    attributor.refresh()
    assert [o.pod for o in collector.snapshot().gpus[1].pods] == ["chat"]
    assert len(published) == 1  # a GPU changed hands: listeners hear at once
    text = generate_latest(registry).decode()
    assert 'gpu="1",modelName="NVIDIA H100 80GB HBM3",namespace="serving",pod="chat"} 0.0' in text
    assert 'gpu="0",modelName="NVIDIA H100 80GB HBM3",namespace="",pod=""} 37.0' in text
    assert 'ballast_agent_gpu_pod_info{Hostname="node-a",UUID="GPU-bbbb"' in text
    assert "ballast_agent_pod_resources_available 0.0" in text
    assert 'ballast_agent_pod_api_requests_total{verb="watch"} 2.0' in text

    attributor.refresh()
    assert len(published) == 1  # nothing changed: no new publish

    # The kubelet appears and says the pod holds GPU 0: it wins, one conflict.
    kubelet.allocations = [Allocation("serving", "chat", "main", "nvidia.com/gpu", ("GPU-aaaa",))]
    attributor.refresh()
    attributor.refresh()
    snap = collector.snapshot()
    assert snap.gpus[1].pods == ()
    assert snap.gpus[0].pods == (Owner("serving", "chat", "main", POD_RESOURCES),)
    assert attributor.conflicts_total == 1  # counted once, not every interval
    text = generate_latest(registry).decode()
    assert "ballast_agent_attribution_conflicts_total 1.0" in text
    assert "ballast_agent_pod_resources_available 1.0" in text

    # A later collection keeps the owners.
    assert collector.collect().gpus[0].pods == snap.gpus[0].pods

    status = GPUNodeTelemetryStatus.model_validate(record_status(snap, "node-a", 10.0))
    assert status.gpus is not None
    pods0 = status.gpus[0].pods
    assert pods0 is not None and [(p.namespace, p.name, p.container, p.source) for p in pods0] == [
        ("serving", "chat", "main", "pod-resources")
    ]
    assert status.gpus[1].pods is None


def test_a_change_of_owner_is_written_without_waiting_for_the_heartbeat(
    collector: Collector,
) -> None:
    clock = FakeClock(T0)
    writes: list[Snapshot] = []
    publisher = Publisher(clock, heartbeat_s=60.0, write_record=writes.append)
    collector.listeners.append(publisher.publish)
    publisher.publish(collector.snapshot())
    publisher.publish(collector.snapshot())
    assert len(writes) == 1  # unchanged: skipped until the heartbeat
    pods = Pods()
    pods.pods = [annotated("chat", 0)]
    Attributor(collector, 10.0, pods=pods).refresh()
    assert len(writes) == 2
    assert writes[-1].gpus[0].pods[0].pod == "chat"


def test_a_failing_source_never_stops_the_thread(collector: Collector) -> None:
    class Broken(Pods):
        def current(self) -> list[BallastPod] | None:
            raise RuntimeError("boom")

    attributor = Attributor(collector, 0.01, pods=Broken())
    attributor.start()
    attributor.stop()
    attributor.join(timeout=2)
    assert not attributor.is_alive()
