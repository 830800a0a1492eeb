"""The FGD authors' experiment setup (Weng et al., USENIX ATC '23) as a mode of the simulator.

The fill-up of sim/fill.py replays pods in creation-time order; the
authors' own simulator (hkust-adsl/kubernetes-scheduler-simulator, the
reference for the published figures) differs, and this mode does what it
does (facts read from the paper and that code; docs/simulator.md):

- pods arrive in a random order: sorted by name, then shuffled with the
  seed; creation and deletion times are ignored, pods never leave;
- the workload is resized to ``ratio`` (130%) of the cluster's GPU
  capacity: when the trace asks for more, pods picked at random are
  dropped until it fits; when less, pods drawn with replacement from the
  name-sorted trace are appended (after the shuffled trace) until the next
  draw's per-GPU request would pass the target;
- every node gets a prefix from a seeded permutation (``0042-<name>``), and
  the ``fgd``/``best-fit`` profiles break ties by the smallest name;
- CPU-only pods are placed too, on the GPU nodes' CPU and memory; a pod that
  fits nowhere is dropped but its GPU request still counts as arrived;
- after every pod (and once before the first) the share of GPU capacity
  allocated is recorded with the arrived GPU request; the figure at a level
  ``L`` (% of capacity arrived) is the mean allocation over the records
  whose arrived share rounds to ``L`` (half to even, as Python's ``round``;
  the neighbouring levels when none does), each record rounded to 2
  decimals as the authors' analysis does;
- a result is the mean over seeds 42-51.

``fgd`` reads the authors' typical pods (:class:`TypicalPods` of the
trace as given, before resizing); every other policy the sliding window of
recent arrivals a live scheduler has (sim/fill.py).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from ballast.placement.engine import Engine
from ballast.placement.fragmentation import TypicalPods, WorkloadMix
from ballast.placement.objects import MILLI, NodeInfo, Pod
from ballast.sim.fill import build_snapshot

PAPER_SEEDS = tuple(range(42, 52))
RATIO = 1.3
MIX_WINDOW = 1000


def shuffled(pods: Sequence[Pod], rng: random.Random) -> list[Pod]:
    """The pods sorted by name, then shuffled."""
    out = sorted(pods, key=lambda p: p.name)
    rng.shuffle(out)
    return out


def resize(
    order: Sequence[Pod],
    pool: Sequence[Pod],
    capacity_milli: int,
    ratio: float,
    rng: random.Random,
) -> list[Pod]:
    """``order`` pruned or extended until its GPU request is about ``ratio`` of capacity.

    Too much: pods at random positions are removed until the request is at
    most the target. Too little: draws with replacement from ``pool``
    (renamed ``<name>-tuned-<i>``) are appended until the next draw's
    per-GPU request would pass the target.
    """
    out = list(order)
    target = ratio * capacity_milli
    total = sum(p.demand_milli for p in out)
    if total > target:
        while total > target and out:
            total -= out.pop(rng.randrange(len(out))).demand_milli
        return out
    if not any(p.demand_milli for p in pool):
        return out  # nothing to draw that would ever reach the target
    names = sorted(pool, key=lambda p: p.name)
    i = 0
    while True:
        src = names[rng.randrange(len(names))]
        per_gpu = MILLI if src.gpus else src.gpu_milli
        if total + per_gpu > target:
            return out
        total += src.demand_milli
        out.append(
            dataclasses.replace(src, name=f"{src.name}-tuned-{i}", uid=f"{src.uid}-tuned-{i}")
        )
        i += 1


def prefixed(nodes: Sequence[NodeInfo], rng: random.Random) -> list[NodeInfo]:
    """The nodes sorted by name, each renamed ``<k>-<name>`` with ``k`` from a seeded permutation."""
    ordered = sorted(nodes, key=lambda n: n.name)
    perm = list(range(len(ordered)))
    rng.shuffle(perm)
    width = max(4, len(str(len(ordered))))
    return [
        dataclasses.replace(
            n,
            name=f"{k:0{width}d}-{n.name}",
            labels={**n.labels, "kubernetes.io/hostname": f"{k:0{width}d}-{n.name}"},
        )
        for n, k in zip(ordered, perm, strict=True)
    ]


def level_of(arrived_pct: float) -> int:
    """The level a record counts for: its arrived share rounded half to even."""
    return int(round(arrived_pct, 0))


def level_means(
    arrived_milli: Sequence[int], allocated_milli: Sequence[int], capacity_milli: int, top: int
) -> dict[int, float]:
    """Mean allocation (% of capacity) per level 0..``top``, as the authors' analysis computes it.

    Levels with no record take the records of the levels next to them
    (``L-1`` to ``L+1``); levels still without any are left out.
    """
    by_level: dict[int, list[float]] = {}
    for a, u in zip(arrived_milli, allocated_milli, strict=True):
        pct = round(u / capacity_milli * 100, 2)
        by_level.setdefault(level_of(a / capacity_milli * 100), []).append(pct)
    out: dict[int, float] = {}
    for lv in range(top + 1):
        vals = by_level.get(lv)
        if not vals:
            vals = [v for n in (lv - 1, lv, lv + 1) for v in by_level.get(n, [])]
        if vals:
            out[lv] = round(sum(vals) / len(vals), 2)
    return out


@dataclass(slots=True)
class PaperRun:
    """One policy, one seed, in the authors' setup."""

    policy: str
    seed: int
    capacity_milli: int
    pods: int
    arrived_milli: list[int] = field(default_factory=list)
    allocated_milli: list[int] = field(default_factory=list)
    placed: int = 0
    failed: int = 0

    def levels(self, top: int = 130) -> dict[int, float]:
        """Allocation (%) per level of arrived GPU request."""
        return level_means(self.arrived_milli, self.allocated_milli, self.capacity_milli, top)

    def unallocated_at(self, level: int = 100) -> float:
        """100 minus the allocation at ``level`` (NaN when the run never got there)."""
        return 100.0 - self.levels(level).get(level, float("nan"))


def workload(
    nodes: Sequence[NodeInfo], pods: Sequence[Pod], seed: int, ratio: float = RATIO
) -> tuple[list[NodeInfo], list[Pod]]:
    """The renamed nodes and the resized, shuffled pods of one seed."""
    rng = random.Random(seed)
    cap = sum(n.gpu_count for n in nodes) * MILLI
    order = resize(shuffled(pods, rng), pods, cap, ratio, rng)
    return prefixed(nodes, rng), order


def run_paper(
    nodes: Sequence[NodeInfo],
    pods: Sequence[Pod],
    policy: str,
    seed: int,
    *,
    ratio: float = RATIO,
    until_pct: float = 130.0,
) -> PaperRun:
    """Replay ``pods`` (the trace as given) in the authors' setup under ``policy``.

    The run stops once the arrived GPU request passes ``until_pct`` + 0.5 %
    (every level up to ``until_pct`` is then complete).
    """
    node_list, order = workload(nodes, pods, seed, ratio)
    mix: WorkloadMix = TypicalPods(pods) if policy == "fgd" else WorkloadMix(window=MIX_WINDOW)
    snap = build_snapshot(node_list, mix)
    engine = Engine(policy)
    cap = snap.capacity_milli()
    run = PaperRun(policy, seed, cap, len(order), [0], [0])
    stop = cap * (until_pct + 0.5) / 100
    arrived = 0
    for i, pod in enumerate(order):
        arrived += pod.demand_milli
        mix.observe(pod)
        d = engine.decide(snap, pod, now=0.0, seed=seed)
        if d.node is not None:
            snap.assume(pod, d.node, d.gpus, start_time=float(i))
            run.placed += 1
        else:
            run.failed += 1
        run.arrived_milli.append(arrived)
        run.allocated_milli.append(snap.allocated_milli())
        if arrived >= stop:
            break
    return run


def mean_levels(runs: Sequence[PaperRun], top: int) -> dict[int, float]:
    """Mean over runs of the allocation per level (levels every run reached)."""
    per = [r.levels(top) for r in runs]
    common = set.intersection(*(set(p) for p in per)) if per else set()
    return {lv: round(sum(p[lv] for p in per) / len(per), 3) for lv in sorted(common)}
