"""The agent's GPUNodeTelemetry: status from a snapshot, write-or-skip, create-if-missing."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from ballast.agent.collector import GPUSample, Snapshot
from ballast.agent.health import Health
from ballast.agent.record import Publisher, RecordWriter, record_status
from ballast.api.v1alpha1 import GPUNodeTelemetry
from ballast.api.v1alpha1.gpunodetelemetry import to_node_telemetry
from ballast.clock import FakeClock
from ballast.kube.raw import KubeError
from ballast.telemetry.nvml import Memory

T0 = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
MIB = 1 << 20


def snap(util: int = 10, healthy: bool = True) -> Snapshot:
    sick = Health(False, ("xid_79",))
    gpus = tuple(
        GPUSample(
            index=i,
            uuid=f"GPU-{i}",
            name="NVIDIA H100 80GB HBM3",
            memory=Memory(81559 * MIB, 1024 * MIB, 80535 * MIB),
            utilization_pct=util,
            health=sick if (i == 0 and not healthy) else Health(True),
            xid_count=0 if healthy else 1,
        )
        for i in range(2)
    )
    return Snapshot(observed_at=T0, nvml_available=True, gpus=gpus)


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.patches: list[tuple[str, dict[str, Any]]] = []

    def get(self, path: str) -> dict[str, Any] | None:
        return self.objects.get(path)

    def create(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.objects[f"{path}/{obj['metadata']['name']}"] = dict(obj)
        return obj

    def patch(self, path: str, patch: dict[str, Any], **_: Any) -> dict[str, Any]:
        if path.removesuffix("/status") not in self.objects:
            raise KubeError(404, "NotFound", {"message": "gone"})
        self.patches.append((path, patch))
        return patch


def test_record_status_is_a_valid_object_and_reads_back() -> None:
    status = record_status(snap(healthy=False), "n1", 10.0)
    obj = {"metadata": {"name": "n1"}, "status": status}
    GPUNodeTelemetry.model_validate({"status": status})
    assert status["gpus"][0]["unhealthyReasons"] == ["xid_79"]
    assert status["gpus"][0]["uuid"] == "GPU-0"
    assert status["gpus"][1]["memoryTotalMiB"] == 81559
    back = to_node_telemetry(obj)
    assert back.problems == []
    assert back.value.observed_at == T0
    assert back.value.max_age_s == 30.0
    assert [g.healthy for g in back.value.gpus] == [False, True]


def test_writer_creates_once_then_patches_status_only() -> None:
    kube = FakeKube()
    writer = RecordWriter(kube, "n1", 10.0)
    writer(snap())
    writer(snap())
    path = "/apis/ballast.dev/v1alpha1/gpunodetelemetries/n1"
    assert list(kube.objects) == [path]
    assert [p for p, _ in kube.patches] == [path + "/status"] * 2
    assert all("/nodes/" not in p for p, _ in kube.patches)  # never the Node
    del kube.objects[path]  # deleted by someone: the next write creates it again
    with pytest.raises(KubeError):  # the write that finds it gone fails (and is counted)
        writer(snap())
    writer(snap())
    assert path in kube.objects


def test_publisher_writes_record_on_change_or_heartbeat_and_counts() -> None:
    clock = FakeClock(T0)
    kube = FakeKube()
    pub = Publisher(clock, heartbeat_s=60.0, write_record=RecordWriter(kube, "n1", 10.0))
    pub.publish(snap())
    clock.advance(10)
    pub.publish(snap(util=12))  # below the 10-point threshold: skipped
    assert pub.writes["record"] == 1
    clock.advance(10)
    pub.publish(snap(healthy=False))  # health changed: written at once
    assert pub.writes["record"] == 2
    clock.advance(60)
    pub.publish(snap(healthy=False))  # unchanged, but the heartbeat is due
    assert pub.writes["record"] == 3
    assert pub.failures["record"] == 0


def test_publisher_counts_failed_record_writes() -> None:
    def broken(_: Snapshot) -> None:
        raise OSError("connection refused")

    pub = Publisher(FakeClock(T0), write_record=broken)
    pub.publish(snap())
    assert (pub.writes["record"], pub.failures["record"]) == (0, 1)
