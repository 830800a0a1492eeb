"""The local control plane itself, against the real processes it starts."""

from __future__ import annotations

import os
import socket
import ssl
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client

from ballast.api import wellknown as wk
from ballast.kube import compat
from ballast.localcluster import LocalCluster, NodeSpec, PortInUseError
from ballast.localcluster.binaries import cache_dir, hack_dir, kubernetes_version
from ballast.localcluster.processes import is_alive
from ballast.localcluster.state import COMPONENTS, CORE

PAUSE = "registry.k8s.io/pause:3.10"

T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], timeout_s: float = 60.0, what: str = "") -> T:
    """Poll ``probe`` until it returns something truthy; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.25)


def need_local(cluster: LocalCluster | None) -> LocalCluster:
    if cluster is None:
        pytest.skip("BALLAST_TEST_KUBECONFIG points at a cluster not started by ballast")
    return cluster


def gpu_pod(name: str, gpus: int = 1, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": PAUSE,
                    "resources": {
                        "requests": {"cpu": "100m", wk.GPU_RESOURCE: str(gpus)},
                        "limits": {wk.GPU_RESOURCE: str(gpus)},
                    },
                }
            ],
            **spec,
        },
    }


def test_api_server_is_ready_and_pinned(api_client: client.ApiClient) -> None:
    request = api_client.param_serialize("GET", "/readyz", auth_settings=["BearerToken"])
    resp = api_client.call_api(*request)
    assert resp.status == 200
    assert resp.read() == b"ok"
    version = client.VersionApi(api_client).get_code()
    # The server is the build of the selected wrapper (hack/k8s, or hack/k8s-<minor>
    # with K8S_VERSION), and that is a supported minor.
    assert version.git_version == kubernetes_version(hack_dir())
    minor = compat.server_minor({"gitVersion": version.git_version})
    assert minor is not None and compat.SUPPORTED[0] <= minor <= compat.SUPPORTED[1]


def test_deployment_gets_replicas_from_controller_manager(
    api_client: client.ApiClient, namespace: str
) -> None:
    labels = {"app": "web"}
    client.AppsV1Api(api_client).create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "main", "image": PAUSE}]},
                },
            },
        },
    )
    core = client.CoreV1Api(api_client)
    pods = wait_for(
        lambda: len(core.list_namespaced_pod(namespace, label_selector="app=web").items) == 3,
        what="the ReplicaSet controller to create 3 pods",
    )
    assert pods
    deployment = client.AppsV1Api(api_client).read_namespaced_deployment("web", namespace)
    assert deployment.status.replicas == 3


def test_gpu_nodes_have_capacity_annotations_and_are_ready(
    api_client: client.ApiClient, gpu_nodes: list[NodeSpec]
) -> None:
    core = client.CoreV1Api(api_client)
    for spec in gpu_nodes:
        node = core.read_node(spec.name)
        assert node.status.capacity[wk.GPU_RESOURCE] == str(spec.gpus)
        assert node.status.allocatable[wk.GPU_RESOURCE] == str(spec.gpus)
        assert node.metadata.labels[wk.LABEL_GPU_PRODUCT] == spec.product
        assert node.metadata.labels[wk.LABEL_ZONE] == spec.zone
        assert node.metadata.annotations["kwok.x-k8s.io/node"] == "fake"
        cache = wk.parse_cache_inventory(node.metadata.annotations[wk.ANNOTATION_CACHE])
        telemetry = wk.parse_telemetry(node.metadata.annotations[wk.ANNOTATION_TELEMETRY])
        assert cache.problems == [] and cache.value == spec.cache
        assert telemetry.problems == [] and len(telemetry.value.gpus) == spec.gpus
        ready = [c for c in node.status.conditions if c.type == "Ready"]
        assert ready and ready[0].status == "True"

    def untainted() -> bool:
        # The admission-time not-ready taint goes once kwok reports Ready; none of ours remain.
        return all(not core.read_node(s.name).spec.taints for s in gpu_nodes)

    wait_for(untainted, what="the node lifecycle controller to drop the not-ready taints")


def test_pod_bound_to_fake_node_runs(
    api_client: client.ApiClient, namespace: str, gpu_nodes: list[NodeSpec]
) -> None:
    core = client.CoreV1Api(api_client)
    node = gpu_nodes[0].name
    core.create_namespaced_pod(namespace, gpu_pod("bound", nodeName=node))
    pod = wait_for(
        lambda: (p := core.read_namespaced_pod("bound", namespace)).status.phase == "Running" and p,
        what="kwok to run the bound pod",
    )
    assert pod.spec.node_name == node
    assert pod.status.pod_ip


def test_status_reports_every_component(cluster: LocalCluster | None) -> None:
    local = need_local(cluster)
    status = local.status()
    assert status.running
    assert [c.name for c in status.components] == list(COMPONENTS)
    for c in status.components:
        if c.name in CORE:
            assert c.alive and c.ready and c.pid and c.port, c
            assert c.log.exists()


def test_scheduler_with_config_schedules_gpu_pod(
    cluster: LocalCluster | None,
    api_client: client.ApiClient,
    namespace: str,
    gpu_nodes: list[NodeSpec],
) -> None:
    local = need_local(cluster)
    local.start_scheduler(config={"profiles": [{"schedulerName": "pytest-scheduler"}]})
    try:
        sched = {c.name: c for c in local.status().components}["kube-scheduler"]
        assert sched.alive and sched.ready
        core = client.CoreV1Api(api_client)
        # One GPU: the session's other tests may still hold whole nodes of the shared
        # fleet (the examples' Deployments stay), and one free GPU is all this needs.
        core.create_namespaced_pod(
            namespace, gpu_pod("scheduled", gpus=1, schedulerName="pytest-scheduler")
        )
        pod = wait_for(
            lambda: (
                (p := core.read_namespaced_pod("scheduled", namespace)).status.phase == "Running"
                and p
            ),
            what="kube-scheduler to place the pod and kwok to run it",
        )
        node = core.read_node(pod.spec.node_name)
        assert int(node.status.allocatable[wk.GPU_RESOURCE]) >= 1
        # Its metrics are readable without credentials (the benchmarks count its attempts).
        url = f"https://127.0.0.1:{sched.port}/metrics"
        unverified = ssl._create_unverified_context()
        with urllib.request.urlopen(url, timeout=10, context=unverified) as resp:
            text = resp.read().decode()
        assert any(
            line.startswith("scheduler_schedule_attempts_total{")
            and 'result="scheduled"' in line
            and 'profile="pytest-scheduler"' in line
            and float(line.rsplit(" ", 1)[1]) >= 1
            for line in text.splitlines()
        ), text[:2000]
    finally:
        local.stop_scheduler()
    sched = {c.name: c for c in local.status().components}["kube-scheduler"]
    assert sched.pid is None and not sched.alive


def test_port_in_use_is_reported_before_anything_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        other = LocalCluster(f"pytest-{os.getpid()}-port", cache_dir(), api_port=port)
        with pytest.raises(PortInUseError, match=str(port)):
            other.up()
    assert other.state is None
    other.down(purge=True)


def _processes_mentioning(*texts: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
                if any(t.encode() in cmdline for t in texts):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def test_second_cluster_is_idempotent_and_down_leaves_nothing() -> None:
    second = LocalCluster(f"pytest-{os.getpid()}-b", cache_dir())
    kubeconfig = second.up()
    try:
        state = second.state
        assert state is not None
        refs = {name: c.process for name, c in state.components.items()}
        assert set(refs) == set(CORE)
        assert second.up() == kubeconfig  # already running: a no-op
        again = second.state
        assert again is not None
        assert {n: c.pid for n, c in again.components.items()} == {
            n: r.pid for n, r in refs.items()
        }
        marks = (str(second.layout.root), state.etcd_data_dir)
        assert len(_processes_mentioning(*marks)) == len(CORE)
    finally:
        second.down()
    assert not any(is_alive(r) for r in refs.values())
    assert _processes_mentioning(*marks) == []
    assert not Path(state.etcd_data_dir).exists()
    assert not second.kubeconfig.exists() and second.state is None
    assert second.layout.log("kube-apiserver").exists()  # logs stay for troubleshooting
    second.down(purge=True)
    assert not second.layout.root.exists()
