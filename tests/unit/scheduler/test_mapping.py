"""Raw objects → engine inputs: tolerant of bad input, faithful to good input."""

from __future__ import annotations

from typing import Any

import pytest

from ballast.api import wellknown as wk
from ballast.scheduler import mapping, podspec


def node(**kw: Any) -> dict[str, Any]:
    ann = kw.pop("annotations", {})
    labels = {
        wk.LABEL_GPU_PRODUCT: "NVIDIA-H100-80GB-HBM3",
        wk.LABEL_GPU_MEMORY_MIB: "81559",
        **kw.pop("labels", {}),
    }
    return {
        "metadata": {"name": kw.pop("name", "n1"), "labels": labels, "annotations": ann},
        "spec": kw.pop("spec", {}),
        "status": {
            "allocatable": {"cpu": "96", "memory": "1024Gi", wk.GPU_RESOURCE: kw.pop("gpus", "8")},
            "conditions": [{"type": "Ready", "status": kw.pop("ready", "True")}],
        },
    }


NODE_CASES = {
    "healthy": (node(), 8, False, []),
    "not ready is unschedulable": (node(ready="False"), 8, True, []),
    "cordoned": (node(spec={"unschedulable": True}), 8, True, []),
    "garbage gpu count": (node(gpus="eight"), 0, False, ["not an integer"]),
    "garbage telemetry": (
        node(annotations={wk.ANNOTATION_TELEMETRY: "{oops"}),
        8,
        False,
        ["not JSON"],
    ),
    "garbage cache": (
        node(annotations={wk.ANNOTATION_CACHE: "[1,2]"}),
        8,
        False,
        ["expected an object"],
    ),
}


@pytest.mark.parametrize("case", list(NODE_CASES), ids=list(NODE_CASES))
def test_node_info(case: str) -> None:
    raw, want_gpus, want_unsched, want_problems = NODE_CASES[case]
    m = mapping.node_info(raw)
    assert m.value.gpu_count == want_gpus
    assert m.value.unschedulable is want_unsched
    assert m.value.cpu_milli == 96_000 and m.value.memory_mib == 1024 * 1024
    assert len(m.problems) == len(want_problems)
    for want, got in zip(want_problems, m.problems, strict=True):
        assert want in got


def pod(gpus: str | None = "1", annotations: dict[str, str] | None = None) -> dict[str, Any]:
    res: dict[str, Any] = {"requests": {"cpu": "500m", "memory": "2Gi"}}
    if gpus is not None:
        res["limits"] = {wk.GPU_RESOURCE: gpus}
    return {
        "metadata": {
            "name": "p",
            "namespace": "ns",
            "uid": "u1",
            "annotations": annotations or {},
            "labels": {},
        },
        "spec": {"containers": [{"name": "c", "resources": res}], "priority": 300_000},
    }


POD_CASES = {
    "one gpu": (pod(), 1, 0, None),
    "share": (pod(None, {wk.ANNOTATION_GPU_MILLI: "250"}), 0, 250, None),
    "share of 1000 is a whole gpu": (pod(None, {wk.ANNOTATION_GPU_MILLI: "1000"}), 1, 0, None),
    "garbage share": (pod(None, {wk.ANNOTATION_GPU_MILLI: "lots"}), 0, 0, "not an integer"),
    "share out of range": (pod(None, {wk.ANNOTATION_GPU_MILLI: "5000"}), 0, 0, "outside 1..1000"),
    "share and whole": (pod("1", {wk.ANNOTATION_GPU_MILLI: "500"}), 0, 0, "exclusive"),
    "fractional gpu request": (pod("0.5"), 0, 0, "whole number"),
}


@pytest.mark.parametrize("case", list(POD_CASES), ids=list(POD_CASES))
def test_engine_pod(case: str) -> None:
    raw, want_gpus, want_milli, want_problem = POD_CASES[case]
    m = podspec.engine_pod(raw, None, "tenant-a")
    if want_problem:
        assert m.value is None
        assert any(want_problem in p for p in m.problems), m.problems
        return
    assert m.value.gpus == want_gpus and m.value.gpu_milli == want_milli
    assert m.value.tenant_key == "tenant-a"
    assert m.value.cpu_milli == 500 and m.value.memory_mib == 2048


def test_class_weights_scale_profile_defaults() -> None:
    default = mapping.class_policy(
        "a",
        {
            "tier": "Interactive",
            "placement": {"weights": {"locality": 3, "telemetry": 1, "packing": 5}},
        },
    )
    double = mapping.class_policy(
        "b",
        {
            "tier": "Interactive",
            "placement": {"weights": {"locality": 6, "telemetry": 1, "packing": 5}},
        },
    )
    assert double.placement.weights["DataLocality"] == 2 * default.placement.weights["DataLocality"]
    assert (
        default.placement.weights["FragmentationGradient"]
        == double.placement.weights["FragmentationGradient"]
    )


def test_require_fresh_telemetry() -> None:
    strict = mapping.class_policy("a", {"tier": "Interactive",
                                        "placement": {"requireFreshTelemetry": True}})  # fmt: skip
    assert strict.placement.require_fresh_telemetry
    assert not mapping.class_policy("b", {"tier": "Offline"}).placement.require_fresh_telemetry
    # Only a real boolean true fails closed (the schema rejects the rest; be safe anyway).
    odd = mapping.class_policy(
        "c", {"tier": "Offline", "placement": {"requireFreshTelemetry": "yes"}}
    )
    assert not odd.placement.require_fresh_telemetry


def test_class_policy_fields() -> None:
    c = mapping.class_policy(
        "chat",
        {
            "tier": "Interactive",
            "priority": 7,
            "preemption": {"policy": "LowerTier", "preemptible": False, "gracePeriodSeconds": 5},
            "nodePool": {
                "name": "serving",
                "gpuProducts": ["X"],
                "minGPUMemoryMiB": 100,
                "reservedNodes": 2,
            },
            "placement": {"strategy": "Spread", "residency": {"regions": ["eu"]}},
            "window": "w",
        },
    )
    assert (c.tier, c.priority, c.window) == ("Interactive", 7, "w")
    assert c.preemption.may_preempt == "lower-tier" and not c.preemption.preemptible
    assert c.pool.reserved and c.pool.gpu_products == ("X",)
    assert c.placement.mode == "spread" and c.placement.residency_regions == ("eu",)


@pytest.mark.parametrize(
    ("text", "want"), [("64Gi", 65536), ("1000M", 953), ("1048576", 1), ("bad", 0), ("1.5Gi", 1536)]
)
def test_quantity_mib(text: str, want: int) -> None:
    assert mapping.quantity_mib(text) == want


def test_residency_regions_and_zones_reach_the_policy() -> None:
    cls = mapping.class_policy(
        "eu",
        {
            "tier": "Nearline",
            "placement": {"residency": {"regions": ["eu-west"], "zones": ["eu-west-1a"]}},
        },
    )
    assert cls.placement.residency_regions == ("eu-west",)
    assert cls.placement.residency_zones == ("eu-west-1a",)


def test_preemption_signal_and_for_locality_reach_the_policy() -> None:
    cls = mapping.class_policy(
        "chat",
        {
            "tier": "Interactive",
            "preemption": {"policy": "LowerTier", "forLocality": True, "signal": "None"},
        },
    )
    assert cls.preemption.for_locality and not cls.preemption.checkpoint
