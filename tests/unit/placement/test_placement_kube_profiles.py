"""The kube-scheduler imitations: integer scores as kube-scheduler v1.37 computes them, and the profiles.

Expected scores are worked by hand from kube's formulas (resource_allocation.go,
least_allocated.go, most_allocated.go, balanced_allocation.go), case by case.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from placement_builders import NOW, NodeBuilder, PodBuilder, make_node, make_pod, snapshot

from ballast.placement.engine import Engine, nodes_to_find
from ballast.placement.profiles import KUBE_DEFAULT, KUBE_GPU_BINPACK, profile
from ballast.placement.registry import default_registry

GPU_5 = {
    "resources": (
        {"name": "cpu", "weight": 1},
        {"name": "memory", "weight": 1},
        {"name": "nvidia.com/gpu", "weight": 5},
    )
}


@dataclass
class Case:
    name: str
    plugin: str
    nodes: list[NodeBuilder]
    pod: PodBuilder
    want: dict[str, float]
    args: dict[str, Any] = field(default_factory=dict)
    assumed: list[tuple[PodBuilder, str, tuple[int, ...]]] = field(default_factory=list)


CASES = [
    Case(
        "least: mean of free shares after placement, cpu and memory",
        "LeastAllocated",
        [make_node("n").gpus(8).cpu(10000, 1000)],
        make_pod("p").cpu(1000, 100),
        # cpu (10000-5000)*100//10000 = 50, memory (1000-400)*100//1000 = 60 → 55
        {"n": 55.0},
        assumed=[(make_pod("x").gpu(2).cpu(4000, 300), "n", (0, 1))],
    ),
    Case(
        "least: integer arithmetic truncates each resource and the mean",
        "LeastAllocated",
        [make_node("n").gpus(8).cpu(3000, 3000)],
        make_pod("p").cpu(1000, 2000),
        # cpu 2000*100//3000 = 66, memory 1000*100//3000 = 33 → 99//2 = 49
        {"n": 49.0},
    ),
    Case(
        "least: the GPU is not scored by default (same cpu and memory, different GPU use)",
        "LeastAllocated",
        [make_node("busy").gpus(8).cpu(10000, 1000), make_node("idle").gpus(8).cpu(10000, 1000)],
        make_pod("p").gpu(1).cpu(1000, 100),
        {"busy": 90.0, "idle": 90.0},
        assumed=[(make_pod("x").gpu(6), "busy", (0, 1, 2, 3, 4, 5))],
    ),
    Case(
        "least: a pod without requests counts as 100m CPU and 200 MiB",
        "LeastAllocated",
        [make_node("n").gpus(8).cpu(1000, 1000)],
        make_pod("p"),
        # cpu 900*100//1000 = 90, memory 800*100//1000 = 80 → 85
        {"n": 85.0},
    ),
    Case(
        "least: an overcommitted resource scores 0",
        "LeastAllocated",
        [make_node("n").gpus(8).cpu(1000, 1000)],
        make_pod("p").cpu(2000, 500),
        {"n": 25.0},  # cpu 0, memory 50
    ),
    Case(
        "most: the GPU weighs 5 when listed",
        "MostAllocated",
        [make_node("n").gpus(8).cpu(10000, 1000)],
        make_pod("p").gpu(1).cpu(1000, 100),
        # cpu 10, memory 10, GPU 4/8 → 50: (10 + 10 + 5*50) // 7 = 38
        {"n": 38.0},
        args=GPU_5,
        assumed=[(make_pod("x").gpu(3), "n", (0, 1, 2))],
    ),
    Case(
        "most: a CPU-only pod is scored on cpu and memory only, even with the GPU listed",
        "MostAllocated",
        [make_node("n").gpus(8).cpu(10000, 1000)],
        make_pod("p").cpu(1000, 300),
        {"n": 20.0},  # (10 + 30) // 2; the GPU (3/8 used) is left out
        args=GPU_5,
        assumed=[(make_pod("x").gpu(3), "n", (0, 1, 2))],
    ),
    Case(
        "most: a node without GPUs is scored on what it has",
        "MostAllocated",
        [make_node("n").gpus(0).cpu(1000, 1000)],
        make_pod("p").cpu(500, 500),
        {"n": 50.0},
        args=GPU_5,
    ),
    Case(
        "balanced: v1.37 scores the improvement in balance",
        "BalancedAllocation",
        [make_node("n").gpus(8).cpu(1024, 1024)],
        make_pod("p").cpu(0, 256),
        # before .5/.125: std .1875 → 81; after .5/.375: std .0625 → 93; 50 + (50 + 12)//2 = 81
        {"n": 81.0},
        assumed=[(make_pod("x").cpu(512, 128), "n", ())],
    ),
    Case(
        "balanced: a pod that unbalances a node scores towards 50",
        "BalancedAllocation",
        [make_node("n").gpus(8).cpu(1024, 1024)],
        make_pod("p").cpu(512, 0),
        # before 0/0 → 100; after .5/0: std .25 → 75; 50 + (50 - 25)//2 = 62
        {"n": 62.0},
    ),
    Case(
        "balanced: a pod requesting neither cpu nor memory is not scored",
        "BalancedAllocation",
        [make_node("a").gpus(8), make_node("b").gpus(8)],
        make_pod("p").gpu(1),
        {"a": 0.0, "b": 0.0},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_kube_score(case: Case) -> None:
    snap = snapshot(*case.nodes)
    for pod, node, gpus in case.assumed:
        snap.assume(pod.obj, node, gpus, start_time=0.0)
    engine = Engine("kube-default")
    state = engine.cycle(snap, case.pod.obj, NOW)
    plugin = default_registry().score(case.plugin, case.args)
    rows = snap.rows()
    raw = plugin.score(state, rows)
    got = {snap.names[r]: float(v) for r, v in zip(rows, plugin.normalize(state, raw), strict=True)}
    assert got == case.want


def test_kube_default_is_the_default_plugin_set() -> None:
    scores = {r.name: (r.weight, dict(r.args)) for r in KUBE_DEFAULT.scores}
    assert scores == {"LeastAllocated": (1.0, {}), "BalancedAllocation": (1.0, {})}
    assert KUBE_DEFAULT.percentage_of_nodes_to_score == 0
    binpack = {r.name: (r.weight, dict(r.args)) for r in KUBE_GPU_BINPACK.scores}
    assert binpack["MostAllocated"][1] == GPU_5
    assert binpack["BalancedAllocation"] == (1.0, {})
    assert profile("kube-gpu-binpack") is KUBE_GPU_BINPACK


@pytest.mark.parametrize(
    ("n_all", "percentage", "want"),
    [(50, 0, 50), (99, 0, 99), (150, 0, 100), (1213, 0, 497), (5000, 0, 500), (100000, 0, 5000),
     (1000, 30, 300), (1000, 5, 100)],
)  # fmt: skip
def test_nodes_to_find(n_all: int, percentage: int, want: int) -> None:
    assert nodes_to_find(percentage, n_all) == want


def test_kube_default_searches_part_of_a_large_cluster_and_moves_on() -> None:
    snap = snapshot(*(make_node(f"n{i:03d}").gpus(8) for i in range(250)))
    engine = Engine("kube-default")
    first = engine.decide(snap, make_pod("a").gpu(1).obj, now=NOW, seed=1)
    # 250 nodes: 48% is 120 feasible nodes wanted; the search stops at the 121st.
    assert (first.nodes_total, first.feasible) == (250, 120)
    assert first.node is not None and int(first.node[1:]) < 120
    assert engine._next_start == 120
    second = engine.decide(snap, make_pod("b").gpu(1).obj, now=NOW, seed=1)
    assert second.node is not None and 120 <= int(second.node[1:]) < 240
    assert engine._next_start == 240


def test_kube_default_breaks_ties_at_random() -> None:
    snap = snapshot(*(make_node(f"n{i}").gpus(8) for i in range(6)))
    engine = Engine("kube-default")
    picks = Counter(
        engine.decide(snap, make_pod("p").gpu(1).cpu(1000, 1024).obj, now=NOW, seed=s).node
        for s in range(60)
    )
    assert len(picks) == 6


def _fill(policy: str, pods: int) -> dict[str, int]:
    snap = snapshot(*(make_node(f"n{i}").gpus(8).cpu(64000, 1 << 18) for i in range(4)))
    engine = Engine(policy)
    for i in range(pods):
        pod = make_pod(f"p{i}").gpu(1).cpu(4000, 8192).obj
        d = engine.decide(snap, pod, now=NOW, seed=i)
        assert d.node is not None
        snap.assume(pod, d.node, d.gpus, start_time=0.0)
    return {snap.names[r]: int(8000 - snap.free_sum[r]) // 1000 for r in snap.rows()}


def test_kube_default_spreads_and_binpack_packs_gpus() -> None:
    spread = _fill("kube-default", 8)
    packed = _fill("kube-gpu-binpack", 8)
    assert sorted(spread.values()) == [2, 2, 2, 2]
    assert sorted(packed.values()) == [0, 0, 0, 8]
    assert np.isclose(sum(spread.values()), sum(packed.values()))
