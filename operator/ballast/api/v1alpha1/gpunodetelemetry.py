"""GPUNodeTelemetry: the node agent's compact per-node record, read by the scheduler.

One cluster-scoped object per GPU node, named after the node. The agent
(``ballast agent --publish-record``) creates it and writes only ``status``
(the status subresource), on a meaningful change or a heartbeat; nothing
writes the Node object, so Node watchers are not woken by telemetry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError

from ballast.api import wellknown as wk
from ballast.api.v1alpha1.common import ApiModel, format_validation_error

MAX_GPUS = 64
MAX_REASONS = 16
MAX_CACHE_ITEMS = 256  # the largest items first; the rest are counted in omittedItems
MAX_CACHE_NAME = 253
MAX_PODS = 32  # owners listed per GPU
MAX_MIG_DEVICES = 8  # MIG devices listed per GPU (7 is the most any GPU holds)


class GPUNodeTelemetryPod(ApiModel):
    """A container that holds (a share of) the GPU."""

    namespace: str = Field(max_length=63, description="The pod's namespace.")
    name: str = Field(max_length=253, description="The pod's name.")
    container: str = Field(
        default="",
        max_length=63,
        description="The container holding the GPU (empty when the source does not say).",
    )
    source: Literal["pod-resources", "ballast"] = Field(
        description="Who says so: pod-resources (the kubelet's device allocation, the truth on "
        "a node with a device plugin) or ballast (the pod's ballast.dev/gpu-ids, used where the "
        "kubelet does not report the pod with GPUs). Where the two disagree about a pod, only "
        "the kubelet's allocation is listed."
    )


class GPUNodeTelemetryMigDevice(ApiModel):
    """One MIG device of a GPU in MIG mode (informational: the scheduler does not place on MIG)."""

    uuid: str = Field(default="", max_length=128, description="The MIG device's UUID (MIG-...).")
    gpu_instance_id: int = Field(default=0, ge=0, description="Its GPU instance id (GPU_I_ID).")
    profile: str = Field(
        default="",
        max_length=32,
        description="The GPU instance profile, <slices>g.<GiB>gb (e.g. 1g.10gb), derived from "
        "its slices and memory size.",
    )
    slices: int = Field(default=0, ge=0, le=8, description="GPU instance slices (of 7).")
    memory_total_mib: int = Field(
        default=0, ge=0, alias="memoryTotalMiB", description="Its framebuffer size in MiB."
    )
    memory_used_mib: int = Field(
        default=0, ge=0, alias="memoryUsedMiB", description="Its framebuffer in use in MiB."
    )


class GPUNodeTelemetryGPU(ApiModel):
    """One physical GPU of the node, as NVML reported it at ``updateTime``."""

    index: int = Field(ge=0, le=MAX_GPUS - 1, description="NVML index of the GPU on the node.")
    uuid: str = Field(default="", max_length=128, description="The GPU's UUID (GPU-...).")
    product: str = Field(
        default="", max_length=128, description="Product name, e.g. NVIDIA H100 80GB HBM3."
    )
    memory_total_mib: int = Field(
        default=0,
        ge=0,
        alias="memoryTotalMiB",
        description="Framebuffer size in MiB (0: unknown).",
    )
    memory_used_mib: int = Field(
        default=0, ge=0, alias="memoryUsedMiB", description="Framebuffer in use in MiB."
    )
    utilization_pct: float = Field(
        default=0.0, ge=0, le=100, description="GPU utilisation over the last sample, percent."
    )
    throttled: bool = Field(
        default=False,
        description="A clock-event reason other than idle holds (power or thermal capping, "
        "hardware slowdown).",
    )
    healthy: bool = Field(
        default=True,
        description="False while any row of the agent's health table holds (docs/agent.md); "
        "the scheduler never gives an unhealthy GPU to a pod.",
    )
    unhealthy_reasons: list[Annotated[str, Field(max_length=64)]] | None = Field(
        default=None,
        max_length=MAX_REASONS,
        description="Why the GPU is unhealthy: gpu_lost, xid_<n>, ecc_uncorrected, "
        "row_remap_failure, row_remap_pending, hw_slowdown.",
    )
    xid_errors: int = Field(
        default=0, ge=0, description="XID events seen on this GPU since the agent started."
    )
    pods: list[GPUNodeTelemetryPod] | None = Field(
        default=None,
        max_length=MAX_PODS,
        description="The containers holding this GPU, as the node agent attributes them "
        "(absent: none, or attribution is off). Sorted; at most 32.",
    )
    mig_enabled: bool | None = Field(
        default=None,
        description="Whether MIG mode is on (absent: the GPU has no MIG). The scheduler does "
        "not act on MIG.",
    )
    mig_devices: list[GPUNodeTelemetryMigDevice] | None = Field(
        default=None,
        max_length=MAX_MIG_DEVICES,
        description=f"The GPU's MIG devices when MIG is on, by GPU instance (at most "
        f"{MAX_MIG_DEVICES}).",
    )


class GPUNodeTelemetryCacheItem(ApiModel):
    """One model or dataset in the node's local cache."""

    kind: Literal["model", "dataset"] = Field(
        description="model or dataset: matched against a pod's ballast.dev/models or "
        "ballast.dev/datasets annotation."
    )
    name: str = Field(
        min_length=1,
        max_length=MAX_CACHE_NAME,
        description="The item's name: <org>/<name> for a Hugging Face hub repository, the "
        "directory name in a plain cache root.",
    )
    size_bytes: int = Field(
        default=0, ge=0, alias="bytes", description="Bytes on disk (each file once)."
    )
    last_used: str | None = Field(
        default=None,
        max_length=64,
        description="Newest access or modification time of its files (RFC 3339); day-granular "
        "under relatime mounts.",
    )


class GPUNodeTelemetryCache(ApiModel):
    """The node's model and dataset cache inventory, from the agent's --cache-root scans."""

    capacity_bytes: int = Field(
        default=0,
        ge=0,
        description="Size of the cache's file systems in bytes, or the agent's --cache-capacity.",
    )
    items: list[GPUNodeTelemetryCacheItem] | None = Field(
        default=None,
        max_length=MAX_CACHE_ITEMS,
        description=f"What is cached, largest first (at most {MAX_CACHE_ITEMS}).",
    )
    omitted_items: int = Field(
        default=0, ge=0, description="Items left out of the list (beyond the cap)."
    )


class GPUNodeTelemetryStatus(ApiModel):
    """The record itself: every GPU of the node at one instant."""

    node_name: str = Field(
        default="", max_length=253, description="The Node this record describes (its name)."
    )
    update_time: str | None = Field(
        default=None,
        max_length=64,
        description="When the agent read these values (RFC 3339); the scheduler treats a "
        "record older than its freshness limit as no data.",
    )
    report_interval_seconds: float | None = Field(
        default=None,
        ge=0.05,  # not gt=0: OpenAPI v3.0's exclusiveMinimum is a boolean
        le=86_400,
        description="How often the agent collects; without a heartbeatSeconds the scheduler's "
        "default freshness limit is three intervals.",
    )
    heartbeat_seconds: float | None = Field(
        default=None,
        ge=0.05,
        le=86_400,
        description="The agent rewrites the record at least this often even when nothing "
        "changed (a meaningful change is written at once); the scheduler's default freshness "
        "limit is this heartbeat plus two report intervals.",
    )
    gpus: list[GPUNodeTelemetryGPU] | None = Field(
        default=None, max_length=MAX_GPUS, description="Per GPU, by index."
    )
    cache: GPUNodeTelemetryCache | None = Field(
        default=None,
        description="The node's model and dataset cache (absent: the agent scans no cache "
        "root); the scheduler's data-locality score reads it.",
    )


class GPUNodeTelemetry(ApiModel):
    """The node agent's compact GPU record for one node (named after the node)."""

    status: GPUNodeTelemetryStatus | None = Field(
        default=None, description="The record, written by the node agent."
    )


# How many report intervals a record stays fresh when the scheduler is not told otherwise.
DEFAULT_FRESH_INTERVALS = 3


def to_node_telemetry(
    obj: Mapping[str, Any], max_age_s: float | None = None
) -> wk.Parsed[wk.NodeTelemetry]:
    """The scheduler's view of a GPUNodeTelemetry object; never raises.

    Anything malformed (a status the model rejects, a missing or unreadable
    ``updateTime``, a ``nodeName`` that is not the object's name) makes the
    whole record "no data" with the problems listed: a record that cannot be
    read in full cannot be trusted about which GPUs are healthy. The freshness
    limit is ``max_age_s`` when given, else the record's heartbeat plus two
    report intervals, else ``DEFAULT_FRESH_INTERVALS`` report intervals, else
    the engine's default.
    """
    name = str((obj.get("metadata") or {}).get("name") or "")
    raw = obj.get("status")
    if not raw:
        return wk.Parsed(wk.NodeTelemetry())  # created, not yet reported: no data, no problem
    try:
        status = GPUNodeTelemetryStatus.model_validate(raw)
    except ValidationError as exc:
        return wk.Parsed(wk.NodeTelemetry(), [format_validation_error(exc, "status")])
    problems: list[str] = []
    observed = wk.parse_time(status.update_time)
    if observed is None:
        problems.append("status.updateTime: missing or not RFC 3339")
    if status.node_name and status.node_name != name:
        problems.append(f"status.nodeName: {status.node_name!r} is not the object's name")
    indices = [g.index for g in status.gpus or ()]
    if len(set(indices)) != len(indices):
        problems.append("status.gpus: an index appears twice")
    if problems:
        return wk.Parsed(wk.NodeTelemetry(), problems)
    interval = status.report_interval_seconds
    if max_age_s is None and interval is not None:
        heartbeat = status.heartbeat_seconds
        # A record is rewritten on change or at the heartbeat: it is current until
        # a heartbeat (plus two intervals of slack) has been missed.
        max_age_s = heartbeat + 2 * interval if heartbeat else DEFAULT_FRESH_INTERVALS * interval
    gpus = tuple(
        wk.GPUTelemetry(
            index=g.index,
            memory_used_mib=g.memory_used_mib,
            memory_total_mib=g.memory_total_mib,
            utilization_pct=g.utilization_pct,
            throttled=g.throttled,
            healthy=g.healthy,
            xid_errors=g.xid_errors,
        )
        for g in sorted(status.gpus or (), key=lambda g: g.index)
    )
    return wk.Parsed(wk.NodeTelemetry(observed, gpus, max_age_s))


def to_cache_inventory(obj: Mapping[str, Any]) -> wk.CacheInventory | None:
    """The cache inventory a GPUNodeTelemetry object carries; None when it has none.

    A status the model rejects carries none (its problems are reported with
    the telemetry, by :func:`to_node_telemetry`).
    """
    raw = obj.get("status")
    if not isinstance(raw, Mapping) or not raw.get("cache"):
        return None
    try:
        status = GPUNodeTelemetryStatus.model_validate(raw)
    except ValidationError:
        return None
    cache = status.cache
    if cache is None:
        return None
    items = tuple(wk.CacheItem(i.kind, i.name, i.size_bytes) for i in cache.items or ())
    return wk.CacheInventory(cache.capacity_bytes, items)


def to_node_assignments(obj: Mapping[str, Any]) -> dict[tuple[str, str], tuple[int, ...]]:
    """The GPUs the node's kubelet says each pod holds: ``(namespace, name) -> indices``.

    Only ``source: pod-resources`` entries count (the device plugin's real
    allocation); ``ballast`` entries echo Ballast's own annotation and add
    nothing. A status the model rejects says nothing.
    """
    raw = obj.get("status")
    if not isinstance(raw, Mapping) or not raw.get("gpus"):
        return {}
    try:
        status = GPUNodeTelemetryStatus.model_validate(raw)
    except ValidationError:
        return {}
    out: dict[tuple[str, str], list[int]] = {}
    for g in status.gpus or ():
        for p in g.pods or ():
            if p.source == "pod-resources":
                out.setdefault((p.namespace, p.name), []).append(g.index)
    return {k: tuple(sorted(set(v))) for k, v in out.items()}
