"""The pure decisions for jobs at window edges (controller/jobs.py), on a FakeClock."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from ballast.clock import FakeClock
from ballast.controller import jobs as j

T0 = dt.datetime(2026, 11, 23, 22, 0, tzinfo=dt.UTC)


def body(
    kind: str = "job",
    *,
    suspend: bool = False,
    held: str | None = None,
    ckpt: str | None = None,
    finished: bool = False,
    cls: str | None = "nightly",
    name: str = "train",
) -> dict[str, Any]:
    k = j.KINDS_BY_KEY[kind]
    ann = {}
    if held:
        ann[j.ANNOTATION_SUSPENDED_BY] = held
    if ckpt:
        ann[j.ANNOTATION_CHECKPOINT] = ckpt
    obj: dict[str, Any] = {
        "apiVersion": k.api_version,
        "kind": k.kind,
        "metadata": {
            "name": name,
            "namespace": "ml",
            "uid": f"uid-{name}",
            "resourceVersion": "7",
            "labels": {"ballast.dev/class": cls} if cls else {},
            "annotations": ann,
        },
        **k.suspend_patch(suspend),
        "status": {"conditions": [{"type": "Complete", "status": "True"}] if finished else []},
    }
    return obj


def view(**kw: Any) -> j.JobView:
    kind = kw.pop("kind", "job")
    v = j.job_view(j.KINDS_BY_KEY[kind], body(kind, **kw))
    assert v is not None
    return v


def W(open_: bool, on_close: str = "Finish", grace: int = 60) -> j.WindowView:
    return j.WindowView("night", open_, on_close, grace)  # type: ignore[arg-type]


def verbs(plan: j.Plan) -> list[str]:
    return [a.verb for a in plan.actions]


def test_the_table_names_each_kinds_suspend_field() -> None:
    assert j.KINDS_BY_KEY["job"].suspend_path == ("spec", "suspend")
    assert j.KINDS_BY_KEY["jobset"].suspend_path == ("spec", "suspend")
    assert j.KINDS_BY_KEY["jobset"].api_version == "jobset.x-k8s.io/v1alpha2"
    for key in ("pytorchjob", "tfjob", "mpijob", "xgboostjob", "paddlejob", "jaxjob"):
        kind = j.KINDS_BY_KEY[key]
        assert kind.api_version == "kubeflow.org/v1"
        assert kind.suspend_path == ("spec", "runPolicy", "suspend")
    assert len(j.KINDS_BY_KEY) == len(j.JOB_KINDS)
    py = j.KINDS_BY_KEY["pytorchjob"]
    assert py.suspend_patch(True) == {"spec": {"runPolicy": {"suspend": True}}}
    assert py.suspended({"spec": {"runPolicy": {"suspend": True}}})
    assert not py.suspended({"spec": {"suspend": True}})


def test_kinds_without_a_served_api_are_skipped() -> None:
    discovered = {"batch/v1": ["jobs", "cronjobs"], "kubeflow.org/v1": ["pytorchjobs"]}
    assert [k.key for k in j.served_kinds(discovered)] == ["job", "pytorchjob"]
    assert [k.key for k in j.served_kinds({})] == []


def test_only_jobs_with_the_class_label_are_seen() -> None:
    assert j.job_view(j.KINDS_BY_KEY["job"], body(cls=None)) is None
    v = view(held="night", ckpt="2026-11-23T22:00:00Z")
    assert v.held_by == "night" and v.checkpoint_at == T0 and v.class_name == "nightly"


CASES: dict[str, dict[str, Any]] = {
    "open: a held job is resumed": dict(
        window=W(True), job=dict(suspend=True, held="night"), want=["resume"]
    ),
    "open: a job the user suspended stays suspended": dict(
        window=W(True), job=dict(suspend=True), want=[]
    ),
    "open: a running job is left alone": dict(window=W(True), job=dict(), want=[]),
    "open: a leftover checkpoint request is withdrawn": dict(
        window=W(True), job=dict(ckpt="2026-11-23T21:59:00Z"), want=["withdraw"]
    ),
    "closed Evict: suspended at once even with running pods": dict(
        window=W(False, "Evict"), job=dict(), pods=("p0",), want=["suspend"], suspended=1
    ),
    "closed Finish: a job with running pods finishes": dict(
        window=W(False, "Finish"), job=dict(), pods=("p0",), want=[], finishing=1
    ),
    "closed Finish: a job that has not started is suspended": dict(
        window=W(False, "Finish"), job=dict(), want=["suspend"], suspended=1
    ),
    "closed Checkpoint: without running pods, suspended at once": dict(
        window=W(False, "Checkpoint"), job=dict(), want=["suspend"], suspended=1
    ),
    "closed Checkpoint: running pods are asked to checkpoint": dict(
        window=W(False, "Checkpoint"),
        job=dict(),
        pods=("p0", "p1"),
        want=["checkpoint"],
        checkpointing=1,
    ),
    "closed Checkpoint: within the grace, nothing more": dict(
        window=W(False, "Checkpoint", 60),
        job=dict(ckpt="2026-11-23T21:59:30Z"),
        pods=("p0",),
        want=[],
        checkpointing=1,
    ),
    "closed Checkpoint: after the grace, suspended": dict(
        window=W(False, "Checkpoint", 60),
        job=dict(ckpt="2026-11-23T21:59:00Z"),
        pods=("p0",),
        want=["suspend"],
        suspended=1,
    ),
    "closed: a held job is counted, not rewritten": dict(
        window=W(False), job=dict(suspend=True, held="night"), want=[], suspended=1
    ),
    "closed: a job the user suspended is neither touched nor counted": dict(
        window=W(False, "Evict"), job=dict(suspend=True), want=[]
    ),
    "closed: a finished job is never touched": dict(
        window=W(False, "Evict"), job=dict(finished=True), want=[]
    ),
    "open: a finished held job is not resumed": dict(
        window=W(True), job=dict(suspend=True, held="night", finished=True), want=[]
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_decisions(case: dict[str, Any]) -> None:
    job = view(**case["job"])
    running = {job.key: case.get("pods", ())}
    plan = j.plan(case["window"], [job], running, {"nightly": "CheckpointRequest"}, T0)
    assert verbs(plan) == case["want"]
    assert plan.suspended == case.get("suspended", 0)
    assert plan.checkpointing == case.get("checkpointing", 0)
    assert plan.finishing == case.get("finishing", 0)


def test_checkpoint_then_suspend_follows_the_clock() -> None:
    clock = FakeClock(T0)
    window = W(False, "Checkpoint", 30)
    job = view()
    first = j.plan(window, [job], {job.key: ("p0", "p1")}, {"nightly": "CheckpointRequest"},
                   clock.now())  # fmt: skip
    [action] = first.actions
    assert action.verb == "checkpoint" and action.pods == ("p0", "p1")
    assert action.stamp == "2026-11-23T22:00:00Z"
    assert first.wake_at == T0 + dt.timedelta(seconds=30)
    patch = j.action_patch(j.KINDS_BY_KEY["job"], action, "night")
    assert patch == {
        "metadata": {"resourceVersion": "7", "annotations": {j.ANNOTATION_CHECKPOINT: action.stamp}}
    }
    # The request is recorded on the job: the next looks count from it.
    recorded = view(ckpt=action.stamp)
    clock.advance(29)
    assert verbs(j.plan(window, [recorded], {recorded.key: ("p0",)}, {}, clock.now())) == []
    clock.advance(1)
    later = j.plan(window, [recorded], {recorded.key: ("p0",)}, {}, clock.now())
    assert verbs(later) == ["suspend"]
    assert j.action_patch(j.KINDS_BY_KEY["job"], later.actions[0], "night") == {
        "metadata": {
            "resourceVersion": "7",
            "annotations": {j.ANNOTATION_SUSPENDED_BY: "night", j.ANNOTATION_CHECKPOINT: None},
        },
        "spec": {"suspend": True},
    }


def test_signal_none_sends_no_request_but_keeps_the_grace() -> None:
    job = view()
    plan = j.plan(W(False, "Checkpoint", 30), [job], {job.key: ("p0",)}, {"nightly": "None"}, T0)
    [action] = plan.actions
    assert action.verb == "checkpoint" and action.pods == ()
    assert "checkpoint requested" not in action.message
    assert plan.wake_at == T0 + dt.timedelta(seconds=30)


def test_resume_clears_the_marks() -> None:
    job = view(kind="pytorchjob", suspend=True, held="night")
    [action] = j.plan(W(True), [job], {}, {}, T0).actions
    assert j.action_patch(j.KINDS_BY_KEY["pytorchjob"], action, "night") == {
        "metadata": {
            "resourceVersion": "7",
            "annotations": {j.ANNOTATION_SUSPENDED_BY: None, j.ANNOTATION_CHECKPOINT: None},
        },
        "spec": {"runPolicy": {"suspend": False}},
    }


def test_needs_pods_only_when_the_decision_depends_on_them() -> None:
    assert j.needs_pods(W(False, "Finish"), view())
    assert j.needs_pods(W(False, "Checkpoint"), view())
    assert not j.needs_pods(W(False, "Evict"), view())
    assert not j.needs_pods(W(True), view())
    assert not j.needs_pods(W(False), view(suspend=True, held="night"))


def test_running_pods_are_bound_live_and_not_finished() -> None:
    def pod(name: str, node: str | None, phase: str, deleting: bool = False) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name}
        if deleting:
            meta["deletionTimestamp"] = "2026-11-23T22:00:00Z"
        return {"metadata": meta, "spec": {"nodeName": node}, "status": {"phase": phase}}

    pods = [
        pod("b", "n1", "Running"),
        pod("a", "n1", "Pending"),
        pod("unbound", None, "Pending"),
        pod("done", "n1", "Succeeded"),
        pod("going", "n1", "Running", deleting=True),
    ]
    assert j.running_pods(pods) == ("a", "b")


def test_release_resumes_only_what_ballast_holds() -> None:
    held, users, finished = (
        view(name="a", suspend=True, held="night"),
        view(name="b", suspend=True),
        view(name="c", suspend=True, held="night", finished=True),
    )
    assert [a.job.name for a in j.release([held, users, finished], "gone")] == ["a"]


def test_bad_annotation_time_is_no_request() -> None:
    assert j.parse_time("yesterday") is None
    assert view(ckpt="not a time").checkpoint_at is None
