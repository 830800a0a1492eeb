"""The gpu-unhealthy taint: added when every GPU is unhealthy, removed when one recovers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ballast.api.wellknown import GPUTelemetry, NodeTelemetry
from ballast.scheduler.healthtaint import TAINT_KEY, HealthTaints, sick_gpus

T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
OTHER = {"key": "dedicated", "value": "ml", "effect": "NoSchedule"}


def tele(*healthy: bool) -> NodeTelemetry:
    return NodeTelemetry(T0, tuple(GPUTelemetry(i, healthy=h) for i, h in enumerate(healthy)))


def node(rv: str, *taints: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": "n", "uid": "u1", "resourceVersion": rv},
            "spec": {"taints": list(taints)}}  # fmt: skip


def test_all_sick_taints_and_keeps_other_taints() -> None:
    h = HealthTaints()
    change = h.on_node(node("1", OTHER), tele(False, False), 0.0)
    assert change is not None and change.tainted and change.resource_version == "1"
    assert change.taints[0] == OTHER and change.taints[1]["key"] == TAINT_KEY
    assert "all 2 GPUs unhealthy (GPUs 0,1)" in change.message
    # Asked once: the same state does not ask again until retry_s passes.
    assert h.on_telemetry("n", tele(False, False), 1.0) is None
    assert h.on_telemetry("n", tele(False, False), 31.0) is not None
    # The write landed: the Node event shows the taint, nothing more to do.
    assert h.on_node(node("2", OTHER, dict(change.taints[1])), tele(False, False), 32.0) is None


def test_one_healthy_gpu_removes_the_taint_and_only_it() -> None:
    h = HealthTaints()
    ours = {"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}
    assert h.on_node(node("5", ours, OTHER), tele(False, False), 0.0) is None
    change = h.on_telemetry("n", tele(False, True), 1.0)
    assert change is not None and not change.tainted and change.taints == (OTHER,)
    # No telemetry at all (record deleted): no verdict, no taint.
    h2 = HealthTaints()
    gone = h2.on_node(node("5", ours), None, 0.0)
    assert gone is not None and gone.taints == ()


def test_some_sick_or_no_gpus_is_not_a_sick_node() -> None:
    assert sick_gpus(tele(False, True)) is None
    assert sick_gpus(tele()) is None
    assert sick_gpus(None) is None
    assert sick_gpus(NodeTelemetry(None, (GPUTelemetry(0, healthy=False),))) is None
    assert sick_gpus(tele(False)) == (0,)


def test_telemetry_before_the_node_waits_for_it() -> None:
    h = HealthTaints()
    assert h.on_telemetry("n", tele(False), 0.0) is None
    change = h.on_node(node("1"), tele(False), 0.0)
    assert change is not None and change.tainted


@given(st.lists(st.booleans(), min_size=0, max_size=8), st.booleans())
def test_the_change_always_matches_the_verdict(healthy: list[bool], tainted: bool) -> None:
    ours = {"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}
    h = HealthTaints()
    t = tele(*healthy)
    change = h.on_node(node("1", *([ours] if tainted else [])), t, 0.0)
    want = bool(healthy) and not any(healthy)
    if want == tainted:
        assert change is None
    else:
        assert change is not None and change.tainted == want
        assert any(x["key"] == TAINT_KEY for x in change.taints) == want
