"""The validating rules: namespace selection, annotations, impossible GPU requests."""

from __future__ import annotations

from typing import Any

import pytest

from ballast.webhook import validate
from ballast.webhook.admit import PATH_VALIDATE_PODS, admit
from ballast.webhook.view import ClusterView, NodeView, class_view, node_view

NODES = [
    NodeView("h100-0", 8, "NVIDIA-H100-80GB-HBM3", 81559),
    NodeView("a100-0", 4, "NVIDIA-A100-SXM4-40GB", 40960),
    NodeView("l4-0", 2, "NVIDIA-L4", 23034),
]
H100 = class_view(
    "train",
    {"tier": "Offline", "nodePool": {"name": "train", "gpuProducts": ["NVIDIA-H100-80GB-HBM3"]}},
)
BIGMEM = class_view(
    "big",
    {
        "tier": "Offline",
        "nodePool": {
            "gpuProducts": ["NVIDIA-A100-SXM4-40GB", "NVIDIA-L4"],
            "minGPUMemoryMiB": 24000,
        },
    },
)
TEAM = class_view(
    "team", {"tier": "Nearline", "namespaceSelector": {"matchLabels": {"team": "search"}}}
)
BROKEN = class_view(
    "broken",
    {
        "tier": "Nearline",
        "namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "Gt"}]},
    },
)


def make_pod(
    cls: str = "train", gpus: int | str | None = None, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    res = {"limits": {"nvidia.com/gpu": gpus}} if gpus is not None else {}
    return {
        "metadata": {
            "name": "p",
            "labels": {"ballast.dev/class": cls},
            "annotations": annotations or {},
        },
        "spec": {"containers": [{"name": "c", "resources": res}]},
    }


CASES: dict[str, tuple[dict[str, Any], Any, dict[str, str] | None, str | None]] = {
    # name: (pod, class, namespace labels, want denial substring or None)
    "fits the largest pool node": (make_pod(gpus=8), H100, {}, None),
    "more GPUs than any pool node": (
        make_pod(gpus=9),
        H100,
        {},
        "9 nvidia.com/gpu requested, but the largest node of WorkloadClass train's pool",
    ),
    "min memory excludes the L4, the A100 fits 4": (make_pod("big", 4), BIGMEM, {}, None),
    "min memory: 5 is more than the A100 has": (make_pod("big", 5), BIGMEM, {}, "has 4"),
    "selected namespace": (make_pod("team"), TEAM, {"team": "search"}, None),
    "namespace not selected": (
        make_pod("team"),
        TEAM,
        {"team": "ads"},
        "metadata.labels[ballast.dev/class]: namespace ns may not use WorkloadClass team",
    ),
    "unreadable selector: nobody": (make_pod("broken"), BROKEN, {}, "cannot be read"),
    "gpu-milli not a number": (
        make_pod(annotations={"ballast.dev/gpu-milli": "lots"}),
        H100,
        {},
        "metadata.annotations[ballast.dev/gpu-milli]: 'lots' must be an integer in 1..1000",
    ),
    "gpu-milli out of range": (
        make_pod(annotations={"ballast.dev/gpu-milli": "1001"}),
        H100,
        {},
        "ballast.dev/gpu-milli",
    ),
    "gpu-milli share is fine": (
        make_pod(annotations={"ballast.dev/gpu-milli": "250"}),
        H100,
        {},
        None,
    ),
    "share plus whole GPUs": (
        make_pod(gpus=1, annotations={"ballast.dev/gpu-milli": "250"}),
        H100,
        {},
        "cannot be combined",
    ),
    "gpu-ids not indices": (
        make_pod(annotations={"ballast.dev/gpu-ids": "0,x"}),
        H100,
        {},
        "metadata.annotations[ballast.dev/gpu-ids]",
    ),
    "gpu-ids twice": (make_pod(annotations={"ballast.dev/gpu-ids": "1,1"}), H100, {}, "gpu-ids"),
    "models with a blank": (
        make_pod(annotations={"ballast.dev/models": "llama,,mistral"}),
        H100,
        {},
        "metadata.annotations[ballast.dev/models]",
    ),
    "models fine": (
        make_pod(annotations={"ballast.dev/models": "llama-3-8b, mistral"}),
        H100,
        {},
        None,
    ),
    "checkpoint time garbage": (
        make_pod(annotations={"ballast.dev/checkpoint-requested-at": "yesterday"}),
        H100,
        {},
        "checkpoint-requested-at",
    ),
    "GPU quantity not whole": (make_pod(gpus="1.5"), H100, {}, "not a whole number of GPUs"),
}


@pytest.mark.parametrize("name", CASES)
def test_pod_verdict(name: str) -> None:
    pod, cls, ns_labels, want = CASES[name]
    v = validate.pod_verdict(pod, "ns", ns_labels, cls.name, cls, NODES)
    if want is None:
        assert v.allowed, v.denials
    else:
        assert not v.allowed
        assert any(want in d for d in v.denials), v.denials


def test_uncertain_things_are_allowed_with_a_warning() -> None:
    unknown = validate.pod_verdict(make_pod("ghost", 2), "ns", {}, "ghost", None, NODES)
    assert unknown.allowed and "does not exist" in unknown.warnings[0]
    no_nodes_read = validate.pod_verdict(make_pod(gpus=99), "ns", {}, "train", H100, None)
    assert no_nodes_read.allowed and "not read the nodes" in no_nodes_read.warnings[0]
    no_matching_node = validate.pod_verdict(make_pod(gpus=1), "ns", {}, "train", H100, [NODES[2]])
    assert no_matching_node.allowed and "has GPUs yet" in no_matching_node.warnings[0]
    unknown_ns = validate.pod_verdict(make_pod("team"), "ns", None, "team", TEAM, NODES)
    assert unknown_ns.allowed and "unknown" in unknown_ns.warnings[0]
    odd = validate.pod_verdict(
        make_pod(annotations={"ballast.dev/whatever": "1"}), "ns", {}, "train", H100, NODES
    )
    assert odd.allowed and "not an annotation Ballast reads" in odd.warnings[0]


def test_metadata_name_label_is_always_selectable() -> None:
    by_name = class_view(
        "c",
        {
            "tier": "Offline",
            "namespaceSelector": {
                "matchExpressions": [
                    {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["ns"]}
                ]
            },
        },
    )
    assert validate.pod_verdict(make_pod("c"), "ns", {}, "c", by_name, NODES).allowed


def test_init_containers_count_at_their_peak() -> None:
    spec = {
        "containers": [{"resources": {"limits": {"nvidia.com/gpu": "2"}}}] * 2,
        "initContainers": [{"resources": {"requests": {"nvidia.com/gpu": 3}}}],
    }
    assert validate.gpu_request(spec) == (4, [])
    spec["initContainers"] = [{"resources": {"requests": {"nvidia.com/gpu": 6}}}]
    assert validate.gpu_request(spec) == (6, [])


def test_node_view_reads_allocatable_then_the_gfd_label() -> None:
    n = node_view(
        {
            "metadata": {
                "name": "n",
                "labels": {"nvidia.com/gpu.count": "4", "nvidia.com/gpu.memory": "x"},
            },
            "status": {"allocatable": {"nvidia.com/gpu": "0"}},
        }
    )
    assert (n.gpus, n.memory_mib) == (4, 0)
    assert node_view({"status": {"allocatable": {"nvidia.com/gpu": "999"}}}).gpus == 0


def test_admit_denies_with_the_message_and_looks_up_unknown_namespaces() -> None:
    v = ClusterView()
    v.apply(
        "workloadclasses",
        "ADDED",
        {
            "metadata": {"name": "team"},
            "spec": {"tier": "Nearline", "namespaceSelector": {"matchLabels": {"team": "search"}}},
        },
    )
    asked: list[str] = []

    def lookup(ns: str) -> dict[str, str]:
        asked.append(ns)
        return {"team": "ads"}

    resp = admit(
        PATH_VALIDATE_PODS,
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {"uid": "u", "namespace": "new-ns", "object": make_pod("team")},
        },
        v,
        scheduler_name="ballast",
        now=__import__("datetime").datetime.now(__import__("datetime").UTC),
        lookup_namespace=lookup,
    )["response"]
    assert asked == ["new-ns"]
    assert resp["allowed"] is False
    assert resp["status"]["code"] == 403
    assert "namespace new-ns may not use WorkloadClass team" in resp["status"]["message"]


def test_view_relist_drops_only_what_vanished() -> None:
    v = ClusterView()
    v.apply("nodes", "ADDED", {"metadata": {"name": "a"}})
    v.apply("nodes", "ADDED", {"metadata": {"name": "b"}})
    assert v.node_list() is None  # not listed yet
    v.apply("nodes", "RELIST", {})
    v.apply("nodes", "SYNC", {"metadata": {"name": "a"}})
    assert {n.name for n in v.node_list() or []} == set()  # still not synced
    v.apply("nodes", "SYNCED", {})
    assert [n.name for n in v.node_list() or []] == ["a"]
    v.apply("nodes", "DELETED", {"metadata": {"name": "a"}})
    assert v.node_list() == []
