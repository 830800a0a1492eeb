"""The engine end to end: decisions, explanations, class weights, determinism."""

from __future__ import annotations

import pytest
from placement_builders import NOW, make_node, make_pod, snapshot

from ballast.api.wellknown import LABEL_POOL
from ballast.placement.engine import Engine
from ballast.placement.objects import ClassPolicy, PoolPolicy, ScoringPolicy
from ballast.placement.profiles import PROFILES, profile


def test_unschedulable_summary_counts_reasons() -> None:
    nodes = [make_node(f"b{i}").pool("batch") for i in range(4)]
    nodes += [make_node(f"m{i}").pool("chat").gpus(8, memory_mib=16384) for i in range(2)]
    nodes += [make_node("sick").pool("chat").gpus(1).telemetry(sick=(0,))]
    snap = snapshot(*nodes)
    cls = ClassPolicy("c", pool=PoolPolicy(name="chat", min_gpu_memory_mib=40000))
    pod = make_pod("p").gpu(1).cls("c").tolerate(LABEL_POOL).obj
    d = Engine("ballast", {"c": cls}).decide(snap, pod, now=NOW)
    assert not d.schedulable
    assert d.summary() == "0/7 nodes: 4 pool mismatch, 2 insufficient GPU memory, 1 unhealthy"
    assert d.message() == d.summary()


def test_summary_for_pool_mismatch_first() -> None:
    snap = snapshot(
        *(make_node(f"n{i}").pool("batch") for i in range(3)), make_node("free").gpus(1)
    )
    cls = ClassPolicy("chat", pool=PoolPolicy(name="chat"))
    d = Engine("ballast", {"chat": cls}).decide(snap, make_pod("p").gpu(2).cls("chat").obj, now=NOW)
    assert d.message() == "0/4 nodes: 4 pool mismatch"


def test_explanation_lists_chosen_node_first_with_plugin_parts() -> None:
    snap = snapshot(
        make_node("warm").cache(("model/m", 10**9)), make_node("cold1"), make_node("cold2")
    )
    d = Engine("ballast").decide(snap, make_pod("p").gpu(1).models("m").obj, now=NOW)
    assert d.node == "warm" and d.gpus == (0,)
    assert d.scores[0].node == "warm" and len(d.scores) == 3
    parts = {p.plugin: p for p in d.scores[0].plugins}
    assert parts["DataLocality"].normalized > 0 and parts["DataLocality"].weight == 0.5
    assert d.scores[0].total >= d.scores[1].total
    assert "assigned team-a/p to warm (GPUs 0)" in d.message()
    assert "runner-up" in d.message()


def test_explanation_says_when_telemetry_was_stale() -> None:
    snap = snapshot(make_node("old").gpus(1).telemetry(age_s=3600))
    d = Engine("ballast").decide(snap, make_pod("p").gpu(1).obj, now=NOW)
    assert d.node == "old" and d.chosen_stale and d.stale == 1
    assert "telemetry of old is stale or missing (scored neutral)" in d.message()
    snap = snapshot(
        make_node("live").gpus(1).telemetry(), make_node("old").gpus(1).telemetry(age_s=3600)
    )
    d = Engine("ballast").decide(snap, make_pod("p").gpu(1).obj, now=NOW)
    assert (d.stale, d.chosen_stale) == (1, d.node == "old")
    assert "1/2 feasible nodes have stale or missing telemetry" in d.message()
    snap = snapshot(make_node("live").gpus(1).telemetry())
    d = Engine("ballast").decide(snap, make_pod("p").gpu(1).obj, now=NOW)
    assert d.stale == 0 and "stale" not in d.message()
    # A profile that ignores telemetry never calls anything stale.
    d = Engine("kube-default").decide(snap, make_pod("p").gpu(1).obj, now=NOW)
    assert d.stale == 0 and not d.chosen_stale


def test_a_burst_spreads_over_nodes_that_reported_idle() -> None:
    """Pods bound after a report count as load, so the telemetry score moves on."""
    snap = snapshot(*(make_node(f"n{i}").gpus(4).telemetry() for i in range(2)))
    # Packing would put both on one node; telemetry outweighs it here.
    engine = Engine("ballast", {"s": ClassPolicy("s", placement=ScoringPolicy(
        weights={"GPUTelemetry": 10}))})  # fmt: skip
    placed = []
    for i in range(2):
        pod = make_pod(f"p{i}").gpu(2).cls("s").obj
        d = engine.decide(snap, pod, now=NOW)
        assert d.node is not None
        snap.assume(pod, d.node, d.gpus, start_time=0.0)
        placed.append(d.node)
    assert sorted(placed) == ["n0", "n1"]


def test_class_weights_and_spread_mode() -> None:
    engine = Engine(
        "ballast",
        {
            "chat": ClassPolicy("chat", placement=ScoringPolicy(mode="spread")),
            "heavy": ClassPolicy("heavy", placement=ScoringPolicy(weights={"DataLocality": 5})),
        },
    )
    chat = {p.name: w for p, w in engine.weights(engine.classes["chat"])}
    heavy = {p.name: w for p, w in engine.weights(engine.classes["heavy"])}
    assert "Spread" in chat and "FragmentationGradient" not in chat
    assert "Spread" not in heavy and heavy["DataLocality"] == 5


def test_spread_class_puts_replicas_apart() -> None:
    snap = snapshot(make_node("a").gpus(4), make_node("b").gpus(4))
    engine = Engine(
        "ballast", {"chat": ClassPolicy("chat", placement=ScoringPolicy(mode="spread"))}
    )
    nodes = []
    for i in range(2):
        pod = make_pod(f"r{i}").gpu(1).cls("chat").spread("chat-app").obj
        d = engine.decide(snap, pod, now=NOW)
        assert d.node is not None
        snap.assume(pod, d.node, d.gpus, start_time=0.0)
        nodes.append(d.node)
    assert sorted(nodes) == ["a", "b"]


@pytest.mark.parametrize("policy", sorted(PROFILES))
def test_every_profile_decides_deterministically(policy: str) -> None:
    snap = snapshot(*(make_node(f"n{i}").gpus(8) for i in range(6)))
    engine = Engine(policy)
    pod = make_pod("p").share(300).obj
    first = engine.decide(snap, pod, now=NOW, seed=7)
    assert first.node is not None
    for _ in range(3):
        assert Engine(policy).decide(snap, pod, now=NOW, seed=7) == first


def test_nominated_node_is_taken_when_feasible() -> None:
    snap = snapshot(make_node("a"), make_node("b"))
    pod = make_pod("p").gpu(1).obj
    assert Engine("ballast").decide(snap, pod, now=NOW, nominated="b").node == "b"
    assert Engine("ballast").decide(snap, pod, now=NOW, nominated="gone").node in ("a", "b")


def test_unknown_profile_and_bad_chooser() -> None:
    with pytest.raises(KeyError, match="known"):
        profile("nope")
    import dataclasses

    bad = dataclasses.replace(PROFILES["fgd"], gpu_chooser="BestFit")
    with pytest.raises(ValueError, match="gpu_chooser"):
        Engine(bad)


def test_kube_default_ignores_telemetry() -> None:
    snap = snapshot(make_node("sick").gpus(1).telemetry(sick=(0,)))
    pod = make_pod("p").gpu(1).obj
    assert Engine("kube-default").decide(snap, pod, now=NOW).node == "sick"
    assert Engine("ballast").decide(snap, pod, now=NOW).node is None
