"""Plain, engine-side inputs: pods, nodes, class/quota/window policies.

These are deliberately independent of the CRD models in ``ballast.api``: the
live scheduler maps WorkloadClass, GPUQuota and BatchWindow objects onto
them, the simulator builds them from traces, and tests build them with the
fluent helpers in tests. All are immutable; GPU amounts are in milli-GPUs
(1000 = one whole GPU) so that shares add up exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ballast.api.wellknown import LABEL_GPU_PRODUCT, CacheInventory, NodeTelemetry
from ballast.selectors import Selector

Tier = Literal["Interactive", "Nearline", "Offline"]
TIERS: tuple[Tier, ...] = ("Interactive", "Nearline", "Offline")
#: Higher outranks lower; the bands never overlap (DESIGN.md).
TIER_RANK: Mapping[str, int] = {"Offline": 0, "Nearline": 1, "Interactive": 2}
MayPreempt = Literal["never", "lower-tier", "lower-priority"]
Mode = Literal["packing", "spread"]
Operator = Literal["In", "NotIn", "Exists", "DoesNotExist"]
Effect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]
MILLI = 1000


def gpus(count: float) -> int:
    """Convert a GPU count to milli-GPUs (``gpus(1.5) == 1500``)."""
    return round(count * MILLI)


@dataclass(frozen=True, slots=True)
class Taint:
    """A node taint; only NoSchedule and NoExecute keep pods away."""

    key: str
    value: str = ""
    effect: Effect = "NoSchedule"


@dataclass(frozen=True, slots=True)
class Toleration:
    """A pod toleration with Kubernetes semantics (empty key + Exists tolerates all)."""

    key: str = ""
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str = ""
    effect: str = ""  # empty: every effect

    def tolerates(self, taint: Taint) -> bool:
        """Whether this toleration tolerates ``taint``."""
        if self.effect and self.effect != taint.effect:
            return False
        if not self.key:
            return self.operator == "Exists"
        if self.key != taint.key:
            return False
        return self.operator == "Exists" or self.value == taint.value


@dataclass(frozen=True, slots=True)
class NodeSelectorRequirement:
    """One ``matchExpressions`` entry of a required node affinity term."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NodeSelectorTerm:
    """Requirements that must all hold; a pod's terms are ORed."""

    match_expressions: tuple[NodeSelectorRequirement, ...] = ()


@dataclass(frozen=True, slots=True)
class Pod:
    """What the engine needs to know about a pod waiting for a node.

    ``gpus`` asks for whole GPUs; ``gpu_milli`` (1..999) asks for a share of
    one GPU instead. ``models``/``datasets`` name cache items matched as
    ``model/<name>`` and ``dataset/<name>``. ``spread_key`` groups replicas of
    one workload for the spread policy (e.g. the owning Deployment).
    ``tenant`` names the GPUQuota the pod is charged to (a quota may cover
    several namespaces); empty means the namespace itself.
    """

    namespace: str
    name: str
    uid: str = ""
    class_name: str = ""
    priority: int = 0
    gpus: int = 0
    gpu_milli: int = 0
    cpu_milli: int = 0
    memory_mib: int = 0
    gpu_products: tuple[str, ...] = ()
    min_gpu_memory_mib: int = 0
    node_selector: Mapping[str, str] = field(default_factory=dict)
    affinity: tuple[NodeSelectorTerm, ...] = ()
    tolerations: tuple[Toleration, ...] = ()
    models: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    creation_time: float = 0.0
    labels: Mapping[str, str] = field(default_factory=dict)
    spread_key: str = ""
    tenant: str = ""

    def __post_init__(self) -> None:
        if self.gpus < 0 or self.cpu_milli < 0 or self.memory_mib < 0:
            raise ValueError(f"pod {self.key}: negative request")
        if not 0 <= self.gpu_milli < MILLI:
            raise ValueError(f"pod {self.key}: gpu_milli must be in 0..999 (use gpus for whole)")
        if self.gpus and self.gpu_milli:
            raise ValueError(f"pod {self.key}: ask for whole GPUs or a share, not both")

    @property
    def key(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"

    @property
    def tenant_key(self) -> str:
        """Who the pod's GPUs are charged to: its GPUQuota tenant, else its namespace."""
        return self.tenant or self.namespace

    @property
    def id(self) -> str:
        """The uid, or ``namespace/name`` when the uid is empty."""
        return self.uid or self.key

    @property
    def demand_milli(self) -> int:
        """GPU demand in milli-GPUs (whole GPUs times 1000, or the share)."""
        return self.gpus * MILLI + self.gpu_milli

    @property
    def item_keys(self) -> tuple[str, ...]:
        """Cache keys of the models and datasets this pod loads."""
        return tuple(f"model/{m}" for m in self.models) + tuple(
            f"dataset/{d}" for d in self.datasets
        )


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A node as the snapshot receives it (capacity and static facts).

    Allocations are not part of it: they come from ``Snapshot.assume``.
    ``gpu_product`` defaults to the ``nvidia.com/gpu.product`` label.
    """

    name: str
    gpu_count: int = 0
    gpu_memory_mib: int = 0
    gpu_product: str = ""
    cpu_milli: int = 0
    memory_mib: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    unschedulable: bool = False
    cache: CacheInventory | None = None
    telemetry: NodeTelemetry | None = None

    @property
    def product(self) -> str:
        """The GPU product: the explicit field, else the label, else empty."""
        return self.gpu_product or self.labels.get(LABEL_GPU_PRODUCT, "")


@dataclass(frozen=True, slots=True)
class PreemptionPolicy:
    """What a class may preempt and how it may itself be preempted.

    ``for_locality`` lets the class preempt (within ``may_preempt``) on a node
    that caches its data even when it would fit on a cold node: one evicted
    lower-tier pod instead of a model load on the critical path.
    """

    may_preempt: MayPreempt = "never"
    preemptible: bool = True
    min_runtime_s: float = 0.0
    grace_period_s: float = 30.0
    for_locality: bool = False
    # Whether a victim of this class is asked to checkpoint before it is evicted
    # (WorkloadClass preemption.signal); read by the live scheduler only.
    checkpoint: bool = True


@dataclass(frozen=True, slots=True)
class PoolPolicy:
    """The nodes a class runs on.

    ``name`` (when set) requires the node label ``ballast.dev/pool=<name>``;
    ``reserved`` lets the class reclaim its pool from pods of other classes.
    """

    name: str = ""
    gpu_products: tuple[str, ...] = ()
    min_gpu_memory_mib: int = 0
    reserved: bool = False


@dataclass(frozen=True, slots=True)
class ScoringPolicy:
    """Per-class scoring: weight overrides by plugin name, packing or spread, residency.

    ``require_fresh_telemetry`` fails closed: nodes without fresh telemetry are
    filtered out for the class (NodeHealth's ``stale telemetry``).
    """

    weights: Mapping[str, float] = field(default_factory=dict)
    mode: Mode = "packing"
    residency_regions: tuple[str, ...] = ()
    residency_zones: tuple[str, ...] = ()
    require_fresh_telemetry: bool = False


@dataclass(frozen=True, slots=True)
class ClassPolicy:
    """A WorkloadClass as the engine sees it."""

    name: str = ""
    tier: Tier = "Offline"
    priority: int = 0
    preemption: PreemptionPolicy = field(default_factory=PreemptionPolicy)
    pool: PoolPolicy = field(default_factory=PoolPolicy)
    placement: ScoringPolicy = field(default_factory=ScoringPolicy)
    window: str = ""

    @property
    def rank(self) -> tuple[int, int]:
        """Ordering key: tier band first, then priority within it."""
        return (TIER_RANK[self.tier], self.priority)


DEFAULT_CLASS = ClassPolicy()


@dataclass(frozen=True, slots=True)
class QuotaPolicy:
    """A GPUQuota for one tenant namespace (all amounts in milli-GPUs).

    ``nominal_milli`` is the tenant's own quota. In a ``cohort``, a tenant may
    go above nominal by borrowing other members' unused quota, up to
    ``borrowing_limit_milli`` (None: no limit of its own); each member lends
    at most ``lending_limit_milli`` of its unused quota (None: all of it).
    Per-tier and per-class limits are hard caps inside the tenant.
    """

    namespace: str
    nominal_milli: int
    tier_limits_milli: Mapping[str, int] = field(default_factory=dict)
    class_limits_milli: Mapping[str, int] = field(default_factory=dict)
    cohort: str = ""
    borrowing_limit_milli: int | None = None
    lending_limit_milli: int | None = None

    def __post_init__(self) -> None:
        values = [self.nominal_milli, *self.tier_limits_milli.values()]
        values += [*self.class_limits_milli.values()]
        values += [v for v in (self.borrowing_limit_milli, self.lending_limit_milli) if v]
        if any(v < 0 for v in values):
            raise ValueError(f"quota {self.namespace}: limits must be >= 0")


@dataclass(frozen=True, slots=True)
class WindowState:
    """A BatchWindow's state at the decision's ``now``."""

    name: str
    open: bool


@dataclass(frozen=True, slots=True)
class DisruptionBudget:
    """A PodDisruptionBudget: pods matching ``selector`` in ``namespace``."""

    namespace: str
    selector: Selector
    disruptions_allowed: int

    def matches(self, namespace: str, labels: Mapping[str, str]) -> bool:
        """Whether a pod with these labels in ``namespace`` is covered."""
        return namespace == self.namespace and self.selector.matches(labels)
