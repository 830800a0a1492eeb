"""``helm install`` under the `restricted` Pod Security Standard, Ballast running with exactly the chart's RBAC, then upgrade, rollback and uninstall.

kwok runs no containers, so the chart's pods are only created (that is where
PodSecurity admits or refuses them). The operator, the scheduler and the
agent run on the host instead, with the chart's own command lines and
environment (taken from the installed manifest) and the credentials of the
chart's own ServiceAccounts (TokenRequest): whatever the core scenarios need
and the chart does not grant fails here.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from chartutil import (
    AGENT_NODE,
    APPS,
    CHART,
    EXPECTED,
    ROOT,
    Helm,
    Release,
    find,
    host_command,
    parse_can_i,
    sa_kubeconfig,
)
from kutil import Kubectl, ready, wait_for
from sutil import gpu_node, gpu_pod, node_of, pod, wait_ready, waiting_reason, wlc

from ballast.api import wellknown as wk
from ballast.controller.jobs import ANNOTATION_SUSPENDED_BY
from ballast.kube.raw import (
    BATCHWINDOWS,
    GPUNODETELEMETRIES,
    GPUQUOTAS,
    NODES,
    PODS,
    PRIORITY_CLASSES,
    WORKLOADCLASSES,
    Kube,
    Resource,
)
from ballast.localcluster import LocalCluster
from ballast.localcluster.ballast_procs import BallastProcess
from ballast.localcluster.fakegpu import FakeGPUError, GPUFixture, build_fake_nvml

JOBS = Resource("batch", "v1", "jobs", True)
COMPONENTS = ("operator", "scheduler", "agent")
UPDATE_ENV = "BALLAST_UPDATE_EXPECTED_PERMISSIONS"


@dataclass
class Running:
    """Ballast's processes on the host, each with its ServiceAccount's kubeconfig."""

    procs: dict[str, BallastProcess]
    kubeconfigs: dict[str, Path]

    def logs(self) -> str:
        return "\n".join(f"--- {n}\n{p.log_tail(30)}" for n, p in self.procs.items())


def manifest(helm: Helm, release: Release) -> list[dict[str, Any]]:
    out = helm("get", "manifest", release.name, "--namespace", release.namespace).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.fixture(scope="module")
def running(
    release: Release,
    helm: Helm,
    chart_cluster: LocalCluster,
    chart_kube: Kube,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Running]:
    objects = manifest(helm, release)
    state = tmp_path_factory.mktemp("ballast")
    names = {c: f"{release.name}-{c}" for c in COMPONENTS}
    kubeconfigs = {
        c: sa_kubeconfig(
            chart_kube,
            chart_cluster.kubeconfig,
            release.agent_namespace if c == "agent" else release.namespace,
            names[c],
            state / f"{c}.kubeconfig",
        )
        for c in COMPONENTS
    }
    fields = {"metadata.namespace": release.namespace, "spec.nodeName": AGENT_NODE}
    procs: dict[str, BallastProcess] = {}
    for c, kind in (("operator", "Deployment"), ("scheduler", "Deployment")):
        args, env = host_command(find(objects, kind, names[c]), {**fields, "metadata.name": c})
        procs[c] = BallastProcess(c, args, kubeconfigs[c], state, env=env)
    args, env = host_command(
        find(objects, "DaemonSet", names["agent"]),
        {**fields, "metadata.namespace": release.agent_namespace},
    )
    try:
        lib = build_fake_nvml()
    except FakeGPUError as exc:
        pytest.fail(f"the fake NVML does not build (is `cc` installed?): {exc}", pytrace=False)
    fixture = state / "gpus.txt"
    GPUFixture.for_node(fixture, AGENT_NODE, "NVIDIA-H100-80GB-HBM3", 8, 81559)
    env.update(FAKE_NVML_FIXTURE=str(fixture))
    procs["agent"] = BallastProcess(
        "agent", [*args, f"--nvml-library={lib}", "--no-events"], kubeconfigs["agent"], state, env
    )
    for p in procs.values():
        p.start()
    run = Running(procs, kubeconfigs)
    time.sleep(2.0)
    assert all(p.alive() for p in procs.values()), run.logs()
    yield run
    for p in procs.values():
        p.stop()


def test_pods_pass_pod_security_admission(release: Release, chart_kube: Kube) -> None:
    """The ReplicaSets create every pod in the `restricted` namespace (no FailedCreate)."""

    def pods(ns: str, component: str) -> list[dict[str, Any]]:
        sel = f"app.kubernetes.io/instance={release.name},app.kubernetes.io/component={component}"
        return list(chart_kube.list(PODS.path(namespace=ns), labelSelector=sel)["items"])

    for component in ("operator", "scheduler"):
        wait_for(
            lambda c=component: len(pods(release.namespace, c)) == 2,
            timeout=30,
            what=f"2 {component} pods created",
        )
    wait_for(
        lambda: len(pods(release.agent_namespace, "agent")) == 1,
        timeout=30,
        what="an agent pod on the GPU node",
    )
    events = chart_kube.list(
        f"/api/v1/namespaces/{release.namespace}/events", fieldSelector="reason=FailedCreate"
    )["items"]
    assert not events, [e["message"] for e in events]


def test_the_agent_needs_its_documented_exception(
    release: Release, helm: Helm, chart_kube: Kube
) -> None:
    """The agent's pod is refused in the `restricted` namespace, for its host paths and root."""
    ds = find(manifest(helm, release), "DaemonSet", f"{release.name}-agent")
    spec = dict(ds["spec"]["template"]["spec"])
    del spec["serviceAccountName"]  # it lives in the agent's namespace
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "agent-probe", "namespace": release.namespace},
        "spec": spec,
    }
    with pytest.raises(Exception) as refused:
        chart_kube.request(
            "POST", PODS.path(namespace=release.namespace), query={"dryRun": "All"}, body=body
        )
    message = str(refused.value)
    assert "violates PodSecurity" in message and "hostPath" in message, message
    assert "runAsNonRoot" in message, message


@pytest.mark.parametrize("component", COMPONENTS)
def test_permissions_are_exactly_the_expected_list(
    component: str, release: Release, chart_kubectl: Kubectl
) -> None:
    ns = release.agent_namespace if component == "agent" else release.namespace
    table = chart_kubectl(
        "auth", "can-i", "--list", "-n", ns,
        f"--as=system:serviceaccount:{ns}:{release.name}-{component}",
    ).stdout  # fmt: skip
    got = parse_can_i(table)
    path = EXPECTED / f"{component}.txt"
    if os.environ.get(UPDATE_ENV):
        path.parent.mkdir(exist_ok=True)
        path.write_text("\n".join(got) + "\n")
    want = path.read_text().splitlines()
    added, removed = sorted(set(got) - set(want)), sorted(set(want) - set(got))
    assert not added and not removed, (
        f"{component}: granted but not expected {added}; expected but missing {removed} "
        f"(review, then rerun with {UPDATE_ENV}=1 to rewrite {path.name})"
    )
    for row in got:
        resource, _, _, verbs = row.split(" | ")
        assert not resource or "*" not in resource + verbs, row


def test_examples_become_ready(running: Running, chart_kubectl: Kubectl, chart_kube: Kube) -> None:
    chart_kubectl("apply", "-f", str(ROOT / "examples"))
    resources = {
        "WorkloadClass": WORKLOADCLASSES,
        "GPUQuota": GPUQUOTAS,
        "BatchWindow": BATCHWINDOWS,
    }
    docs = [
        d
        for f in sorted((ROOT / "examples").glob("*.yaml"))
        for d in yaml.safe_load_all(f.read_text())
        if d and d.get("kind") in resources
    ]
    for doc in docs:
        res, name = resources[doc["kind"]], doc["metadata"]["name"]
        wait_for(
            lambda res=res, name=name: ready(chart_kube, res, name),
            timeout=60,
            what=f"{doc['kind']} {name} Ready",
            explain=running.logs,
        )
    assert chart_kube.get(PRIORITY_CLASSES.path("ballast-chat")) is not None


def test_agent_publishes_its_record(running: Running, chart_kube: Kube) -> None:
    record = wait_for(
        lambda: (chart_kube.get(GPUNODETELEMETRIES.path(AGENT_NODE)) or {}).get("status"),
        timeout=30,
        what="the agent's GPUNodeTelemetry",
        explain=running.logs,
    )
    assert len(record["gpus"]) == 8 and record["nodeName"] == AGENT_NODE


def test_webhook_fills_in_a_pod_and_the_scheduler_places_it(
    running: Running, chart_kube: Kube
) -> None:
    cls, tid = "chart-online", "chartplace"
    wlc(chart_kube, cls, tier="Interactive")
    wait_for(lambda: ready(chart_kube, WORKLOADCLASSES, cls), timeout=30, what="class Ready")
    gpu_node(chart_kube, "chart-place-0", test=tid, gpus=4)
    wait_ready(chart_kube, tid, 1)
    # Only the class label: the webhook must fill in the scheduler and the priority.
    _bare_class_pod(chart_kube, "served", cls, tid)

    def filled() -> dict[str, Any] | None:
        p = pod(chart_kube, APPS, "served") or {}
        return p if p.get("spec", {}).get("schedulerName") == "ballast" else None

    got = wait_for(filled, what="webhook-filled pod", explain=running.logs)
    assert got["spec"]["priorityClassName"] == f"ballast-{cls}"
    wait_for(
        lambda: node_of(chart_kube, APPS, "served"),
        timeout=30,
        what="placed by the scheduler",
        explain=running.logs,
    )


def _bare_class_pod(kube: Kube, name: str, cls: str, tid: str) -> dict[str, Any]:
    """A pod carrying only the class label (no schedulerName, no priority, no toleration of the pool)."""
    return kube.create(
        PODS.path(namespace=APPS),
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {wk.LABEL_CLASS: cls}},
            "spec": {
                "nodeSelector": {"ballast.dev/test": tid},
                "tolerations": [{"key": "ballast.dev/test", "operator": "Exists"}],
                "terminationGracePeriodSeconds": 0,
                "containers": [
                    {
                        "name": "main",
                        "image": "registry.local/serve:1",
                        "resources": {
                            "requests": {wk.GPU_RESOURCE: "1"},
                            "limits": {wk.GPU_RESOURCE: "1"},
                        },
                    }
                ],
            },
        },
    )


def test_preemption(running: Running, chart_kube: Kube) -> None:
    tid, offline, chat = "chartpre", "chart-batch", "chart-chat"
    wlc(chart_kube, offline, tier="Offline", preemption={"gracePeriodSeconds": 1})
    wlc(chart_kube, chat, tier="Interactive", preemption={"policy": "LowerTier", "preemptible": False})  # fmt: skip
    gpu_node(chart_kube, "chart-full-0", test=tid, gpus=2)
    wait_ready(chart_kube, tid, 1)
    for i in range(2):
        gpu_pod(chart_kube, APPS, f"off{i}", test=tid, cls=offline)
    wait_for(
        lambda: all(node_of(chart_kube, APPS, f"off{i}") for i in range(2)),
        what="node full",
        explain=running.logs,
    )
    gpu_pod(chart_kube, APPS, "urgent", test=tid, cls=chat, gpus=2)
    wait_for(
        lambda: waiting_reason(chart_kube, APPS, "urgent", "Preempting"),
        what="Preempting",
        explain=running.logs,
    )
    wait_for(
        lambda: node_of(chart_kube, APPS, "urgent"),
        timeout=40,
        what="placed after evicting the offline pods",
        explain=running.logs,
    )
    for i in range(2):
        gone = pod(chart_kube, APPS, f"off{i}")
        assert gone is None or gone["metadata"].get("deletionTimestamp"), f"off{i} still runs"


def test_window_holds_a_job_until_it_opens(running: Running, chart_kube: Kube) -> None:
    """A Job of a windowed class is held while the window is closed, resumed when it opens."""
    win, cls = "chart-window", "chart-nightly"
    opens = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=15)
    chart_kube.create(BATCHWINDOWS.path(), {
        "apiVersion": "ballast.dev/v1alpha1", "kind": "BatchWindow", "metadata": {"name": win},
        "spec": {"schedule": "0 0 1 1 *", "duration": "1h", "onClose": "Finish",
                 "extraOpenings": [{"start": opens.strftime("%Y-%m-%dT%H:%M:%SZ"), "duration": "1h"}]},
    })  # fmt: skip
    wlc(chart_kube, cls, tier="Offline", window=win)
    wait_for(lambda: ready(chart_kube, WORKLOADCLASSES, cls), timeout=30, what="class Ready")
    chart_kube.create(JOBS.path(namespace=APPS), {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "train", "labels": {wk.LABEL_CLASS: cls}},
        "spec": {"backoffLimit": 0, "template": {
            "metadata": {"labels": {wk.LABEL_CLASS: cls}},
            "spec": {"restartPolicy": "Never", "tolerations": [{"operator": "Exists"}],
                     "containers": [{"name": "main", "image": "registry.local/train:1"}]}}},
    })  # fmt: skip

    def job() -> dict[str, Any]:
        return chart_kube.get(JOBS.path("train", APPS)) or {}

    def held_by() -> str | None:
        j = job()
        ann = j.get("metadata", {}).get("annotations") or {}
        return ann.get(ANNOTATION_SUSPENDED_BY) if j.get("spec", {}).get("suspend") else None

    def explain() -> str:
        status = (chart_kube.get(BATCHWINDOWS.path(win)) or {}).get("status")
        return f"job: {job()}\nwindow: {status}\n{running.logs()}"

    assert wait_for(held_by, timeout=20, what="held", explain=explain) == win
    assert dt.datetime.now(dt.UTC) < opens, "the window opened before the check; too slow"
    # Only the operator resumes (the webhook acts at creation): its Job RBAC at work.
    wait_for(
        lambda: job().get("spec", {}).get("suspend") is False and held_by() is None,
        timeout=40,
        what="resumed when the window opens",
        explain=explain,
    )
    assert dt.datetime.now(dt.UTC) >= opens
    assert ANNOTATION_SUSPENDED_BY not in (job()["metadata"].get("annotations") or {})


def test_no_request_was_forbidden(running: Running) -> None:
    """Everything the scenarios made the processes do was within the chart's RBAC."""
    forbidden = [
        f"{name}: {line}"
        for name, proc in running.procs.items()
        for line in proc.log_path.read_text(errors="replace").splitlines()
        if "forbidden" in line.lower() or "status=403" in line
    ]
    assert not forbidden, "\n".join(forbidden[:20])


def test_upgrade_rollback_uninstall(
    running: Running,
    release: Release,
    helm: Helm,
    chart_kube: Kube,
    chart_kubectl: Kubectl,
) -> None:
    ns = release.namespace
    secret_path = f"/api/v1/namespaces/{ns}/secrets/{release.name}-webhook-tls"
    filled = chart_kube.get(secret_path) or {}
    assert (filled.get("data") or {}).get("ca.key"), "the operator filled the chart's Secret"
    mwc = f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{release.name}"
    bundle = chart_kube.get(mwc)["webhooks"][0]["clientConfig"]["caBundle"]  # type: ignore[index]
    assert bundle

    helm("upgrade", release.name, str(CHART), "-n", ns, "--values", str(release.values_file),
         "--set", "scheduler.replicas=1,operator.resyncSeconds=60")  # fmt: skip
    sched = chart_kube.get(f"/apis/apps/v1/namespaces/{ns}/deployments/{release.name}-scheduler")
    assert sched and sched["spec"]["replicas"] == 1
    # What the operator wrote survives Helm's patch: the certificate and the caBundle.
    assert (chart_kube.get(secret_path) or {}).get("data") == filled["data"]
    assert chart_kube.get(mwc)["webhooks"][0]["clientConfig"]["caBundle"] == bundle  # type: ignore[index]
    assert not chart_kube.get(f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/{release.name}-scheduler")  # fmt: skip

    helm("rollback", release.name, "1", "-n", ns)
    sched = chart_kube.get(f"/apis/apps/v1/namespaces/{ns}/deployments/{release.name}-scheduler")
    assert sched and sched["spec"]["replicas"] == 2
    history = helm("history", release.name, "-n", ns, "-o", "yaml").stdout
    assert [h["revision"] for h in yaml.safe_load(history)] == [1, 2, 3]

    # Deleting the classes while the operator runs returns what they produced
    # (PriorityClasses, budgets, pool labels); then nothing of the release remains.
    chart_kubectl("delete", "workloadclasses", "--all", "--wait=true")
    wait_for(
        lambda: (
            not chart_kube.list(
                PRIORITY_CLASSES.path(), labelSelector="app.kubernetes.io/managed-by=ballast"
            )["items"]
        ),
        timeout=30,
        what="PriorityClasses collected",
    )
    for p in running.procs.values():
        p.stop()
    helm("uninstall", release.name, "-n", ns, "--wait")
    kinds = chart_kubectl("api-resources", "--verbs=list", "-o", "name").stdout.split()
    left = chart_kubectl(
        "get", ",".join(k for k in kinds if k not in ("events", "events.events.k8s.io")),
        "-A", "-l", f"app.kubernetes.io/instance={release.name}", "-o", "name",
    ).stdout.split()  # fmt: skip
    assert sorted(left) == sorted(
        f"customresourcedefinition.apiextensions.k8s.io/{n}"
        for n in (
            "batchwindows.ballast.dev",
            "gpunodetelemetries.ballast.dev",
            "gpuquotas.ballast.dev",
            "workloadclasses.ballast.dev",
        )
    ), left
    # kopf's peering CRD came from the chart's crds/ folder: Helm leaves those alone.
    assert chart_kube.get(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/clusterkopfpeerings.kopf.dev"
    )
    # Nor anything the processes made outside the release (by name: they carry other labels).
    for path in (secret_path, mwc, f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{release.name}-scheduler",
                 f"/apis/kopf.dev/v1/clusterkopfpeerings/{release.name}"):  # fmt: skip
        assert chart_kube.get(path) is None, path
    managed = [
        n["metadata"]["name"]
        for n in chart_kube.list(NODES.path())["items"]
        if "ballast.dev/pool" in (n["metadata"].get("labels") or {})
    ]
    assert not managed, managed
