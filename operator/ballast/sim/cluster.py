"""In-memory clusters for the simulator: an openb node CSV or a named profile.

Named profiles are small, deterministic fleets with zones, a region, a per-node
model cache and (optionally) fresh healthy telemetry, so that every plugin has
something to read. ``openb`` is the GPU node list of the openb trace.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from ballast.api.wellknown import (
    LABEL_GPU_MEMORY_MIB,
    LABEL_GPU_PRODUCT,
    LABEL_REGION,
    LABEL_ZONE,
    CacheInventory,
    GPUTelemetry,
    NodeTelemetry,
)
from ballast.placement.objects import NodeInfo
from ballast.sim.traces import load_openb_nodes

GIB = 1 << 30
TRACES = Path(
    os.environ.get("BALLAST_TRACES", Path(__file__).resolve().parents[4] / "shared" / "traces")
)
OPENB_NODES = TRACES / "openb" / "openb_node_list_gpu_node.csv"


@dataclass(frozen=True, slots=True)
class Shape:
    """A kind of node in a profile."""

    count: int
    gpus: int
    product: str
    gpu_memory_mib: int
    cpu_milli: int
    memory_mib: int


PROFILES: dict[str, tuple[Shape, ...]] = {
    "tiny": (
        Shape(2, 8, "A100-SXM4-80GB", 81920, 96000, 1_048_576),
        Shape(2, 4, "L40S", 46068, 64000, 524_288),
    ),
    "genai-32": (
        Shape(12, 8, "A100-SXM4-80GB", 81920, 96000, 1_048_576),
        Shape(12, 4, "L40S", 46068, 64000, 524_288),
        Shape(8, 2, "A10", 24576, 32000, 262_144),
    ),
    "mixed-128": (
        Shape(48, 8, "A100-SXM4-80GB", 81920, 96000, 1_048_576),
        Shape(16, 8, "H100-80GB-HBM3", 81920, 128000, 2_097_152),
        Shape(32, 4, "L40S", 46068, 64000, 524_288),
        Shape(32, 2, "T4", 15360, 32000, 262_144),
    ),
}


def healthy_telemetry(gpus: int, memory_mib: int, at: dt.datetime) -> NodeTelemetry:
    """Idle, healthy telemetry for a node's GPUs observed at ``at``."""
    return NodeTelemetry(
        at,
        tuple(GPUTelemetry(i, 0, memory_mib, 0.0, 35.0, 60.0) for i in range(gpus)),
    )


def profile_nodes(
    name: str,
    *,
    cache_bytes: int = 100 * GIB,
    zones: int = 4,
    telemetry_at: dt.datetime | None = None,
) -> list[NodeInfo]:
    """The nodes of a named profile, zones assigned round-robin."""
    try:
        shapes = PROFILES[name]
    except KeyError:
        raise KeyError(f"unknown cluster {name!r}; known: {', '.join(PROFILES)}") from None
    out: list[NodeInfo] = []
    for s in shapes:
        for _ in range(s.count):
            i = len(out)
            node = f"{name}-{i:04d}"
            tele = (
                healthy_telemetry(s.gpus, s.gpu_memory_mib, telemetry_at) if telemetry_at else None
            )
            out.append(
                NodeInfo(
                    name=node,
                    gpu_count=s.gpus,
                    gpu_memory_mib=s.gpu_memory_mib,
                    gpu_product=s.product,
                    cpu_milli=s.cpu_milli,
                    memory_mib=s.memory_mib,
                    labels={
                        "kubernetes.io/hostname": node,
                        LABEL_GPU_PRODUCT: s.product,
                        LABEL_GPU_MEMORY_MIB: str(s.gpu_memory_mib),
                        LABEL_ZONE: f"zone-{i % zones}",
                        LABEL_REGION: "region-a",
                    },
                    cache=CacheInventory(cache_bytes, ()),
                    telemetry=tele,
                )
            )
    return out


def with_cache(nodes: list[NodeInfo], cache_bytes: int) -> list[NodeInfo]:
    """The same nodes with an empty cache of ``cache_bytes`` each."""
    return [
        NodeInfo(
            n.name,
            n.gpu_count,
            n.gpu_memory_mib,
            n.gpu_product,
            n.cpu_milli,
            n.memory_mib,
            n.labels,
            n.taints,
            n.unschedulable,
            CacheInventory(cache_bytes, ()),
            n.telemetry,
        )
        for n in nodes
    ]


def load_cluster(spec: str, *, cache_bytes: int = 100 * GIB) -> list[NodeInfo]:
    """Nodes from a profile name, ``openb`` (the trace's GPU node list) or a CSV path."""
    if spec in PROFILES:
        return profile_nodes(spec, cache_bytes=cache_bytes)
    path = OPENB_NODES if spec == "openb" else Path(spec)
    return with_cache(load_openb_nodes(path), cache_bytes)
