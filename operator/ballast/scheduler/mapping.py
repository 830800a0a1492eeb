"""Raw Kubernetes objects → the placement engine's plain inputs: nodes, classes, quotas, PDBs.

Pods have their own module (:mod:`ballast.scheduler.podspec`), which uses
the typed readers here (:func:`str_map`, :func:`text`, the quantities).
Pure and tolerant: nothing here raises on a malformed object. Each function
returns its result together with the problems it found, so the scheduler
can tell the user (event, condition) and carry on. This is the hot path of
watch handling, so it reads the raw dicts directly (no typed models).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ballast import selectors
from ballast.api import wellknown as wk
from ballast.api.v1alpha1.workloadclass import TIER_BASE, PlacementWeights
from ballast.placement.objects import (
    ClassPolicy,
    DisruptionBudget,
    NodeInfo,
    PoolPolicy,
    PreemptionPolicy,
    QuotaPolicy,
    ScoringPolicy,
    Taint,
)
from ballast.placement.plugins import (
    data_locality,
    fragmentation_gradient,
    gpu_scarcity,
    gpu_telemetry,
    spread,
)
from ballast.placement.profiles import profile
from ballast.scheduler.sources import AnnotationSource, NodeDataSource

MILLI = 1000
# A node reporting more GPUs than any machine has is broken data, not a node
# to widen every per-GPU column for.
MAX_GPUS_PER_NODE = 64
_ANNOTATIONS = AnnotationSource()
_MAY_PREEMPT = {"Never": "never", "LowerTier": "lower-tier", "LowerPriority": "lower-priority"}
# WorkloadClass weight terms → score plugins. A class weight scales the
# plugin's weight in the ``ballast`` profile relative to the API default, so
# the defaults reproduce the profile the simulator measured.
WEIGHT_PLUGINS = {
    "locality": (data_locality.NAME,),
    "telemetry": (gpu_telemetry.NAME,),
    "packing": (fragmentation_gradient.NAME, gpu_scarcity.NAME, spread.NAME),
}
_API_DEFAULT_WEIGHTS = PlacementWeights().model_dump()
_PROFILE_WEIGHTS = {r.name: r.weight for r in profile("ballast").scores}


@dataclass(slots=True)
class Mapped:
    """A mapped value and the problems found on the way."""

    value: Any
    problems: list[str] = field(default_factory=list)


def str_map(raw: Any, keep: Any = None) -> dict[str, str]:
    """A map of strings to strings (keys passing ``keep``); anything else in it is dropped."""
    if not isinstance(raw, Mapping):
        return {}
    return {
        k: v
        for k, v in raw.items()
        if isinstance(k, str) and isinstance(v, str) and (keep is None or keep(k))
    }


def parse_time(value: Any) -> float:
    """RFC 3339 → epoch seconds (0.0 when absent or malformed)."""
    if not isinstance(value, str):
        return 0.0
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def quantity_milli(value: Any) -> int:
    """A CPU quantity ("500m", "2", "1.5") in millicores; 0 when unparseable."""
    s = str(value or "0").strip()
    try:
        if s.endswith("m"):
            return _bounded(float(s[:-1]))
        return _bounded(float(s) * 1000)
    except (ValueError, OverflowError):
        return 0


def _bounded(x: float) -> int:
    """A parsed quantity as a non-negative int no larger than 2**53 (NaN, inf → 0)."""
    if x != x or x in (float("inf"), float("-inf")):
        return 0
    return int(min(max(x, 0.0), 2.0**53))


_BIN = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}
_DEC = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}


def quantity_mib(value: Any) -> int:
    """A memory quantity ("64Gi", "1000M", "1048576") in MiB; 0 when unparseable."""
    s = str(value or "0").strip()
    try:
        for suffix, mult in _BIN.items():
            if s.endswith(suffix):
                return _bounded(float(s[: -len(suffix)]) * mult) // 2**20
        for suffix, mult in _DEC.items():
            if s.endswith(suffix):
                return _bounded(float(s[: -len(suffix)]) * mult) // 2**20
        return _bounded(float(s)) // 2**20
    except (ValueError, OverflowError):
        return 0


def class_policy(name: str, spec: Mapping[str, Any]) -> ClassPolicy:
    """A WorkloadClass spec (already validated by the API server) as a policy."""
    pre = spec.get("preemption") or {}
    pool = spec.get("nodePool") or {}
    placement = spec.get("placement") or {}
    weights_in = placement.get("weights") or {}
    weights: dict[str, float] = {}
    for term, plugins in WEIGHT_PLUGINS.items():
        if term in weights_in:
            scale = float(weights_in[term]) / _API_DEFAULT_WEIGHTS[term]
            for p in plugins:
                weights[p] = scale * _PROFILE_WEIGHTS.get(p, 1.0)
    residency = (placement.get("residency") or {}).get("regions") or ()
    zones = (placement.get("residency") or {}).get("zones") or ()
    reserved = bool(pool.get("reservedNodes") or pool.get("reservedGPUs"))
    return ClassPolicy(
        name=name,
        tier=spec.get("tier", "Offline") if spec.get("tier") in TIER_BASE else "Offline",
        priority=int(spec.get("priority", 0) or 0),
        preemption=PreemptionPolicy(
            may_preempt=_MAY_PREEMPT.get(pre.get("policy", "Never"), "never"),  # type: ignore[arg-type]
            preemptible=bool(pre.get("preemptible", True)),
            min_runtime_s=float(pre.get("minRuntimeSeconds", 0) or 0),
            grace_period_s=float(pre.get("gracePeriodSeconds", 30) or 0),
            for_locality=pre.get("forLocality") is True,
            checkpoint=pre.get("signal", "CheckpointRequest") != "None",
        ),
        pool=PoolPolicy(
            name=pool.get("name") or "",
            gpu_products=tuple(pool.get("gpuProducts") or ()),
            min_gpu_memory_mib=int(pool.get("minGPUMemoryMiB", 0) or 0),
            reserved=reserved,
        ),
        placement=ScoringPolicy(
            weights=weights,
            mode="spread" if placement.get("strategy") == "Spread" else "packing",
            residency_regions=tuple(residency),
            residency_zones=tuple(zones),
            require_fresh_telemetry=placement.get("requireFreshTelemetry") is True,
        ),
        window=spec.get("window") or "",
    )


def quota_policies(name: str, spec: Mapping[str, Any]) -> list[QuotaPolicy]:
    """A GPUQuota as the engine's per-tenant policy (the tenant is the quota's name)."""

    def milli(v: Any) -> int | None:
        return None if v is None else int(v) * MILLI

    tiers = {k: int(v) * MILLI for k, v in (spec.get("tierLimits") or {}).items() if v is not None}
    classes = {k: int(v) * MILLI for k, v in (spec.get("classLimits") or {}).items()}
    return [
        QuotaPolicy(
            namespace=name,
            nominal_milli=int(spec.get("gpus", 0)) * MILLI,
            tier_limits_milli=tiers,
            class_limits_milli=classes,
            cohort=spec.get("cohort") or "",
            borrowing_limit_milli=milli(spec.get("borrowingLimit")),
            lending_limit_milli=milli(spec.get("lendingLimit")),
        )
    ]


def text(v: Any) -> str:
    """``v`` when it is a string, else ""."""
    return v if isinstance(v, str) else ""


def _taints(raw: Any) -> tuple[Taint, ...]:
    out = []
    for t in raw if isinstance(raw, list) else ():
        if (
            isinstance(t, Mapping)
            and isinstance(t.get("key"), str)
            and t.get("key")
            and t.get("effect")
            in (
                "NoSchedule",
                "NoExecute",
                "PreferNoSchedule",
            )
        ):
            out.append(Taint(t["key"], text(t.get("value")), t["effect"]))
    return tuple(out)


def _pool_taints_for_borrowers(
    taints: tuple[Taint, ...], meta: Mapping[str, Any]
) -> tuple[Taint, ...]:
    """A pool member that lends its idle GPUs (``ballast.dev/pool-borrowable``) keeps its
    pool taint against the default scheduler, but Ballast's scheduler lets any class
    borrow there; classes of another pool are still kept out by the NodePool filter."""
    annotations = meta.get("annotations") if isinstance(meta.get("annotations"), Mapping) else {}
    assert isinstance(annotations, Mapping)
    if annotations.get(wk.ANNOTATION_POOL_BORROWABLE) != "true":
        return taints
    return tuple(t for t in taints if t.key != wk.TAINT_POOL)


def node_info(node: Mapping[str, Any], source: NodeDataSource | None = None) -> Mapped:
    """A Node as :class:`NodeInfo`; garbage telemetry or cache data become problems and no data."""
    source = source or _ANNOTATIONS
    meta = node.get("metadata") or {}
    labels = str_map(meta.get("labels"))
    status = node.get("status") if isinstance(node.get("status"), Mapping) else {}
    assert isinstance(status, Mapping)
    alloc = status.get("allocatable") or status.get("capacity") or {}
    alloc = alloc if isinstance(alloc, Mapping) else {}
    problems: list[str] = []
    try:
        gpu_count = int(str(alloc.get(wk.GPU_RESOURCE, "0")))
    except ValueError:
        gpu_count = 0
        problems.append(f"allocatable {wk.GPU_RESOURCE} is not an integer")
    if not 0 <= gpu_count <= MAX_GPUS_PER_NODE:
        problems.append(
            f"allocatable {wk.GPU_RESOURCE} {gpu_count} is outside 0..{MAX_GPUS_PER_NODE}"
        )
        gpu_count = 0
    try:
        gpu_mem = int(labels.get(wk.LABEL_GPU_MEMORY_MIB, "0") or 0)
        if not 0 <= gpu_mem < 2**31:
            raise ValueError
    except ValueError:
        gpu_mem = 0
        problems.append(f"label {wk.LABEL_GPU_MEMORY_MIB} is not a MiB count")
    cache = source.cache(node)
    telemetry = source.telemetry(node)
    problems += (cache.problems if cache else []) + telemetry.problems
    conditions = status.get("conditions")
    ready = any(
        isinstance(c, Mapping) and c.get("type") == "Ready" and c.get("status") == "True"
        for c in (conditions if isinstance(conditions, list) else ())
    )
    spec = node.get("spec") if isinstance(node.get("spec"), Mapping) else {}
    assert isinstance(spec, Mapping)
    info = NodeInfo(
        name=meta.get("name", ""),
        gpu_count=gpu_count,
        gpu_memory_mib=gpu_mem,
        gpu_product=labels.get(wk.LABEL_GPU_PRODUCT, ""),
        cpu_milli=quantity_milli(alloc.get("cpu")),
        memory_mib=quantity_mib(alloc.get("memory")),
        labels=labels,
        taints=_pool_taints_for_borrowers(_taints(spec.get("taints")), meta),
        unschedulable=bool(spec.get("unschedulable")) or not ready,
        cache=cache.value if cache else None,
        telemetry=telemetry.value if telemetry.value.gpus else None,
    )
    return Mapped(info, problems)


def disruption_budget(pdb: Mapping[str, Any]) -> Mapped:
    """A PodDisruptionBudget (full label-selector semantics).

    A selector that cannot be read protects every pod of its namespace (and
    says so): when in doubt, disrupt less.
    """
    meta = pdb.get("metadata") or {}
    spec = pdb.get("spec") or {}
    selector, problems = selectors.parse(
        spec.get("selector") if isinstance(spec, Mapping) else None
    )
    status = pdb.get("status") or {}
    allowed = status.get("disruptionsAllowed", 0) if isinstance(status, Mapping) else 0
    if not isinstance(allowed, int) or isinstance(allowed, bool):
        allowed, problems = 0, [*problems, "status.disruptionsAllowed is not an integer"]
    budget = DisruptionBudget(
        text(meta.get("namespace")), selector or selectors.EVERYTHING, max(0, allowed)
    )
    return Mapped(budget, problems)
