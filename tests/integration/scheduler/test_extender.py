"""Extender mode: the stock kube-scheduler calls Ballast's filter and prioritize over HTTP."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from kutil import wait_for
from sutil import gpu_node, gpu_pod, node_of, wait_ready

from ballast.kube.raw import Kube
from ballast.localcluster import LocalCluster
from ballast.localcluster.ballast_procs import BallastProcess


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def extender(
    crds: None, cluster: LocalCluster | None, kubeconfig: Path, tmp_path: Path
) -> Iterator[BallastProcess]:
    if cluster is None:
        pytest.fail("the extender test needs the local cluster (to run kube-scheduler)")
    port = free_port()
    proc = BallastProcess(
        "extender", ["scheduler", "--extender", "--extender-port", str(port)], kubeconfig, tmp_path
    )
    proc.start()
    wait_for(lambda: _listening(port), timeout=30, what="extender listening")
    cluster.start_scheduler(
        config={
            "extenders": [
                {
                    "urlPrefix": f"http://127.0.0.1:{port}",
                    "filterVerb": "filter",
                    "prioritizeVerb": "prioritize",
                    "weight": 5,
                    "nodeCacheCapable": True,
                    "enableHTTPS": False,
                    "managedResources": [{"name": "nvidia.com/gpu", "ignoredByScheduler": False}],
                }
            ]
        }
    )
    yield proc
    cluster.stop_scheduler()
    survived = proc.alive()
    proc.stop()
    assert survived, proc.log_tail()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_kube_scheduler_with_extender_follows_locality(
    extender: BallastProcess, kube: Kube, namespace: str, tid: str
) -> None:
    model, other = f"mistral-{tid}", f"qwen-{tid}"
    cached = {0: (other,), 2: (model,)}
    for i in range(3):
        gpu_node(kube, f"ext-{tid}-{i}", test=tid, models=cached.get(i, ()))
    wait_ready(kube, tid, 3)
    for n in ("warm-a", "warm-b"):
        gpu_pod(kube, namespace, n, test=tid, models=(model,), scheduler="default-scheduler")
    for n in ("warm-a", "warm-b"):
        node = wait_for(
            lambda n=n: node_of(kube, namespace, n), timeout=60, what=f"{n} bound by kube-scheduler"
        )
        assert node == f"ext-{tid}-2", f"{n} went to {node}, not the node with {model} cached"
    # A pod whose model is cached nowhere is placed too (locality just does not decide).
    gpu_pod(
        kube, namespace, "cold", test=tid, models=(f"unknown-{tid}",), scheduler="default-scheduler"
    )
    wait_for(lambda: node_of(kube, namespace, "cold"), timeout=60, what="cold pod bound")
    assert (
        "extender" not in extender.log_tail(50).lower()
        or "failed" not in extender.log_tail(50).lower()
    )
