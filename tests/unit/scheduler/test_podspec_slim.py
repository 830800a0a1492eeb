"""Pods are slimmed in the informer thread and again in the scheduling thread.

``podspec.slim_pod`` must therefore be idempotent, and the informer must
queue what its transform returns (the raw object when the transform fails).
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ballast.kube.raw import PODS
from ballast.scheduler import podspec
from ballast.scheduler.informer import Event, Informer

junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3)
    ),
    max_leaves=8,
)
fields = st.sampled_from(
    ["labels", "annotations", "ownerReferences", "containers", "tolerations", "affinity",
     "schedulingGroup", "resourceClaims", "resourceClaimStatuses", "priority", "nodeName",
     "startTime"]
)  # fmt: skip


def served_pod() -> dict[str, Any]:
    return {
        "metadata": {
            "name": "p", "namespace": "ns", "uid": "u1", "labels": {"a": "b"},
            "annotations": {"ballast.dev/gpu-milli": "500", "other": "x"},
            "ownerReferences": [{"kind": "Job", "name": "j", "controller": True, "uid": "j1"}],
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {
            "schedulerName": "ballast",
            "containers": [{"name": "c", "image": "x", "resources": {"limits": {"cpu": "1"}}}],
            "schedulingGroup": {"podGroupName": "g"},
            "tolerations": [{"key": "k", "operator": "Exists"}],
        },
        "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled"}]},
    }  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(fields, junk, max_size=6), st.sampled_from(["metadata", "spec", "status"]))
def test_slimming_a_slim_pod_changes_nothing(garbage: dict[str, Any], part: str) -> None:
    pod = served_pod()
    pod[part] = {**pod[part], **garbage}
    once = podspec.slim_pod(pod)
    # A plain copy is slimmed again, field by field: the same result.
    assert podspec.slim_pod(dict(once)) == once
    assert podspec.slim_pod(once) is once  # what slim_pod made passes as it is


def test_only_what_slim_pod_made_skips_the_second_pass() -> None:
    """A tenant cannot skip the boundary: the marker is a type, not a field."""
    pod = served_pod()
    pod["spec"]["tolerations"] = "not a list"
    slim = podspec.slim_pod(pod)
    assert isinstance(slim, podspec.SlimPod) and slim["spec"]["tolerations"] == []
    lookalike = {**slim, "spec": {**slim["spec"], "tolerations": "not a list"}}
    assert podspec.slim_pod(lookalike)["spec"]["tolerations"] == []


def test_a_pod_without_a_group_reference_stays_without_one() -> None:
    pod = served_pod()
    del pod["spec"]["schedulingGroup"]
    assert podspec.slim_pod(dict(podspec.slim_pod(pod)))["spec"]["schedulingGroup"] == {}
    assert "managedFields" not in podspec.slim_pod(served_pod())["metadata"]


class _Kube:
    """A list of two pods and a watch of one more, then 410 Gone."""

    def __init__(self, informer: list[Informer]) -> None:
        self.informer = informer

    def list(self, path: str, **query: Any) -> dict[str, Any]:
        bad = {"metadata": {"name": "bad"}}
        return {"items": [served_pod(), bad], "metadata": {"resourceVersion": "5"}}

    def watch(self, path: str, **query: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        yield "ADDED", {**served_pod(), "metadata": {"name": "q", "resourceVersion": "6"}}
        self.informer[0].stop()
        yield "ERROR", {}


def test_the_informer_queues_what_its_transform_returns() -> None:
    def transform(obj: dict[str, Any]) -> dict[str, Any]:
        if obj["metadata"]["name"] == "bad":
            raise ValueError("cannot")
        return podspec.slim_pod(obj)

    out: queue.Queue[Event] = queue.Queue()
    holder: list[Informer] = []
    informer = Informer(_Kube(holder), PODS, out, transform=transform)  # type: ignore[arg-type]
    holder.append(informer)
    informer.run()
    events = []
    while not out.empty():
        events.append(out.get())
    assert [e.type for e in events] == ["RELIST", "SYNC", "SYNC", "SYNCED", "ADDED"]
    slim, bad, added = events[1].obj, events[2].obj, events[4].obj
    assert slim == podspec.slim_pod(served_pod()) and "managedFields" not in slim["metadata"]
    assert bad == {"metadata": {"name": "bad"}}  # queued as it came: the scheduler reports it
    assert added["metadata"]["name"] == "q" and set(added) == {"metadata", "spec", "status"}
