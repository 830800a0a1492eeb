"""Every example becomes Ready; every invalid manifest is rejected by the API server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from kutil import Kubectl, ready, wait_for

from ballast.api.v1alpha1.workloadclass import priority_value
from ballast.kube.raw import BATCHWINDOWS, GPUQUOTAS, PRIORITY_CLASSES, WORKLOADCLASSES, Kube

ROOT = Path(__file__).resolve().parents[3]
INVALID = sorted((ROOT / "tests" / "integration" / "invalid").glob("*.yaml"))
RESOURCES = {"WorkloadClass": WORKLOADCLASSES, "GPUQuota": GPUQUOTAS, "BatchWindow": BATCHWINDOWS}


def test_examples_apply_and_become_ready(operator: object, kubectl: Kubectl, kube: Kube) -> None:
    docs = [
        d
        for f in sorted((ROOT / "examples").glob("*.yaml"))
        for d in yaml.safe_load_all(f.read_text())
        if d and d.get("kind") in RESOURCES
    ]
    assert len(docs) >= 10
    kubectl("apply", "-f", str(ROOT / "examples"))
    for doc in docs:
        res, name = RESOURCES[doc["kind"]], doc["metadata"]["name"]
        wait_for(
            lambda res=res, name=name: ready(kube, res, name),
            timeout=60,
            what=f"{doc['kind']} {name} Ready",
        )
        if doc["kind"] == "WorkloadClass":
            pc = kube.get(PRIORITY_CLASSES.path(f"ballast-{name}"))
            assert pc is not None
            want = priority_value(doc["spec"]["tier"], doc["spec"].get("priority", 0))
            assert pc["value"] == want
            obj = kube.get(WORKLOADCLASSES.path(name))
            assert obj and obj["status"]["priorityValue"] == want
        if doc["kind"] == "BatchWindow":
            status = kube.get(BATCHWINDOWS.path(name))["status"]  # type: ignore[index]
            assert isinstance(status["open"], bool)
            assert status["nextOpen"] and status["nextClose"]


def test_reapplying_changes_nothing(operator: object, kubectl: Kubectl, kube: Kube) -> None:
    kubectl("apply", "-f", str(ROOT / "examples"))
    wait_for(lambda: ready(kube, WORKLOADCLASSES, "chat"), timeout=60, what="chat Ready")

    def versions() -> dict[str, str]:
        out = {}
        for res in (WORKLOADCLASSES, GPUQUOTAS, PRIORITY_CLASSES):
            for item in kube.list(res.path())["items"]:
                out[f"{res.plural}/{item['metadata']['name']}"] = item["metadata"][
                    "resourceVersion"
                ]
        return out

    time.sleep(4)  # let timers and any in-flight status writes settle
    before = versions()
    out = kubectl("apply", "-f", str(ROOT / "examples")).stdout
    assert "configured" not in out, out
    time.sleep(8)  # two resync periods: the operator must not rewrite anything
    after = versions()
    changed = {k for k in before if k in after and before[k] != after[k]}
    assert not changed, f"re-apply changed {changed}"


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_manifest_rejected(crds: None, kubectl: Kubectl, path: Path) -> None:
    expect = path.read_text().splitlines()[0].removeprefix("# expect:").strip()
    proc = kubectl("apply", "-f", str(path), check=False)
    assert proc.returncode != 0, f"{path.name} was accepted"
    assert expect in proc.stderr, f"{path.name}: wanted {expect!r} in:\n{proc.stderr}"


def test_at_least_ten_distinct_invalid_manifests() -> None:
    assert len(INVALID) >= 10
