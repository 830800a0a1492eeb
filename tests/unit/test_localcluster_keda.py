"""KEDA beside a local cluster, pure parts: tool key, certificate, command lines, API objects."""

from __future__ import annotations

import base64
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from ballast.localcluster import binaries as b
from ballast.localcluster import components as comp
from ballast.localcluster import keda, netns
from ballast.localcluster import prometheus as prom
from ballast.localcluster import tools as t
from ballast.localcluster.certs import PKI, generate_pki, issue_leaf
from ballast.localcluster.state import Layout

PORTS = {"keda-operator": 1, "keda-grpc": 2, "keda-metrics": 3, "keda-adapter": 4,
         "keda-adapter-metrics": 5}  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return generate_pki(tmp_path_factory.mktemp("pki"))


def test_the_real_build_script_has_a_keda_section_keyed_apart() -> None:
    hack = b.hack_dir()
    assert "keda" in b.tool_sections((hack / "build.sh").read_text())
    assert t.pinned_version(hack, t.KEDA).startswith("v2.")
    files = {p.relative_to(hack).as_posix() for p in t.tool_files(hack, t.KEDA)}
    assert {"build.sh", "keda/go.mod", "keda/go.sum", "keda/tools.go"} <= files
    # Neither the KEDA wrapper nor its section is a control-plane input.
    assert not any(p.relative_to(hack).parts[0] == "keda" for p in b.hack_files(hack))
    assert b"tool keda" not in b.script_bytes(hack)


def test_one_certificate_for_serving_and_grpc_both_ways(pki: PKI, tmp_path: Path) -> None:
    out = issue_leaf(pki, tmp_path / "certs", "keda", ips=("127.0.0.1", "192.168.231.1"),
                     dns=keda.cert_names())  # fmt: skip
    assert {p.name for p in out.iterdir()} == {"ca.crt", "tls.crt", "tls.key"}
    assert (out / "tls.key").stat().st_mode & 0o077 == 0
    cert = x509.load_pem_x509_certificate((out / "tls.crt").read_bytes())
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    cert.verify_directly_issued_by(ca)
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("192.168.231.1") in sans.get_values_for_type(x509.IPAddress)
    assert "keda-metrics-apiserver.keda.svc" in sans.get_values_for_type(x509.DNSName)


def test_command_lines_keep_keda_on_loopback_and_the_adapter_on_the_veth(tmp_path: Path) -> None:
    op = keda.operator_args(tmp_path / "keda", tmp_path / "certs", PORTS)
    assert "--metrics-service-bind-address=127.0.0.1:2" in op
    assert "--health-probe-bind-address=127.0.0.1:1" in op and "--leader-elect=false" in op
    ad = keda.adapter_args(tmp_path / "keda-adapter", tmp_path / "certs", tmp_path / "kc",
                           "192.168.231.1", PORTS)  # fmt: skip
    assert "--bind-address=192.168.231.1" in ad and "--secure-port=4" in ad
    assert "--metrics-service-address=127.0.0.1:2" in ad and "--port=5" in ad
    assert f"--cert-dir={tmp_path / 'certs'}" in ad
    assert keda.env(tmp_path / "kc")["WATCH_NAMESPACE"] == ""


def test_api_objects_route_external_metrics_to_the_veth_address() -> None:
    objs = {o["kind"]: o for o in keda.api_objects("192.168.231.1", 4, "Q0E=")}
    assert objs["Endpoints"]["subsets"][0]["addresses"] == [{"ip": "192.168.231.1"}]
    assert objs["Endpoints"]["subsets"][0]["ports"][0]["port"] == 4
    api = objs["APIService"]["spec"]
    assert (api["group"], api["version"]) == ("external.metrics.k8s.io", "v1beta1")
    assert api["service"] == {"name": "keda-metrics-apiserver", "namespace": "keda", "port": 443}
    assert base64.b64decode(api["caBundle"]) == b"CA"
    assert objs["Service"]["spec"]["ports"][0]["targetPort"] == 4


def test_veth_names_fit_and_differ_per_cluster() -> None:
    ns, host, peer = netns.names("pytest-1234")
    assert ns == "ballast-pytest-1234" and len(host) <= 15 and len(peer) <= 15
    assert netns.names("a")[1] != netns.names("b")[1]
    assert netns.RANGE.is_private and not netns.RANGE.overlaps(
        ipaddress.ip_network(comp.POD_CIDR, strict=False)
    )


def test_aggregation_routing_and_the_hpa_period_on_every_cluster(pki: PKI, tmp_path: Path) -> None:
    plan = comp.Plan("x", tmp_path, Layout(tmp_path), pki, {n: 1 for n in comp.PORT_NAMES},
                     tmp_path, hpa_sync_seconds=7.0)  # fmt: skip
    assert "--enable-aggregator-routing=true" in comp.apiserver_args(plan)
    assert "--horizontal-pod-autoscaler-sync-period=7s" in comp.controller_manager_args(plan)


def test_serving_job_keeps_its_namespace_and_pod_labels(tmp_path: Path) -> None:
    jobs = {
        j["job_name"]: j
        for j in prom.config(tmp_path, 9090, scrape_interval_s=15)["scrape_configs"]
    }
    assert jobs["serving"]["honor_labels"] is True
    assert prom.config(tmp_path, 9090, scrape_interval_s=15)["global"]["scrape_interval"] == "15s"
