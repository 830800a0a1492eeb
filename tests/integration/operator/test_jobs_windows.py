"""Jobs at BatchWindow edges, with the real Job controller (kube-controller-manager).

Windows open and close within seconds (``extraOpenings`` a few seconds away
from now). Pods that must keep running are bound (``nodeName``) to a node
that kwok does not manage, and the test plays its kubelet: kwok's default
pod stages complete a Job's pods the instant they run, so a Job that is
still running at close needs a kubelet that keeps them running. Pods of a
Job that has not started are left unbound (no scheduler runs here).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kutil import ready, wait_for

from ballast.api import wellknown as wk
from ballast.controller.jobs import ANNOTATION_SUSPENDED_BY
from ballast.kube.raw import BATCHWINDOWS, NODES, PODS, WORKLOADCLASSES, Kube, KubeError, Resource

JOBS = Resource("batch", "v1", "jobs", True)


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def stamp(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def window(
    kube: Kube, name: str, opens: dt.datetime, seconds: int, on_close: str, grace: int = 0
) -> None:
    kube.create(BATCHWINDOWS.path(), {
        "apiVersion": "ballast.dev/v1alpha1", "kind": "BatchWindow", "metadata": {"name": name},
        "spec": {
            # The cron part never fires near the test (1 January); only the extra opening counts.
            "schedule": "0 0 1 1 *", "duration": "1h", "onClose": on_close,
            "gracePeriodSeconds": grace,
            "extraOpenings": [{"start": stamp(opens), "duration": f"{seconds}s"}],
        },
    })  # fmt: skip


def windowed_class(kube: Kube, name: str, win: str, **preemption: Any) -> None:
    kube.create(WORKLOADCLASSES.path(), {
        "apiVersion": "ballast.dev/v1alpha1", "kind": "WorkloadClass", "metadata": {"name": name},
        "spec": {"tier": "Offline", "window": win, "preemption": preemption},
    })  # fmt: skip
    # The operator knows the class (and its window) before its Jobs appear.
    wait_for(lambda: ready(kube, WORKLOADCLASSES, name), timeout=30, what=f"class {name} Ready")


def job(
    kube: Kube,
    ns: str,
    name: str,
    cls: str,
    *,
    node: str | None,
    parallelism: int = 1,
    suspend: bool = False,
) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "schedulerName": "ballast",
        "terminationGracePeriodSeconds": 0,
        "tolerations": [{"operator": "Exists"}],
        "containers": [{"name": "main", "image": "registry.local/train:1"}],
    }
    if node:
        pod_spec["nodeName"] = node
    body = {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": ns, "labels": {wk.LABEL_CLASS: cls}},
        "spec": {
            "suspend": suspend, "parallelism": parallelism, "completions": parallelism,
            "backoffLimit": 0,
            "template": {"metadata": {"labels": {wk.LABEL_CLASS: cls}}, "spec": pod_spec},
        },
    }  # fmt: skip
    return kube.create(JOBS.path(namespace=ns), body)


@pytest.fixture
def node(kube: Kube) -> Iterator[str]:
    """A Node no kubelet (and no kwok) manages: the test is its kubelet."""
    name = uniq("static")
    kube.create(NODES.path(), {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    yield name
    kube.delete(NODES.path(name))


def pods_of(kube: Kube, ns: str, job_name: str) -> list[dict[str, Any]]:
    items = kube.list(PODS.path(namespace=ns), labelSelector=f"job-name={job_name}")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def run_pods(kube: Kube, ns: str, job_name: str) -> list[str]:
    """Act as the kubelet: mark the job's bound pods Running; returns the running ones."""
    running = []
    for p in pods_of(kube, ns, job_name):
        if not p["spec"].get("nodeName"):
            continue
        if (p.get("status") or {}).get("phase") != "Running":
            try:
                kube.patch(PODS.path(p["metadata"]["name"], ns, sub="status"), {"status": {
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "containerStatuses": [{
                        "name": "main", "image": "registry.local/train:1", "imageID": "",
                        "ready": True, "restartCount": 0, "started": True,
                        "state": {"running": {"startedAt": stamp(dt.datetime.now(dt.UTC))}},
                    }],
                }})  # fmt: skip
            except KubeError as exc:
                if not exc.not_found:
                    raise
                continue
        running.append(p["metadata"]["name"])
    return running


def job_obj(kube: Kube, ns: str, name: str) -> dict[str, Any]:
    obj = kube.get(JOBS.path(name, ns))
    assert obj is not None
    return obj


def suspended_by_ballast(kube: Kube, ns: str, name: str) -> dict[str, Any] | None:
    obj = job_obj(kube, ns, name)
    held = (obj["metadata"].get("annotations") or {}).get(ANNOTATION_SUSPENDED_BY)
    return obj if obj["spec"].get("suspend") is True and held else None


def window_status(kube: Kube, name: str) -> dict[str, Any]:
    return (kube.get(BATCHWINDOWS.path(name)) or {}).get("status") or {}


def event_reasons(kube: Kube, ns: str, name: str) -> set[str]:
    items = kube.list(
        f"/api/v1/namespaces/{ns}/events", fieldSelector=f"involvedObject.name={name}"
    )["items"]
    return {e.get("reason", "") for e in items}


def class_event_reasons(kube: Kube, cls: str) -> set[str]:
    items = kube.list(
        "/api/v1/namespaces/default/events",
        fieldSelector=f"involvedObject.name={cls},involvedObject.kind=WorkloadClass",
    )["items"]
    return {e.get("reason", "") for e in items}


def test_job_created_while_closed_is_held_and_resumed_at_opening(
    operator: object, kube: Kube, namespace: str
) -> None:
    win, cls = uniq("w"), uniq("nightly")
    opens = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=20)
    window(kube, win, opens, 3600, "Finish")
    windowed_class(kube, cls, win)
    job(kube, namespace, "train", cls, node=None, parallelism=2)
    # A Job the user suspended is theirs: Ballast never resumes it.
    job(kube, namespace, "mine", cls, node=None, suspend=True)

    held = wait_for(lambda: suspended_by_ballast(kube, namespace, "train"), what="suspended")
    assert held["metadata"]["annotations"][ANNOTATION_SUSPENDED_BY] == win
    # The Job controller deletes whatever it created before the suspension, and creates none.
    wait_for(lambda: not pods_of(kube, namespace, "train"), timeout=20, what="no pods")
    wait_for(
        lambda: (job_obj(kube, namespace, "train").get("status") or {}).get("active", 0) == 0,
        what="the Job controller counts no active pods",
    )
    wait_for(lambda: window_status(kube, win).get("suspendedJobs") == 1, what="status counts")
    assert "JobSuspended" in event_reasons(kube, namespace, "train")
    assert "JobSuspended" in class_event_reasons(kube, cls)
    time.sleep(2.0)
    assert not pods_of(kube, namespace, "train"), "a held Job created pods"
    assert dt.datetime.now(dt.UTC) < opens, "the window opened before the checks; too slow"

    wait_for(
        lambda: job_obj(kube, namespace, "train")["spec"].get("suspend") is False,
        timeout=40,
        what="resumed at opening",
    )
    assert dt.datetime.now(dt.UTC) >= opens
    resumed = job_obj(kube, namespace, "train")
    assert ANNOTATION_SUSPENDED_BY not in (resumed["metadata"].get("annotations") or {})
    wait_for(lambda: len(pods_of(kube, namespace, "train")) == 2, timeout=20, what="pods appear")
    # Events are posted after the patch, best effort: wait for it rather than race it.
    wait_for(lambda: "JobResumed" in event_reasons(kube, namespace, "train"), what="JobResumed")
    wait_for(lambda: window_status(kube, win).get("suspendedJobs") == 0, what="count drops")
    mine = job_obj(kube, namespace, "mine")
    assert mine["spec"]["suspend"] is True
    assert ANNOTATION_SUSPENDED_BY not in (mine["metadata"].get("annotations") or {})
    assert not pods_of(kube, namespace, "mine")


def test_checkpoint_at_close_then_suspend_after_grace(
    operator: object, kube: Kube, namespace: str, node: str
) -> None:
    win, cls = uniq("w"), uniq("ckpt")
    grace = 5
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    closes = now + dt.timedelta(seconds=20)
    window(kube, win, now - dt.timedelta(seconds=5), 25, "Checkpoint", grace)
    windowed_class(kube, cls, win)
    job(kube, namespace, "train", cls, node=node, parallelism=2)
    wait_for(lambda: len(run_pods(kube, namespace, "train")) == 2, what="2 running pods")
    assert job_obj(kube, namespace, "train")["spec"]["suspend"] is False
    assert dt.datetime.now(dt.UTC) < closes, "the window closed before the Job ran; too slow"

    def requested() -> list[str] | None:
        pods = pods_of(kube, namespace, "train")
        marked = [
            p["metadata"]["name"]
            for p in pods
            if wk.ANNOTATION_CHECKPOINT_REQUEST in (p["metadata"].get("annotations") or {})
        ]
        return marked if len(marked) == 2 else None

    marked = wait_for(requested, timeout=40, what="checkpoint requested from both pods")
    t_request = time.monotonic()
    assert dt.datetime.now(dt.UTC) >= closes
    obj = job_obj(kube, namespace, "train")
    assert obj["spec"]["suspend"] is False, "suspended before the grace period"
    assert wk.ANNOTATION_CHECKPOINT_REQUEST in obj["metadata"]["annotations"]
    assert window_status(kube, win).get("checkpointingJobs") == 1 or wait_for(
        lambda: window_status(kube, win).get("checkpointingJobs") == 1, what="checkpointing"
    )
    assert "CheckpointRequested" in event_reasons(kube, namespace, "train")
    assert "CheckpointRequested" in event_reasons(kube, namespace, marked[0])

    wait_for(lambda: suspended_by_ballast(kube, namespace, "train"), timeout=30, what="suspended")
    waited = time.monotonic() - t_request
    assert waited >= grace - 1.5, f"suspended {waited:.1f}s after the request, grace {grace}s"
    wait_for(lambda: not pods_of(kube, namespace, "train"), timeout=30, what="pods deleted")
    wait_for(
        lambda: (
            window_status(kube, win).get("suspendedJobs") == 1
            and window_status(kube, win).get("checkpointingJobs") == 0
        ),
        what="status counts",
    )
    assert {"CheckpointRequested", "JobSuspended"} <= class_event_reasons(kube, cls)


def test_finish_lets_running_job_finish_and_holds_the_rest(
    operator: object, kube: Kube, namespace: str, node: str
) -> None:
    win, cls = uniq("w"), uniq("finish")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    closes = now + dt.timedelta(seconds=15)
    window(kube, win, now - dt.timedelta(seconds=5), 20, "Finish")
    windowed_class(kube, cls, win)
    job(kube, namespace, "running", cls, node=node)
    job(kube, namespace, "waiting", cls, node=None)  # its pod is never placed: not started
    wait_for(lambda: run_pods(kube, namespace, "running"), what="running pod")
    assert dt.datetime.now(dt.UTC) < closes, "the window closed before the Job ran; too slow"

    wait_for(
        lambda: suspended_by_ballast(kube, namespace, "waiting"),
        timeout=40,
        what="the Job without running pods is suspended at close",
    )
    assert dt.datetime.now(dt.UTC) >= closes
    wait_for(lambda: window_status(kube, win).get("finishingJobs") == 1, what="finishing")
    time.sleep(3.0)
    running = job_obj(kube, namespace, "running")
    assert running["spec"]["suspend"] is False
    assert len(run_pods(kube, namespace, "running")) == 1, "the running Job lost its pod"
    assert not pods_of(kube, namespace, "waiting")
