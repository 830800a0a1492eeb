"""Labels and annotations that Ballast reads and writes, and their parsers.

This module is the one place where the formats are defined; the local
cluster's node factory writes them, the scheduler's snapshot builder and the
simulator read them. Parsers never raise on bad input: they return a value
and a list of problems, so that a node with a garbage annotation is reported
(event, log) and treated as "no data" instead of crashing a process.

Formats (documented for users in docs/annotations.md):

``ballast.dev/cache-inventory`` on a Node, JSON::

    {"capacityBytes": 500000000000,
     "items": [{"kind": "model", "name": "llama-3-8b", "bytes": 16060000000},
               {"kind": "dataset", "name": "wiki-2024", "bytes": 2000000000}]}

``ballast.dev/gpu-telemetry`` on a Node, JSON (written by the node agent or
by ``ballast cluster nodes``)::

    {"observedAt": "2026-11-23T10:00:00Z",
     "gpus": [{"index": 0, "memoryUsedMiB": 1024, "memoryTotalMiB": 81559,
               "utilizationPct": 12.0, "temperatureC": 41.0, "powerW": 90.0,
               "throttled": false, "healthy": true, "xidErrors": 0}]}

``ballast.dev/models`` and ``ballast.dev/datasets`` on a Pod: comma-separated
names of the models and datasets the pod loads (matched against the
inventory items of that kind).

``ballast.dev/gpu-milli`` on a Pod: a share of one GPU in thousandths
(1-999) for GPU-sharing pods that do not request ``nvidia.com/gpu``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import orjson

GROUP = "ballast.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Kubernetes and NVIDIA GPU-operator keys.
GPU_RESOURCE = "nvidia.com/gpu"
LABEL_GPU_PRODUCT = "nvidia.com/gpu.product"
LABEL_GPU_MEMORY_MIB = "nvidia.com/gpu.memory"
LABEL_GPU_COUNT = "nvidia.com/gpu.count"
LABEL_ZONE = "topology.kubernetes.io/zone"
LABEL_REGION = "topology.kubernetes.io/region"
LABEL_HOSTNAME = "kubernetes.io/hostname"

# Ballast's own keys.
LABEL_CLASS = f"{GROUP}/class"
LABEL_POOL = f"{GROUP}/pool"
LABEL_OWNER = f"{GROUP}/owner"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "ballast"
ANNOTATION_CACHE = f"{GROUP}/cache-inventory"
ANNOTATION_TELEMETRY = f"{GROUP}/gpu-telemetry"
ANNOTATION_MODELS = f"{GROUP}/models"
ANNOTATION_DATASETS = f"{GROUP}/datasets"
ANNOTATION_GPU_MILLI = f"{GROUP}/gpu-milli"
# On a bound pod: the node's GPU indices the scheduler gave it ("0,3").
ANNOTATION_GPU_IDS = f"{GROUP}/gpu-ids"
ANNOTATION_CHECKPOINT_REQUEST = f"{GROUP}/checkpoint-requested-at"
TAINT_POOL = f"{GROUP}/pool"
# On a pool member: "true" when classes outside the pool may borrow its idle
# GPUs (the pool's allowBorrowing); the scheduler then ignores the pool taint
# for them. Written by the operator's node-pool reconciler.
ANNOTATION_POOL_BORROWABLE = f"{GROUP}/pool-borrowable"
FIELD_MANAGER = "ballast"


@dataclass(frozen=True, slots=True)
class CacheItem:
    """One model or dataset present in a node's local cache."""

    kind: str  # "model" | "dataset"
    name: str
    bytes: int

    @property
    def key(self) -> str:
        """The identity used for matching: ``kind/name``."""
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True, slots=True)
class CacheInventory:
    """The node's cache: what it holds and how much room it has."""

    capacity_bytes: int = 0
    items: tuple[CacheItem, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The annotation's JSON shape."""
        return {
            "capacityBytes": self.capacity_bytes,
            "items": [{"kind": i.kind, "name": i.name, "bytes": i.bytes} for i in self.items],
        }


@dataclass(frozen=True, slots=True)
class GPUTelemetry:
    """Live state of one physical GPU, as NVML reports it."""

    index: int
    memory_used_mib: int = 0
    memory_total_mib: int = 0
    utilization_pct: float = 0.0
    temperature_c: float = 0.0
    power_w: float = 0.0
    throttled: bool = False
    healthy: bool = True
    xid_errors: int = 0


@dataclass(frozen=True, slots=True)
class NodeTelemetry:
    """All GPUs of one node at one instant."""

    observed_at: dt.datetime | None = None
    gpus: tuple[GPUTelemetry, ...] = ()
    # How old this reading may get before it scores neutral (None: the engine's
    # default); a GPUNodeTelemetry record sets it from its report interval.
    max_age_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The annotation's JSON shape."""
        return {
            "observedAt": self.observed_at.strftime("%Y-%m-%dT%H:%M:%SZ")
            if self.observed_at
            else None,
            "gpus": [
                {
                    "index": g.index,
                    "memoryUsedMiB": g.memory_used_mib,
                    "memoryTotalMiB": g.memory_total_mib,
                    "utilizationPct": g.utilization_pct,
                    "temperatureC": g.temperature_c,
                    "powerW": g.power_w,
                    "throttled": g.throttled,
                    "healthy": g.healthy,
                    "xidErrors": g.xid_errors,
                }
                for g in self.gpus
            ],
        }


T = TypeVar("T")


@dataclass(slots=True)
class Parsed(Generic[T]):
    """A parsed value plus the problems found (empty when the input was clean)."""

    value: T
    problems: list[str] = field(default_factory=list)


def parse_cache_inventory(raw: str | None) -> Parsed[CacheInventory]:
    """Parse ``ballast.dev/cache-inventory``; bad entries are skipped and reported."""
    if not raw:
        return Parsed(CacheInventory())
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Parsed(CacheInventory(), [f"{ANNOTATION_CACHE}: not JSON ({exc})"])
    if not isinstance(doc, dict):
        return Parsed(CacheInventory(), [f"{ANNOTATION_CACHE}: expected an object"])
    problems: list[str] = []
    capacity = doc.get("capacityBytes", 0)
    if not isinstance(capacity, int) or capacity < 0:
        problems.append(f"{ANNOTATION_CACHE}.capacityBytes: expected a non-negative integer")
        capacity = 0
    items: list[CacheItem] = []
    raw_items = doc.get("items", [])
    if not isinstance(raw_items, list):
        problems.append(f"{ANNOTATION_CACHE}.items: expected a list")
        raw_items = []
    for n, it in enumerate(raw_items):
        if (
            isinstance(it, dict)
            and it.get("kind") in ("model", "dataset")
            and isinstance(it.get("name"), str)
            and it["name"]
            and isinstance(it.get("bytes"), int)
            and it["bytes"] >= 0
        ):
            items.append(CacheItem(it["kind"], it["name"], it["bytes"]))
        else:
            problems.append(
                f"{ANNOTATION_CACHE}.items[{n}]: needs kind (model|dataset), name, bytes >= 0"
            )
    return Parsed(CacheInventory(capacity, tuple(items)), problems)


def parse_time(value: Any) -> dt.datetime | None:
    """An RFC 3339 text as an aware datetime (naive: UTC); None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def parse_telemetry(raw: str | None) -> Parsed[NodeTelemetry]:
    """Parse ``ballast.dev/gpu-telemetry``; a malformed GPU entry is dropped and reported."""
    if not raw:
        return Parsed(NodeTelemetry())
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Parsed(NodeTelemetry(), [f"{ANNOTATION_TELEMETRY}: not JSON ({exc})"])
    if not isinstance(doc, dict):
        return Parsed(NodeTelemetry(), [f"{ANNOTATION_TELEMETRY}: expected an object"])
    problems: list[str] = []
    observed = parse_time(doc.get("observedAt"))
    if observed is None:
        problems.append(f"{ANNOTATION_TELEMETRY}.observedAt: missing or not RFC 3339")
    gpus: list[GPUTelemetry] = []
    raw_gpus = doc.get("gpus", [])
    for n, g in enumerate(raw_gpus if isinstance(raw_gpus, list) else []):
        try:
            if not isinstance(g, dict):
                raise TypeError("not an object")
            gpus.append(
                GPUTelemetry(
                    index=int(g["index"]),
                    memory_used_mib=int(g.get("memoryUsedMiB", 0)),
                    memory_total_mib=int(g.get("memoryTotalMiB", 0)),
                    utilization_pct=float(g.get("utilizationPct", 0.0)),
                    temperature_c=float(g.get("temperatureC", 0.0)),
                    power_w=float(g.get("powerW", 0.0)),
                    throttled=bool(g.get("throttled", False)),
                    healthy=bool(g.get("healthy", True)),
                    xid_errors=int(g.get("xidErrors", 0)),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"{ANNOTATION_TELEMETRY}.gpus[{n}]: {exc}")
    return Parsed(NodeTelemetry(observed, tuple(gpus)), problems)


def parse_name_list(raw: str | None) -> tuple[str, ...]:
    """Parse a comma-separated list annotation (``ballast.dev/models``), dropping blanks."""
    if not raw:
        return ()
    return tuple(dict.fromkeys(p.strip() for p in raw.split(",") if p.strip()))


def parse_gpu_milli(raw: str | None) -> Parsed[int]:
    """Parse ``ballast.dev/gpu-milli``: an integer in 1..1000 (0 when absent)."""
    if raw is None or raw == "":
        return Parsed(0)
    try:
        value = int(raw)
    except ValueError:
        return Parsed(0, [f"{ANNOTATION_GPU_MILLI}: {raw!r} is not an integer"])
    if not 1 <= value <= 1000:
        return Parsed(0, [f"{ANNOTATION_GPU_MILLI}: {value} is outside 1..1000"])
    return Parsed(value)


def parse_gpu_ids(raw: str | None) -> Parsed[tuple[int, ...] | None]:
    """Parse ``ballast.dev/gpu-ids``: the GPU indices recorded on a bound pod.

    ``value`` is None when the annotation is absent; anything that is not a
    comma-separated list of at most 64 distinct non-negative integers is a
    problem and gives ``()``. Range and collisions are checked against the
    node by the caller, which knows it.
    """
    if raw is None:
        return Parsed(None)
    parts = [x.strip() for x in raw.split(",") if x.strip()]
    if len(parts) > 64 or not all(x.isascii() and x.isdigit() and len(x) <= 4 for x in parts):
        return Parsed((), [f"{ANNOTATION_GPU_IDS} {raw[:64]!r} is not a list of GPU indices"])
    ids = tuple(int(x) for x in parts)
    if len(set(ids)) != len(ids):
        return Parsed((), [f"{ANNOTATION_GPU_IDS} {raw!r} names a GPU twice"])
    return Parsed(ids)
