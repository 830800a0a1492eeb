"""PodDisruptionBudget builders and the disruptionBudget API field (controller/disruption.py)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from ballast.api.crd import structural_schema
from ballast.api.v1alpha1.workloadclass import WorkloadClassSpec
from ballast.controller import disruption as d


def spec(**preemption: Any) -> WorkloadClassSpec:
    return WorkloadClassSpec.model_validate({"tier": "Interactive", "preemption": preemption})


def test_default_budget_is_one_pod_at_a_time_and_never_blocks_on_unhealthy_pods() -> None:
    pdb = d.build_pdb("chat", "uid-1", spec(preemptible=False), "serving")
    assert pdb["apiVersion"] == "policy/v1" and pdb["kind"] == "PodDisruptionBudget"
    assert pdb["metadata"]["name"] == "ballast-chat"
    assert pdb["metadata"]["namespace"] == "serving"
    assert pdb["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "ballast",
        "ballast.dev/owner": "workloadclass.chat",
        "ballast.dev/class": "chat",
    }
    assert pdb["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert pdb["metadata"]["ownerReferences"][0]["kind"] == "WorkloadClass"
    assert pdb["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": {"ballast.dev/class": "chat"}},
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
    }


@pytest.mark.parametrize(
    ("budget", "want"),
    [
        ({"maxUnavailable": "25%"}, {"maxUnavailable": "25%"}),
        ({"maxUnavailable": 0}, {"maxUnavailable": 0}),
        ({"minAvailable": 2}, {"minAvailable": 2}),
        ({"minAvailable": "50%"}, {"minAvailable": "50%"}),
    ],
)
def test_class_sets_the_budget(budget: dict[str, Any], want: dict[str, Any]) -> None:
    s = spec(preemptible=False, disruptionBudget=budget)
    assert d.budget(s) == want


@pytest.mark.parametrize(
    "budget",
    [
        {},
        {"maxUnavailable": 1, "minAvailable": 1},
        {"maxUnavailable": -1},
        {"maxUnavailable": "101%"},
        {"minAvailable": "half"},
        {"minAvailable": "5"},
    ],
)
def test_invalid_budgets_are_rejected(budget: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        spec(preemptible=False, disruptionBudget=budget)


def test_schema_is_int_or_string_with_cel() -> None:
    schema = structural_schema(WorkloadClassSpec)["properties"]["preemption"]
    db = schema["properties"]["disruptionBudget"]
    assert db["properties"]["maxUnavailable"]["x-kubernetes-int-or-string"] is True
    assert any("exactly one" in r["message"] for r in db["x-kubernetes-validations"])
    assert any(
        r.get("fieldPath") == ".disruptionBudget" for r in schema["x-kubernetes-validations"]
    )


def test_preemptible_classes_and_unlabellable_names_get_no_pdb() -> None:
    assert not d.wants_pdb("batch", spec())
    assert d.wants_pdb("chat", spec(preemptible=False))
    assert not d.wants_pdb("x" * 64, spec(preemptible=False))


def test_plan_applies_missing_keeps_equal_deletes_extra() -> None:
    s = spec(preemptible=False)
    same = d.build_pdb("chat", "u", s, "a")
    stale = d.build_pdb("chat", "u", s, "b")
    stale["spec"]["maxUnavailable"] = 3
    gone = d.build_pdb("chat", "u", s, "old")
    where = [d.Footprint(ns, None) for ns in ("a", "b", "c")]
    plan = d.plan_pdbs("chat", "u", s, where, {"a": same, "b": stale, "old": gone})
    assert [p["metadata"]["namespace"] for p in plan.apply] == ["b", "c"]
    assert plan.keep == ["a"]
    assert plan.delete == ["old"]


def test_plan_removes_everything_when_preemptible_or_deleted() -> None:
    s = spec(preemptible=False)
    actual = {"a": d.build_pdb("chat", "u", s, "a")}
    where = [d.Footprint("a", None)]
    assert d.plan_pdbs("chat", "u", spec(), where, actual).delete == ["a"]
    assert d.plan_pdbs("chat", "u", None, where, actual).delete == ["a"]


def test_pods_without_a_scalable_controller_get_min_available_n_minus_one() -> None:
    owner = [{"kind": "ReplicaSet", "controller": True}]
    assert d.is_scalable_owner(owner)
    assert not d.is_scalable_owner([{"kind": "Job", "controller": True}])
    assert not d.is_scalable_owner(None)
    fps = d.footprints([("a", True), ("a", True), ("b", True), ("b", False), ("c", False)])
    assert fps == {d.Footprint("a", None), d.Footprint("b", 2), d.Footprint("c", 1)}
    s = spec(preemptible=False)
    assert d.build_pdb("chat", "u", s, "b", 2)["spec"]["minAvailable"] == 1
    assert d.build_pdb("chat", "u", s, "c", 1)["spec"]["minAvailable"] == 0
    assert "maxUnavailable" not in d.build_pdb("chat", "u", s, "c", 1)["spec"]
    # A budget the class sets is written as it is.
    own = spec(preemptible=False, disruptionBudget={"maxUnavailable": 2})
    assert d.build_pdb("chat", "u", own, "c", 1)["spec"]["maxUnavailable"] == 2


def test_drift_sees_budget_kind_switch_labels_and_owner() -> None:
    s = spec(preemptible=False)
    desired = d.build_pdb("chat", "u", s, "a")
    assert d.pdb_drift(desired, None) == "missing"
    switched = d.build_pdb("chat", "u", s, "a")
    switched["spec"]["minAvailable"] = 1
    assert d.pdb_drift(desired, switched) == "spec"
    relabelled = d.build_pdb("chat", "u", s, "a")
    relabelled["metadata"]["labels"]["ballast.dev/class"] = "other"
    assert d.pdb_drift(desired, relabelled) == "metadata"
    orphan = d.build_pdb("chat", "u", s, "a")
    orphan["metadata"]["ownerReferences"] = []
    assert d.pdb_drift(desired, orphan) == "metadata"
    server = d.build_pdb("chat", "u", s, "a")
    server["status"] = {"currentHealthy": 1}
    server["metadata"]["uid"] = "pdb-uid"
    assert d.pdb_drift(desired, server) is None


def test_namespace_selector_narrows_the_namespaces() -> None:
    labels = {"prod": {"env": "prod"}, "dev": {"env": "dev"}, "gone": None}
    sel = {"matchLabels": {"env": "prod"}}
    assert d.admitted_namespaces(["dev", "prod", "gone"], sel, labels) == ["prod"]
    assert d.admitted_namespaces(["dev", "prod"], None, labels) == ["dev", "prod"]
    broken = {"matchExpressions": [{"key": "env", "operator": "Near"}]}
    assert d.admitted_namespaces(["dev", "prod"], broken, labels) == []


def test_long_class_names_get_bounded_pdb_names() -> None:
    name = d.pdb_name("c" * 300)
    assert len(name) <= 253 and name.startswith("ballast-")
