"""Table tests for the preemption planner."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from placement_builders import NOW, make_node, make_pod, snapshot

from ballast.placement.admission import QuotaSet
from ballast.placement.engine import Engine
from ballast.placement.objects import (
    ClassPolicy,
    DisruptionBudget,
    PreemptionPolicy,
    QuotaPolicy,
    gpus,
)
from ballast.placement.preemption import plan_preemption, warm_nodes
from ballast.selectors import from_labels

CLASSES = {
    "chat": ClassPolicy(
        "chat", "Interactive", 10, PreemptionPolicy("lower-tier", preemptible=False)
    ),
    "rag": ClassPolicy("rag", "Interactive", 5, PreemptionPolicy("lower-priority")),
    "enrich": ClassPolicy(
        "enrich", "Nearline", 0, PreemptionPolicy("lower-tier", min_runtime_s=60)
    ),
    "batch": ClassPolicy("batch", "Offline", 0, PreemptionPolicy("never")),
    "pinned": ClassPolicy("pinned", "Offline", 0, PreemptionPolicy("never", preemptible=False)),
    "polite": ClassPolicy("polite", "Interactive", 0, PreemptionPolicy("never")),
}


@dataclass
class Victim:
    name: str
    node: str
    cls: str
    gpus: int = 1
    started: float = NOW - 3600
    labels: dict[str, str] = field(default_factory=dict)
    namespace: str = "team-b"
    borrowed: bool = False


@dataclass
class Case:
    name: str
    preemptor: str
    pod_gpus: int
    running: list[Victim]
    want_node: str | None
    want_victims: set[str] = field(default_factory=set)
    nodes: dict[str, int] = field(default_factory=lambda: {"n1": 2, "n2": 2})
    budgets: list[DisruptionBudget] = field(default_factory=list)
    quotas: list[QuotaPolicy] = field(default_factory=list)


CASES = [
    Case(
        "lower tier only: the Offline pod goes, the Interactive one stays",
        "chat",
        1,
        [
            Victim("b1", "n1", "batch"),
            Victim("r1", "n1", "rag"),
            Victim("r2", "n2", "rag"),
            Victim("r3", "n2", "rag"),
        ],
        want_node="n1",
        want_victims={"b1"},
    ),
    Case(
        "fewest victims wins",
        "chat",
        2,
        [
            Victim("small1", "n1", "batch"),
            Victim("small2", "n1", "batch"),
            Victim("big", "n2", "batch", 2),
        ],
        want_node="n2",
        want_victims={"big"},
    ),
    Case(
        "youngest victims first among equals",
        "chat",
        1,
        [
            Victim("old", "n1", "batch", started=NOW - 7200),
            Victim("young", "n1", "batch", started=NOW - 100),
        ],
        nodes={"n1": 2},
        want_node="n1",
        want_victims={"young"},
    ),
    Case(
        "lowest tier first: a Nearline pod is spared when an Offline one suffices",
        "chat",
        1,
        [Victim("near", "n1", "enrich"), Victim("off", "n1", "batch")],
        nodes={"n1": 2},
        want_node="n1",
        want_victims={"off"},
    ),
    Case(
        "never: a class that may not preempt gets no plan",
        "polite",
        1,
        [Victim("b", "n1", "batch"), Victim("b2", "n1", "batch")],
        nodes={"n1": 2},
        want_node=None,
    ),
    Case(
        "not preemptible victims are left alone",
        "chat",
        1,
        [Victim("p1", "n1", "pinned"), Victim("p2", "n1", "pinned")],
        nodes={"n1": 2},
        want_node=None,
    ),
    Case(
        "minimum runtime protects young victims",
        "chat",
        1,
        [
            Victim("fresh", "n1", "enrich", started=NOW - 10),
            Victim("fresh2", "n1", "enrich", started=NOW - 10),
        ],
        nodes={"n1": 2},
        want_node=None,
    ),
    Case(
        "lower-priority within the tier",
        "rag",
        1,
        [Victim("chat", "n1", "chat"), Victim("rag-low", "n1", "polite")],
        nodes={"n1": 2},
        want_node="n1",
        want_victims={"rag-low"},
    ),
    Case(
        "disruption budget exhausted: the covered pod is skipped",
        "chat",
        1,
        [
            Victim("guarded", "n1", "batch", labels={"app": "g"}),
            Victim("free", "n2", "batch", started=NOW - 9000),
            Victim("x", "n1", "rag"),
            Victim("y", "n2", "rag"),
        ],
        budgets=[DisruptionBudget("team-b", from_labels({"app": "g"}), 0)],
        want_node="n2",
        want_victims={"free"},
    ),
    Case(
        "borrowed capacity is reclaimed by the lender even without preemption rights",
        "polite",
        1,
        [
            Victim("borrower", "n1", "batch", namespace="team-b", borrowed=True),
            Victim("own", "n1", "batch", namespace="team-b"),
        ],
        nodes={"n1": 2},
        quotas=[
            QuotaPolicy("team-a", gpus(4), cohort="c"),
            QuotaPolicy("team-b", gpus(1), cohort="c"),
        ],
        want_node="n1",
        want_victims={"borrower"},
    ),
]


def _setup(case: Case):  # type: ignore[no-untyped-def]
    snap = snapshot(*(make_node(n).gpus(g) for n, g in case.nodes.items()))
    used: dict[str, int] = {}
    for v in case.running:
        start = used.get(v.node, 0)
        pod = make_pod(v.name, v.namespace).gpu(v.gpus).cls(v.cls).labels(**v.labels).obj
        snap.assume(
            pod,
            v.node,
            tuple(range(start, start + v.gpus)),
            start_time=v.started,
            tier=CLASSES[v.cls].tier,
            borrowed=v.borrowed,
        )
        used[v.node] = start + v.gpus
    return snap


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_preemption(case: Case) -> None:
    snap = _setup(case)
    pod = make_pod("new").gpu(case.pod_gpus).cls(case.preemptor).obj
    plan = plan_preemption(
        Engine("ballast", CLASSES),
        snap,
        pod,
        now=NOW,
        budgets=case.budgets,
        quotas=QuotaSet(case.quotas),
    )
    if case.want_node is None:
        assert plan is None
        return
    assert plan is not None
    assert plan.node == case.want_node
    assert {v.name for v in plan.victims} == case.want_victims
    assert "preempting" in plan.message()
    # The plan only plans: nothing was evicted.
    assert all(snap.pods.get(v.uid) for v in plan.victims)


def test_no_plan_when_the_pod_fits() -> None:
    snap = snapshot(make_node("n").gpus(2))
    assert (
        plan_preemption(
            Engine("ballast", CLASSES), snap, make_pod("p").gpu(1).cls("chat").obj, now=NOW
        )
        is None
    )


def test_locality_plan_targets_warm_nodes_even_when_the_pod_fits_elsewhere() -> None:
    snap = snapshot(make_node("warm").gpus(1).cache(("model/m", 10)), make_node("cold").gpus(1))
    snap.assume(
        make_pod("b").gpu(1).cls("batch").obj, "warm", (0,), start_time=NOW - 999, tier="Offline"
    )
    pod = make_pod("p").gpu(1).cls("chat").models("m").obj
    warm = warm_nodes(snap, pod)
    assert warm == ["warm"]
    plan = plan_preemption(Engine("ballast", CLASSES), snap, pod, now=NOW, nodes=warm)
    assert plan is not None and plan.node == "warm" and [v.name for v in plan.victims] == ["b"]
    assert warm_nodes(snap, make_pod("q").gpu(1).obj) == []


victim_st = st.tuples(
    st.sampled_from(["batch", "enrich", "rag", "chat", "pinned"]),
    st.integers(-30, 9000),
    st.sampled_from(["team-a", "team-b"]),
)


@settings(max_examples=200, deadline=None)
@given(
    nodes=st.lists(st.lists(victim_st, min_size=1, max_size=4), min_size=1, max_size=6),
    preemptor=st.sampled_from(["chat", "rag", "enrich"]),
    want=st.integers(1, 3),
    budget=st.integers(0, 2),
)
def test_skipping_nodes_that_cannot_win_finds_the_exhaustive_plan(
    nodes: list[list[tuple[str, int, str]]], preemptor: str, want: int, budget: int
) -> None:
    # Every GPU is held (else the pod fits and there is nothing to plan).
    snap = snapshot(*(make_node(f"n{i}").gpus(len(held)) for i, held in enumerate(nodes)))
    for i, held in enumerate(nodes):
        for g, (cls, ran, ns) in enumerate(held):
            pod = make_pod(f"v{i}-{g}", ns).gpu(1).cls(cls).labels(app=str(g % 3)).obj
            snap.assume(pod, f"n{i}", (g,), start_time=NOW - ran, tier=CLASSES[cls].tier)
    pod = make_pod("new").gpu(want).cls(preemptor).obj
    budgets = [DisruptionBudget("team-b", from_labels({"app": "1"}), budget)]
    plans = [
        plan_preemption(Engine("ballast", CLASSES), snap, pod, now=NOW, budgets=budgets,
                        exhaustive=exhaustive)
        for exhaustive in (False, True)
    ]  # fmt: skip
    assert plans[0] == plans[1]
