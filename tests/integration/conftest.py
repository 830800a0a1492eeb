"""Integration fixtures: one real local control plane per pytest session.

``cluster`` starts a ``LocalCluster`` named ``pytest-<pid>`` (etcd,
kube-apiserver, kube-controller-manager, kwok; no kube-scheduler unless a
test starts it) and tears it down when the session ends. To iterate faster,
reuse a running cluster instead: ``BALLAST_TEST_KUBECONFIG=$(ballast cluster
up --name dev) pytest tests/integration``; it is left running afterwards.

Every test under tests/integration is marked ``integration``. Missing
control-plane binaries fail the session with the command that builds them:
CI must never skip these tests silently.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from kutil import SLO_RULES_NAMESPACE, Kubectl
from tcpproxy import TcpProxy

from ballast.kube.raw import Kube
from ballast.localcluster import ClusterError, LocalCluster, MissingBinariesError, NodeSpec
from ballast.localcluster import kube as lkube
from ballast.localcluster.ballast_procs import BallastProcess
from ballast.localcluster.binaries import cache_dir, resolve_bin_dir
from ballast.localcluster.nodes import profile_nodes
from ballast.localcluster.processes import ProcessRef, is_alive

ENV_KUBECONFIG = "BALLAST_TEST_KUBECONFIG"
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
GPU_FLEET_SIZE = 8


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)


def _local_cluster_of(kubeconfig: Path) -> LocalCluster | None:
    """The LocalCluster that wrote ``kubeconfig`` (``<cache>/clusters/<name>/kubeconfig``)."""
    state_dir = kubeconfig.resolve().parent
    if not (state_dir / "state.json").exists():
        return None
    return LocalCluster(state_dir.name, state_dir.parent.parent)


def _reap_stale_test_clusters() -> None:
    """Stop clusters of earlier pytest sessions that were killed before their teardown."""
    for name in LocalCluster.names():
        match = re.fullmatch(r"pytest-(\d+)(-.*)?", name)
        if match and not is_alive(ProcessRef(int(match.group(1)), 0)):
            LocalCluster(name).down(purge=True)


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[LocalCluster | None]:
    """The session's LocalCluster (None when BALLAST_TEST_KUBECONFIG names a foreign cluster)."""
    external = os.environ.get(ENV_KUBECONFIG)
    if external:
        yield _local_cluster_of(Path(external))
        return
    try:
        resolve_bin_dir()
    except (MissingBinariesError, ClusterError) as exc:
        pytest.fail(f"control-plane binaries are not built: run `make bins`.\n{exc}", pytrace=False)
    _reap_stale_test_clusters()
    local = LocalCluster(f"pytest-{os.getpid()}", cache_dir())
    try:
        local.up()
    except ClusterError as exc:
        pytest.fail(f"local cluster did not start:\n{exc}", pytrace=False)
    yield local
    # Keep the component logs when something failed: they are the first thing to read.
    local.down(purge=request.session.testsfailed == 0)


@pytest.fixture(scope="session")
def prometheus_proxy() -> Iterator[TcpProxy]:
    """The session operator's way to Prometheus (its ``--prometheus-url``).

    Forwards to the session's Prometheus once the ``prometheus`` fixture has
    started it (until then connections are refused: SLOMet says
    PrometheusUnreachable); ``cut()`` makes Prometheus unreachable for the
    operator alone, ``resume()`` undoes it (docs/slo.md).
    """
    proxy = TcpProxy(("127.0.0.1", 9)).start()  # port 9 (discard): closed until Prometheus runs
    yield proxy
    proxy.close()


@pytest.fixture(scope="session")
def prometheus(cluster: LocalCluster | None, prometheus_proxy: TcpProxy) -> LocalCluster:
    """The session's cluster with Prometheus added (about a second): scrapes every 2 s.

    Tests register what it should scrape with ``cluster.add_scrape_target``; its
    URL is ``cluster.state.prometheus_url``. Needs a LocalCluster (not a foreign
    kubeconfig) and Prometheus built by ``make bins``.
    """
    if cluster is None:
        pytest.skip(f"{ENV_KUBECONFIG} names a cluster without Ballast's Prometheus")
    try:
        cluster.up(with_prometheus=True)
    except (MissingBinariesError, ClusterError) as exc:
        pytest.fail(f"Prometheus did not start: run `make bins`.\n{exc}", pytrace=False)
    state = cluster.state
    assert state is not None
    prometheus_proxy.upstream = ("127.0.0.1", state.ports["prometheus"])
    return cluster


@pytest.fixture(scope="session")
def kubeconfig(cluster: LocalCluster | None) -> Path:
    """Path of the admin kubeconfig of the cluster under test."""
    external = os.environ.get(ENV_KUBECONFIG)
    if external:
        return Path(external)
    assert cluster is not None
    return cluster.kubeconfig


@pytest.fixture(scope="session")
def api_client(kubeconfig: Path) -> Iterator[client.ApiClient]:
    """A kubernetes ApiClient for the cluster under test."""
    api = lkube.api_client(kubeconfig)
    yield api
    api.close()


def _wait_default_service_account(core: client.CoreV1Api, namespace: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            core.read_namespaced_service_account("default", namespace)
            return
        except ApiException as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


@pytest.fixture
def namespace(request: pytest.FixtureRequest, api_client: client.ApiClient) -> Iterator[str]:
    """A fresh namespace for one test (its default ServiceAccount exists); deleted afterwards."""
    core = client.CoreV1Api(api_client)
    stem = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{stem}-{uuid.uuid4().hex[:5]}"
    core.create_namespace({"metadata": {"name": name}})
    _wait_default_service_account(core, name)
    yield name
    try:
        core.delete_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise


@pytest.fixture(scope="session")
def gpu_nodes(api_client: client.ApiClient) -> Iterator[list[NodeSpec]]:
    """A small mixed fleet of Ready fake GPU nodes (2 H100, 2 A100, 4 L4 nodes)."""
    specs = profile_nodes("mixed", GPU_FLEET_SIZE, seed=0, prefix="pytest")
    lkube.create_nodes(api_client, specs)
    names = [s.name for s in specs]
    if not lkube.wait_nodes_ready(api_client, names, timeout_s=120):
        pytest.fail("kwok did not make the fake GPU nodes Ready within 120s", pytrace=False)
    yield specs
    lkube.delete_nodes(api_client, names)


@pytest.fixture(scope="session")
def kube(kubeconfig: Path) -> Iterator[Kube]:
    """A raw-JSON client on the test cluster."""
    client = Kube.connect(str(kubeconfig))
    yield client
    client.close()


@pytest.fixture(scope="session")
def kubectl(kubeconfig: Path) -> Kubectl:
    """kubectl bound to the test cluster."""
    return Kubectl(resolve_bin_dir() / "kubectl", kubeconfig)


@pytest.fixture(scope="session")
def crds(kubectl: Kubectl) -> None:
    """Install the generated CRDs and wait until they are served."""
    kubectl("apply", "-f", str(ROOT / "crds"))
    kubectl(
        "wait",
        "--for=condition=Established",
        "crd",
        "-l",
        "app.kubernetes.io/part-of=ballast",
        "--timeout=60s",
    )


@pytest.fixture(scope="session")
def operator(
    crds: None,
    kubeconfig: Path,
    tmp_path_factory: pytest.TempPathFactory,
    prometheus_proxy: TcpProxy,
) -> Iterator[BallastProcess]:
    """The real operator process for the whole session (``metrics_port``: its /metrics)."""
    port = _free_port()
    op = BallastProcess(
        "operator",
        ["operator", "--metrics-port", str(port), "--metrics-addr", "127.0.0.1",
         # SLOs are read through the proxy (tests/integration/operator/test_slo_status.py),
         # over a 1-minute window every 2 s, so that a change shows within seconds.
         "--prometheus-url", f"http://127.0.0.1:{prometheus_proxy.port}",
         "--slo-window", "1m", "--slo-rules-namespace", SLO_RULES_NAMESPACE],
        kubeconfig,
        tmp_path_factory.mktemp("operator"),
        # Resync every 3 s so that reference checks converge quickly in tests; node pools
        # keep a surplus node 5 s instead of 300 s (tests/integration/operator/test_nodepools.py).
        env={"BALLAST_RESYNC_SECONDS": "3", "BALLAST_POOL_DWELL_SECONDS": "5",
             "BALLAST_SLO_INTERVAL_SECONDS": "2"},
    )  # fmt: skip
    op.metrics_port = port  # type: ignore[attr-defined]
    op.start()
    time.sleep(1.0)
    assert op.alive(), op.log_tail()
    yield op
    survived = op.alive()
    op.stop()
    # Bad input must never crash the operator: it is reported in conditions.
    assert survived, f"the operator exited during the tests:\n{op.log_tail()}"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def scheduler(
    crds: None, kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BallastProcess]:
    """The real scheduler process (schedulerName ``ballast``) for the whole session."""
    port = _free_port()
    proc = BallastProcess(
        "scheduler",
        ["scheduler", "--kube-api-qps", "0", "--metrics-port", str(port)],
        kubeconfig,
        tmp_path_factory.mktemp("scheduler"),
    )
    proc.metrics_port = port  # type: ignore[attr-defined]
    proc.start()
    time.sleep(1.0)
    assert proc.alive(), proc.log_tail()
    yield proc
    survived = proc.alive()
    proc.stop()
    assert survived, f"the scheduler exited during the tests:\n{proc.log_tail()}"
