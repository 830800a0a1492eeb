"""Raw Kubernetes objects → the placement engine's plain inputs.

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

from ballast.api import wellknown as wk
from ballast.api.v1alpha1.workloadclass import TIER_BASE, PlacementWeights
from ballast.placement.objects import (
    ClassPolicy,
    DisruptionBudget,
    NodeInfo,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    Pod,
    PoolPolicy,
    PreemptionPolicy,
    QuotaPolicy,
    ScoringPolicy,
    Taint,
    Toleration,
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
            return int(float(s[:-1]))
        return int(float(s) * 1000)
    except ValueError:
        return 0


_BIN = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}
_DEC = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}


def quantity_mib(value: Any) -> int:
    """A memory quantity ("64Gi", "1000M", "1048576") in MiB; 0 when unparseable."""
    s = str(value or "0").strip()
    try:
        for suffix, mult in _BIN.items():
            if s.endswith(suffix):
                return int(float(s[: -len(suffix)]) * mult) // 2**20
        for suffix, mult in _DEC.items():
            if s.endswith(suffix):
                return int(float(s[: -len(suffix)]) * mult) // 2**20
        return int(float(s)) // 2**20
    except ValueError:
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


def _taints(raw: Any) -> tuple[Taint, ...]:
    out = []
    for t in raw or ():
        if (
            isinstance(t, dict)
            and t.get("key")
            and t.get("effect")
            in (
                "NoSchedule",
                "NoExecute",
                "PreferNoSchedule",
            )
        ):
            out.append(Taint(t["key"], t.get("value") or "", t["effect"]))
    return tuple(out)


def node_info(node: Mapping[str, Any], source: NodeDataSource | None = None) -> Mapped:
    """A Node as :class:`NodeInfo`; garbage telemetry or cache data become problems and no data."""
    source = source or _ANNOTATIONS
    meta = node.get("metadata") or {}
    labels = dict(meta.get("labels") or {})
    status = node.get("status") or {}
    alloc = status.get("allocatable") or status.get("capacity") or {}
    problems: list[str] = []
    try:
        gpu_count = int(str(alloc.get(wk.GPU_RESOURCE, "0")))
    except ValueError:
        gpu_count = 0
        problems.append(f"allocatable {wk.GPU_RESOURCE} is not an integer")
    try:
        gpu_mem = int(labels.get(wk.LABEL_GPU_MEMORY_MIB, "0") or 0)
    except ValueError:
        gpu_mem = 0
        problems.append(f"label {wk.LABEL_GPU_MEMORY_MIB} is not an integer")
    cache = source.cache(node)
    telemetry = source.telemetry(node)
    problems += (cache.problems if cache else []) + telemetry.problems
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or ()
    )
    spec = node.get("spec") or {}
    info = NodeInfo(
        name=meta.get("name", ""),
        gpu_count=gpu_count,
        gpu_memory_mib=gpu_mem,
        gpu_product=labels.get(wk.LABEL_GPU_PRODUCT, ""),
        cpu_milli=quantity_milli(alloc.get("cpu")),
        memory_mib=quantity_mib(alloc.get("memory")),
        labels=labels,
        taints=_taints(spec.get("taints")),
        unschedulable=bool(spec.get("unschedulable")) or not ready,
        cache=cache.value if cache else None,
        telemetry=telemetry.value if telemetry.value.gpus else None,
    )
    return Mapped(info, problems)


def _requests(pod: Mapping[str, Any]) -> tuple[int, int, int]:
    gpus = cpu = mem = 0
    for c in (pod.get("spec") or {}).get("containers") or ():
        res = c.get("resources") or {}
        req = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        try:
            gpus += int(str(req.get(wk.GPU_RESOURCE, "0")))
        except ValueError:
            raise ValueError(f"{wk.GPU_RESOURCE} request is not a whole number") from None
        cpu += quantity_milli(req.get("cpu"))
        mem += quantity_mib(req.get("memory"))
    return gpus, cpu, mem


def _affinity(spec: Mapping[str, Any]) -> tuple[NodeSelectorTerm, ...]:
    na = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = []
    for term in na.get("nodeSelectorTerms") or ():
        reqs = tuple(
            NodeSelectorRequirement(e["key"], e["operator"], tuple(e.get("values") or ()))
            for e in term.get("matchExpressions") or ()
            if e.get("operator") in ("In", "NotIn", "Exists", "DoesNotExist")
        )
        terms.append(NodeSelectorTerm(reqs))
    return tuple(terms)


def engine_pod(pod: Mapping[str, Any], cls: ClassPolicy | None, tenant: str) -> Mapped:
    """A Pod as the engine's :class:`Pod`; ``value`` is None when the request is unusable."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    annotations = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    problems: list[str] = []
    try:
        gpus, cpu, mem = _requests(pod)
    except ValueError as exc:
        return Mapped(None, [str(exc)])
    milli = wk.parse_gpu_milli(annotations.get(wk.ANNOTATION_GPU_MILLI))
    if milli.problems:
        return Mapped(None, milli.problems)
    gpu_milli = milli.value if milli.value < MILLI else 0
    if milli.value >= MILLI and not gpus:
        gpus = 1
    if gpus and gpu_milli:
        return Mapped(
            None, [f"{wk.ANNOTATION_GPU_MILLI} and a {wk.GPU_RESOURCE} request are exclusive"]
        )
    tolerations = tuple(
        Toleration(
            t.get("key") or "",
            t.get("operator") or "Equal",
            t.get("value") or "",
            t.get("effect") or "",
        )
        for t in spec.get("tolerations") or ()
        if isinstance(t, dict)
    )
    owner = next((o for o in meta.get("ownerReferences") or () if o.get("controller")), None)
    spread_key = f"{meta.get('namespace')}/{owner['kind']}/{owner['name']}" if owner else ""
    try:
        value = Pod(
            namespace=meta.get("namespace", ""),
            name=meta.get("name", ""),
            uid=meta.get("uid", ""),
            class_name=cls.name if cls else "",
            priority=int(spec.get("priority") or 0),
            gpus=gpus,
            gpu_milli=gpu_milli,
            cpu_milli=cpu,
            memory_mib=mem,
            gpu_products=cls.pool.gpu_products if cls else (),
            min_gpu_memory_mib=cls.pool.min_gpu_memory_mib if cls else 0,
            node_selector=dict(spec.get("nodeSelector") or {}),
            affinity=_affinity(spec),
            tolerations=tolerations,
            models=wk.parse_name_list(annotations.get(wk.ANNOTATION_MODELS)),
            datasets=wk.parse_name_list(annotations.get(wk.ANNOTATION_DATASETS)),
            creation_time=parse_time(meta.get("creationTimestamp")),
            labels=dict(labels),
            spread_key=spread_key,
            tenant=tenant,
        )
    except ValueError as exc:
        return Mapped(None, [str(exc)])
    return Mapped(value, problems)


def disruption_budget(pdb: Mapping[str, Any]) -> DisruptionBudget | None:
    """A PodDisruptionBudget with a matchLabels selector (others are not supported)."""
    meta = pdb.get("metadata") or {}
    sel = ((pdb.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    allowed = (pdb.get("status") or {}).get("disruptionsAllowed", 0)
    if not sel:
        return None
    return DisruptionBudget(meta.get("namespace", ""), dict(sel), int(allowed or 0))


def gpu_ids(pod: Mapping[str, Any]) -> tuple[int, ...]:
    """The GPU indices recorded on a bound pod (``ballast.dev/gpu-ids``), if any."""
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(GPU_IDS_ANNOTATION, "")
    try:
        return tuple(int(x) for x in raw.split(",") if x.strip())
    except ValueError:
        return ()


GPU_IDS_ANNOTATION = f"{wk.GROUP}/gpu-ids"
