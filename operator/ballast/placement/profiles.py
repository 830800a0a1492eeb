"""Named policies: each is a configuration of the same engine.

- ``ballast``: every filter; FGD packing with data locality and GPU telemetry
  at weights small enough not to undo packing when they disagree, spreading
  for classes in spread mode, ties broken by best fit.
- ``kube-default``: kube-scheduler v1.37's default configuration, for what
  the engine models: NodeResourcesFit ``LeastAllocated`` and
  NodeResourcesBalancedAllocation over cpu and memory only (weight 1 each;
  the GPU is filtered, not scored), ties at random, and only part of a large
  cluster searched (``percentageOfNodesToScore`` adaptive). The other default
  score plugins (TaintToleration, NodeAffinity, PodTopologySpread,
  InterPodAffinity, ImageLocality, VolumeBinding) give every node the same
  score for the pods the engine models. Shares go to the first GPU that fits.
- ``kube-gpu-binpack``: the configuration a GPU platform team would choose:
  ``kube-default`` with NodeResourcesFit's strategy ``MostAllocated`` over
  cpu 1, memory 1 and ``nvidia.com/gpu`` 5.
- ``fgd``: fragmentation gradient descent as the FGD authors' simulator
  scores it (integer score, lowest-index GPU among equals), ties to the
  smallest node name (docs/simulator.md).
- ``best-fit``: the authors' BestFitScore (CPU and GPU left, integer
  min-max), fullest GPU for shares, ties to the smallest node name.
- ``random``: any feasible node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ballast.placement.plugins import (
    balanced_allocation,
    best_fit,
    data_locality,
    data_residency,
    fragmentation_gradient,
    gpu_fit,
    gpu_memory,
    gpu_model,
    gpu_scarcity,
    gpu_stranding,
    gpu_telemetry,
    least_allocated,
    most_allocated,
    node_affinity,
    node_health,
    node_name,
    node_pool,
    random_score,
    spread,
    taint_toleration,
)

FIRST_FIT = "first-fit"


@dataclass(frozen=True, slots=True)
class PluginRef:
    """A plugin by name with its raw arguments."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ScoreRef:
    """A score plugin, its default weight and its raw arguments."""

    name: str
    weight: float = 1.0
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Profile:
    """One policy: filters in order, weighted scores, GPU choice and tie-breaks.

    ``gpu_chooser`` names a score plugin of the profile whose ``choose_gpus``
    picks the GPUs on the chosen node, or ``first-fit``. ``tie_breakers``
    are score plugins whose raw scores decide between nodes with equal totals
    before the seeded random pick. ``telemetry`` off means the engine ignores
    telemetry entirely (no health view, everything reads stale).
    ``percentage_of_nodes_to_score`` is kube-scheduler's setting of that name
    (0: adaptive, 1..100: a fixed share; ``None``: score every feasible node).
    """

    name: str
    filters: tuple[PluginRef, ...]
    scores: tuple[ScoreRef, ...]
    gpu_chooser: str = FIRST_FIT
    tie_breakers: tuple[PluginRef, ...] = ()
    telemetry: bool = True
    telemetry_max_age_s: float = 120.0
    explain_top: int = 3
    percentage_of_nodes_to_score: int | None = None


FILTERS = tuple(
    PluginRef(m.NAME)
    for m in (
        node_health,
        node_pool,
        taint_toleration,
        node_affinity,
        data_residency,
        gpu_model,
        gpu_memory,
        gpu_fit,  # last: the only filter preemption can satisfy
    )
)

BALLAST = Profile(
    name="ballast",
    filters=FILTERS,
    scores=(
        ScoreRef(fragmentation_gradient.NAME, 1.0),
        ScoreRef(gpu_scarcity.NAME, 1.0),
        ScoreRef(data_locality.NAME, 0.5),
        ScoreRef(gpu_telemetry.NAME, 0.1),
        ScoreRef(spread.NAME, 1.0),
    ),
    gpu_chooser=fragmentation_gradient.NAME,
    tie_breakers=(PluginRef(gpu_stranding.NAME), PluginRef(best_fit.NAME)),
)

KUBE_DEFAULT = Profile(
    name="kube-default",
    filters=FILTERS,
    scores=(ScoreRef(least_allocated.NAME, 1.0), ScoreRef(balanced_allocation.NAME, 1.0)),
    telemetry=False,
    percentage_of_nodes_to_score=0,
)

#: The GPU weight of ``kube-gpu-binpack``'s MostAllocated (cpu and memory stay at 1).
BINPACK_GPU_WEIGHT = 5

KUBE_GPU_BINPACK = Profile(
    name="kube-gpu-binpack",
    filters=FILTERS,
    scores=(
        ScoreRef(
            most_allocated.NAME,
            1.0,
            {
                "resources": (
                    {"name": "cpu", "weight": 1},
                    {"name": "memory", "weight": 1},
                    {"name": "nvidia.com/gpu", "weight": BINPACK_GPU_WEIGHT},
                )
            },
        ),
        ScoreRef(balanced_allocation.NAME, 1.0),
    ),
    telemetry=False,
    percentage_of_nodes_to_score=0,
)

FGD = Profile(
    name="fgd",
    filters=FILTERS,
    scores=(ScoreRef(fragmentation_gradient.NAME, 1.0, {"paper": True}),),
    gpu_chooser=fragmentation_gradient.NAME,
    tie_breakers=(PluginRef(node_name.NAME),),
    telemetry=False,
)

BEST_FIT = Profile(
    name="best-fit",
    filters=FILTERS,
    scores=(ScoreRef(best_fit.NAME, 1.0, {"paper": True}),),
    gpu_chooser=best_fit.NAME,
    tie_breakers=(PluginRef(node_name.NAME),),
    telemetry=False,
)

RANDOM = Profile(
    name="random",
    filters=FILTERS,
    scores=(ScoreRef(random_score.NAME, 1.0),),
    telemetry=False,
)

PROFILES: Mapping[str, Profile] = {
    p.name: p for p in (BALLAST, KUBE_DEFAULT, KUBE_GPU_BINPACK, FGD, BEST_FIT, RANDOM)
}


def profile(name: str) -> Profile:
    """The named profile (KeyError listing the known names when unknown)."""
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(f"unknown policy {name!r}; known: {', '.join(PROFILES)}") from None
