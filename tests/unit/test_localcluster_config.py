"""PKI, component command lines, scheduler config, state file and kubeconfig: pure parts."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ballast.localcluster import components as comp
from ballast.localcluster.certs import PKI, generate_pki
from ballast.localcluster.state import (
    ClusterState,
    ComponentState,
    Layout,
    load_state,
    save_state,
    write_kubeconfig,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return generate_pki(tmp_path_factory.mktemp("pki"))


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_pki_chain_sans_and_admin_group(pki: PKI) -> None:
    ca = cert(pki.ca_cert)
    serving, admin = cert(pki.serving_cert), cert(pki.admin_cert)
    serving.verify_directly_issued_by(ca)
    admin.verify_directly_issued_by(ca)
    cert(pki.proxy_cert).verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "kubernetes.default.svc"} <= set(sans.get_values_for_type(x509.DNSName))
    assert {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("10.0.0.1")} <= set(
        sans.get_values_for_type(x509.IPAddress)
    )
    usage = serving.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage
    orgs = admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    assert [o.value for o in orgs] == ["system:masters"]


def test_keys_are_private_and_sa_key_is_rsa(pki: PKI) -> None:
    for key in (pki.ca_key, pki.serving_key, pki.admin_key, pki.proxy_key, pki.sa_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    sa = load_pem_private_key(pki.sa_key.read_bytes(), None)
    assert isinstance(sa, rsa.RSAPrivateKey) and sa.key_size == 2048
    assert b"PUBLIC KEY" in pki.sa_pub.read_bytes()


@pytest.fixture
def plan(tmp_path: Path, pki: PKI) -> comp.Plan:
    ports = {name: 40000 + i for i, name in enumerate(comp.PORT_NAMES)}
    return comp.Plan("t", tmp_path / "bin", Layout(tmp_path / "c"), pki, ports, tmp_path / "etcd")


def flags(argv: list[str]) -> dict[str, str]:
    return dict(a.removeprefix("--").split("=", 1) for a in argv[1:] if "=" in a)


def test_etcd_and_apiserver_flags(plan: comp.Plan) -> None:
    etcd = flags(comp.etcd_args(plan))
    assert etcd["listen-client-urls"] == "http://127.0.0.1:40000"
    assert etcd["unsafe-no-fsync"] == "true" and etcd["data-dir"] == str(plan.etcd_data_dir)
    api = comp.apiserver_args(plan)
    assert api[0] == str(plan.bin_dir / "kube-apiserver")
    f = flags(api)
    assert f["etcd-servers"] == "http://127.0.0.1:40000"
    assert f["secure-port"] == "40002" and f["bind-address"] == "127.0.0.1"
    assert f["authorization-mode"] == "Node,RBAC"
    assert f["service-cluster-ip-range"] == "10.0.0.0/24"
    assert f["client-ca-file"] == str(plan.pki.ca_cert)
    assert f["service-account-signing-key-file"] == str(plan.pki.sa_key)
    assert f["allow-privileged"] == "true"


def test_controller_manager_and_kwok_flags(plan: comp.Plan) -> None:
    kcm = flags(comp.controller_manager_args(plan))
    assert kcm["leader-elect"] == "false" and kcm["use-service-account-credentials"] == "true"
    assert kcm["root-ca-file"] == str(plan.pki.ca_cert)
    assert kcm["service-account-private-key-file"] == str(plan.pki.sa_key)
    assert kcm["kubeconfig"] == str(plan.layout.kubeconfig)
    # kwok renews a Lease every quarter of its duration; the node lifecycle
    # controller must allow several missed renewals before NotReady.
    grace_s = int(kcm["node-monitor-grace-period"].removesuffix("s"))
    lease = yaml.safe_load(comp.KWOK_CONFIG.split("---")[0])
    renew_s = lease["options"]["nodeLeaseDurationSeconds"] / 4
    assert grace_s >= 5 * renew_s
    kwok = flags(comp.kwok_args(plan))
    assert kwok["manage-all-nodes"] == "false"
    assert kwok["manage-nodes-with-annotation-selector"] == "kwok.x-k8s.io/node=fake"
    assert kwok["server-address"] == "127.0.0.1:40004"
    assert kwok["config"] == str(plan.layout.kwok_config)


def test_scheduler_flags_with_and_without_config(plan: comp.Plan, tmp_path: Path) -> None:
    bare = flags(comp.scheduler_args(plan))
    assert bare["leader-elect"] == "false" and bare["kubeconfig"] == str(plan.layout.kubeconfig)
    configured = comp.scheduler_args(plan, tmp_path / "s.yaml", ["--v=4"])
    f = flags(configured)
    assert f["config"] == str(tmp_path / "s.yaml") and f["secure-port"] == "40005"
    # With --config, kube-scheduler ignores these two: they go in the file instead.
    assert "kubeconfig" not in f and "leader-elect" not in f
    assert configured[-1] == "--v=4"


def test_scheduler_config_fills_only_what_is_missing(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    extender = {"urlPrefix": "http://127.0.0.1:9999", "filterVerb": "filter"}
    doc = comp.scheduler_config({"extenders": [extender]}, kubeconfig)
    assert doc["apiVersion"] == "kubescheduler.config.k8s.io/v1"
    assert doc["kind"] == "KubeSchedulerConfiguration"
    assert doc["clientConnection"] == {"kubeconfig": str(kubeconfig)}
    assert doc["leaderElection"] == {"leaderElect": False}
    assert doc["extenders"] == [extender]
    mine = comp.scheduler_config(
        {"clientConnection": {"qps": 50, "kubeconfig": "/x"}, "leaderElection": {}}, kubeconfig
    )
    assert mine["clientConnection"] == {"qps": 50, "kubeconfig": "/x"}
    assert mine["leaderElection"] == {"leaderElect": False}


def test_health_urls() -> None:
    assert comp.health_url("etcd", 1) == "http://127.0.0.1:1/health"
    assert comp.health_url("kube-apiserver", 2) == "https://127.0.0.1:2/readyz"
    assert comp.health_url("kube-scheduler", 3) == "https://127.0.0.1:3/readyz"
    assert comp.health_url("kwok", 4) == "http://127.0.0.1:4/healthz"


def test_state_round_trip(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    assert load_state(layout) is None
    state = ClusterState("n", "/bin", "/k", "/tmp/e", {"kube-apiserver": 6443, "etcd": 2379})
    state.components["etcd"] = ComponentState(10, 20, 2379, ["etcd", "--x"])
    save_state(layout, state)
    again = load_state(layout)
    assert again == state and again.server == "https://127.0.0.1:6443"
    layout.state_file.write_text("{not json")
    assert load_state(layout) is None


def test_kubeconfig_embeds_credentials(tmp_path: Path, pki: PKI) -> None:
    path = tmp_path / "kubeconfig"
    write_kubeconfig(
        path,
        "demo",
        "https://127.0.0.1:6443",
        pki.ca_cert.read_bytes(),
        pki.admin_cert.read_bytes(),
        pki.admin_key.read_bytes(),
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = yaml.safe_load(path.read_text())
    assert doc["current-context"] == "ballast-demo"
    assert doc["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    assert set(doc["users"][0]["user"]) == {"client-certificate-data", "client-key-data"}
