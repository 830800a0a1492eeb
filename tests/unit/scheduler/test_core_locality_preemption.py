"""``preemption.forLocality``: a serving pod evicts a lower tier on a warm node instead of cold-starting."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sched_builders import make, node, pod, run, wlc

from ballast.api import wellknown as wk
from ballast.scheduler.informer import Event


def warm(name: str, gpus: int, *models: str) -> dict[str, Any]:
    n = node(name, gpus)
    items = [{"kind": "model", "name": m, "bytes": 30_000_000_000} for m in models]
    n["metadata"]["annotations"] = {
        wk.ANNOTATION_CACHE: json.dumps({"capacityBytes": 2_000_000_000_000, "items": items})
    }
    return n


def serving_pod(name: str) -> dict[str, Any]:
    p = pod(name, gpus=1, cls="chat")
    p["metadata"]["annotations"] = {wk.ANNOTATION_MODELS: "llama-70b"}
    return p


@pytest.mark.parametrize(
    ("for_locality", "want_node", "want_checkpoints"),
    [(True, None, ["off-0"]), (False, "cold", [])],
)
def test_for_locality_preempts_on_the_warm_node(
    for_locality: bool, want_node: str | None, want_checkpoints: list[str]
) -> None:
    objs = [
        ("workloadclasses", wlc("off", tier="Offline", preemption={"gracePeriodSeconds": 5})),
        (
            "workloadclasses",
            wlc(
                "chat",
                tier="Interactive",
                preemption={"policy": "LowerTier", "forLocality": for_locality},
            ),
        ),
        ("nodes", warm("warm", 1, "llama-70b")),
        ("nodes", node("cold", 1)),
        ("pods", pod("off-0", gpus=1, cls="off", node_name="warm")),
        ("pods", serving_pod("chat-0")),
    ]
    s, actions, _ = make(*objs)
    run(s)
    assert actions.checkpoints == want_checkpoints
    if want_node is None:
        assert actions.binds == [] and actions.conditions["chat-0"][0] == "Preempting"
        assert s.preemptions.node_of("uid-chat-0") == "warm"
    else:
        assert [(b[0], b[1]) for b in actions.binds] == [("chat-0", want_node)]


def test_signal_none_evicts_without_a_checkpoint_request() -> None:
    objs = [
        (
            "workloadclasses",
            wlc("off", tier="Offline", preemption={"gracePeriodSeconds": 2, "signal": "None"}),
        ),
        ("workloadclasses", wlc("chat", tier="Interactive", preemption={"policy": "LowerTier"})),
        ("nodes", node("a", 1)),
        ("pods", pod("off-0", gpus=1, cls="off", node_name="a")),
        ("pods", pod("chat-0", gpus=1, cls="chat")),
    ]
    s, actions, _ = make(*objs)
    run(s)
    assert actions.conditions["chat-0"][0] == "Preempting" and actions.checkpoints == []
    s.clock.advance(3)
    run(s)
    assert actions.evictions == ["off-0"]


def test_when_it_must_preempt_anyway_the_warm_node_goes_first() -> None:
    # Both nodes full; the cold one sorts first by name and its victim is as
    # cheap, but a forLocality class takes the warm node.
    objs = [
        ("workloadclasses", wlc("off", tier="Offline", preemption={"gracePeriodSeconds": 5})),
        (
            "workloadclasses",
            wlc(
                "chat", tier="Interactive", preemption={"policy": "LowerTier", "forLocality": True}
            ),
        ),
        ("nodes", warm("warm", 1, "llama-70b")),
        ("nodes", node("a-cold", 1)),
        ("pods", pod("off-warm", gpus=1, cls="off", node_name="warm")),
        ("pods", pod("off-cold", gpus=1, cls="off", node_name="a-cold")),
        ("pods", serving_pod("chat-0")),
    ]
    s, actions, _ = make(*objs)
    run(s)
    assert actions.checkpoints == ["off-warm"]
    assert s.preemptions.node_of("uid-chat-0") == "warm"


def test_a_cold_node_freeing_up_does_not_take_the_pod_from_its_warm_plan() -> None:
    objs = [
        ("workloadclasses", wlc("off", tier="Offline", preemption={"gracePeriodSeconds": 5})),
        (
            "workloadclasses",
            wlc(
                "chat", tier="Interactive", preemption={"policy": "LowerTier", "forLocality": True}
            ),
        ),
        ("nodes", warm("warm", 1, "llama-70b")),
        ("nodes", node("cold", 1)),
        ("pods", pod("off-warm", gpus=1, cls="off", node_name="warm")),
        ("pods", pod("off-cold", gpus=1, cls="off", node_name="cold")),
        ("pods", serving_pod("chat-0")),
    ]
    s, actions, q = make(*objs)
    run(s)
    assert s.preemptions.node_of("uid-chat-0") == "warm"
    q.put(Event("pods", "DELETED", pod("off-cold", gpus=1, cls="off", node_name="cold")))
    run(s)
    assert actions.binds == [] and actions.conditions["chat-0"][0] == "Preempting"
    q.put(Event("pods", "DELETED", pod("off-warm", gpus=1, cls="off", node_name="warm")))
    run(s)
    assert [(b[0], b[1]) for b in actions.binds] == [("chat-0", "warm")]
