"""The fill-up experiment of the FGD paper, through the placement engine.

Pods arrive in trace order and never leave; after each arrival the share of
GPU capacity left unallocated is recorded against the GPU demand that has
arrived so far (both as % of cluster GPU capacity). When a trace asks for less
than ``stop_pct`` of the capacity, it is extended by drawing its own pods at
random with replacement (seeded), as the paper's workload inflation does.

Each policy gets its own snapshot. The workload mix FGD-style packing reads is
the FGD authors' typical pods of the whole workload for ``fgd`` (the paper's
assumption, fragmentation.TypicalPods) and, for every other policy, a sliding
window of recent arrivals (what a live scheduler knows); ``mix`` overrides
this ("trace": the whole workload in Ballast's own mix).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ballast.placement.engine import Engine
from ballast.placement.fragmentation import TypicalPods, WorkloadMix, expected_frag
from ballast.placement.objects import NodeInfo, Pod
from ballast.placement.snapshot import Snapshot

MixSource = Literal["auto", "trace", "window"]


@dataclass(slots=True)
class FillResult:
    """What one policy did on one trace."""

    policy: str
    capacity_milli: int
    arrived_pct: list[float] = field(default_factory=list)
    unallocated_pct: list[float] = field(default_factory=list)
    frag_pct: list[tuple[float, float]] = field(default_factory=list)
    placed: int = 0
    failed: int = 0
    failed_gpu_milli: int = 0
    decision_ms: list[float] = field(default_factory=list)

    def average_unallocated(self, lo: float = 90.0, hi: float = 100.0) -> float:
        """Mean unallocated % over arrived demand in ``[lo, hi]`` (demand-weighted)."""
        return step_average(self.arrived_pct, self.unallocated_pct, lo, hi)


def step_average(xs: Sequence[float], ys: Sequence[float], lo: float, hi: float) -> float:
    """Average over ``[lo, hi]`` of the step function where ``ys[i]`` holds from ``xs[i]`` on.

    The last value holds to ``hi`` when the points stop early.
    """
    if not xs or hi <= lo:
        return float("nan")
    total = 0.0
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        nxt = xs[i + 1] if i + 1 < len(xs) else max(hi, x)
        a, b = max(x, lo), min(nxt, hi)
        if b > a:
            total += y * (b - a)
    covered = hi - max(lo, xs[0])
    return total / covered if covered > 0 else float("nan")


def inflate(pods: Sequence[Pod], capacity_milli: int, stop_pct: float, seed: int) -> list[Pod]:
    """The trace in order, extended by seeded draws from itself until demand reaches ``stop_pct``."""
    out = list(pods)
    demand = sum(p.demand_milli for p in out)
    target = capacity_milli * stop_pct / 100
    gpu_pods = [p for p in pods if p.demand_milli]
    rng = random.Random(seed)
    n = 0
    while demand < target and gpu_pods:
        src = pods[rng.randrange(len(pods))]
        n += 1
        clone = Pod(
            namespace=src.namespace,
            name=f"{src.name}~{n}",
            uid=f"{src.uid}~{n}",
            gpus=src.gpus,
            gpu_milli=src.gpu_milli,
            cpu_milli=src.cpu_milli,
            memory_mib=src.memory_mib,
            gpu_products=src.gpu_products,
        )
        out.append(clone)
        demand += clone.demand_milli
    return out


def build_snapshot(nodes: Sequence[NodeInfo], mix: WorkloadMix) -> Snapshot:
    """A snapshot holding ``nodes`` (empty) and reading ``mix``."""
    snap = Snapshot(gpus_per_node=max((n.gpu_count for n in nodes), default=8), mix=mix)
    for n in nodes:
        snap.add_node(n)
    return snap


def cluster_frag_pct(snap: Snapshot) -> float:
    """Expected fragmentation of the whole cluster as % of GPU capacity (the paper's metric)."""
    mix = snap.mix.arrays(snap.products)
    cap = snap.capacity_milli()
    if mix is None or not cap:
        return 0.0
    rows = snap.rows()
    frag = expected_frag(
        snap.free[rows], snap.cpu_free[rows], snap.mem_free[rows], snap.product[rows], mix
    )
    return float(frag.sum()) / cap * 100


def run_fill(
    nodes: Sequence[NodeInfo],
    pods: Sequence[Pod],
    policy: str,
    *,
    seed: int = 0,
    stop_pct: float = 105.0,
    mix: MixSource = "auto",
    window: int = 1000,
    frag_every: int = 200,
    progress: Callable[[str, int, int], None] | None = None,
) -> FillResult:
    """Fill the cluster with ``pods`` (already in arrival order) under ``policy``."""
    wm: WorkloadMix
    if mix == "auto" and policy == "fgd":
        wm = TypicalPods(pods)  # the FGD authors' typical pods of the whole workload
    elif mix == "trace":
        wm = WorkloadMix(window=0)
        wm.add_prior(pods)
    else:
        wm = WorkloadMix(window=window)
    snap = build_snapshot(nodes, wm)
    engine = Engine(policy)
    cap = snap.capacity_milli()
    result = FillResult(policy, cap)
    arrived = 0
    for i, pod in enumerate(pods):
        arrived += pod.demand_milli
        wm.observe(pod)
        t0 = time.perf_counter()
        decision = engine.decide(snap, pod, now=0.0, seed=seed)
        result.decision_ms.append((time.perf_counter() - t0) * 1000)
        if decision.node is not None:
            snap.assume(pod, decision.node, decision.gpus, start_time=float(i))
            result.placed += 1
        else:
            result.failed += 1
            result.failed_gpu_milli += pod.demand_milli
        if pod.demand_milli:
            result.arrived_pct.append(arrived / cap * 100)
            result.unallocated_pct.append((cap - snap.allocated_milli()) / cap * 100)
            if frag_every and len(result.arrived_pct) % frag_every == 0:
                result.frag_pct.append((result.arrived_pct[-1], cluster_frag_pct(snap)))
        if progress and i % 1000 == 0:
            progress(policy, i, len(pods))
        if arrived >= cap * stop_pct / 100:
            break
    return result
