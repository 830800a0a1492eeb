"""Fake GPU nodes for kwok: specs from a profile or the openb trace, and their Node objects.

Everything here is pure: the same profile, count and seed give the same
nodes (caches and telemetry are drawn from ``random.Random`` seeded with the
seed and the node's name, so the first N nodes of a larger fleet are the
same N nodes). Talking to the API server is :mod:`ballast.localcluster.kube`'s job.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ballast.api import wellknown as wk
from ballast.localcluster.profiles import (
    CATALOGUE,
    OPENB_CACHE_BYTES_PER_GPU,
    OPENB_DEFAULT_GPU_MEMORY_MIB,
    OPENB_GPU_MEMORY_MIB,
    OPENB_IDLE_POWER_W,
    PROFILES,
    REGION,
    ZONES,
    NodeClass,
)

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_LABEL_TYPE = "type"
KWOK_TYPE = "kwok"
NODE_SELECTOR = f"{KWOK_LABEL_TYPE}={KWOK_TYPE}"
PODS_PER_NODE = 110
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """Everything that makes one fake GPU node."""

    name: str
    product: str
    gpus: int
    gpu_memory_mib: int
    cpu_milli: int
    memory_mib: int
    zone: str
    region: str
    cache: wk.CacheInventory
    telemetry: wk.NodeTelemetry  # observed_at is stamped by build_node
    instance_type: str = ""
    pods: int = PODS_PER_NODE


def _dns_name(raw: str) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")
    if not name:
        raise ValueError(f"cannot make a node name from {raw!r}")
    return name[:63].rstrip("-")


def _allocate(count: int, shares: list[float]) -> list[int]:
    """Split ``count`` by ``shares`` with the largest-remainder method (sums to ``count``)."""
    total = sum(shares)
    exact = [count * s / total for s in shares]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(shares)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in by_remainder[: count - sum(counts)]:
        counts[i] += 1
    return counts


def draw_cache(rng: random.Random, capacity_bytes: int, gpu_memory_bytes: int) -> wk.CacheInventory:
    """Cache 2-6 catalogue items within 30-85% of ``capacity_bytes``, popular ones more likely.

    Few items per node keep data locality a real choice for the scheduler
    (a cache holding the whole catalogue would make every node equal).
    Models larger than the node's total GPU memory are never cached there.
    Weighted sampling without replacement (Efraimidis-Spirakis keys).
    """
    target = capacity_bytes * rng.uniform(0.30, 0.85)
    max_items = rng.randint(2, 6)
    fits = [e for e in CATALOGUE if e.item.kind == "dataset" or e.item.bytes <= gpu_memory_bytes]
    keyed = sorted(fits, key=lambda e: rng.random() ** (1.0 / e.popularity), reverse=True)
    items: list[wk.CacheItem] = []
    used = 0
    for entry in keyed:
        if len(items) == max_items:
            break
        if used + entry.item.bytes <= target:
            items.append(entry.item)
            used += entry.item.bytes
    return wk.CacheInventory(capacity_bytes, tuple(items))


def idle_telemetry(
    rng: random.Random, gpus: int, memory_mib: int, idle_power_w: float
) -> wk.NodeTelemetry:
    """Healthy, nearly idle GPUs with small random variation."""
    return wk.NodeTelemetry(
        None,
        tuple(
            wk.GPUTelemetry(
                index=i,
                memory_used_mib=rng.randint(0, max(1, memory_mib // 100)),
                memory_total_mib=memory_mib,
                utilization_pct=float(rng.randint(0, 3)),
                temperature_c=float(rng.randint(29, 41)),
                power_w=round(idle_power_w * rng.uniform(0.9, 1.2), 1),
            )
            for i in range(gpus)
        ),
    )


def _spec(cls: NodeClass, name: str, zone: str, seed: int) -> NodeSpec:
    rng = random.Random(f"{seed}:{name}")
    return NodeSpec(
        name=name,
        product=cls.product,
        gpus=cls.gpus,
        gpu_memory_mib=cls.gpu_memory_mib,
        cpu_milli=cls.cpu * 1000,
        memory_mib=cls.memory_gib * 1024,
        zone=zone,
        region=REGION,
        cache=draw_cache(rng, cls.cache_bytes, cls.gpus * cls.gpu_memory_mib * MIB),
        telemetry=idle_telemetry(rng, cls.gpus, cls.gpu_memory_mib, cls.idle_power_w),
        instance_type=cls.instance_type,
    )


def profile_nodes(profile: str, count: int, seed: int = 0, prefix: str = "gpu") -> list[NodeSpec]:
    """``count`` nodes of the named profile (see ``PROFILES``), split by each class's share."""
    try:
        classes = PROFILES[profile]
    except KeyError:
        raise ValueError(f"unknown profile {profile!r}; choose from {sorted(PROFILES)}") from None
    if count < 0:
        raise ValueError("count must be >= 0")
    specs: list[NodeSpec] = []
    for cls, n in zip(classes, _allocate(count, [c.share for c in classes]), strict=True):
        for i in range(n):
            name = _dns_name(f"{prefix}-{cls.key}-{i:04d}")
            specs.append(_spec(cls, name, cls.zones[i % len(cls.zones)], seed))
    return specs


def openb_nodes(csv_path: Path, limit: int | None = None, seed: int = 0) -> list[NodeSpec]:
    """Nodes from an openb node list (columns ``sn,cpu_milli,memory_mib,gpu,model``).

    The trace has no zones or caches: zones are assigned round-robin and
    caches drawn like the profiles' (``OPENB_CACHE_BYTES_PER_GPU`` per GPU).
    """
    specs: list[NodeSpec] = []
    with csv_path.open(newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            if limit is not None and i >= limit:
                break
            name = _dns_name(row["sn"])
            gpus = int(row["gpu"])
            model = row["model"].strip()
            memory = OPENB_GPU_MEMORY_MIB.get(model, OPENB_DEFAULT_GPU_MEMORY_MIB)
            rng = random.Random(f"{seed}:{name}")
            specs.append(
                NodeSpec(
                    name=name,
                    product=model,
                    gpus=gpus,
                    gpu_memory_mib=memory,
                    cpu_milli=int(row["cpu_milli"]),
                    memory_mib=int(row["memory_mib"]),
                    zone=ZONES[i % len(ZONES)],
                    region=REGION,
                    cache=draw_cache(
                        rng, max(1, gpus) * OPENB_CACHE_BYTES_PER_GPU, gpus * memory * MIB
                    ),
                    telemetry=idle_telemetry(rng, gpus, memory, OPENB_IDLE_POWER_W),
                )
            )
    return specs


def _cpu_quantity(milli: int) -> str:
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def node_capacity(spec: NodeSpec) -> dict[str, str]:
    """``status.capacity`` (and allocatable: nothing is reserved on a fake node)."""
    return {
        "cpu": _cpu_quantity(spec.cpu_milli),
        "memory": f"{spec.memory_mib}Mi",
        "pods": str(spec.pods),
        wk.GPU_RESOURCE: str(spec.gpus),
    }


def build_node(spec: NodeSpec, observed_at: dt.datetime | None = None) -> dict[str, Any]:
    """The Node object for ``spec``, managed by kwok, with no taints.

    ``observed_at`` stamps the telemetry annotation (default: now, UTC); pass
    a fixed time for a byte-identical result.
    """
    observed_at = observed_at or dt.datetime.now(dt.UTC)
    telemetry = wk.NodeTelemetry(observed_at, spec.telemetry.gpus)
    labels = {
        KWOK_LABEL_TYPE: KWOK_TYPE,
        wk.LABEL_HOSTNAME: spec.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        wk.LABEL_GPU_PRODUCT: spec.product,
        wk.LABEL_GPU_MEMORY_MIB: str(spec.gpu_memory_mib),
        wk.LABEL_GPU_COUNT: str(spec.gpus),
        wk.LABEL_ZONE: spec.zone,
        wk.LABEL_REGION: spec.region,
    }
    if spec.instance_type:
        labels["node.kubernetes.io/instance-type"] = spec.instance_type
    capacity = node_capacity(spec)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": spec.name,
            "labels": labels,
            "annotations": {
                KWOK_ANNOTATION: "fake",
                wk.ANNOTATION_CACHE: orjson.dumps(spec.cache.as_dict()).decode(),
                wk.ANNOTATION_TELEMETRY: orjson.dumps(telemetry.as_dict()).decode(),
            },
        },
        "spec": {},
        "status": {"capacity": capacity, "allocatable": dict(capacity)},
    }
