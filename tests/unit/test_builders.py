"""PriorityClass builder, tier bands and drift detection."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ballast.api.v1alpha1.workloadclass import (
    PRIORITY_MAX,
    TIERS,
    WorkloadClassSpec,
    priority_value,
)
from ballast.controller.builders import (
    bounded,
    build_priority_class,
    is_dns_subdomain,
    is_label_value,
    owner_label_value,
    priority_class_drift,
    priority_class_name,
)
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
    never = {**desired, "preemptionPolicy": "PreemptLowerPriority"}
    assert priority_class_drift(desired, never) == "preemptionPolicy"  # immutable: replace
    assert priority_class_drift(desired, {**desired, "description": "x"}) == "fields"
    # The API server omits globalDefault: false; absence is not drift.
    assert (
        priority_class_drift(desired, {k: v for k, v in desired.items() if k != "globalDefault"})
        is None
    )
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


# Any valid WorkloadClass name: an RFC 1123 subdomain of up to 253 characters.
_LABEL = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?\Z", fullmatch=True)
subdomains = st.lists(_LABEL, min_size=1, max_size=40).map(".".join).filter(lambda n: len(n) <= 253)


@given(name=subdomains)
def test_derived_names_fit_kubernetes_limits(name: str) -> None:
    pc = build_priority_class(name, "uid", spec())
    assert is_dns_subdomain(pc["metadata"]["name"]), pc["metadata"]["name"]
    for key, value in pc["metadata"]["labels"].items():
        assert is_label_value(value), (key, value)
    assert pc["metadata"]["ownerReferences"][0]["name"] == name  # the real name, never hashed


@given(a=subdomains, b=subdomains)
def test_derived_names_stay_distinct(a: str, b: str) -> None:
    if a != b:
        assert priority_class_name(a) != priority_class_name(b)
        assert owner_label_value("WorkloadClass", a) != owner_label_value("WorkloadClass", b)


def test_long_class_name_is_hashed_only_when_needed() -> None:
    short = "summarize"
    assert owner_label_value("WorkloadClass", short) == "workloadclass.summarize"
    assert priority_class_name(short) == "ballast-summarize"
    long = "a-very-long-workload-class-name-for-the-nightly-batch-embeddings"  # 64 chars
    value = owner_label_value("WorkloadClass", long)
    assert len(value) == 63 and value.startswith("workloadclass.a-very-long")
    assert value == owner_label_value("WorkloadClass", long)  # deterministic
    assert priority_class_name(long) == f"ballast-{long}"  # fits in 253: unchanged
    longest = ".".join(["x" * 63] * 3) + "." + "y" * 61  # 253 characters
    assert len(priority_class_name(longest)) <= 253
    assert is_dns_subdomain(priority_class_name(longest))


@given(text=st.text(alphabet="abc.-_", min_size=0, max_size=300), limit=st.integers(11, 300))
def test_bounded_respects_the_limit(text: str, limit: int) -> None:
    out = bounded(text, limit)
    assert len(out) <= limit
    if len(text) <= limit:
        assert out == text
    else:
        assert out[-1].isalnum()
