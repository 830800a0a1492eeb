"""WorkloadClass reconciliation against an in-memory PriorityClass store.

The store enforces what the API server enforces for PriorityClasses
(``value`` and ``preemptionPolicy`` are immutable: a 422 on update; a uid
precondition on delete), so the replace path, the bounded retry loop and the
conditions can be checked without a cluster. The same scenarios run on the
real API server in tests/integration/operator/test_reconcile.py.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import itertools
from types import SimpleNamespace
from typing import Any

from ballast.clock import FakeClock
from ballast.controller import workloadclass as logic
from ballast.controller.builders import owner_label_value, priority_class_name
from ballast.controller.handlers import priorityclass as handler
from ballast.controller.handlers.priorityclass import owning_class
from ballast.kube.raw import KubeError

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
PATH = "/apis/scheduling.k8s.io/v1/priorityclasses/"


class FakePriorityClasses:
    """Just enough of the API server for PriorityClasses."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.uids = itertools.count(1)
        self.calls: list[str] = []
        self.apply_errors: list[KubeError] = []
        self.mangle: dict[str, Any] = {}  # fields the "server" forces on every write

    def _name(self, path: str) -> str:
        return path.removeprefix(PATH)

    def get(self, path: str) -> dict[str, Any] | None:
        self.calls.append("get")
        obj = self.objects.get(self._name(path))
        return copy.deepcopy(obj) if obj else None

    def apply(self, path: str, obj: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.calls.append("apply")
        if self.apply_errors:
            raise self.apply_errors.pop(0)
        name = self._name(path)
        live = self.objects.get(name)
        new = copy.deepcopy(obj) | self.mangle
        if new.get("globalDefault") is False:
            del new["globalDefault"]  # the real server omits it (omitempty)
        if live is not None:
            if live["value"] != new["value"]:
                raise KubeError(
                    422,
                    "Unprocessable",
                    {"message": "value: Forbidden: may not be changed in an update."},
                )
            if live.get("preemptionPolicy") != new.get("preemptionPolicy"):
                raise KubeError(
                    422,
                    "Unprocessable",
                    {"message": "preemptionPolicy: Invalid value: field is immutable"},
                )
            new["metadata"]["uid"] = live["metadata"]["uid"]
        else:
            new["metadata"]["uid"] = f"pc-{next(self.uids)}"
        self.objects[name] = new
        return copy.deepcopy(new)

    def delete(self, path: str, *, uid: str | None = None, **_: Any) -> bool:
        self.calls.append("delete")
        name = self._name(path)
        live = self.objects.get(name)
        if live is None:
            return False
        if uid and live["metadata"]["uid"] != uid:
            raise KubeError(
                409, "Conflict", {"message": "Precondition failed: UID in precondition"}
            )
        del self.objects[name]
        return True


def run(
    kube: FakePriorityClasses, spec: dict[str, Any], actual: Any = "live", old: Any = None
) -> logic.Outcome:
    if actual == "live":
        actual = kube.get(PATH + "ballast-summarize")
    return logic.reconcile(
        kube,  # type: ignore[arg-type]
        name="summarize",
        uid="wlc-uid",
        generation=2,
        spec=spec,
        old_status=old,
        actual_pc=actual,
        window_exists=None,
        now=NOW,
    )


def ready(outcome: logic.Outcome, type_: str = "Ready") -> dict[str, Any]:
    return next(c for c in outcome.status["conditions"] if c["type"] == type_)


NEARLINE = {"tier": "Nearline", "priority": 10, "preemption": {"policy": "LowerTier"}}
NEVER = {"tier": "Nearline", "priority": 10, "preemption": {"policy": "Never"}}


def test_policy_change_replaces_the_priorityclass() -> None:
    kube = FakePriorityClasses()
    first = run(kube, NEARLINE)
    assert ready(first)["status"] == "True"
    old_uid = kube.objects["ballast-summarize"]["metadata"]["uid"]
    second = run(kube, NEVER)
    live = kube.objects["ballast-summarize"]
    assert live["preemptionPolicy"] == "Never"
    assert live["metadata"]["uid"] != old_uid
    assert ready(second)["status"] == "True" and second.retry is None
    assert [e[1] for e in second.events] == ["PriorityClassReplaced"]
    assert "preemptionPolicy PreemptLowerPriority -> Never" in second.events[0][2]


def test_stale_view_meets_a_422_and_takes_the_replace_path() -> None:
    kube = FakePriorityClasses()
    run(kube, NEARLINE)
    # The caller's cache has not seen the object yet: apply, 422, re-read, replace.
    outcome = run(kube, NEVER, actual=None)
    assert kube.objects["ballast-summarize"]["preemptionPolicy"] == "Never"
    assert ready(outcome)["status"] == "True"
    assert kube.calls[-4:] == ["apply", "get", "delete", "apply"]


def test_value_change_replaces() -> None:
    kube = FakePriorityClasses()
    run(kube, NEARLINE)
    outcome = run(kube, {**NEARLINE, "priority": 11}, actual=None)
    assert kube.objects["ballast-summarize"]["value"] == 200_011
    assert ready(outcome)["status"] == "True"


def test_a_server_that_never_converges_is_bounded_and_reported() -> None:
    kube = FakePriorityClasses()
    kube.mangle = {"description": "rewritten by someone's mutating webhook"}
    outcome = run(kube, NEARLINE)
    assert kube.calls.count("apply") == logic.MAX_SYNC_ATTEMPTS  # no recursion, no loop
    pc = ready(outcome, "PriorityClassReady")
    assert (pc["status"], pc["reason"]) == ("False", "PriorityClassNotConverged")
    assert ready(outcome)["status"] == "False"
    assert outcome.retry
    assert [e[:2] for e in outcome.events] == [("Warning", "PriorityClassNotConverged")]


def test_api_errors_become_ready_false_with_one_warning() -> None:
    kube = FakePriorityClasses()
    kube.apply_errors = [KubeError(503, "Service Unavailable", {"message": "etcd is sad"})]
    first = run(kube, NEARLINE)
    assert (ready(first)["status"], ready(first)["reason"]) == ("False", "PriorityClassSyncFailed")
    assert "etcd is sad" in ready(first)["message"]
    assert first.retry and [e[0] for e in first.events] == ["Warning"]
    # The same failure again (kopf's retry) does not repeat the Warning.
    kube.apply_errors = [KubeError(503, "Service Unavailable", {"message": "etcd is sad"})]
    again = run(kube, NEARLINE, old=first.status)
    assert again.retry and again.events == []
    # And the retry that works turns Ready back to True.
    healed = run(kube, NEARLINE, old=again.status)
    assert ready(healed)["status"] == "True" and healed.retry is None


def test_forbidden_is_reported_as_rejected() -> None:
    kube = FakePriorityClasses()
    kube.apply_errors = [KubeError(403, "Forbidden", {"message": "cannot patch priorityclasses"})]
    outcome = run(kube, NEARLINE)
    assert ready(outcome)["reason"] == "PriorityClassRejected"
    assert outcome.retry


def test_transport_errors_are_reported_not_raised() -> None:
    kube = FakePriorityClasses()

    def broken(*_: Any, **__: Any) -> Any:
        raise TimeoutError("read timed out")

    kube.apply = broken  # type: ignore[method-assign]
    outcome = run(kube, NEARLINE)
    assert ready(outcome)["reason"] == "PriorityClassSyncFailed"
    assert "read timed out" in ready(outcome)["message"]


def test_long_class_name_gets_valid_labels() -> None:
    kube = FakePriorityClasses()
    name = "n" * 60
    outcome = logic.reconcile(
        kube,  # type: ignore[arg-type]
        name=name,
        uid="u",
        generation=1,
        spec=NEARLINE,
        old_status=None,
        actual_pc=None,
        window_exists=None,
        now=NOW,
    )
    assert ready(outcome)["status"] == "True"
    (pc,) = kube.objects.values()
    assert pc["metadata"]["labels"]["ballast.dev/owner"] == owner_label_value("WorkloadClass", name)
    assert len(pc["metadata"]["labels"]["ballast.dev/owner"]) <= 63


def test_someone_elses_priorityclass_is_a_name_conflict() -> None:
    kube = FakePriorityClasses()
    foreign = {"metadata": {"name": "ballast-summarize", "uid": "x"}, "value": 5}
    outcome = run(kube, NEARLINE, actual=foreign)
    assert ready(outcome)["reason"] == "NameConflict"
    assert kube.calls == []


def test_drift_repair_retries_with_backoff_until_it_works(monkeypatch: Any) -> None:
    clock = FakeClock(NOW)
    results = [RuntimeError("apiserver down"), logic.Outcome({}, retry="422"), logic.Outcome({})]
    calls: list[float] = []

    def fake_reconcile(*_: Any, **__: Any) -> logic.Outcome:
        calls.append(clock.monotonic())
        result = results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    monkeypatch.setattr(handler.logic, "reconcile_from_api", fake_reconcile)
    memo = SimpleNamespace(kube=FakePriorityClasses(), clock=clock)
    asyncio.run(handler.repair_with_backoff(memo, "summarize"))
    assert calls == [0.0, 1.0, 3.0]  # waited 1 s, then 2 s: exponential, on the injected clock


def test_drift_repair_gives_up_after_a_bounded_number_of_attempts(monkeypatch: Any) -> None:
    calls = []

    def failing(*_: Any, **__: Any) -> logic.Outcome:
        calls.append(1)
        return logic.Outcome({}, retry="still refused")

    monkeypatch.setattr(handler.logic, "reconcile_from_api", failing)
    memo = SimpleNamespace(kube=FakePriorityClasses(), clock=FakeClock(NOW))
    asyncio.run(handler.repair_with_backoff(memo, "summarize"))
    assert len(calls) == handler.DRIFT_REPAIR_ATTEMPTS


def test_owning_class_is_found_forwards_for_hashed_names() -> None:
    long = "z" * 250
    pc_name = priority_class_name(long)
    labels = {"ballast.dev/owner": owner_label_value("WorkloadClass", long)}
    by_ref = {"ownerReferences": [{"kind": "WorkloadClass", "name": long}], "labels": labels}
    assert owning_class(pc_name, by_ref, []) == long
    assert owning_class(pc_name, {"labels": labels}, ["other", long]) == long  # refs stripped
    foreign = {"labels": {"ballast.dev/owner": "workloadclass.someone-else"}}
    assert owning_class(pc_name, foreign, [long]) is None
    assert owning_class("ballast-unknown", {}, [long]) is None


def test_selector_that_cannot_match_is_an_invalid_spec() -> None:
    """What the schema cannot check cheaply (map keys) the operator reports."""
    kube = FakePriorityClasses()
    for selector in (
        {"matchLabels": {"-team-": "search"}},
        {"matchExpressions": [{"key": "team", "operator": "In"}]},
        {"matchExpressions": [{"key": "team", "operator": "Exists", "values": ["x"]}]},
    ):
        outcome = run(kube, {**NEARLINE, "namespaceSelector": selector})
        cond = ready(outcome)
        assert (cond["status"], cond["reason"]) == ("False", "InvalidSpec"), selector
        assert "spec.namespaceSelector" in cond["message"]
    assert kube.calls.count("apply") == 0
