"""Fixtures for the Helm chart's tests: a control plane of their own, helm, credentials.

The chart's tests install Ballast (CRDs, RBAC, webhook configurations, a
Lease, a peering object) and run an operator and a scheduler of their own:
on the session's shared cluster they would fight the session's operator and
scheduler over the same WorkloadClasses, PriorityClasses and node pools. So
they start a second LocalCluster (``pytest-<pid>-chart``, about 10 s), which
the session's stale-cluster reaper also recognises.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import yaml
from chartutil import (
    AGENT_NAMESPACE,
    AGENT_NODE,
    APPS,
    CHART,
    NAMESPACE,
    RELEASE,
    Helm,
    Release,
    free_port,
)
from kutil import Kubectl

from ballast.kube.raw import Kube
from ballast.localcluster import ClusterError, LocalCluster, MissingBinariesError
from ballast.localcluster.binaries import cache_dir, resolve_bin_dir
from ballast.localcluster.nodes import build_node, profile_nodes


@pytest.fixture(scope="session")
def chart_cluster(request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    """A LocalCluster only the chart's tests use."""
    try:
        resolve_bin_dir()
    except (MissingBinariesError, ClusterError) as exc:
        pytest.fail(f"control-plane binaries are not built: run `make bins`.\n{exc}", pytrace=False)
    local = LocalCluster(f"pytest-{os.getpid()}-chart", cache_dir())
    try:
        local.up()
    except ClusterError as exc:
        pytest.fail(f"the chart tests' cluster did not start:\n{exc}", pytrace=False)
    yield local
    local.down(purge=request.session.testsfailed == 0)


@pytest.fixture(scope="session")
def chart_kube(chart_cluster: LocalCluster) -> Iterator[Kube]:
    """Admin raw client on the chart tests' cluster."""
    client = Kube.connect(str(chart_cluster.kubeconfig))
    yield client
    client.close()


@pytest.fixture(scope="session")
def kube_version(chart_kube: Kube) -> str:
    """The chart cluster's version, as ``helm template --kube-version`` takes it."""
    return str((chart_kube.get("/version") or {})["gitVersion"])


@pytest.fixture(scope="session")
def chart_kubectl(chart_cluster: LocalCluster) -> Kubectl:
    """Admin kubectl on the chart tests' cluster."""
    return Kubectl(resolve_bin_dir() / "kubectl", chart_cluster.kubeconfig)


@pytest.fixture(scope="session")
def helm(chart_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """helm on the chart tests' cluster."""
    return Helm(
        resolve_bin_dir() / "helm", chart_cluster.kubeconfig, tmp_path_factory.mktemp("helm")
    )


def _namespace(kube: Kube, name: str, labels: dict[str, str]) -> None:
    kube.create("/api/v1/namespaces", {"metadata": {"name": name, "labels": labels}})


def _pss(level: str) -> dict[str, str]:
    return {f"pod-security.kubernetes.io/{mode}": level for mode in ("enforce", "warn", "audit")}


@pytest.fixture(scope="session")
def release(
    chart_kube: Kube, helm: Helm, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    """``helm install`` into a namespace enforcing `restricted`, with the agent apart.

    The processes run on the host (tests start them), so the ports the chart names are
    free ports here, and the webhook configurations point at ``webhook.url``.
    """
    _namespace(chart_kube, NAMESPACE, _pss("restricted"))
    _namespace(chart_kube, AGENT_NAMESPACE, _pss("privileged"))
    _namespace(chart_kube, APPS, {})
    # One GPU node as NVIDIA's feature discovery labels it: the agent's DaemonSet targets it.
    spec = profile_nodes("h100", 1, seed=0, prefix="chart")[0]
    node = build_node(spec)
    node["metadata"]["name"] = AGENT_NODE
    node["metadata"]["labels"]["nvidia.com/gpu.present"] = "true"
    node["metadata"]["labels"]["kubernetes.io/hostname"] = AGENT_NODE
    chart_kube.create("/api/v1/nodes", node)
    ports = {k: free_port() for k in ("operator", "health", "webhook", "scheduler", "agent")}
    values = {
        "operator": {
            "metricsPort": ports["operator"],
            "healthPort": ports["health"],
            # As the session's operator: quick resyncs and pool dwell for the scenarios.
            "resyncSeconds": 3,
            "poolDwellSeconds": 5,
        },
        "scheduler": {"metricsPort": ports["scheduler"]},
        "agent": {"namespace": AGENT_NAMESPACE, "metricsPort": ports["agent"]},
        "webhook": {"port": ports["webhook"], "url": f"https://127.0.0.1:{ports['webhook']}"},
    }
    values_file = tmp_path_factory.mktemp("release") / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    helm("install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--values", str(values_file))
    yield Release(RELEASE, NAMESPACE, AGENT_NAMESPACE, values_file, ports)
    helm("uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", check=False)
