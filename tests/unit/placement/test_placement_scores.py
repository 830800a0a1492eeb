"""Table tests for every score plugin: ranking, normalisation, neutral handling of missing data."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from placement_builders import NOW, NodeBuilder, PodBuilder, make_node, make_pod, snapshot

from ballast.placement.engine import Engine
from ballast.placement.fragmentation import WorkloadMix
from ballast.placement.framework import MAX_SCORE, NEUTRAL_SCORE
from ballast.placement.registry import default_registry


@dataclass
class Case:
    name: str
    plugin: str
    nodes: list[NodeBuilder]
    pod: PodBuilder
    want_best: str | None = None
    want_norm: dict[str, float] = field(default_factory=dict)
    want_gpus: tuple[int, ...] | None = None
    mix: list[PodBuilder] = field(default_factory=list)
    assumed: list[tuple[PodBuilder, str, tuple[int, ...]]] = field(default_factory=list)


GB = 10**9
CASES = [
    Case(
        "locality: local bytes win, zone peers get a share, nothing cached scores 0",
        "DataLocality",
        [
            make_node("warm").zone("z1").cache(("model/llama", 16 * GB)),
            make_node("peer").zone("z1"),
            make_node("far").zone("z2"),
        ],
        make_pod("p").gpu(1).models("llama"),
        want_best="warm",
        # one holder: damped to 0.6 + 0.4 * 1/4 = 0.7; zone peer gets 25% of that
        want_norm={"warm": 70.0, "peer": 17.5, "far": 0.0},
    ),
    Case(
        "locality: damping fades as the item spreads",
        "DataLocality",
        [make_node(f"n{i}").cache(("model/m", GB)) for i in range(4)] + [make_node("cold")],
        make_pod("p").gpu(1).models("m"),
        want_norm={"n0": 100.0, "cold": 0.0},
    ),
    Case(
        "locality: datasets count with models, by bytes",
        "DataLocality",
        [make_node("model").cache(("model/m", 3 * GB)), make_node("data").cache(("dataset/d", GB))],
        make_pod("p").gpu(1).models("m").datasets("d"),
        want_best="model",
    ),
    Case(
        "locality: a pod without items scores 0 everywhere",
        "DataLocality",
        [make_node("a").cache(("model/m", GB)), make_node("b")],
        make_pod("p").gpu(1),
        want_norm={"a": 0.0, "b": 0.0},
    ),
    Case(
        "telemetry: idle free GPUs beat busy ones; throttling costs",
        "GPUTelemetry",
        [
            make_node("idle").telemetry(util=0, mem_used_frac=0),
            make_node("busy").telemetry(util=90, mem_used_frac=0.8),
            make_node("hot").telemetry(util=0, throttled=True),
        ],
        make_pod("p").gpu(1),
        want_best="idle",
        want_norm={"idle": 100.0},
    ),
    Case(
        "telemetry: stale and missing data are neutral",
        "GPUTelemetry",
        [make_node("stale").telemetry(age_s=3600, util=100), make_node("missing")],
        make_pod("p").gpu(1),
        want_norm={"stale": NEUTRAL_SCORE, "missing": NEUTRAL_SCORE},
    ),
    Case(
        "fgd: a share goes next to a share, keeping whole GPUs whole",
        "FragmentationGradient",
        [make_node("empty").gpus(2), make_node("used").gpus(2)],
        make_pod("p").share(400),
        mix=[make_pod("w").gpu(1), make_pod("s").share(400)],
        assumed=[(make_pod("x").share(500), "used", (1,))],
        want_best="used",
        want_gpus=(1,),
    ),
    Case(
        "fgd: a 1-GPU pod avoids breaking the node 8-GPU jobs need",
        "FragmentationGradient",
        [make_node("eight").gpus(8), make_node("two").gpus(2)],
        make_pod("p").gpu(1),
        mix=[make_pod("big").gpu(8), make_pod("small").gpu(1)],
        want_best="two",
    ),
    Case(
        "best-fit: the fullest node, the fullest GPU",
        "BestFit",
        [make_node("empty").gpus(4), make_node("full").gpus(4)],
        make_pod("p").share(300),
        assumed=[(make_pod("x").gpu(2), "full", (0, 1)), (make_pod("y").share(600), "full", (3,))],
        want_best="full",
        want_gpus=(3,),
    ),
    Case(
        "least-allocated: the emptiest node",
        "LeastAllocated",
        [make_node("empty").gpus(4), make_node("used").gpus(4)],
        make_pod("p").gpu(1).cpu(1000, 1024),
        assumed=[(make_pod("x").gpu(2).cpu(48000, 1024), "used", (0, 1))],
        want_best="empty",
    ),
    Case(
        "balanced: the node whose CPU and GPU stay evenly used",
        "BalancedAllocation",
        [
            make_node("cpuheavy").gpus(4).cpu(10000, 1 << 20),
            make_node("even").gpus(4).cpu(40000, 1 << 20),
        ],
        make_pod("p").gpu(1).cpu(5000, 0),
        want_best="even",
    ),
    Case(
        "spread: away from sibling replicas",
        "Spread",
        [make_node("a").gpus(4), make_node("b").gpus(4)],
        make_pod("p").gpu(1).spread("chat"),
        assumed=[(make_pod("r1").gpu(1).spread("chat"), "a", (0,))],
        want_best="b",
    ),
    Case(
        "stranding: CPU-only pods go where CPU is in surplus",
        "GPUStranding",
        [make_node("tight").gpus(8).cpu(96000), make_node("roomy").gpus(2).cpu(104000)],
        make_pod("p").cpu(8000, 1024),
        mix=[make_pod("g").gpu(1).cpu(12000, 1024)],
        want_best="roomy",
    ),
    Case(
        "scarcity: a flexible pod leaves the scarce model to constrained pods",
        "GPUScarcity",
        [make_node("t4").gpus(2, "T4"), make_node("g2").gpus(8, "G2")],
        make_pod("p").gpu(1),
        mix=[make_pod("t").gpu(1).products("T4")] * 3 + [make_pod("a").gpu(1)],
        want_best="g2",
    ),
    Case(
        "scarcity: flat when nothing is constrained",
        "GPUScarcity",
        [make_node("t4").gpus(2, "T4"), make_node("g2").gpus(8, "G2")],
        make_pod("p").gpu(1),
        mix=[make_pod("a").gpu(1)],
        want_norm={"t4": MAX_SCORE, "g2": MAX_SCORE},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_score(case: Case) -> None:
    mix = WorkloadMix()
    for i, p in enumerate(case.mix):
        mix.observe(p._set(name=f"mix{i}", uid=f"mix{i}").obj)
    snap = snapshot(*case.nodes, mix=mix)
    for pod, node, gpus in case.assumed:
        snap.assume(pod.obj, node, gpus, start_time=0.0)
    engine = Engine("ballast")
    state = engine.cycle(snap, case.pod.obj, NOW)
    plugin = default_registry().score(case.plugin)
    rows = engine.filter(state).feasible
    raw = plugin.score(state, rows)
    norm = plugin.normalize(state, raw)
    assert np.isfinite(raw).all()
    assert ((norm >= 0) & (norm <= MAX_SCORE)).all()
    got = {snap.names[r]: float(n) for r, n in zip(rows, norm, strict=True)}
    if case.want_best is not None:
        assert max(got, key=lambda k: got[k]) == case.want_best, got
    for node, want in case.want_norm.items():
        assert got[node] == pytest.approx(want), got
    if case.want_gpus is not None:
        chooser = getattr(plugin, "choose_gpus")  # noqa: B009
        assert chooser(state, snap.row(case.want_best or "")) == case.want_gpus


def test_random_score_is_seeded() -> None:
    snap = snapshot(*(make_node(f"n{i}") for i in range(10)))
    plugin = default_registry().score("RandomScore")
    pod = make_pod("p").gpu(1).obj
    engine = Engine("random")
    a = plugin.score(engine.cycle(snap, pod, NOW, seed=1), snap.rows())
    b = plugin.score(engine.cycle(snap, pod, NOW, seed=1), snap.rows())
    c = plugin.score(engine.cycle(snap, pod, NOW, seed=2), snap.rows())
    assert (a == b).all() and not (a == c).all()
