"""PriorityClass builder, tier bands and drift detection."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from ballast.api.v1alpha1.workloadclass import (
    PRIORITY_MAX,
    TIERS,
    WorkloadClassSpec,
    priority_value,
)
from ballast.controller.builders import build_priority_class, priority_class_drift
from ballast.controller.conditions import Cond, merge_conditions, ready_from


def spec(**kw: Any) -> WorkloadClassSpec:
    return WorkloadClassSpec.model_validate({"tier": "Interactive", **kw})


def test_tier_bands_never_overlap() -> None:
    ranks = {"Interactive": 3, "Nearline": 2, "Offline": 1}
    for hi in TIERS:
        for lo in TIERS:
            if ranks[hi] > ranks[lo]:
                assert priority_value(hi, 0) > priority_value(lo, PRIORITY_MAX)


CASES = {
    "interactive preempting": (
        {"tier": "Interactive", "priority": 50, "preemption": {"policy": "LowerTier"}},
        300_050,
        "PreemptLowerPriority",
    ),
    "nearline never preempts": ({"tier": "Nearline", "priority": 7}, 200_007, "Never"),
    "offline default": ({"tier": "Offline"}, 100_000, "Never"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_build_priority_class(case: str) -> None:
    raw, want_value, want_policy = CASES[case]
    pc = build_priority_class("chat", "uid-1", WorkloadClassSpec.model_validate(raw))
    assert pc["metadata"]["name"] == "ballast-chat"
    assert pc["value"] == want_value
    assert pc["preemptionPolicy"] == want_policy
    assert pc["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "ballast"
    assert pc["metadata"]["labels"]["ballast.dev/owner"] == "workloadclass.chat"
    assert pc["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert pc["globalDefault"] is False


def test_drift() -> None:
    desired = build_priority_class("chat", "u", spec(priority=1))
    assert priority_class_drift(desired, None) == "missing"
    assert priority_class_drift(desired, desired) is None
    assert priority_class_drift(desired, {**desired, "value": 5}) == "value"
    assert priority_class_drift(desired, {**desired, "description": "x"}) == "fields"
    stripped = {**desired, "metadata": {**desired["metadata"], "labels": {}}}
    assert priority_class_drift(desired, stripped) == "fields"


def test_conditions_keep_transition_time_when_unchanged() -> None:
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    t1 = t0 + dt.timedelta(hours=1)
    first = merge_conditions(None, [Cond("Ready", True, "Reconciled")], generation=1, now=t0)
    again = merge_conditions(first, [Cond("Ready", True, "Reconciled")], generation=2, now=t1)
    assert again[0]["lastTransitionTime"] == first[0]["lastTransitionTime"]
    assert again[0]["observedGeneration"] == 2
    flipped = merge_conditions(again, [Cond("Ready", False, "X", "m")], generation=2, now=t1)
    assert flipped[0]["lastTransitionTime"] == "2026-01-01T01:00:00Z"


def test_ready_summarises_first_false() -> None:
    parts = [Cond("A", True, "Ok"), Cond("B", False, "Broken", "why"), Cond("C", None, "Unk")]
    ready = ready_from(parts)
    assert (ready.status, ready.reason, ready.message) == (False, "Broken", "why")
    assert ready_from([Cond("A", True, "Ok")]).status is True
