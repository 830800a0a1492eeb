"""Reserved pools from the scheduler's side: own-pool toleration, borrowing, borrowers evicted first."""

from __future__ import annotations

from typing import Any

import pytest
from sched_builders import make, node, pod, run, wlc

from ballast.api import wellknown as wk


def pool_node(name: str, gpus: int, pool: str, *, borrowable: bool) -> dict[str, Any]:
    n = node(name, gpus)
    n["metadata"]["labels"][wk.LABEL_POOL] = pool
    n["metadata"]["annotations"] = {
        wk.ANNOTATION_POOL_BORROWABLE: "true" if borrowable else "false"
    }
    n["spec"] = {"taints": [{"key": wk.TAINT_POOL, "value": pool, "effect": "NoSchedule"}]}
    return n


RESERVED = {"name": "serving", "reservedNodes": 1}


@pytest.mark.parametrize(("borrowable", "want"), [(True, ["p"]), (False, [])])
def test_other_classes_borrow_only_where_the_pool_lends(borrowable: bool, want: list[str]) -> None:
    s, actions, _ = make(
        ("workloadclasses", wlc("batch", tier="Offline")),
        ("nodes", pool_node("a", 2, "serving", borrowable=borrowable)),
        ("pods", pod("p", cls="batch")),
    )
    run(s)
    assert [b[0] for b in actions.binds] == want


def test_a_pool_class_tolerates_its_own_taint_without_the_webhook() -> None:
    s, actions, _ = make(
        ("workloadclasses", wlc("chat", tier="Interactive", nodePool=RESERVED)),
        ("nodes", pool_node("a", 2, "serving", borrowable=False)),
        ("pods", pod("c", cls="chat")),  # no toleration on the pod itself
    )
    run(s)
    assert [(b[0], b[1]) for b in actions.binds] == [("c", "a")]


def test_borrowers_are_the_first_victims_when_the_owner_needs_room() -> None:
    s, actions, _ = make(
        (
            "workloadclasses",
            wlc("chat", tier="Interactive", nodePool=RESERVED, preemption={"policy": "LowerTier"}),
        ),
        # Shares the pool (names it, reserves nothing): a member, not a borrower.
        ("workloadclasses", wlc("pooled", tier="Offline", nodePool={"name": "serving"})),
        ("workloadclasses", wlc("guest", tier="Nearline")),
        ("nodes", pool_node("a", 2, "serving", borrowable=True)),
        ("pods", pod("member", cls="pooled", node_name="a")),
        ("pods", pod("borrower", cls="guest", node_name="a")),
        ("pods", pod("owner", cls="chat")),
    )
    run(s)
    assert actions.conditions["owner"][0] == "Preempting"
    # The Offline member ranks lower, but the Nearline borrower goes first.
    assert actions.checkpoints == ["borrower"]


def test_an_owner_that_may_not_preempt_still_reclaims_from_borrowers() -> None:
    s, actions, _ = make(
        ("workloadclasses", wlc("chat", tier="Interactive", nodePool=RESERVED)),
        ("workloadclasses", wlc("guest", tier="Offline")),
        ("nodes", pool_node("a", 1, "serving", borrowable=True)),
        ("pods", pod("borrower", cls="guest", node_name="a")),
        ("pods", pod("owner", cls="chat")),
    )
    run(s)
    assert actions.checkpoints == ["borrower"]
