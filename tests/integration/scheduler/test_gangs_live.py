"""Gangs on a real API server with the real Job controller and KWOK GPU nodes.

A scheduler of its own (``ballast-gang``) is started after the scheduler-plugins
PodGroup CRD is installed (the scheduler watches the PodGroup kinds the server
serves when it starts); the session scheduler ignores these pods.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kutil import Kubectl, wait_for
from sutil import gpu_node, pod_events, wait_ready

from ballast.api import wellknown as wk
from ballast.kube.raw import PODS, Kube, Resource
from ballast.localcluster.ballast_procs import BallastProcess
from ballast.scheduler.groups import POD_GROUP_LABEL

ROOT = Path(__file__).resolve().parents[3]
CRD = ROOT / "tests" / "integration" / "manifests" / "scheduling.x-k8s.io_podgroups.yaml"
NAME = "ballast-gang"
JOBS = Resource("batch", "v1", "jobs", True)
PODGROUPS = Resource("scheduling.x-k8s.io", "v1alpha1", "podgroups", True)


@pytest.fixture(scope="module")
def gang_scheduler(
    crds: None,
    kube: Kube,
    kubectl: Kubectl,
    kubeconfig: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[BallastProcess]:
    kubectl("apply", "-f", str(CRD))
    kubectl("wait", "--for=condition=Established", "crd/podgroups.scheduling.x-k8s.io",
            "--timeout=60s")  # fmt: skip
    # The scheduler watches the PodGroup kinds discovery lists when it starts.
    wait_for(lambda: any(r.get("name") == "podgroups" for r in
                         (kube.get(PODGROUPS.path().rsplit("/", 1)[0]) or {}).get("resources") or ()),
             what="podgroups served")  # fmt: skip
    proc = BallastProcess("gang-scheduler", ["scheduler", "--scheduler-name", NAME,
                          "--kube-api-qps", "0"], kubeconfig,
                          tmp_path_factory.mktemp("gang-scheduler"))  # fmt: skip
    proc.start()
    time.sleep(1.0)
    assert proc.alive(), proc.log_tail()
    yield proc
    survived = proc.alive()
    proc.stop()
    assert survived, f"the gang scheduler exited during the tests:\n{proc.log_tail()}"


def podgroup(kube: Kube, namespace: str, name: str, min_member: int) -> None:
    body = {"apiVersion": "scheduling.x-k8s.io/v1alpha1", "kind": "PodGroup",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"minMember": min_member, "scheduleTimeoutSeconds": 30}}  # fmt: skip
    kube.create(PODGROUPS.path(namespace=namespace), body)


def indexed_job(kube: Kube, namespace: str, name: str, tid: str, *, group: str, pods: int,
                gpus: int = 8) -> None:  # fmt: skip
    """An Indexed Job of ``pods`` workers, each asking ``gpus`` GPUs, in PodGroup ``group``."""
    res = {wk.GPU_RESOURCE: str(gpus)}
    template = {
        "metadata": {"labels": {POD_GROUP_LABEL: group}},
        "spec": {
            "schedulerName": NAME,
            "restartPolicy": "Never",
            "nodeSelector": {"ballast.dev/test": tid},
            "tolerations": [
                {"key": "ballast.dev/test", "operator": "Exists", "effect": "NoSchedule"}
            ],
            "containers": [
                {
                    "name": "worker",
                    "image": "registry.local/train:1",
                    "resources": {"limits": res, "requests": res},
                }
            ],
            "terminationGracePeriodSeconds": 0,
        },
    }
    body = {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"completionMode": "Indexed", "completions": pods, "parallelism": pods,
                     "backoffLimit": 0, "template": template}}  # fmt: skip
    kube.create(JOBS.path(namespace=namespace), body)


def job_pods(kube: Kube, namespace: str, job: str) -> list[dict[str, Any]]:
    items = kube.list(PODS.path(namespace=namespace), labelSelector=f"job-name={job}")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def bound(kube: Kube, namespace: str, job: str) -> list[str]:
    return [
        p["spec"]["nodeName"] for p in job_pods(kube, namespace, job) if p["spec"].get("nodeName")
    ]


def condition(p: dict[str, Any]) -> dict[str, Any]:
    conds = (p.get("status") or {}).get("conditions") or ()
    return next((c for c in conds if c.get("type") == "PodScheduled"), {})


def test_indexed_job_waits_whole_and_starts_whole(
    gang_scheduler: Any, kube: Kube, namespace: str, tid: str
) -> None:
    for i in range(3):
        gpu_node(kube, f"gang-{tid}-{i}", test=tid)
    wait_ready(kube, tid, 3)
    podgroup(kube, namespace, "train", 4)
    indexed_job(kube, namespace, "train", tid, group="train", pods=4)

    def waiting() -> list[dict[str, Any]] | None:
        pods = job_pods(kube, namespace, "train")
        conds = [condition(p) for p in pods]
        ok = len(pods) == 4 and all(c.get("reason") == "Unschedulable" for c in conds)
        return conds if ok else None

    conds = wait_for(waiting, what="all 4 workers waiting", timeout=30,
                     explain=lambda: str([(p["metadata"]["name"], p["spec"].get("nodeName"),
                                           condition(p)) for p in job_pods(kube, namespace, "train")]))  # fmt: skip
    assert "waiting: 3 of 4 members fit; 1 needs 8 GPUs on one node" in conds[0]["message"]
    assert bound(kube, namespace, "train") == []  # no worker holds GPUs while the gang waits
    gpu_node(kube, f"gang-{tid}-3", test=tid)
    nodes = wait_for(lambda: (b := bound(kube, namespace, "train")) and len(b) == 4 and b,
                     what="all 4 workers bound", timeout=30)  # fmt: skip
    assert len(set(nodes)) == 4
    events = wait_for(
        lambda: [
            e for e in pod_events(kube, namespace, "train") if e["reason"] == "GroupScheduled"
        ],
        what="GroupScheduled event on the PodGroup",
    )
    assert events[0]["regarding"]["kind"] == "PodGroup", events[0]


def gang_pod(kube: Kube, namespace: str, name: str, tid: str, group: str) -> None:
    """A worker pod of PodGroup ``group`` with no owner (kwok keeps it Running, unlike a Job's)."""
    res = {wk.GPU_RESOURCE: "8"}
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {POD_GROUP_LABEL: group}},
        "spec": {
            "schedulerName": NAME,
            "nodeSelector": {"ballast.dev/test": tid},
            "tolerations": [
                {"key": "ballast.dev/test", "operator": "Exists", "effect": "NoSchedule"}
            ],
            "containers": [
                {"name": "w", "image": "registry.local/train:1",
                 "resources": {"limits": res, "requests": res}}
            ],
            "terminationGracePeriodSeconds": 0,
        },
    }  # fmt: skip
    kube.create(PODS.path(namespace=namespace), body)


def test_two_competing_gangs_never_deadlock(
    gang_scheduler: Any, kube: Kube, namespace: str, tid: str
) -> None:
    """Two gangs of 3 x 8 GPUs on 4 nodes, their pods created interleaved: one starts whole,
    the other waits whole and starts when the first is gone."""
    for i in range(4):
        gpu_node(kube, f"race-{tid}-{i}", test=tid)
    wait_ready(kube, tid, 4)
    for name in ("a", "b"):
        podgroup(kube, namespace, name, 3)
    for i in range(3):
        for name in ("a", "b"):
            gang_pod(kube, namespace, f"{name}-{i}", tid, name)

    def nodes_of(group: str) -> list[str]:
        items = kube.list(PODS.path(namespace=namespace))["items"]
        return [p["spec"]["nodeName"] for p in items
                if p["metadata"]["name"].startswith(f"{group}-") and p["spec"].get("nodeName")]  # fmt: skip

    def one_whole() -> str | None:
        a, b = nodes_of("a"), nodes_of("b")
        assert not (a and b), (a, b)  # never members of both gangs (binds land one by one)
        return "a" if len(a) == 3 else "b" if len(b) == 3 else None

    winner = wait_for(one_whole, what="one whole gang bound", timeout=30)
    loser = "b" if winner == "a" else "a"
    time.sleep(2.0)
    assert nodes_of(loser) == []  # it waits whole, holding nothing
    for i in range(3):
        kube.delete(PODS.path(f"{winner}-{i}", namespace), grace_seconds=0)
    nodes = wait_for(lambda: len(n := nodes_of(loser)) == 3 and n, what="the other gang bound",
                     timeout=30)  # fmt: skip
    assert len(set(nodes)) == 3


def test_bad_groups_are_reasons_on_the_pods(
    gang_scheduler: Any, kube: Kube, namespace: str, tid: str
) -> None:
    gpu_node(kube, f"bad-{tid}-0", test=tid)
    wait_ready(kube, tid, 1)
    podgroup(kube, namespace, "zero", 0)
    gang_pod(kube, namespace, "zero-0", tid, "zero")
    gang_pod(kube, namespace, "missing-0", tid, "missing")

    def reason(name: str) -> str | None:
        p = kube.get(PODS.path(name, namespace)) or {}
        return condition(p).get("reason")

    wait_for(lambda: reason("zero-0") == "InvalidGroup", what="InvalidGroup", timeout=20)
    wait_for(lambda: reason("missing-0") == "WaitingForGroup", what="WaitingForGroup", timeout=20)
    podgroup(kube, namespace, "missing", 1)
    wait_for(lambda: (kube.get(PODS.path("missing-0", namespace)) or {}).get("spec", {})
             .get("nodeName"), what="bound once its group exists", timeout=20)  # fmt: skip
    assert gang_scheduler.alive()
