"""The agent's cache inventory, published in GPUNodeTelemetry records, steers data locality.

The records are written by the agent's own code (a real ``CacheScanner`` over
temporary directories, ``LatestCache`` and ``RecordWriter``) to the real API
server; the session's scheduler reads records (``--telemetry-source``
defaults to them when the CRD is installed).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kutil import wait_for
from sutil import gpu_node, gpu_pod, node_of, scheduler_view, wait_ready

from ballast.agent.cache import CacheScanner
from ballast.agent.cache_layout import CacheRoot
from ballast.agent.cache_publish import LatestCache
from ballast.agent.collector import GPUSample, Snapshot
from ballast.agent.record import RecordWriter
from ballast.clock import SystemClock
from ballast.kube.raw import GPUNODETELEMETRIES, Kube
from ballast.telemetry.nvml import Memory

MIB = 1 << 20


@pytest.fixture
def records(kube: Kube) -> Iterator[list[str]]:
    """Names of GPUNodeTelemetry objects to delete after the test."""
    names: list[str] = []
    yield names
    for name in names:
        kube.delete(GPUNODETELEMETRIES.path(name))


def publish_scanned(kube: Kube, node: str, root: Path, models: dict[str, int]) -> None:
    """Lay out a plain model cache, scan it and write the node's record as the agent does."""
    for name, size in models.items():
        (root / name).mkdir(parents=True)
        (root / name / "weights.safetensors").write_bytes(b"w" * size)
    latest = LatestCache()
    latest.set(CacheScanner([CacheRoot("model", str(root))], SystemClock()).scan())
    gpu = GPUSample(index=0, uuid=f"GPU-{node}", name="NVIDIA H100 80GB HBM3",
                    memory=Memory(81559 * MIB, 0, 81559 * MIB), utilization_pct=0)  # fmt: skip
    snap = Snapshot(observed_at=dt.datetime.now(dt.UTC), nvml_available=True, gpus=(gpu,))
    RecordWriter(kube, node, 10.0, cache=latest)(snap)


def test_pod_lands_where_the_record_says_its_model_is_cached(
    scheduler: Any, kube: Kube, namespace: str, tid: str, records: list[str], tmp_path: Path
) -> None:
    model = f"llama-{tid}"
    warm, cold = f"warm-{tid}", f"cold-{tid}"
    records.extend([warm, cold])
    publish_scanned(kube, warm, tmp_path / "warm", {model: 4096, "other": 10})
    publish_scanned(kube, cold, tmp_path / "cold", {"other": 10})
    record = kube.get(GPUNODETELEMETRIES.path(warm)) or {}
    items = {i["name"]: i["bytes"] for i in record["status"]["cache"]["items"]}
    assert items == {model: 4096, "other": 10}  # the scan went through the API server intact
    # The cold node's annotation claims the model; its record, which says otherwise, wins.
    gpu_node(kube, cold, test=tid, gpus=1, models=(model,))
    gpu_node(kube, warm, test=tid, gpus=1)
    wait_ready(kube, tid, 2)
    gpu_pod(kube, namespace, "reader", test=tid, models=(model,))
    where = wait_for(lambda: node_of(kube, namespace, "reader"), what="bound",
                     explain=lambda: scheduler_view(scheduler))  # fmt: skip
    assert where == warm
