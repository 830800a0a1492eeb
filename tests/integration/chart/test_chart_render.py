"""The chart lints strictly and, over a matrix of values, renders objects the API server accepts.

Every rendered object goes through ``kubectl apply --dry-run=server
--validate=strict``: the real API server's schemas, defaulting, validation and
admission (PodSecurity included), with unknown or duplicate fields an error.
The kinds of the Prometheus Operator and cert-manager are dry-run against
stand-in CRDs (thirdparty-crds.yaml) whose schemas hold the fields the chart
writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from chartutil import CHART, Helm, Release
from kutil import Kubectl

from ballast.controller.jobs import JOB_KINDS

HERE = Path(__file__).resolve().parent

MATRIX: dict[str, list[str]] = {
    "defaults": [],
    "everything-on": [
        "--set", "monitoring.podMonitor.enabled=true",
        "--set", "monitoring.prometheusRule.enabled=true",
        "--set", "monitoring.grafanaDashboard.enabled=true",
        "--set", "webhook.namespaceLabels.ballast\\.dev/tenant=yes",
        "--set", "agent.cacheRoots[0].kind=model,agent.cacheRoots[0].hostPath=/models,agent.cacheRoots[0].layout=hf",
        "--set", "agent.runtimeClassName=nvidia,operator.priorityClassName=system-cluster-critical",
        "--set", "operator.resources.requests.cpu=100m,operator.resources.requests.memory=256Mi",
        "--set", "operator.scaling.enabled=true,operator.scaling.prometheusUrl=http://prometheus:9090",
        "--set", "image.digest=sha256:" + "0" * 64,
    ],
    "ha-off": [
        "--set", "operator.replicas=1,operator.peering.enabled=false",
        "--set", "scheduler.replicas=1,scheduler.leaderElection.enabled=false",
        "--set", "agent.enabled=false,webhook.enabled=false,crds.install=false",
    ],
    "cert-manager": [
        "--set", "webhook.certManager.enabled=true",
        "--set", "agent.podResources.enabled=false,agent.runAsUser=65532",
    ],
}  # fmt: skip


def test_lint_strict(helm: Helm) -> None:
    out = helm("lint", "--strict", str(CHART)).stdout
    assert "0 chart(s) failed" in out, out
    for name, values in MATRIX.items():
        proc = helm("lint", "--strict", str(CHART), *values, check=False)
        assert proc.returncode == 0, f"{name}:\n{proc.stdout}\n{proc.stderr}"


def test_a_misspelt_value_is_refused(helm: Helm) -> None:
    proc = helm("lint", str(CHART), "--set", "operator.replica=3", check=False)
    assert proc.returncode != 0
    assert "additional properties 'replica' not allowed" in proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def thirdparty_crds(chart_kubectl: Kubectl) -> None:
    chart_kubectl("apply", "-f", str(HERE / "thirdparty-crds.yaml"))
    chart_kubectl("wait", "--for=condition=Established", "-f", str(HERE / "thirdparty-crds.yaml"))


@pytest.mark.parametrize("case", list(MATRIX))
def test_every_rendered_object_is_accepted_by_the_api_server(
    case: str,
    helm: Helm,
    release: Release,  # its CRDs (ClusterKopfPeering's among them) are served
    thirdparty_crds: None,
    chart_kubectl: Kubectl,
    kube_version: str,
    tmp_path: Path,
) -> None:
    ns = f"dry-{case}"
    chart_kubectl("create", "namespace", ns, check=False)
    chart_kubectl(
        "label", "namespace", ns, "--overwrite", "pod-security.kubernetes.io/enforce=restricted"
    )
    objects = helm.template(f"dry-{case}", ns, kube_version, *MATRIX[case])
    kinds = {o["kind"] for o in objects}
    path = tmp_path / "rendered.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    out = chart_kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-f", str(path)
    ).stdout  # fmt: skip
    assert out.count("(server dry run)") == len(objects), out
    if case == "everything-on":
        assert {"PodMonitor", "PrometheusRule", "ConfigMap"} <= kinds
    if case == "cert-manager":
        assert {"Certificate", "Issuer"} <= kinds and "Secret" not in kinds
    if case == "ha-off":
        assert not {"PodDisruptionBudget", "Lease", "ClusterKopfPeering", "DaemonSet"} & kinds


def _rules(objects: list[dict[str, Any]], kind: str, name: str) -> list[dict[str, Any]]:
    for o in objects:
        if o["kind"] == kind and o["metadata"]["name"] == name:
            return list(o["rules"])
    raise AssertionError(f"{kind} {name} not rendered")


@pytest.mark.parametrize("case", list(MATRIX))
def test_no_wildcards_and_every_job_kind_covered(case: str, helm: Helm, kube_version: str) -> None:
    objects = helm.template("r", "ns", kube_version, *MATRIX[case])
    for o in objects:
        for rule in o.get("rules") or () if o["kind"] in ("ClusterRole", "Role") else ():
            for key in ("verbs", "resources", "apiGroups", "resourceNames"):
                assert "*" not in (rule.get(key) or ()), (o["metadata"]["name"], rule)
    operator_rules = _rules(objects, "ClusterRole", "r-ballast-operator")
    for kind in JOB_KINDS:
        assert any(
            kind.group in r["apiGroups"]
            and kind.plural in r["resources"]
            and {"list", "watch", "patch"} <= set(r["verbs"])
            for r in operator_rules
        ), f"the operator cannot hold {kind.plural}.{kind.group}"


def test_selectors_do_not_carry_the_chart_version(helm: Helm, kube_version: str) -> None:
    for o in helm.template("r", "ns", kube_version):
        selector = ((o.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if o["kind"] == "Service":
            selector = o["spec"]["selector"]
        assert "helm.sh/chart" not in selector and "app.kubernetes.io/version" not in selector
        if o["kind"] in ("Deployment", "DaemonSet"):
            container = o["spec"]["template"]["spec"]["containers"][0]
            assert "resources" not in container, "no resources forced on users"


@pytest.mark.parametrize("labels", [{}, {"ballast.dev/tenant": "yes"}], ids=["all", "labelled"])
def test_webhook_configurations_are_the_operators_own(
    labels: dict[str, str], helm: Helm, kube_version: str
) -> None:
    """The chart's configurations equal what `ballast/webhook/config.py` builds, caBundle aside."""
    from ballast.webhook import config, options

    values = [
        f"--set=webhook.namespaceLabels.{k.replace('.', chr(92) + '.')}={v}"
        for k, v in labels.items()
    ]
    objects = helm.template("r", "ops", kube_version, *values)
    opts = options.WebhookOptions(
        namespace="ops", config_name="r-ballast", service_name="r-ballast-webhook",
        namespace_labels=labels,
    )  # fmt: skip
    for kind, build in (
        ("MutatingWebhookConfiguration", config.mutating),
        ("ValidatingWebhookConfiguration", config.validating),
    ):
        rendered = next(o for o in objects if o["kind"] == kind)
        want = build(opts, b"")
        assert rendered["metadata"]["name"] == want["metadata"]["name"]
        for hook in want["webhooks"]:
            del hook["clientConfig"]["caBundle"]
            for cond in hook.get("matchConditions", ()):
                cond["expression"] = " ".join(cond["expression"].split())
        for hook in rendered["webhooks"]:
            for cond in hook.get("matchConditions", ()):
                cond["expression"] = " ".join(cond["expression"].split())
        assert rendered["webhooks"] == want["webhooks"]
