"""examples/gitops: every file parses, every kind is one the tools know, every reference resolves.

No Argo CD or Flux CRDs exist here, so their objects are checked for
structure only; the Ballast objects are also validated by the real API
server (server-side dry run) in tests/integration/operator/test_gitops_health.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from argocd_lua import ROOT

from ballast.api.v1alpha1.batchwindow import BatchWindowSpec
from ballast.api.v1alpha1.gpuquota import GPUQuotaSpec
from ballast.api.v1alpha1.workloadclass import WorkloadClassSpec

GITOPS = ROOT / "examples" / "gitops"
KNOWN = {
    ("argoproj.io/v1alpha1", "Application"),
    ("source.toolkit.fluxcd.io/v1", "GitRepository"),
    ("helm.toolkit.fluxcd.io/v2", "HelmRelease"),
    ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"),
    ("kustomize.config.k8s.io/v1beta1", "Kustomization"),
}
BALLAST = {
    "WorkloadClass": WorkloadClassSpec,
    "GPUQuota": GPUQuotaSpec,
    "BatchWindow": BatchWindowSpec,
}


def documents() -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for path in sorted(GITOPS.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert isinstance(doc, dict), path
            out.append((path, doc))
    return out


def of_kind(kind: str, api: str | None = None) -> list[tuple[Path, dict[str, Any]]]:
    return [
        (p, d)
        for p, d in documents()
        if d["kind"] == kind and (api is None or d["apiVersion"] == api)
    ]


def repo_path(p: str) -> Path:
    return ROOT / p.removeprefix("./")


def test_every_document_is_a_known_kind() -> None:
    docs = documents()
    assert len(docs) >= 9
    for path, doc in docs:
        key = (doc.get("apiVersion"), doc.get("kind"))
        if doc.get("apiVersion") == "ballast.dev/v1alpha1":
            assert doc["kind"] in BALLAST, path
            BALLAST[doc["kind"]].model_validate(doc["spec"])
        else:
            assert key in KNOWN, f"{path}: {key}"


def test_argo_applications_point_at_real_paths() -> None:
    apps = of_kind("Application")
    assert {d["metadata"]["name"] for _, d in apps} == {"ballast", "ballast-tenant-search"}
    for path, app in apps:
        spec = app["spec"]
        assert spec["project"] and spec["destination"]["server"], path
        source = spec["source"]
        assert source["repoURL"].endswith(".git") and source["targetRevision"], path
        assert repo_path(source["path"]).is_dir(), f"{path}: {source['path']}"
        assert "automated" in spec["syncPolicy"], path
    chart_app = next(d for _, d in apps if d["metadata"]["name"] == "ballast")
    assert chart_app["spec"]["source"]["path"] == "charts/ballast"
    assert isinstance(chart_app["spec"]["source"]["helm"]["valuesObject"], dict)
    waves = {
        d["metadata"]["name"]: int(d["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])
        for _, d in apps
    }
    assert waves["ballast"] < waves["ballast-tenant-search"]


def test_flux_objects_resolve() -> None:
    sources = {d["metadata"]["name"] for _, d in of_kind("GitRepository")}
    flux_ks = of_kind("Kustomization", "kustomize.toolkit.fluxcd.io/v1")
    names = {d["metadata"]["name"] for _, d in flux_ks}
    assert names == {"ballast", "ballast-tenant-search"}
    for path, ks in flux_ks:
        spec = ks["spec"]
        assert spec["interval"] and spec["prune"] is True and spec["wait"] is True, path
        assert spec["sourceRef"] == {"kind": "GitRepository", "name": spec["sourceRef"]["name"]}
        assert spec["sourceRef"]["name"] in sources, path
        assert repo_path(spec["path"]).is_dir(), f"{path}: {spec['path']}"
        for dep in spec.get("dependsOn", []):
            assert dep["name"] in names, path
    tenant = next(d for _, d in flux_ks if d["metadata"]["name"] == "ballast-tenant-search")
    assert tenant["spec"]["dependsOn"] == [{"name": "ballast"}]
    ballast_ks = next(d for _, d in flux_ks if d["metadata"]["name"] == "ballast")
    released = [p for p, _ in of_kind("HelmRelease")]
    assert released and all(p.parent == repo_path(ballast_ks["spec"]["path"]) for p in released)
    for path, hr in of_kind("HelmRelease"):
        chart = hr["spec"]["chart"]["spec"]
        assert chart["sourceRef"]["kind"] == "GitRepository", path
        assert chart["sourceRef"]["name"] in sources, path
        assert repo_path(chart["chart"]) == ROOT / "charts" / "ballast", path
        assert isinstance(hr["spec"]["values"], dict)


def test_tenant_kustomization_lists_every_manifest() -> None:
    for path, ks in of_kind("Kustomization", "kustomize.config.k8s.io/v1beta1"):
        folder = path.parent
        listed = set(ks["resources"])
        present = {p.name for p in folder.glob("*.yaml")} - {"kustomization.yaml"}
        assert listed == present, folder
        kinds = {d["kind"] for f in listed for d in yaml.safe_load_all((folder / f).read_text())}
        assert kinds == set(BALLAST), folder
