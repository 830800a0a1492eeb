"""KEDA beside a local cluster: its CRDs, certificates, command lines and API objects.

``up --keda`` runs KEDA's operator (``keda``, from ``cmd/operator``) and its
metrics API server (``keda-adapter``, ``cmd/adapter``), both built by
``hack/build.sh OUT keda`` (:data:`ballast.localcluster.tools.KEDA`), as
processes with the admin kubeconfig::

    HPA controller -> kube-apiserver (aggregation layer, front-proxy client cert)
      -> APIService v1beta1.external.metrics.k8s.io -> Service keda/keda-metrics-apiserver
      -> its endpoints: the veth address (netns.py) where keda-adapter listens
      -> keda-adapter -> gRPC with mTLS on 127.0.0.1 -> keda (queries Prometheus)

The API server routes to the endpoint address itself
(``--enable-aggregator-routing``: no kube-proxy here), and that address may
not be loopback, hence the veth pair. One certificate signed by the cluster
CA (server and client use, SANs for loopback and the veth address) serves
the adapter and both ends of the gRPC link; the APIService trusts the CA.

Files: ``<cluster>/keda/certs/{ca.crt,tls.crt,tls.key}``.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import yaml

from ballast.localcluster.certs import PKI
from ballast.localcluster.errors import ClusterError

NAMESPACE = "keda"
SERVICE = "keda-metrics-apiserver"
OPERATOR_SERVICE = "keda-operator"
API_SERVICE = "v1beta1.external.metrics.k8s.io"
EXTERNAL_METRICS_GROUP = "external.metrics.k8s.io"
# keda-operator: its health port (the component's port); keda-adapter: the secure port.
PORT_NAMES: tuple[str, ...] = (
    "keda-operator",
    "keda-grpc",
    "keda-metrics",
    "keda-adapter",
    "keda-adapter-metrics",
)
SERVICE_PORT = 443


def root(cluster_root: Path) -> Path:
    """``<cluster>/keda``."""
    return cluster_root / "keda"


def cert_dir(cluster_root: Path) -> Path:
    """The folder with ``ca.crt``, ``tls.crt`` and ``tls.key``."""
    return root(cluster_root) / "certs"


def cert_names() -> tuple[str, ...]:
    """DNS names in the shared certificate (the in-cluster names KEDA would use)."""
    return tuple(
        f"{svc}.{NAMESPACE}.svc{suffix}"
        for svc in (SERVICE, OPERATOR_SERVICE)
        for suffix in ("", ".cluster.local")
    )


def crd_files(tool_dir: Path) -> list[Path]:
    """KEDA's CRD manifests, copied from its module into ``<tool dir>/crds`` by the build."""
    return sorted((tool_dir / "crds").glob("*.yaml"))


def crds(tool_dir: Path) -> list[dict[str, Any]]:
    """The CRD documents (ScaledObject, ScaledJob, TriggerAuthentication, ...)."""
    docs: list[dict[str, Any]] = []
    for path in crd_files(tool_dir):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def env(kubeconfig: Path) -> dict[str, str]:
    """What both processes read from the environment in a pod: namespaces, kubeconfig."""
    return {
        "KUBECONFIG": str(kubeconfig),
        "WATCH_NAMESPACE": "",  # every namespace
        "POD_NAMESPACE": NAMESPACE,
        "KEDA_CLUSTER_OBJECT_NAMESPACE": NAMESPACE,
    }


def operator_args(binary: Path, certs: Path, ports: dict[str, int]) -> list[str]:
    """``keda``: health on loopback, the gRPC metrics service on loopback with mTLS."""
    return [
        str(binary),
        f"--health-probe-bind-address=127.0.0.1:{ports['keda-operator']}",
        f"--metrics-bind-address=127.0.0.1:{ports['keda-metrics']}",
        f"--metrics-service-bind-address=127.0.0.1:{ports['keda-grpc']}",
        f"--cert-dir={certs}",
        f"--ca-dir={certs}",
        "--leader-elect=false",
        "--zap-log-level=info",
        "--zap-encoder=console",
    ]


def adapter_args(
    binary: Path, certs: Path, kubeconfig: Path, address: str, ports: dict[str, int]
) -> list[str]:
    """``keda-adapter``: serve external.metrics.k8s.io on the veth address."""
    return [
        str(binary),
        f"--bind-address={address}",
        f"--secure-port={ports['keda-adapter']}",
        f"--tls-cert-file={certs / 'tls.crt'}",
        f"--tls-private-key-file={certs / 'tls.key'}",
        f"--cert-dir={certs}",  # the gRPC client's ca.crt, tls.crt, tls.key
        f"--lister-kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--kubeconfig={kubeconfig}",
        f"--metrics-service-address=127.0.0.1:{ports['keda-grpc']}",
        # The adapter's plain-HTTP /metrics binds every address: a free port, not 8080.
        f"--port={ports['keda-adapter-metrics']}",
        "--zap-log-level=info",
        "--zap-encoder=console",
    ]


def operator_health_url(port: int) -> str:
    """The KEDA operator's readiness endpoint."""
    return f"http://127.0.0.1:{port}/readyz"


def adapter_health_url(address: str, port: int) -> str:
    """The metrics API server's readiness endpoint (anonymous access is allowed there)."""
    return f"https://{address}:{port}/readyz"


def api_objects(address: str, port: int, ca_bundle_b64: str) -> list[dict[str, Any]]:
    """Namespace, Service, Endpoints and APIService that route the external metrics API."""
    labels = {"app.kubernetes.io/name": SERVICE, "app.kubernetes.io/managed-by": "ballast-cluster"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": SERVICE, "namespace": NAMESPACE, "labels": labels},
            "spec": {  # no selector: the endpoints below are written by hand
                "ports": [{"name": "https", "port": SERVICE_PORT, "targetPort": port}],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": SERVICE, "namespace": NAMESPACE, "labels": labels},
            "subsets": [
                {
                    "addresses": [{"ip": address}],
                    "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
                }
            ],
        },
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": API_SERVICE, "labels": labels},
            "spec": {
                "group": EXTERNAL_METRICS_GROUP,
                "version": "v1beta1",
                "service": {"name": SERVICE, "namespace": NAMESPACE, "port": SERVICE_PORT},
                "caBundle": ca_bundle_b64,
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        },
    ]


FIELD_MANAGER = "ballast-cluster"
_PATHS = {
    "CustomResourceDefinition": "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}",
    "Namespace": "/api/v1/namespaces/{name}",
    "Service": "/api/v1/namespaces/{namespace}/services/{name}",
    "Endpoints": "/api/v1/namespaces/{namespace}/endpoints/{name}",
    "APIService": "/apis/apiregistration.k8s.io/v1/apiservices/{name}",
}


def _path(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return _PATHS[obj["kind"]].format(name=meta["name"], namespace=meta.get("namespace", ""))


def install(kubeconfig: Path, tool_dir: Path, address: str, port: int, pki: PKI) -> None:
    """Apply KEDA's CRDs and the objects that route the external metrics API; wait for the CRDs.

    Server-side apply: running it again (a restarted KEDA) changes nothing.
    """
    from ballast.kube.raw import Kube  # the kubernetes client is slow to import

    docs = crds(tool_dir)
    if not docs:
        raise ClusterError(
            f"{tool_dir}/crds has no KEDA CRDs: rebuild with `ballast cluster build`"
        )
    ca = base64.b64encode(pki.ca_cert.read_bytes()).decode()
    kube = Kube.connect(str(kubeconfig))
    try:
        for obj in [*docs, *api_objects(address, port, ca)]:
            kube.apply(_path(obj), obj, field_manager=FIELD_MANAGER)
        deadline = time.monotonic() + 60
        while not _served(kube):
            if time.monotonic() > deadline:
                raise ClusterError(
                    "KEDA's CRDs were applied but scaledobjects.keda.sh is not served"
                )
            time.sleep(0.25)
    finally:
        kube.close()


def _served(kube: Any) -> bool:
    doc = kube.get("/apis/keda.sh/v1alpha1")
    return doc is not None and any(r.get("name") == "scaledobjects" for r in doc["resources"])


def await_available(kubeconfig: Path, timeout_s: float) -> None:
    """Wait until the API server reports the external metrics APIService Available."""
    from ballast.kube.raw import Kube

    kube = Kube.connect(str(kubeconfig))
    deadline = time.monotonic() + timeout_s
    last = "no status yet"
    try:
        while True:
            obj = kube.get(_PATHS["APIService"].format(name=API_SERVICE)) or {}
            for c in (obj.get("status") or {}).get("conditions") or ():
                if c.get("type") == "Available":
                    if c.get("status") == "True":
                        return
                    last = f"{c.get('reason')}: {c.get('message')}"
            if time.monotonic() > deadline:
                raise ClusterError(f"APIService {API_SERVICE} not Available: {last}")
            time.sleep(0.5)
    finally:
        kube.close()
