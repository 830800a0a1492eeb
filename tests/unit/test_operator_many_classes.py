"""What keeps the operator's per-event work and memory flat with thousands of classes."""

from __future__ import annotations

import asyncio
import copy
import time
from types import SimpleNamespace
from typing import Any

from ballast.controller.handlers.priorityclass import priorityclass_index
from ballast.controller.slo_rules_sync import RulesSync, class_slos

SLO = {"tier": "Interactive", "slo": {"latencyP95Ms": 500, "latencyP99Ms": 1000}}


class NoApi:
    """A Kube that must not be called."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected API call {name}")


def parsed(spec: dict[str, Any]) -> Any:
    return class_slos({"c": spec}).get("c")


def test_slo_changed_only_when_a_class_slo_moves() -> None:
    rules = RulesSync(NoApi(), "ns")  # type: ignore[arg-type]
    # Nothing written yet: an event asks for a ConfigMap sync; after a failed
    # write (a missing namespace), one per retry period, not one per event.
    assert rules.slo_changed("a", None)
    assert not rules.slo_changed("b", None)  # the try is under way or failed just now
    rules._next_try = time.monotonic() - 1  # the retry period is over
    assert rules.slo_changed("b", None)
    assert not rules.slo_changed("c", None)
    rules._configmap = "groups: []\n"  # written
    assert not rules.slo_changed("a", None)  # a class without an slo, again
    assert not rules.slo_changed("b", None)  # another one: the rules cannot change
    assert rules.slo_changed("a", parsed(SLO))  # gains an slo
    assert not rules.slo_changed("a", parsed(SLO))  # a status write: same slo
    changed = {**SLO, "slo": {"latencyP95Ms": 400, "latencyP99Ms": 1000}}
    assert rules.slo_changed("a", parsed(changed))
    # A spec made invalid elsewhere drops its rules: that is a change too.
    assert parsed({**changed, "tier": "Urgent"}) is None
    assert rules.slo_changed("a", None)
    assert rules.slo_changed("a", parsed(changed))
    assert rules.slo_changed("a", None)  # deleted
    assert not rules.slo_changed("a", None)


def test_priorityclass_index_keeps_only_what_reconciling_reads() -> None:
    body = {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {
            "name": "ballast-x",
            "uid": "u1",
            "resourceVersion": "7",
            "labels": {"app.kubernetes.io/managed-by": "ballast"},
            "ownerReferences": [{"uid": "w1", "kind": "WorkloadClass", "name": "x"}],
            "managedFields": [{"manager": "ballast", "fieldsV1": {"f:value": {}}}] * 3,
            "annotations": {"note": "x" * 1000},
        },
        "value": 1000,
        "preemptionPolicy": "Never",
        "description": "d",
        "globalDefault": False,
    }
    entry = asyncio.run(priorityclass_index(name="ballast-x", body=body))["ballast-x"]  # type: ignore[arg-type]
    assert entry == {
        "value": 1000,
        "metadata": {
            "name": "ballast-x",
            "uid": "u1",
            "labels": {"app.kubernetes.io/managed-by": "ballast"},
            "ownerReferences": [{"uid": "w1", "kind": "WorkloadClass", "name": "x"}],
        },
        "preemptionPolicy": "Never",
        "description": "d",
        "globalDefault": False,
    }


def test_slo_runtime_is_one_per_operator_not_one_per_class() -> None:
    from ballast.controller.handlers import slo

    root = SimpleNamespace(kube=NoApi())
    # kopf gives every object a shallow copy of the operator's memo.
    first, second = copy.copy(root), copy.copy(root)
    assert slo._runtime(first) is slo._runtime(second)
    assert slo._runtime(first).rules is slo._runtime(root).rules
    other = SimpleNamespace(kube=NoApi())  # another operator in the same process
    assert slo._runtime(other) is not slo._runtime(root)


def test_the_index_view_of_a_pc_the_server_returned_has_no_drift() -> None:
    """The server omits ``globalDefault: false``: the index's copy of a correct
    PriorityClass must not look drifted (it did: every resync re-applied every
    class's PriorityClass)."""
    from ballast.api.v1alpha1.workloadclass import WorkloadClassSpec
    from ballast.controller.builders import build_priority_class, priority_class_drift

    desired = build_priority_class(
        "x", "w1", WorkloadClassSpec.model_validate({"tier": "Nearline"})
    )
    served = {k: v for k, v in desired.items() if k != "globalDefault"}
    served["metadata"] = {**desired["metadata"], "uid": "u1", "resourceVersion": "7"}
    entry = asyncio.run(priorityclass_index(name="ballast-x", body=served))["ballast-x"]  # type: ignore[arg-type]
    assert "globalDefault" not in entry
    assert priority_class_drift(desired, entry) is None
    # A null field (a client that writes one) means the server's default too.
    assert priority_class_drift(desired, {**entry, "globalDefault": None}) is None
