"""The mutating rules: what a class pod and a class Job get filled in."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import jsonpatch
import pytest

from ballast.webhook import mutate
from ballast.webhook.admit import PATH_MUTATE_JOBS, PATH_MUTATE_PODS, admit
from ballast.webhook.review import BadReview
from ballast.webhook.view import ClassView, ClusterView, PriorityClassView, class_view

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)  # a Monday, 12:00 UTC
PC = PriorityClassView(300_010, "PreemptLowerPriority")


def make_pod(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns", "labels": {"ballast.dev/class": "chat"}},
        "spec": {
            "schedulerName": "default-scheduler",
            "priority": 0,
            "containers": [{"name": "main", "image": "x"}],
            **spec,
        },
    }


def chat(**spec: Any) -> ClassView:
    return class_view("chat", {"tier": "Interactive", **spec})


def patched(obj: dict[str, Any], m: mutate.Mutation) -> dict[str, Any]:
    return jsonpatch.apply_patch(copy.deepcopy(obj), m.ops)  # type: ignore[no-any-return]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env") or ()}


def test_a_bare_class_pod_gets_scheduler_priority_toleration_and_env() -> None:
    cls = chat(nodePool={"name": "serving"}, batching={"maxBatchSize": 16, "maxQueueDelayMs": 5})
    pod = make_pod()
    out = patched(pod, mutate.pod_mutation(pod, cls, PC, "ballast"))
    spec = out["spec"]
    assert spec["schedulerName"] == "ballast"
    assert spec["priorityClassName"] == "ballast-chat"
    assert spec["priority"] == 300_010
    assert spec["preemptionPolicy"] == "PreemptLowerPriority"
    assert spec["tolerations"] == [
        {"key": "ballast.dev/pool", "operator": "Equal", "value": "serving", "effect": "NoSchedule"}
    ]
    assert env_of(spec["containers"][0]) == {
        "BALLAST_MAX_BATCH_SIZE": "16",
        "BALLAST_MAX_QUEUE_DELAY_MS": "5",
    }


def test_mutation_is_idempotent() -> None:
    cls = chat(nodePool={"name": "serving"}, batching={"maxBatchSize": 16})
    pod = make_pod()
    once = patched(pod, mutate.pod_mutation(pod, cls, PC, "ballast"))
    again = mutate.pod_mutation(once, cls, PC, "ballast")
    assert again.ops == []


def test_env_the_user_set_wins_and_every_container_gets_the_rest() -> None:
    cls = chat(batching={"maxBatchSize": 16, "maxQueueDelayMs": 5})
    pod = make_pod(
        containers=[
            {"name": "a", "env": [{"name": "BALLAST_MAX_BATCH_SIZE", "value": "4"}]},
            {"name": "b", "env": [{"name": "OTHER", "value": "1"}]},
        ],
        initContainers=[{"name": "init"}],
    )
    spec = patched(pod, mutate.pod_mutation(pod, cls, PC, "ballast"))["spec"]
    assert env_of(spec["containers"][0]) == {
        "BALLAST_MAX_BATCH_SIZE": "4",
        "BALLAST_MAX_QUEUE_DELAY_MS": "5",
    }
    assert env_of(spec["containers"][1]) == {
        "OTHER": "1",
        "BALLAST_MAX_BATCH_SIZE": "16",
        "BALLAST_MAX_QUEUE_DELAY_MS": "5",
    }
    assert env_of(spec["initContainers"][0])["BALLAST_MAX_BATCH_SIZE"] == "16"


def test_no_batching_no_pool_no_env_no_toleration() -> None:
    pod = make_pod()
    spec = patched(pod, mutate.pod_mutation(pod, chat(), PC, "ballast"))["spec"]
    assert "tolerations" not in spec
    assert "env" not in spec["containers"][0]


@pytest.mark.parametrize(
    "existing",
    [
        {"key": "ballast.dev/pool", "operator": "Exists"},
        {"operator": "Exists"},
        {"key": "ballast.dev/pool", "value": "serving", "effect": "NoSchedule"},
    ],
)
def test_an_existing_toleration_of_the_pool_is_kept_alone(existing: dict[str, str]) -> None:
    pod = make_pod(tolerations=[existing])
    m = mutate.pod_mutation(pod, chat(nodePool={"name": "serving"}), PC, "ballast")
    assert not [o for o in m.ops if o["path"].startswith("/spec/tolerations")]


def test_a_toleration_of_another_pool_gets_the_class_pool_appended() -> None:
    other = {"key": "ballast.dev/pool", "value": "batch", "effect": "NoSchedule"}
    pod = make_pod(tolerations=[other])
    spec = patched(pod, mutate.pod_mutation(pod, chat(nodePool={"name": "serving"}), PC, "b"))[
        "spec"
    ]
    assert [t["value"] for t in spec["tolerations"]] == ["batch", "serving"]


def test_unknown_priority_class_drops_priority_for_the_api_server_to_fill() -> None:
    pod = make_pod(preemptionPolicy="Never")
    m = mutate.pod_mutation(pod, chat(), None, "ballast")
    spec = patched(pod, m)["spec"]
    assert spec["priorityClassName"] == "ballast-chat"
    assert "priority" not in spec and "preemptionPolicy" not in spec
    assert any("ballast-chat" in w for w in m.warnings)


def test_a_user_priority_class_is_replaced_by_the_class_one() -> None:
    pod = make_pod(priorityClassName="high", priority=1000)
    spec = patched(pod, mutate.pod_mutation(pod, chat(), PC, "ballast"))["spec"]
    assert (spec["priorityClassName"], spec["priority"]) == ("ballast-chat", 300_010)


# ------------------------------------------------------------------------ jobs
NIGHTLY = {"schedule": "0 22 * * *", "duration": "8h", "timeZone": "UTC"}
NOON = {"schedule": "0 11 * * *", "duration": "2h", "timeZone": "UTC"}


def make_job(labels_on: str = "job", **spec: Any) -> dict[str, Any]:
    labels = {"ballast.dev/class": "embed"}
    return {
        "metadata": {
            "name": "j",
            "namespace": "ns",
            **({"labels": labels} if labels_on == "job" else {}),
        },
        "spec": {
            "template": {
                "metadata": {"labels": labels} if labels_on == "template" else {},
                "spec": {"containers": [{"name": "c"}], "restartPolicy": "Never"},
            },
            **spec,
        },
    }


EMBED = class_view("embed", {"tier": "Offline", "window": "nightly"})

JOB_CASES = {
    # name: (window spec, job spec extra, want suspended by webhook)
    "closed window suspends": (NIGHTLY, {}, True),
    "open window leaves it": (NOON, {}, False),
    "already suspended is left": (NIGHTLY, {"suspend": True}, False),
    "missing window is not suspended": (None, {}, False),
    "uncomputable window is not suspended": (
        {"schedule": "0 0 30 2 *", "duration": "1h", "timeZone": "UTC"},
        {},
        False,
    ),
}


@pytest.mark.parametrize("name", JOB_CASES)
def test_job_suspension(name: str) -> None:
    window, extra, want = JOB_CASES[name]
    job = make_job(**extra)
    m = mutate.job_mutation(job, EMBED, window, NOW)
    out = patched(job, m)
    if want:
        assert out["spec"]["suspend"] is True
        assert out["metadata"]["annotations"]["ballast.dev/suspended-by-window"] == "nightly"
        assert any("2026-06-01T22:00:00Z" in w for w in m.warnings)
    else:
        assert m.ops == []


def test_class_without_window_never_suspends() -> None:
    job = make_job()
    assert mutate.job_mutation(job, class_view("embed", {"tier": "Offline"}), None, NOW).ops == []


def test_a_class_label_only_on_the_template_does_not_count() -> None:
    # The Job window controller would never resume such a Job.
    assert mutate.class_label(make_job(labels_on="template")) == ""
    assert mutate.class_label(make_job()) == "embed"


# ----------------------------------------------------------------- admit/review
def review(obj: dict[str, Any], namespace: str = "ns") -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "u1", "operation": "CREATE", "namespace": namespace, "object": obj},
    }


def decode(resp: dict[str, Any]) -> list[dict[str, Any]]:
    import base64
    import json

    r = resp["response"]
    return json.loads(base64.b64decode(r["patch"])) if "patch" in r else []


def view_with(*objs: tuple[str, dict[str, Any]]) -> ClusterView:
    v = ClusterView()
    for kind, obj in objs:
        v.apply(kind, "ADDED", obj)
    return v


def test_admit_routes_pods_and_jobs() -> None:
    v = view_with(
        ("workloadclasses", {"metadata": {"name": "chat"}, "spec": {"tier": "Interactive"}}),
        (
            "workloadclasses",
            {"metadata": {"name": "embed"}, "spec": {"tier": "Offline", "window": "nightly"}},
        ),
        ("batchwindows", {"metadata": {"name": "nightly"}, "spec": NIGHTLY}),
        ("priorityclasses", {"metadata": {"name": "ballast-chat"}, "value": 300_000}),
    )
    kw: dict[str, Any] = {
        "scheduler_name": "ballast",
        "now": NOW,
        "lookup_namespace": lambda _: None,
    }
    resp = admit(PATH_MUTATE_PODS, review(make_pod()), v, **kw)
    assert resp["response"]["uid"] == "u1" and resp["response"]["allowed"]
    ops = {o["path"]: o.get("value") for o in decode(resp)}
    assert ops["/spec/schedulerName"] == "ballast" and ops["/spec/priority"] == 300_000
    resp = admit(PATH_MUTATE_JOBS, review(make_job()), v, **kw)
    assert {o["path"] for o in decode(resp)} >= {"/spec/suspend"}


def test_admit_unknown_class_still_goes_to_ballast() -> None:
    resp = admit(
        PATH_MUTATE_PODS,
        review(make_pod()),
        ClusterView(),
        scheduler_name="ballast",
        now=NOW,
        lookup_namespace=lambda _: None,
    )
    assert decode(resp) == [{"op": "add", "path": "/spec/schedulerName", "value": "ballast"}]
    assert "does not exist" in resp["response"]["warnings"][0]


def test_admit_rejects_what_is_not_a_review() -> None:
    kw: dict[str, Any] = {"scheduler_name": "b", "now": NOW, "lookup_namespace": lambda _: None}
    with pytest.raises(BadReview):
        admit(PATH_MUTATE_PODS, {"kind": "Pod"}, ClusterView(), **kw)
    with pytest.raises(KeyError):
        admit("/nope", review(make_pod()), ClusterView(), **kw)
