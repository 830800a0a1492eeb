"""WorkloadClass: a kind of AI work and everything it is entitled to."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, WithJsonSchema, model_validator

from ballast.api.v1alpha1.common import (
    ApiModel,
    LabelSelector,
    LabelValue,
    StatusBase,
)
from ballast.api.v1alpha1.serving import Batching, Scaling, Slo
from ballast.api.v1alpha1.slostatus import CostStatus, SloStatus

Tier = Literal["Interactive", "Nearline", "Offline"]
TIERS: tuple[Tier, ...] = ("Interactive", "Nearline", "Offline")

# Non-overlapping bands: every Interactive class outranks every Nearline
# class, which outranks every Offline class. Values stay far below the
# 1e9 reserved for system-critical PriorityClasses.
TIER_BASE: dict[str, int] = {"Offline": 100_000, "Nearline": 200_000, "Interactive": 300_000}
PRIORITY_MAX = 99_999


# An int-or-string budget, as in a PodDisruptionBudget: a count (0 or more) or a
# percentage of the selected pods ("25%").
PERCENT_PATTERN = r"^(100|[1-9]?[0-9])%$"
_INT_OR_PERCENT_RULE = f"type(self) == int ? self >= 0 : string(self).matches('{PERCENT_PATTERN}')"


def _check_int_or_percent(value: int | str | None) -> int | str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("expected a count or a percentage such as 25%")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a count must be 0 or more")
        return value
    if not re.match(PERCENT_PATTERN, value):
        raise ValueError(f"{value!r} is not a count or a percentage between 0% and 100%")
    return value


IntOrPercent = Annotated[
    int | str,
    AfterValidator(_check_int_or_percent),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "x-kubernetes-validations": [
                {
                    "rule": _INT_OR_PERCENT_RULE,
                    "message": "a count of 0 or more, or a percentage between 0% and 100%",
                }
            ],
        }
    ),
]


class DisruptionBudget(ApiModel):
    """How many of the class's pods in one namespace voluntary disruption may take at once."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.maxUnavailable) != has(self.minAvailable)",
                    "message": "set exactly one of maxUnavailable and minAvailable",
                    "reason": "FieldValueInvalid",
                }
            ]
        }
    )

    max_unavailable: IntOrPercent | None = Field(
        default=None,
        description=(
            "Most pods of the class in a namespace that may be down through voluntary "
            "disruption (drains, evictions): a count or a percentage such as 25%."
        ),
    )
    min_available: IntOrPercent | None = Field(
        default=None,
        description=(
            "Fewest pods of the class in a namespace that must stay up: a count or a "
            "percentage. Note that a minAvailable equal to the number of pods blocks every "
            "drain until pods are added elsewhere."
        ),
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> DisruptionBudget:
        if (self.max_unavailable is None) == (self.min_available is None):
            raise ValueError("set exactly one of maxUnavailable and minAvailable")
        return self


class Preemption(ApiModel):
    """What the class may preempt, and how it is itself preempted."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.minRuntimeSeconds) || !has(self.preemptible) "
                    "|| self.preemptible || self.minRuntimeSeconds == 0",
                    "message": "minRuntimeSeconds only applies to a preemptible class; "
                    "set preemptible: true or remove minRuntimeSeconds",
                    "fieldPath": ".minRuntimeSeconds",
                    "reason": "FieldValueInvalid",
                },
                {
                    "rule": "!has(self.forLocality) || !self.forLocality "
                    "|| (has(self.policy) && self.policy != 'Never')",
                    "message": "forLocality preempts on a warm node, so it needs policy "
                    "LowerTier or LowerPriority",
                    "fieldPath": ".forLocality",
                    "reason": "FieldValueForbidden",
                },
                {
                    "rule": "!has(self.disruptionBudget) || (has(self.preemptible) "
                    "&& !self.preemptible)",
                    "message": "disruptionBudget protects a class that is not preemptible; "
                    "set preemptible: false or remove disruptionBudget",
                    "fieldPath": ".disruptionBudget",
                    "reason": "FieldValueForbidden",
                },
            ]
        }
    )

    policy: Literal["Never", "LowerTier", "LowerPriority"] = Field(
        default="Never",
        description=(
            "Which running pods this class may preempt when it needs room: Never; LowerTier "
            "(only pods of lower tiers); LowerPriority (any pod of lower priority value, "
            "including lower classes of the same tier). Offline classes must use Never."
        ),
    )
    preemptible: bool = Field(
        default=True,
        description="Whether pods of this class may be preempted by higher classes.",
    )
    min_runtime_seconds: int = Field(
        default=0,
        ge=0,
        le=604_800,
        description="A pod younger than this is never chosen as a victim.",
    )
    grace_period_seconds: int = Field(
        default=30,
        ge=0,
        le=86_400,
        description=(
            "Time between the checkpoint request and the eviction of a victim of this class."
        ),
    )
    for_locality: bool = Field(
        default=False,
        description=(
            "When true, a pod of this class that loads models or datasets "
            "(ballast.dev/models, ballast.dev/datasets) may preempt, within policy, on a node "
            "that already caches all of them even though it would fit on a cold node: one "
            "lower-tier pod evicted instead of a model load on the critical path. Only with "
            "policy LowerTier or LowerPriority, and only when the class's placement weighs "
            "data locality."
        ),
    )
    signal: Literal["CheckpointRequest", "None"] = Field(
        default="CheckpointRequest",
        description=(
            "What a pod of this class is told before Ballast makes it leave (a preemption, or a "
            "BatchWindow closing with onClose Checkpoint): CheckpointRequest annotates each "
            "running pod with ballast.dev/checkpoint-requested-at (RFC 3339) and posts a "
            "CheckpointRequested event, then evicts (or suspends its Job) after the grace "
            "period; None sends nothing and evicts after the same grace period, for workloads "
            "that cannot checkpoint. See docs/api.md, 'The checkpoint contract'."
        ),
    )
    disruption_budget: DisruptionBudget | None = Field(
        default=None,
        description=(
            "The PodDisruptionBudget Ballast keeps in every namespace where a non-preemptible "
            "class has pods (only with preemptible: false). Default maxUnavailable: 1: one pod "
            "at a time may be evicted, so node drains proceed one pod at a time and never "
            "block forever."
        ),
    )


class NodePool(ApiModel):
    """The GPU nodes the class runs on and the capacity reserved for it."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "(self.reservedNodes == 0 && self.reservedGPUs == 0) || has(self.name)",
                    "message": "reserving nodes or GPUs needs a pool name (nodePool.name)",
                    "fieldPath": ".name",
                    "reason": "FieldValueRequired",
                }
            ]
        }
    )

    name: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        max_length=63,
        description=(
            "Pool name: nodes in the pool carry the label ballast.dev/pool=<name>. Without a "
            "name the class may run on any node that matches gpuProducts and minGPUMemoryMiB."
        ),
    )
    gpu_products: list[LabelValue] | None = Field(
        default=None,
        max_length=32,
        description=(
            "Allowed GPU models, matched against the nvidia.com/gpu.product node label "
            "(e.g. NVIDIA-H100-80GB-HBM3). Empty means any model."
        ),
    )
    min_gpu_memory_mib: int = Field(
        default=0,
        ge=0,
        le=1_048_576,
        alias="minGPUMemoryMiB",
        description="Minimum memory per GPU, in MiB (nvidia.com/gpu.memory label).",
    )
    reserved_nodes: int = Field(
        default=0,
        ge=0,
        le=10_000,
        description="Nodes labelled and tainted for this pool's exclusive use.",
    )
    reserved_gpus: int = Field(
        default=0,
        ge=0,
        le=100_000,
        alias="reservedGPUs",
        description="GPUs of the pool held for this class even when idle.",
    )
    allow_borrowing: bool = Field(
        default=True,
        description=(
            "Whether other classes may use idle reserved capacity; borrowers are preempted "
            "when this class needs it back."
        ),
    )


class Residency(ApiModel):
    """Where the class's data may be processed."""

    regions: list[LabelValue] | None = Field(
        default=None,
        max_length=64,
        description="Allowed values of the topology.kubernetes.io/region node label.",
    )
    zones: list[LabelValue] | None = Field(
        default=None,
        max_length=256,
        description="Allowed values of the topology.kubernetes.io/zone node label.",
    )


class PlacementWeights(ApiModel):
    """Weights of the scoring terms, 0 disables a term."""

    locality: int = Field(
        default=3, ge=0, le=100, description="Data locality: cached models/datasets."
    )
    telemetry: int = Field(
        default=1, ge=0, le=100, description="Live GPU telemetry: free memory, load, throttling."
    )
    packing: int = Field(
        default=5, ge=0, le=100, description="Fragmentation-aware packing or spreading."
    )


class Placement(ApiModel):
    """How the scheduler scores nodes for the class's pods."""

    weights: PlacementWeights = Field(
        default_factory=PlacementWeights, description="Weights of the scoring terms."
    )
    strategy: Literal["Pack", "Spread"] = Field(
        default="Pack",
        description=(
            "Pack fills nodes while keeping free GPUs usable (fragmentation-aware); Spread "
            "distributes replicas across nodes and zones (for interactive serving)."
        ),
    )
    residency: Residency | None = Field(
        default=None, description="Data-residency constraints: only matching nodes are used."
    )
    require_fresh_telemetry: bool = Field(
        default=False,
        description=(
            "Fail closed on telemetry: when true, pods of the class go only to nodes whose GPU "
            "telemetry (the node agent's GPUNodeTelemetry record) is fresh; a node whose record "
            "is older than its freshness limit, or missing, is filtered out as 'stale "
            "telemetry'. When false (the default) such a node is scored neutral and the "
            "decision says so."
        ),
    )


class WorkloadClassSpec(ApiModel):
    """The desired state of a WorkloadClass."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.tier != 'Offline' || !has(self.preemption) "
                    "|| self.preemption.policy == 'Never'",
                    "message": "an Offline class cannot preempt: set preemption.policy to Never",
                    "fieldPath": ".preemption.policy",
                    "reason": "FieldValueForbidden",
                },
                {
                    "rule": "self.tier != 'Interactive' || !has(self.window)",
                    "message": "an Interactive class serves users at any time and cannot be "
                    "gated by a BatchWindow; remove window or use tier Nearline/Offline",
                    "fieldPath": ".window",
                    "reason": "FieldValueForbidden",
                },
            ]
        }
    )

    tier: Tier = Field(
        description=(
            "Interactive (user-facing, latency-bound), Nearline (minutes) or Offline (batch). "
            "Every Interactive class outranks every Nearline class, which outranks every "
            "Offline class."
        )
    )
    priority: int = Field(
        default=0,
        ge=0,
        le=PRIORITY_MAX,
        description="Priority within the tier (0-99999); higher runs first and may preempt lower.",
    )
    description: str | None = Field(
        default=None, max_length=1024, description="Free text copied to the PriorityClass."
    )
    namespace_selector: LabelSelector | None = Field(
        default=None,
        description=(
            "Pods labelled ballast.dev/class=<name> belong to the class; when set, only those in "
            "namespaces matching this selector."
        ),
    )
    preemption: Preemption = Field(
        default_factory=Preemption, description="Preemption rules for and against this class."
    )
    node_pool: NodePool | None = Field(default=None, description="The GPU nodes the class runs on.")
    placement: Placement = Field(
        default_factory=Placement, description="How nodes are scored for this class's pods."
    )
    scaling: Scaling | None = Field(
        default=None, description="HorizontalPodAutoscaler targets for the class's workloads."
    )
    batching: Batching | None = Field(default=None, description="Micro-batching contract.")
    window: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        max_length=253,
        description="Name of the BatchWindow during which pods of this class may start.",
    )
    slo: Slo | None = Field(default=None, description="Latency and queue-wait objectives.")
    price_per_gpu_hour: dict[str, Annotated[float, Field(ge=0, le=1_000_000)]] | None = Field(
        default=None,
        alias="pricePerGPUHour",
        max_length=64,
        description=(
            "Price of one GPU-hour per GPU model (nvidia.com/gpu.product value), for cost "
            "reports; 0 or more, at most 64 models."
        ),
    )


NodeName = Annotated[str, Field(max_length=253)]


class PoolStatus(ApiModel):
    """The class's node pool as the operator keeps it (see docs/operator.md, 'Node pools')."""

    name: str = Field(max_length=63, description="The pool (nodePool.name).")
    members: list[NodeName] = Field(
        default_factory=list,
        max_length=10_000,
        description=(
            "Nodes Ballast holds in the pool (labelled ballast.dev/pool and tainted "
            "ballast.dev/pool=<name>:NoSchedule), pending ones included."
        ),
    )
    pending_nodes: list[NodeName] = Field(
        default_factory=list,
        max_length=10_000,
        description=(
            "Members that still run pods of other classes: no new work of other classes "
            "lands there, and they join the reservation when those pods are gone."
        ),
    )
    wanted_nodes: int = Field(
        default=0,
        ge=0,
        description="Nodes the reservation needs: reservedNodes, or enough to hold reservedGPUs.",
    )
    wanted_gpus: int = Field(
        default=0, ge=0, alias="wantedGPUs", description="GPUs reserved by nodePool.reservedGPUs."
    )
    reserved_gpus: int = Field(
        default=0, ge=0, alias="reservedGPUs", description="GPUs on members that have joined."
    )
    used_gpus: int = Field(
        default=0, ge=0, alias="usedGPUs", description="GPUs requested by live pods on members."
    )
    borrowed_gpus: int = Field(
        default=0,
        ge=0,
        alias="borrowedGPUs",
        description="Of usedGPUs, those used by pods of classes that do not name the pool.",
    )
    borrowable: bool = Field(
        default=False,
        description="Whether other classes may borrow idle GPUs of the pool (allowBorrowing).",
    )
    defined_by: str | None = Field(
        default=None,
        max_length=253,
        description="The class whose nodePool defines the pool (the oldest class naming it).",
    )


class WorkloadClassStatus(StatusBase):
    """The observed state of a WorkloadClass."""

    priority_class_name: str | None = Field(
        default=None, max_length=253, description="The PriorityClass produced."
    )
    priority_value: int | None = Field(
        default=None, description="Its value (tier band + priority)."
    )
    pending_pods: int | None = Field(
        default=None, description="Pods of the class waiting to be placed."
    )
    running_pods: int | None = Field(default=None, description="Pods of the class bound to nodes.")
    pool: PoolStatus | None = Field(
        default=None,
        description="The class's node pool: members, pending nodes, reserved and used GPUs.",
    )
    slo: SloStatus | None = Field(
        default=None,
        description=(
            "Latency, queue wait and success ratio observed in Prometheus over a window, beside "
            "the objectives (with --prometheus-url; the SLOMet condition judges them)."
        ),
    )
    cost: CostStatus | None = Field(
        default=None,
        description="GPU-hours and their cost (pricePerGPUHour) over a window, per response.",
    )


class WorkloadClass(ApiModel):
    """A kind of AI work (tier, priority, preemption, pool, scaling, batching, window, SLO)."""

    spec: WorkloadClassSpec = Field(description="Desired state.")
    status: WorkloadClassStatus | None = Field(default=None, description="Observed state.")


def priority_value(tier: str, priority: int) -> int:
    """The PriorityClass value of a class: its tier's band base plus its priority."""
    return TIER_BASE[tier] + priority
