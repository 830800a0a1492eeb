"""KEDA ScaledObject builders, drift and plans (controller/scaling.py), and the scaling API."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from ballast.api.v1alpha1.serving import Scaling
from ballast.api.v1alpha1.workloadclass import WorkloadClassSpec
from ballast.controller import scaling as s

SERVER = "http://prometheus.monitoring:9090"
DEPLOY = s.Workload("Deployment", "serving", "chat")
STS = s.Workload("StatefulSet", "serving", "llm.v2")


def scaling(**fields: Any) -> Scaling:
    spec = WorkloadClassSpec.model_validate(
        {"tier": "Interactive", "scaling": {"maxReplicas": 8, **fields}}
    )
    assert spec.scaling is not None
    return spec.scaling


def test_a_scaled_object_names_its_target_bounds_owner_and_labels() -> None:
    sc = scaling(minReplicas=2, targetQueueDepth=4)
    obj = s.build_scaled_object("chat", "uid-1", sc, DEPLOY, SERVER)
    assert obj["apiVersion"] == "keda.sh/v1alpha1" and obj["kind"] == "ScaledObject"
    assert obj["metadata"]["name"] == "ballast-deploy-chat"
    assert obj["metadata"]["namespace"] == "serving"
    assert obj["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "ballast",
        "ballast.dev/owner": "workloadclass.chat",
        "ballast.dev/class": "chat",
        "ballast.dev/workload": "deploy.chat",
    }
    ref = obj["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["uid"]) == ("WorkloadClass", "chat", "uid-1")
    spec = obj["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "chat"}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (2, 8)
    assert spec["pollingInterval"] == 15


def test_stabilisation_windows_become_the_hpa_behavior_and_the_cooldown() -> None:
    sc = scaling(
        targetQueueDepth=4,
        behavior={"scaleUpStabilizationSeconds": 7, "scaleDownStabilizationSeconds": 42},
    )
    spec = s.build_scaled_object("chat", "u", sc, DEPLOY, SERVER)["spec"]
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == {
        "scaleUp": {"stabilizationWindowSeconds": 7},
        "scaleDown": {"stabilizationWindowSeconds": 42},
    }
    assert spec["cooldownPeriod"] == 42


@pytest.mark.parametrize(
    ("fields", "want_replicas"),
    [
        ({"minReplicas": 3}, 3),
        ({"minReplicas": 0}, 0),
        ({"minReplicas": 1, "fallbackReplicas": 5}, 5),
    ],
)
def test_fallback_holds_at_least_the_fallback_count_never_scales_down(
    fields: dict[str, Any], want_replicas: int
) -> None:
    spec = s.build_scaled_object("c", "u", scaling(targetQueueDepth=1, **fields), DEPLOY, SERVER)
    assert spec["spec"]["fallback"] == {
        "failureThreshold": s.FALLBACK_FAILURE_THRESHOLD,
        "replicas": want_replicas,
        "behavior": "currentReplicasIfHigher",
    }


def test_each_target_is_one_prometheus_trigger_with_its_metric_type() -> None:
    sc = scaling(targetGPUUtilizationPercent=70, targetQueueDepth=4, targetLatencyP95Ms=800)
    triggers = s.build_scaled_object("chat", "u", sc, DEPLOY, SERVER)["spec"]["triggers"]
    got = {t["name"]: (t["type"], t["metricType"], t["metadata"]["threshold"]) for t in triggers}
    assert got == {
        "gpu-utilization": ("prometheus", "AverageValue", "70"),
        "queue-depth": ("prometheus", "AverageValue", "4"),
        "latency-p95": ("prometheus", "Value", "800"),
    }
    for t in triggers:
        assert t["metadata"]["serverAddress"] == SERVER
        assert t["metadata"]["ignoreNullValues"] == "true"
    queries = {t["name"]: t["metadata"]["query"] for t in triggers}
    sel = 'namespace="serving",pod=~"chat-[a-z0-9]+-[a-z0-9]+"'
    assert queries["gpu-utilization"] == (
        f"sum(avg by (namespace, pod) (DCGM_FI_DEV_GPU_UTIL{{{sel}}}))"
    )
    assert queries["queue-depth"] == f"sum(vllm:num_requests_waiting{{{sel}}})"
    assert queries["latency-p95"] == (
        "histogram_quantile(0.95, sum by (le) "
        f"(rate(vllm:e2e_request_latency_seconds_bucket{{{sel}}}[2m]))) * 1000"
    )


def test_only_the_targets_set_make_triggers() -> None:
    triggers = s.triggers(scaling(targetLatencyP95Ms=300), DEPLOY, SERVER)
    assert [t["name"] for t in triggers] == ["latency-p95"]


def test_a_class_points_the_signals_at_other_metrics() -> None:
    sc = scaling(
        targetQueueDepth=2,
        targetLatencyP95Ms=500,
        queueDepthMetric="tgi_queue_size",
        latencyHistogram="tgi_request_duration",
    )
    q = {t["name"]: t["metadata"]["query"] for t in s.triggers(sc, DEPLOY, SERVER)}
    assert q["queue-depth"].startswith("sum(tgi_queue_size{")
    assert "rate(tgi_request_duration_bucket{" in q["latency-p95"]


def test_statefulset_pods_are_selected_by_ordinal_and_dots_are_literal() -> None:
    assert s.pod_selector(STS) == 'namespace="serving",pod=~"llm\\\\.v2-[0-9]+"'
    assert s.scaled_object_name(STS) == "ballast-sts-llm.v2"
    assert s.Workload("StatefulSet", "a", "x").label == "sts.x"


def test_long_names_are_bounded() -> None:
    w = s.Workload("Deployment", "ns", "a" * 250)
    assert len(s.scaled_object_name(w)) <= 253 and len(w.label) <= 63


@pytest.mark.parametrize(
    "fields",
    [
        {"targetQueueDepth": 1, "queueDepthMetric": "not a metric"},
        {"targetQueueDepth": 1, "latencyHistogram": "9bad"},
        {"targetQueueDepth": 1, "pollingIntervalSeconds": 0},
        {"targetQueueDepth": 1, "fallbackReplicas": -1},
    ],
)
def test_bad_overrides_are_rejected(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        scaling(**fields)


# -- drift ------------------------------------------------------------------------------------


def _actual(desired: dict[str, Any]) -> dict[str, Any]:
    """The object as KEDA and the API server return it: defaults, finalizer, status added."""
    obj = copy.deepcopy(desired)
    obj["metadata"]["finalizers"] = ["finalizer.keda.sh"]
    obj["metadata"]["uid"] = "so-uid"
    obj["spec"]["advanced"]["restoreToOriginalReplicaCount"] = False
    obj["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
    return obj


def test_what_keda_adds_is_not_drift() -> None:
    desired = s.build_scaled_object("chat", "u", scaling(targetQueueDepth=4), DEPLOY, SERVER)
    assert s.drift(desired, _actual(desired)) is None
    assert s.drift(desired, None) == "missing"


@pytest.mark.parametrize(
    ("edit", "want"),
    [
        (lambda o: o["spec"].update(maxReplicaCount=99), "spec"),
        (lambda o: o["spec"]["triggers"][0]["metadata"].update(threshold="40"), "spec"),
        (lambda o: o["spec"]["triggers"].append({"type": "cpu"}), "spec"),
        (lambda o: o["metadata"]["labels"].pop("ballast.dev/class"), "metadata"),
        (lambda o: o["metadata"].update(ownerReferences=[]), "metadata"),
    ],
)
def test_edits_by_others_are_drift(edit: Any, want: str) -> None:
    desired = s.build_scaled_object("chat", "u", scaling(targetQueueDepth=4), DEPLOY, SERVER)
    actual = _actual(desired)
    edit(actual)
    assert s.drift(desired, actual) == want


# -- plans ------------------------------------------------------------------------------------


def test_plan_applies_missing_keeps_current_and_deletes_orphans() -> None:
    sc = scaling(targetQueueDepth=4)
    current = _actual(s.build_scaled_object("chat", "u", sc, DEPLOY, SERVER))
    orphan = _actual(
        s.build_scaled_object("chat", "u", sc, s.Workload("Deployment", "old", "gone"), SERVER)
    )
    actual = {s.key_of(current): current, s.key_of(orphan): orphan}
    p = s.plan("chat", "u", sc, [DEPLOY, STS], actual, SERVER)
    assert [s.key_of(o) for o in p.apply] == [("serving", "ballast-sts-llm.v2")]
    assert p.keep == [("serving", "ballast-deploy-chat")]
    assert p.delete == [("old", "ballast-deploy-gone")]


def test_plan_without_scaling_deletes_everything() -> None:
    sc = scaling(targetQueueDepth=4)
    current = _actual(s.build_scaled_object("chat", "u", sc, DEPLOY, SERVER))
    p = s.plan("chat", "u", None, [DEPLOY], {s.key_of(current): current}, SERVER)
    assert (p.apply, p.keep, p.delete) == ([], [], [("serving", "ballast-deploy-chat")])


def test_a_new_prometheus_address_rewrites_the_triggers() -> None:
    sc = scaling(targetQueueDepth=4)
    current = _actual(s.build_scaled_object("chat", "u", sc, DEPLOY, SERVER))
    p = s.plan("chat", "u", sc, [DEPLOY], {s.key_of(current): current}, "http://other:9090")
    assert len(p.apply) == 1 and p.keep == []


@pytest.mark.parametrize(
    ("kind", "namespace", "want"),
    [
        ("Deployment", "ns", s.Workload("Deployment", "ns", "w")),
        ("StatefulSet", "ns", s.Workload("StatefulSet", "ns", "w")),
        ("DaemonSet", "ns", None),
        ("Deployment", None, None),
    ],
)
def test_workload_of(kind: str, namespace: str | None, want: s.Workload | None) -> None:
    assert s.workload_of(kind, namespace, "w") == want


def test_template_class_reads_the_pod_template_label() -> None:
    spec = {"template": {"metadata": {"labels": {"ballast.dev/class": "chat"}}}}
    assert s.template_class(spec) == "chat"
    assert s.template_class({"template": {}}) is None
    assert s.template_class({}) is None
