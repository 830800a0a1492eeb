"""The placement engine: pure code that turns a cluster snapshot and a pod into a decision.

Nothing in this package performs I/O, reads a clock or talks to Kubernetes.
The live scheduler and the simulator build a :class:`~ballast.placement.snapshot.Snapshot`,
keep it current with ``assume``/``forget`` and the ``set_*`` methods, and ask
an :class:`~ballast.placement.engine.Engine` for decisions. See docs/placement.md.
"""

from ballast.placement.admission import Admission, QuotaSet, admit
from ballast.placement.engine import Decision, Engine
from ballast.placement.fragmentation import WorkloadMix
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
    WindowState,
)
from ballast.placement.preemption import PreemptionPlan, plan_preemption, warm_nodes
from ballast.placement.profiles import PROFILES, profile
from ballast.placement.queue import PendingQueue
from ballast.placement.snapshot import Placement, Snapshot

__all__ = [
    "PROFILES",
    "Admission",
    "ClassPolicy",
    "Decision",
    "DisruptionBudget",
    "Engine",
    "NodeInfo",
    "NodeSelectorRequirement",
    "NodeSelectorTerm",
    "PendingQueue",
    "Placement",
    "Pod",
    "PoolPolicy",
    "PreemptionPlan",
    "PreemptionPolicy",
    "QuotaPolicy",
    "QuotaSet",
    "ScoringPolicy",
    "Snapshot",
    "Taint",
    "Toleration",
    "WindowState",
    "WorkloadMix",
    "admit",
    "plan_preemption",
    "profile",
    "warm_nodes",
]
