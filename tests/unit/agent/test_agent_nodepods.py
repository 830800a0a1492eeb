"""The node's pod view: list+watch events into the pods attribution reads (no API server)."""

from __future__ import annotations

import threading
from collections import Counter
from types import SimpleNamespace
from typing import Any

from ballast.agent.attribution import BallastPod
from ballast.agent.nodepods import NodePods, _CountingKube, field_selector
from ballast.kube.raw import Kube
from ballast.scheduler.informer import Event


def pod(name: str, ids: str | None, ns: str = "ns") -> dict[str, Any]:
    annotations = {} if ids is None else {"ballast.dev/gpu-ids": ids}
    return {
        "metadata": {"name": name, "namespace": ns, "annotations": annotations},
        "spec": {"containers": [{"name": "main"}]},
    }


def view() -> NodePods:
    return NodePods(Kube(SimpleNamespace()), "gpu-1")  # type: ignore[arg-type]


def feed(pods: NodePods, *events: tuple[str, dict[str, Any]]) -> list[BallastPod] | None:
    for kind, obj in events:
        pods._events.put(Event("pods", kind, obj))
    return pods.current()


def test_selector_keeps_the_nodes_live_pods() -> None:
    assert field_selector("gpu-1") == (
        "spec.nodeName=gpu-1,status.phase!=Succeeded,status.phase!=Failed"
    )


def test_nothing_until_the_first_list_is_complete() -> None:
    pods = view()
    assert feed(pods, ("RELIST", {}), ("SYNC", pod("a", "0"))) is None
    got = feed(pods, ("SYNCED", {}))
    assert got == [BallastPod("ns", "a", (0,), "main")]


def test_watch_events_and_relists() -> None:
    pods = view()
    feed(
        pods, ("RELIST", {}), ("SYNC", pod("a", "0")), ("SYNC", pod("plain", None)), ("SYNCED", {})
    )
    got = feed(pods, ("ADDED", pod("b", "1")), ("MODIFIED", pod("a", "2")))
    assert [(p.name, p.gpu_ids) for p in got or ()] == [("a", (2,)), ("b", (1,))]
    got = feed(pods, ("MODIFIED", pod("b", None)), ("DELETED", pod("a", "2")))
    assert got == []  # the annotation was removed; the other pod left the node or finished
    # A relist replaces the whole view only when it is complete.
    feed(pods, ("ADDED", pod("c", "3")))
    assert [p.name for p in feed(pods, ("RELIST", {}), ("SYNC", pod("d", "1"))) or ()] == ["c"]
    assert [p.name for p in feed(pods, ("SYNCED", {})) or ()] == ["d"]


def test_requests_are_counted_by_verb() -> None:
    counts: Counter[str] = Counter()

    class Recorder(Kube):
        def request(self, method: str, path: str, **kwargs: Any) -> Any:
            return {"items": [], "metadata": {}}

    class Counting(_CountingKube, Recorder):
        pass

    k = Counting(Kube(SimpleNamespace()), counts, threading.Lock())  # type: ignore[arg-type]
    k.list("/api/v1/pods", fieldSelector="spec.nodeName=x")
    k.request("GET", "/api/v1/pods", query={"watch": "true"})
    assert counts == {"list": 1, "watch": 1}
