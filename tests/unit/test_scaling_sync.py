"""ScalingReady and the writes of one reconciliation (controller/scaling_sync.py), on a stub API."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from ballast.api.v1alpha1.serving import Scaling
from ballast.api.v1alpha1.workloadclass import WorkloadClassSpec
from ballast.controller import scaling as logic
from ballast.controller import scaling_sync as sync
from ballast.controller.conditions import Cond
from ballast.kube.raw import KubeError

SERVER = "http://prom:9090"
W = logic.Workload("Deployment", "serving", "chat")
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class StubKube:
    """Discovery, ScaledObjects and one WorkloadClass, in memory; records writes."""

    def __init__(self, served: bool = True, objects: list[dict[str, Any]] | None = None) -> None:
        self.served = served
        self.objects = {logic.key_of(o): o for o in objects or []}
        self.applied: list[str] = []
        self.deleted: list[str] = []
        self.status_patches: list[dict[str, Any]] = []
        self.cls: dict[str, Any] = {
            "metadata": {"name": "chat", "uid": "u", "generation": 2, "resourceVersion": "7"},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "R"}]},
        }
        self.fail_apply = False

    def get(self, path: str) -> dict[str, Any] | None:
        if path == "/apis/keda.sh/v1alpha1":
            return {"resources": [{"name": "scaledobjects"}]} if self.served else None
        if path.endswith("/workloadclasses/chat"):
            return self.cls
        raise AssertionError(path)

    def list(self, path: str, **_: Any) -> dict[str, Any]:
        return {"items": list(self.objects.values())}

    def apply(self, path: str, obj: dict[str, Any], **_: Any) -> dict[str, Any]:
        if self.fail_apply:
            raise KubeError(500, "InternalError", "etcd is sad")
        self.applied.append(path)
        return obj

    def delete(self, path: str, **_: Any) -> bool:
        self.deleted.append(path)
        return True

    def patch(self, path: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.status_patches.append(body)
        self.cls["status"] = body["status"]
        return self.cls


def scaling() -> Scaling:
    spec = WorkloadClassSpec.model_validate(
        {"tier": "Interactive", "scaling": {"maxReplicas": 4, "targetQueueDepth": 5}}
    )
    assert spec.scaling is not None
    return spec.scaling


def current(ready: str = "True", message: str = "") -> dict[str, Any]:
    obj = logic.build_scaled_object("chat", "u", scaling(), W, SERVER)
    obj["status"] = {"conditions": [{"type": "Ready", "status": ready, "message": message}]}
    return obj


def test_without_keda_nothing_is_written_and_the_class_says_what_to_install() -> None:
    kube = StubKube(served=False)
    out = sync.sync(kube, "chat", "u", scaling(), [W], SERVER)  # type: ignore[arg-type]
    assert out.condition is not None and out.condition.status is False
    assert out.condition.reason == "KEDANotInstalled" and "--keda" in out.condition.message
    assert kube.applied == [] and kube.deleted == []


def test_without_a_prometheus_url_nothing_is_written() -> None:
    kube = StubKube()
    out = sync.sync(kube, "chat", "u", scaling(), [W], None)  # type: ignore[arg-type]
    assert out.condition is not None and out.condition.reason == "PrometheusNotConfigured"
    assert kube.applied == []


def test_a_new_workload_is_applied_and_reported() -> None:
    kube = StubKube()
    out = sync.sync(kube, "chat", "u", scaling(), [W], SERVER)  # type: ignore[arg-type]
    assert kube.applied == [
        "/apis/keda.sh/v1alpha1/namespaces/serving/scaledobjects/ballast-deploy-chat"
    ]
    assert out.condition == Cond(
        "ScalingReady", True, "ScaledObjectsReady", "1 ScaledObject(s): serving/ballast-deploy-chat"
    )


def test_no_workloads_is_ready_and_says_so() -> None:
    out = sync.sync(StubKube(), "chat", "u", scaling(), [], SERVER)  # type: ignore[arg-type]
    assert out.condition is not None and out.condition.reason == "NoWorkloads"


@pytest.mark.parametrize(
    ("ready", "want"), [("True", "ScaledObjectsReady"), ("False", "ScaledObjectNotReady")]
)
def test_kedas_readiness_of_an_unchanged_object_decides(ready: str, want: str) -> None:
    kube = StubKube(objects=[current(ready, "error parsing prometheus metadata")])
    out = sync.sync(kube, "chat", "u", scaling(), [W], SERVER)  # type: ignore[arg-type]
    assert kube.applied == []
    assert out.condition is not None and out.condition.reason == want
    if ready == "False":
        assert "error parsing prometheus metadata" in out.condition.message


def test_a_failed_apply_is_progressing_not_stalled() -> None:
    kube = StubKube()
    kube.fail_apply = True
    out = sync.sync(kube, "chat", "u", scaling(), [W], SERVER)  # type: ignore[arg-type]
    assert out.condition is not None and out.condition.reason == "ScaledObjectSyncFailed"
    assert out.condition.progressing and "etcd is sad" in out.condition.message


def test_without_scaling_everything_goes_and_no_condition_is_wanted() -> None:
    kube = StubKube(objects=[current()])
    out = sync.sync(kube, "chat", "u", None, [W], SERVER)  # type: ignore[arg-type]
    assert out.condition is None and len(kube.deleted) == 1


def test_the_condition_is_written_once_and_removed_without_scaling() -> None:
    kube = StubKube()
    want = Cond("ScalingReady", False, "KEDANotInstalled", "install KEDA")
    assert sync.write_condition(kube, "chat", "u", want, NOW) is None  # type: ignore[arg-type]
    types = [c["type"] for c in kube.cls["status"]["conditions"]]
    assert types == ["Ready", "ScalingReady"]
    assert sync.write_condition(kube, "chat", "u", want, NOW) == "KEDANotInstalled"  # type: ignore[arg-type]
    assert len(kube.status_patches) == 1  # unchanged: not rewritten
    sync.write_condition(kube, "chat", "u", None, NOW)  # type: ignore[arg-type]
    assert [c["type"] for c in kube.cls["status"]["conditions"]] == ["Ready"]
    assert kube.status_patches[-1]["metadata"] == {"resourceVersion": "7"}


def test_scaling_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BALLAST_SCALING", raising=False)
    assert sync.scaling_enabled()
    monkeypatch.setenv("BALLAST_SCALING", "off")
    assert not sync.scaling_enabled()


def test_the_scaling_url_wins_over_the_operators(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BALLAST_SCALING_PROMETHEUS_URL", raising=False)
    monkeypatch.setenv("BALLAST_PROMETHEUS_URL", "http://a:9090")
    assert sync.prometheus_url() == "http://a:9090"
    monkeypatch.setenv("BALLAST_SCALING_PROMETHEUS_URL", "http://b:9090")
    assert sync.prometheus_url() == "http://b:9090"
