"""Command lines and health endpoints of the control-plane components (pure functions).

Flags follow what controller-runtime's envtest and ``kwokctl --runtime
binary`` pass, adjusted for a shared laptop or CI box: everything binds to
127.0.0.1 on ports picked at ``up`` time, etcd skips fsync, leader election
is off (one replica each), and the controller manager talks to the API server
a little faster than its defaults so that Deployments and Jobs with hundreds
of pods do not crawl.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ballast.localcluster import kwokstages
from ballast.localcluster.certs import PKI, PROXY_CLIENT_CN
from ballast.localcluster.state import Layout

SERVICE_CIDR = "10.0.0.0/24"
POD_CIDR = "10.240.0.1/12"  # kwok hands out pod IPs from here: room for ~1M pods
NODE_IP = "127.0.0.1"  # kwok's fake nodes report this InternalIP
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
KWOK_SELECTOR = "kwok.x-k8s.io/node=fake"
#: Feature gates for the API server, controller manager and kube-scheduler, e.g.
#: ``GenericWorkload=true,WorkloadWithJob=true`` (the Workload API and gang scheduling).
FEATURE_GATES_ENV = "BALLAST_FEATURE_GATES"
SCHEDULER_API = "kubescheduler.config.k8s.io/v1"
ETCD_QUOTA_BYTES = 8 * 1024**3  # room for benchmark runs with 100k pods
PORT_NAMES: tuple[str, ...] = (
    "etcd",
    "etcd-peer",
    "kube-apiserver",
    "kube-controller-manager",
    "kwok",
    "kube-scheduler",
)

#: kwok renews each fake node's Lease every quarter of this (kubelet's rule). A
#: kubelet's 40 s means 500 Lease writes a second at 5,000 nodes. One 2-core
#: machine running the whole control plane and a benchmark does not keep up:
#: at 5,000 nodes and 40,000 pods kwok renewed 4 to 30 Leases a second, the
#: node lifecycle controller marked nodes NotReady, tainted them and evicted
#: their pods, and the benchmark lost part of its cluster. 600 s renews every
#: 150 s (33 writes a second at 5,000 nodes).
NODE_LEASE_SECONDS = 600
#: How long the node lifecycle controller waits without a renewal before it
#: marks a node NotReady: eight renewals (kubelet's defaults give five, 50 s
#: over 10 s, with far less load behind each). Fake nodes fail only when kwok
#: stops; that is then noticed after 20 minutes instead of under one.
NODE_MONITOR_GRACE_SECONDS = 1200

KWOK_CONFIG = (
    f"""\
# Written by ballast; passed with -c so that a user's ~/.kwok/kwok.yaml is never read.
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  nodeLeaseDurationSeconds: {NODE_LEASE_SECONDS}
"""
    + kwokstages.STAGES
)


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything the command lines depend on."""

    name: str
    bin_dir: Path
    layout: Layout
    pki: PKI
    ports: Mapping[str, int]
    etcd_data_dir: Path
    hpa_sync_seconds: float = 15.0

    def binary(self, name: str) -> str:
        """Absolute path of one of the binaries."""
        return str(self.bin_dir / name)

    def url(self, component: str, scheme: str = "https") -> str:
        """``scheme://127.0.0.1:<port of component>``."""
        return f"{scheme}://127.0.0.1:{self.ports[component]}"


def etcd_args(plan: Plan) -> list[str]:
    """etcd: one member on loopback, no fsync, data in a temp folder."""
    client, peer = plan.url("etcd", "http"), plan.url("etcd-peer", "http")
    return [
        plan.binary("etcd"),
        "--name=ballast",
        f"--data-dir={plan.etcd_data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=ballast={peer}",
        "--initial-cluster-state=new",
        "--unsafe-no-fsync=true",
        f"--quota-backend-bytes={ETCD_QUOTA_BYTES}",
        "--log-level=warn",
    ]


def feature_gate_args(*, apiserver: bool = False) -> list[str]:
    """``--feature-gates`` from ``$BALLAST_FEATURE_GATES`` (none when unset).

    ``GenericWorkload=true`` also serves ``scheduling.k8s.io/v1beta1`` from the
    API server (a beta API, off by default): the Workload and PodGroup kinds.
    """
    gates = os.environ.get(FEATURE_GATES_ENV, "").strip()
    if not gates:
        return []
    out = [f"--feature-gates={gates}"]
    if apiserver and "GenericWorkload=true" in gates.replace(" ", ""):
        out.append("--runtime-config=scheduling.k8s.io/v1beta1=true")
    return out


def apiserver_args(plan: Plan) -> list[str]:
    """kube-apiserver: client-cert auth against the local CA, Node+RBAC authorization."""
    pki = plan.pki
    return [
        plan.binary("kube-apiserver"),
        f"--etcd-servers={plan.url('etcd', 'http')}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={plan.ports['kube-apiserver']}",
        f"--tls-cert-file={pki.serving_cert}",
        f"--tls-private-key-file={pki.serving_key}",
        f"--client-ca-file={pki.ca_cert}",
        f"--cert-dir={plan.layout.pki_dir}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        f"--service-account-issuer={SA_ISSUER}",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        "--allow-privileged=true",
        f"--requestheader-client-ca-file={pki.ca_cert}",
        f"--requestheader-allowed-names={PROXY_CLIENT_CN}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki.proxy_cert}",
        f"--proxy-client-key-file={pki.proxy_key}",
        # The aggregation layer dials an APIService's endpoint address, not its
        # Service's cluster IP: there is no kube-proxy here (KEDA, docs/local-cluster.md).
        "--enable-aggregator-routing=true",
        # 127.0.0.1 is not a valid Endpoints address; nothing in this cluster
        # reaches the API server through the `kubernetes` Service anyway.
        "--endpoint-reconciler-type=none",
        "--profiling=false",
        *feature_gate_args(apiserver=True),
    ]


def _client_kubeconfigs(plan: Plan) -> list[str]:
    kubeconfig = plan.layout.kubeconfig
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
    ]


def controller_manager_args(plan: Plan) -> list[str]:
    """kube-controller-manager: the default controllers, each with its own service account."""
    pki = plan.pki
    return [
        plan.binary("kube-controller-manager"),
        *_client_kubeconfigs(plan),
        "--bind-address=127.0.0.1",
        f"--secure-port={plan.ports['kube-controller-manager']}",
        "--leader-elect=false",
        "--controllers=*",
        f"--root-ca-file={pki.ca_cert}",
        f"--service-account-private-key-file={pki.sa_key}",
        "--use-service-account-credentials=true",
        f"--cluster-signing-cert-file={pki.ca_cert}",
        f"--cluster-signing-key-file={pki.ca_key}",
        f"--cluster-name=ballast-{plan.name}",
        "--kube-api-qps=100",
        "--kube-api-burst=200",
        # Fake nodes renew their Lease every 150 s (NODE_LEASE_SECONDS).
        f"--node-monitor-grace-period={NODE_MONITOR_GRACE_SECONDS}s",
        # How often the HPA controller reads metrics and decides (default 15 s).
        f"--horizontal-pod-autoscaler-sync-period={plan.hpa_sync_seconds:g}s",
        "--profiling=false",
        *feature_gate_args(),
    ]


def scheduler_args(
    plan: Plan, config: Path | None = None, extra_args: Sequence[str] = ()
) -> list[str]:
    """kube-scheduler: flags only, or ``--config`` (which then owns kubeconfig and leader election)."""
    args = [plan.binary("kube-scheduler")]
    if config is None:
        args += [*_client_kubeconfigs(plan), "--leader-elect=false"]
    else:
        kubeconfig = plan.layout.kubeconfig
        args += [
            f"--config={config}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
        ]
    args += [
        "--bind-address=127.0.0.1",
        f"--secure-port={plan.ports['kube-scheduler']}",
        "--profiling=false",
        # Probes and metrics without credentials (loopback only): benchmarks read
        # scheduler_schedule_attempts_total.
        "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
        *feature_gate_args(),
    ]
    return args + list(extra_args)


def scheduler_config(doc: Mapping[str, Any], kubeconfig: Path) -> dict[str, Any]:
    """Fill a KubeSchedulerConfiguration with what this cluster needs, keeping what is set.

    With ``--config`` the scheduler ignores ``--kubeconfig`` and
    ``--leader-elect``, so the client kubeconfig and ``leaderElect: false``
    are written into the document unless the caller chose otherwise.
    """
    out: dict[str, Any] = dict(doc)
    out.setdefault("apiVersion", SCHEDULER_API)
    out.setdefault("kind", "KubeSchedulerConfiguration")
    connection = dict(out.get("clientConnection") or {})
    connection.setdefault("kubeconfig", str(kubeconfig))
    out["clientConnection"] = connection
    election = dict(out.get("leaderElection") or {})
    election.setdefault("leaderElect", False)
    out["leaderElection"] = election
    return out


def kwok_args(plan: Plan) -> list[str]:
    """kwok: manage only nodes annotated ``kwok.x-k8s.io/node=fake``; serve /healthz."""
    return [
        plan.binary("kwok"),
        f"--config={plan.layout.kwok_config}",
        f"--kubeconfig={plan.layout.kubeconfig}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={KWOK_SELECTOR}",
        f"--cidr={POD_CIDR}",
        f"--node-ip={NODE_IP}",
        f"--server-address=127.0.0.1:{plan.ports['kwok']}",
    ]


def health_url(component: str, port: int) -> str:
    """The URL whose 200 means ``component`` is ready."""
    if component == "etcd":
        return f"http://127.0.0.1:{port}/health"
    if component == "kwok":
        return f"http://127.0.0.1:{port}/healthz"
    if component in ("kube-apiserver", "kube-scheduler"):
        # kube-scheduler's /readyz waits for its informers' first lists (sched-handler-sync).
        return f"https://127.0.0.1:{port}/readyz"
    if component == "prometheus":
        return f"http://127.0.0.1:{port}/-/ready"
    return f"https://127.0.0.1:{port}/healthz"
