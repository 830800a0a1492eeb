"""GitOps on the real API server: the Argo CD health checks and kstatus on live objects.

Objects are created, the operator writes their status, and each object read
back from the API server goes through the shipped Lua health check (Lua 5.1,
as Argo CD runs it) and through kstatus' rules (as Flux reads it).
examples/gitops' Ballast objects pass a strict server-side dry run.
"""

from __future__ import annotations

import copy
import importlib.util
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from kutil import Kubectl, wait_for

from ballast.kube.raw import BATCHWINDOWS, GPUQUOTAS, WORKLOADCLASSES, Kube, Resource

ROOT = Path(__file__).resolve().parents[3]
TENANT = ROOT / "examples" / "gitops" / "tenant-search"
RESOURCES = {"WorkloadClass": WORKLOADCLASSES, "GPUQuota": GPUQUOTAS, "BatchWindow": BATCHWINDOWS}


def _helper(name: str) -> ModuleType:
    """The Lua runner and kstatus rules the unit tests use (tests/unit/gitops)."""
    spec = importlib.util.spec_from_file_location(
        f"gitops_{name}", ROOT / "tests" / "unit" / "gitops" / f"{name}.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LUA = _helper("argocd_lua")
KSTATUS = _helper("kstatus_rules")


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def judge(obj: dict[str, Any]) -> tuple[str, str, str]:
    """(Argo CD health, its message, kstatus) of a live object."""
    hs = LUA.health(obj["kind"], obj)
    return hs["status"], hs["message"], KSTATUS.kstatus(obj)


def settled(kube: Kube, res: Resource, name: str, want: str) -> dict[str, Any] | None:
    """The live object once the Argo CD check says ``want`` (the operator caught up)."""
    obj = kube.get(res.path(name))
    return obj if obj is not None and judge(obj)[0] == want else None


def ready_condition(obj: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")


def tenant_copy() -> tuple[list[dict[str, Any]], dict[str, str]]:
    """examples/gitops/tenant-search with fresh names (the session cluster is shared)."""
    docs = [
        d
        for f in sorted(TENANT.glob("*.yaml"))
        if f.name != "kustomization.yaml"
        for d in yaml.safe_load_all(f.read_text())
    ]
    names = {d["metadata"]["name"]: uniq(d["metadata"]["name"]) for d in docs}
    out = []
    for d in docs:
        d = copy.deepcopy(d)
        d["metadata"]["name"] = names[d["metadata"]["name"]]
        if d["kind"] == "WorkloadClass" and d["spec"].get("window"):
            d["spec"]["window"] = names[d["spec"]["window"]]
        if d["kind"] == "GPUQuota":
            d["spec"]["namespaces"] = [uniq(ns) for ns in d["spec"]["namespaces"]]
        out.append(d)
    return out, names


def test_gitops_examples_pass_a_strict_server_side_dry_run(crds: None, kubectl: Kubectl) -> None:
    files = [f for f in sorted(TENANT.glob("*.yaml")) if f.name != "kustomization.yaml"]
    assert files
    for f in files:
        proc = kubectl("apply", "--dry-run=server", "--validate=strict", "-f", str(f))
        assert "(server dry run)" in proc.stdout, proc.stdout


def test_tenant_in_gitops_order_progressing_then_healthy(operator: object, kube: Kube) -> None:
    """Classes before their window (any order GitOps may apply): Progressing, then Healthy."""
    docs, _ = tenant_copy()
    window_doc = next(d for d in docs if d["kind"] == "BatchWindow")
    reindex = next(d for d in docs if d["spec"].get("window"))
    name = reindex["metadata"]["name"]

    def create(d: dict[str, Any]) -> None:
        created = kube.create(RESOURCES[d["kind"]].path(), d)
        # What the API server returns on create has no status yet: Progressing
        # for Argo CD. kstatus calls it Current (it cannot know better; see docs).
        assert judge(created)[:1] == ("Progressing",)
        assert "report status" in judge(created)[1]

    for d in docs:
        if d is not window_doc:
            create(d)

    def waiting() -> dict[str, Any] | None:
        obj = kube.get(WORKLOADCLASSES.path(name))
        return obj if obj and obj.get("status") and judge(obj)[0] == "Progressing" else None

    obj = wait_for(waiting, what="class waits for its window")
    health, message, flux = judge(obj)
    assert (health, flux) == ("Progressing", "InProgress")
    assert message.startswith("WindowNotFound: ") and window_doc["metadata"]["name"] in message
    create(window_doc)  # the window arrives last
    for d in docs:
        res, n = RESOURCES[d["kind"]], d["metadata"]["name"]
        live = wait_for(
            lambda res=res, n=n: settled(kube, res, n, "Healthy"), timeout=60, what=f"{n} Healthy"
        )
        _, message, flux = judge(live)
        assert flux == "Current"
        assert live["status"]["observedGeneration"] == live["metadata"]["generation"]
        assert ready_condition(live)["status"] == "True"
        if d["kind"] == "BatchWindow":
            assert message.startswith(("Open until ", "Closed; opens at ")), message
        if d["kind"] == "WorkloadClass":
            assert message == (
                f"PriorityClass {live['status']['priorityClassName']} "
                f"(value {live['status']['priorityValue']})"
            )


def test_spec_change_is_progressing_until_observed(operator: object, kube: Kube) -> None:
    name = uniq("gitops-gen")
    body = {
        "apiVersion": "ballast.dev/v1alpha1",
        "kind": "WorkloadClass",
        "metadata": {"name": name},
        "spec": {"tier": "Nearline", "priority": 5},
    }
    kube.create(WORKLOADCLASSES.path(), body)
    wait_for(lambda: settled(kube, WORKLOADCLASSES, name, "Healthy"), what="Healthy")
    # The object the API server returns from the spec change carries the new
    # generation and the status of the old one: the operator has not seen it.
    patched = kube.patch(WORKLOADCLASSES.path(name), {"spec": {"priority": 6}})
    assert patched["metadata"]["generation"] > patched["status"]["observedGeneration"]
    health, message, flux = judge(patched)
    assert (health, flux) == ("Progressing", "InProgress")
    assert f"generation {patched['metadata']['generation']}" in message
    live = wait_for(lambda: settled(kube, WORKLOADCLASSES, name, "Healthy"), what="Healthy again")
    assert live["status"]["priorityValue"] == patched["status"]["priorityValue"] + 1


def test_problems_are_degraded_with_the_operators_message(operator: object, kube: Kube) -> None:
    ns = uniq("ns")
    first, second, window, cls = (
        uniq("gitops-qa"),
        uniq("gitops-qb"),
        uniq("gitops-bad"),
        uniq("gitops-sel"),
    )
    for name in (first, second):
        kube.create(
            GPUQUOTAS.path(),
            {
                "apiVersion": "ballast.dev/v1alpha1",
                "kind": "GPUQuota",
                "metadata": {"name": name},
                "spec": {"namespaces": [ns], "gpus": 2},
            },
        )
        if name == first:
            wait_for(lambda: settled(kube, GPUQUOTAS, first, "Healthy"), what="first quota")
    kube.create(
        BATCHWINDOWS.path(),
        {
            "apiVersion": "ballast.dev/v1alpha1",
            "kind": "BatchWindow",
            "metadata": {"name": window},
            "spec": {"schedule": "61 * * * *", "duration": "1h"},
        },
    )
    # A matchLabels key the schema cannot check (a map key); the operator can.
    kube.create(
        WORKLOADCLASSES.path(),
        {
            "apiVersion": "ballast.dev/v1alpha1",
            "kind": "WorkloadClass",
            "metadata": {"name": cls},
            "spec": {"tier": "Nearline", "namespaceSelector": {"matchLabels": {"-bad key-": "x"}}},
        },
    )
    for res, name, reason in (
        (GPUQUOTAS, second, "NamespaceConflict"),
        (BATCHWINDOWS, window, "InvalidSchedule"),
        (WORKLOADCLASSES, cls, "InvalidSpec"),
    ):
        live = wait_for(
            lambda res=res, name=name: settled(kube, res, name, "Degraded"), what=f"{name} Degraded"
        )
        _, message, flux = judge(live)
        ready = ready_condition(live)
        assert (ready["status"], ready["reason"]) == ("False", reason)
        assert message == f"{reason}: {ready['message']}"
        assert flux == "Failed"
    # Fixing the spec heals it, for both tools.
    kube.patch(GPUQUOTAS.path(second), {"spec": {"namespaces": [uniq("ns")]}})
    live = wait_for(lambda: settled(kube, GPUQUOTAS, second, "Healthy"), what="quota healed")
    assert judge(live)[2] == "Current"
