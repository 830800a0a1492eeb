"""PodGroup objects and pod group references at the trust boundary: never an exception."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ballast.scheduler import podspec
from ballast.scheduler.groups import (
    KUBE,
    KUBE_KIND,
    PLUGINS,
    PLUGINS_KIND,
    POD_GROUP_LABEL,
    GroupBook,
    GroupKey,
    GroupSpec,
    kube_group,
    plugins_group,
    pod_group,
)

junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3)
    ),
    max_leaves=10,
)


def test_pod_references() -> None:
    pod = {"metadata": {"namespace": "ns", "labels": {POD_GROUP_LABEL: "train"}}, "spec": {}}
    assert pod_group(pod).value == GroupKey(PLUGINS, "ns", "train")
    pod["spec"] = {"schedulingGroup": {"podGroupName": "wl-pg"}}
    assert pod_group(pod).value == GroupKey(PLUGINS, "ns", "train")  # the explicit label wins
    pod["metadata"]["labels"] = {}
    assert pod_group(pod).value == GroupKey(KUBE, "ns", "wl-pg")
    pod["spec"] = {}
    pod["metadata"]["labels"] = {POD_GROUP_LABEL: "Bad Name!"}
    mapped = pod_group(pod)
    assert mapped.value is None and "is not a PodGroup name" in mapped.problems[0]


def test_specs() -> None:
    assert plugins_group({"spec": {"minMember": 4}}).value == GroupSpec(4)
    assert plugins_group(
        {"spec": {"minMember": 4, "scheduleTimeoutSeconds": 5}}
    ).value == GroupSpec(4, 5.0)
    for bad in (0, -1, 5000, "4", True, None, 2.5):
        mapped = plugins_group({"spec": {"minMember": bad}})
        assert mapped.value is None and mapped.problems, bad
    ok_timeout = plugins_group({"spec": {"minMember": 2, "scheduleTimeoutSeconds": -3}})
    assert ok_timeout.value == GroupSpec(2) and ok_timeout.problems
    assert kube_group({"spec": {"schedulingPolicy": {"gang": {"minCount": 3}}}}).value == GroupSpec(
        3
    )
    assert kube_group({"spec": {"schedulingPolicy": {"basic": {}}}}).value == GroupSpec(
        1, gang=False
    )
    assert kube_group({"spec": {"schedulingPolicy": {}}}).value is None


@settings(max_examples=200, deadline=None)
@given(junk, junk, junk)
def test_garbage_never_raises(spec: Any, labels: Any, ref: Any) -> None:
    plugins_group({"spec": spec})
    kube_group({"spec": spec})
    raw = {
        "metadata": {"name": "p", "namespace": "ns", "labels": labels},
        "spec": {"schedulingGroup": ref},
    }
    pod_group(podspec.slim_pod(raw))
    book = GroupBook()
    for kind in (PLUGINS_KIND, KUBE_KIND):
        book.on_object(kind, False, {"metadata": {"name": "g", "namespace": "ns"}, "spec": spec})
        book.on_object(kind, False, {"metadata": spec, "spec": spec})


def test_kube_topology_constraint() -> None:
    spec = {
        "schedulingPolicy": {"gang": {"minCount": 2}},
        "schedulingConstraints": {"topology": [{"key": "topology.kubernetes.io/rack"}]},
    }
    assert kube_group({"spec": spec}).value == GroupSpec(2, within="topology.kubernetes.io/rack")
    spec["schedulingConstraints"] = {"topology": [{"key": "not a key!"}]}
    mapped = kube_group({"spec": spec})
    assert mapped.value == GroupSpec(2) and "is not a label key" in mapped.problems[0]
