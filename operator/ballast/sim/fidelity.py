"""The simulator against the real kube-scheduler: the pure half of ``bench/baseline_fidelity.py``.

The bench replays one whole-GPU workload through kube-scheduler on the
local cluster and through the engine's imitation (``kube-default``,
``kube-gpu-binpack``). Here is everything that needs no cluster: the
workload, the nodes as the engine sees them, the KubeSchedulerConfiguration
that a ``kube-*`` profile stands for, the unallocated-GPU figures computed
the same way for both sides, and a decision-by-decision check of a real run
against the engine's scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ballast.api import wellknown as wk
from ballast.localcluster.nodes import NodeSpec
from ballast.placement.engine import Engine
from ballast.placement.fragmentation import WorkloadMix
from ballast.placement.objects import NodeInfo, Pod
from ballast.placement.plugins import balanced_allocation, least_allocated, most_allocated
from ballast.placement.profiles import Profile
from ballast.placement.snapshot import Snapshot
from ballast.sim.fill import build_snapshot, step_average

SCHEDULER_NAME = "default-scheduler"


def whole_gpu_workload(pods: Sequence[Pod], capacity_milli: int, stop_pct: float) -> list[Pod]:
    """The trace's pods without GPU shares, in order, until GPU demand reaches ``stop_pct``.

    Pods without a CPU or memory request are left out too: kube-scheduler
    counts them on a node at a default the engine does not track.
    """
    out: list[Pod] = []
    demand = 0
    for p in pods:
        if p.gpu_milli or not (p.cpu_milli and p.memory_mib):
            continue
        if demand >= capacity_milli * stop_pct / 100:
            break
        out.append(p)
        demand += p.demand_milli
    return out


def node_infos(specs: Sequence[NodeSpec]) -> list[NodeInfo]:
    """The local cluster's nodes as the engine sees them (same names, capacity and labels)."""
    return [
        NodeInfo(
            name=s.name,
            gpu_count=s.gpus,
            gpu_memory_mib=s.gpu_memory_mib,
            gpu_product=s.product,
            cpu_milli=s.cpu_milli,
            memory_mib=s.memory_mib,
            labels={
                wk.LABEL_HOSTNAME: s.name,
                wk.LABEL_ZONE: s.zone,
                wk.LABEL_REGION: s.region,
                wk.LABEL_GPU_PRODUCT: s.product,
            },
        )
        for s in specs
    ]


def scheduler_config(profile: Profile) -> dict[str, Any]:
    """The KubeSchedulerConfiguration a ``kube-*`` profile imitates (ValueError otherwise).

    Plugin weights other than 1 and plugins kube-scheduler does not have are
    refused: the profile must be a default configuration with at most a
    NodeResourcesFit scoring strategy and resource lists changed.
    """
    args: list[dict[str, Any]] = []
    names = {r.name for r in profile.scores}
    if names not in (
        {least_allocated.NAME, balanced_allocation.NAME},
        {most_allocated.NAME, balanced_allocation.NAME},
    ):
        raise ValueError(f"profile {profile.name} is not a kube-scheduler configuration")
    for ref in profile.scores:
        if ref.weight != 1:
            raise ValueError(f"profile {profile.name}: {ref.name} weight {ref.weight} is not 1")
        resources = [dict(r) for r in ref.args.get("resources", ())]
        if ref.name == balanced_allocation.NAME:
            if resources:
                args.append(
                    {"name": "NodeResourcesBalancedAllocation", "args": {"resources": resources}}
                )
            continue
        strategy = "MostAllocated" if ref.name == most_allocated.NAME else "LeastAllocated"
        if strategy != "LeastAllocated" or resources:
            spec: dict[str, Any] = {"type": strategy}
            if resources:
                spec["resources"] = resources
            args.append({"name": "NodeResourcesFit", "args": {"scoringStrategy": spec}})
    prof: dict[str, Any] = {"schedulerName": SCHEDULER_NAME}
    if args:
        prof["pluginConfig"] = args
    if profile.percentage_of_nodes_to_score not in (None, 0):
        prof["percentageOfNodesToScore"] = profile.percentage_of_nodes_to_score
    return {"profiles": [prof]}


@dataclass(frozen=True, slots=True)
class Figures:
    """Unallocated GPUs of one run, in % of capacity."""

    window_pct: float  # averaged over arrived demand 90..100% (the fragmentation headline)
    final_pct: float  # after the last pod
    placed: int
    failed: int


def figures(pods: Sequence[Pod], placed: Sequence[bool], capacity_milli: int) -> Figures:
    """The curve of unallocated GPUs against arrived demand, as sim/fill.py draws it."""
    arrived = allocated = 0
    xs: list[float] = []
    ys: list[float] = []
    for pod, ok in zip(pods, placed, strict=True):
        arrived += pod.demand_milli
        allocated += pod.demand_milli if ok else 0
        if pod.demand_milli:
            xs.append(arrived / capacity_milli * 100)
            ys.append((capacity_milli - allocated) / capacity_milli * 100)
    return Figures(
        round(step_average(xs, ys, 90.0, 100.0), 3),
        round(ys[-1], 3) if ys else 100.0,
        sum(placed),
        len(placed) - sum(placed),
    )


def simulate(
    nodes: Sequence[NodeInfo], pods: Sequence[Pod], policy: str, seed: int
) -> list[str | None]:
    """The engine's choice of node for each pod in turn (None: it fit nowhere)."""
    snap = build_snapshot(nodes, _empty_mix())
    engine = Engine(policy)
    out: list[str | None] = []
    for i, pod in enumerate(pods):
        d = engine.decide(snap, pod, now=0.0, seed=seed)
        if d.node is not None:
            snap.assume(pod, d.node, d.gpus, start_time=float(i))
        out.append(d.node)
    return out


@dataclass(frozen=True, slots=True)
class Agreement:
    """How a real run's decisions compare with the engine's scores, pod by pod."""

    decisions: int
    matching: int  # the real node was among the engine's best-scored nodes (or both found none)
    mean_ties: float  # mean number of best-scored nodes per placed pod
    first_mismatch: str = ""


def agreement(
    nodes: Sequence[NodeInfo], pods: Sequence[Pod], real: Sequence[str | None], policy: str
) -> Agreement:
    """Replay a real run into a snapshot; check each real choice against the engine's best."""
    snap = build_snapshot(nodes, _empty_mix())
    engine = Engine(policy)
    matching = 0
    ties: list[int] = []
    first = ""
    for i, (pod, node) in enumerate(zip(pods, real, strict=True)):
        best = best_nodes(engine, snap, pod)
        ok = node in best if node is not None else not best
        if node is not None:
            ties.append(len(best))
            d = engine.decide(snap, pod, now=0.0, nominated=node)
            if d.node != node:
                raise ValueError(f"{pod.name}: real node {node} fails the engine's filters")
            snap.assume(pod, node, d.gpus, start_time=float(i))
        matching += ok
        if not ok and not first:
            first = f"{pod.name}: real {node}, engine's best {sorted(best)[:5]}"
    return Agreement(len(real), matching, float(np.mean(ties)) if ties else 0.0, first)


def best_nodes(engine: Engine, snap: Snapshot, pod: Pod) -> set[str]:
    """Every feasible node with the highest total score (kube-scheduler picks one at random)."""
    state = engine.cycle(snap, pod, 0.0)
    rows = engine.filter(state).feasible
    if not rows.shape[0]:
        return set()
    total = np.zeros(rows.shape[0])
    for plugin, weight in engine.weights(state.cls):
        total += weight * plugin.normalize(state, plugin.score(state, rows))
    top = float(total.max())
    return {snap.names[int(r)] for r in rows[total >= top - 1e-9]}


def _empty_mix() -> WorkloadMix:
    return WorkloadMix(window=0)


def summary(values: Sequence[float]) -> Mapping[str, float]:
    """Mean, min and max of a few runs."""
    arr = np.asarray(values, dtype=np.float64)
    return {
        "mean": round(float(arr.mean()), 3),
        "min": round(float(arr.min()), 3),
        "max": round(float(arr.max()), 3),
    }
