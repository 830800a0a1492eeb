"""Gangs from the Workload API (Kubernetes PodGroups) on a cluster of their own.

The session cluster runs without feature gates. This module starts a second
local cluster with ``GenericWorkload`` and ``WorkloadWithJob`` on (the API
server then serves ``scheduling.k8s.io/v1beta1`` PodGroups, and the real Job
controller gives a Job with ``spec.scheduling`` a Workload, a PodGroup and
its pods ``spec.schedulingGroup``), with a Ballast scheduler of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from kutil import wait_for
from sutil import gpu_node, new_test_id, wait_ready

from ballast.api import wellknown as wk
from ballast.kube.crds import ensure_crds
from ballast.kube.raw import NAMESPACES, PODS, Kube, Resource
from ballast.localcluster.ballast_procs import BallastProcess
from ballast.localcluster.binaries import cache_dir
from ballast.localcluster.cluster import LocalCluster
from ballast.localcluster.components import FEATURE_GATES_ENV

JOBS = Resource("batch", "v1", "jobs", True)
GATES = "GenericWorkload=true,WorkloadWithJob=true"
NAME = "ballast-wl-gang"
NS = "wl-gangs"


@pytest.fixture(scope="module")
def wl_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Kube, BallastProcess]]:
    local = LocalCluster(f"pytest-{os.getpid()}-wl", cache_dir())
    before = os.environ.get(FEATURE_GATES_ENV)
    os.environ[FEATURE_GATES_ENV] = GATES
    try:
        local.up()
    finally:
        if before is None:
            os.environ.pop(FEATURE_GATES_ENV, None)
        else:
            os.environ[FEATURE_GATES_ENV] = before
    ok = False
    try:
        kube = Kube.connect(str(local.kubeconfig))
        ensure_crds(kube)
        kube.create(NAMESPACES.path(), {"metadata": {"name": NS}})
        wait_for(lambda: kube.get(f"/api/v1/namespaces/{NS}/serviceaccounts/default"),
                 what="default service account", timeout=60)  # fmt: skip
        proc = BallastProcess("wl-gang-scheduler", ["scheduler", "--scheduler-name", NAME,
                              "--kube-api-qps", "0"], local.kubeconfig,
                              tmp_path_factory.mktemp("wl-gang-scheduler"))  # fmt: skip
        proc.start()
        try:
            yield kube, proc
            ok = proc.alive()
            assert ok, f"the scheduler exited during the tests:\n{proc.log_tail()}"
        finally:
            proc.stop()
    finally:
        local.down(purge=ok)


def _pods(kube: Kube, job: str) -> list[dict[str, Any]]:
    items = kube.list(PODS.path(namespace=NS), labelSelector=f"job-name={job}")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def _scheduled(p: dict[str, Any]) -> dict[str, Any]:
    conds = (p.get("status") or {}).get("conditions") or ()
    return next((c for c in conds if c.get("type") == "PodScheduled"), {})


def test_workload_api_job_waits_whole_and_starts_whole(
    wl_cluster: tuple[Kube, BallastProcess],
) -> None:
    kube, proc = wl_cluster
    served = kube.get("/apis/scheduling.k8s.io/v1beta1") or {}
    assert any(r.get("name") == "podgroups" for r in served.get("resources") or ()), served
    tid = new_test_id()
    for i in range(2):
        gpu_node(kube, f"wl-{tid}-{i}", test=tid)
    wait_ready(kube, tid, 2)
    res = {wk.GPU_RESOURCE: "8"}
    template = {"spec": {
        "schedulerName": NAME, "restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
        "nodeSelector": {"ballast.dev/test": tid},
        "tolerations": [{"key": "ballast.dev/test", "operator": "Exists", "effect": "NoSchedule"}],
        "containers": [{"name": "w", "image": "registry.local/train:1",
                        "resources": {"limits": res, "requests": res}}],
    }}  # fmt: skip
    body = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "wl"},
            "spec": {"completionMode": "Indexed", "completions": 3, "parallelism": 3,
                     "scheduling": {"schedulingPolicy": {"gang": {}}}, "template": template}}  # fmt: skip
    kube.create(JOBS.path(namespace=NS), body)

    def waiting() -> list[dict[str, Any]] | None:
        pods = _pods(kube, "wl")
        conds = [_scheduled(p) for p in pods]
        ok = len(pods) == 3 and all(c.get("reason") == "Unschedulable" for c in conds)
        return conds if ok else None

    conds = wait_for(waiting, what="the Job's 3 pods waiting whole", timeout=60)
    # The pods are in the Job controller's PodGroup, not in a label's.
    assert all((p["spec"].get("schedulingGroup") or {}) for p in _pods(kube, "wl"))
    assert "waiting: 2 of 3 members fit; 1 needs 8 GPUs on one node" in conds[0]["message"]
    assert [p for p in _pods(kube, "wl") if p["spec"].get("nodeName")] == []
    gpu_node(kube, f"wl-{tid}-2", test=tid)
    nodes = wait_for(
        lambda: (lambda b: b if len(b) == 3 else None)(
            [p["spec"]["nodeName"] for p in _pods(kube, "wl") if p["spec"].get("nodeName")]
        ),
        what="all 3 bound",
        timeout=60,
    )
    assert len(set(nodes)) == 3, nodes  # 8 GPUs each: one worker per node
    assert proc.alive(), proc.log_tail()
