"""Builders for scheduler-core tests: recorded API writes and raw objects."""

from __future__ import annotations

import datetime as dt
import queue
from typing import Any

from ballast.api import wellknown as wk
from ballast.clock import FakeClock
from ballast.scheduler.core import Config, Scheduler
from ballast.scheduler.informer import Event


class RecordingActions:
    """Stands in for the API writers; records calls so tests can answer them."""

    def __init__(self) -> None:
        self.binds: list[tuple[str, str, dict[str, str]]] = []
        self.conditions: dict[str, tuple[str, str]] = {}
        self.checkpoints: list[str] = []
        self.evictions: list[str] = []
        self.withdrawn: list[str] = []
        self.lost_lease = False
        self.events: list[tuple[str, str]] = []
        self.notes: list[tuple[str, str, str]] = []
        self.statuses: dict[str, Any] = {}
        self.taints: list[Any] = []

    def bind(self, pod: dict[str, Any], node: str, annotations: dict[str, str]) -> None:
        self.binds.append((pod["metadata"]["name"], node, dict(annotations)))

    def set_condition(
        self, pod: dict[str, Any], reason: str, message: str, nominated: str | None = None
    ) -> None:
        self.conditions[pod["metadata"]["name"]] = (reason, message)

    def request_checkpoint(self, victim: dict[str, Any], annotation: str, message: str) -> None:
        self.checkpoints.append(victim["metadata"]["name"])

    def evict(self, victim: dict[str, Any], preemptor_uid: str) -> None:
        self.evictions.append(victim["metadata"]["name"])

    def withdraw_checkpoint(self, victim: dict[str, Any], annotation: str) -> None:
        self.withdrawn.append(victim["metadata"]["name"])

    def set_node_taints(self, change: Any) -> None:
        self.taints.append(change)

    def event(self, obj: dict[str, Any], type_: str, reason: str, note: str, **_: Any) -> None:
        self.events.append((obj["metadata"].get("name", ""), reason))
        self.notes.append((obj["metadata"].get("name", ""), reason, note))

    def fence(self) -> int | None:
        return None if self.lost_lease else 0

    def patch_status(self, path: str, status: dict[str, Any]) -> None:
        self.statuses[path] = status


def node(name: str, gpus: int = 8) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {wk.LABEL_GPU_PRODUCT: "H100", wk.LABEL_GPU_MEMORY_MIB: "81559"},
        },
        "status": {
            "allocatable": {"cpu": "192", "memory": "2048Gi", wk.GPU_RESOURCE: str(gpus)},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def pod(
    name: str, gpus: int = 1, cls: str | None = None, node_name: str | None = None, ns: str = "team"
) -> dict[str, Any]:
    labels = {wk.LABEL_CLASS: cls} if cls else {}
    spec: dict[str, Any] = {
        "schedulerName": "ballast",
        "containers": [{"name": "c", "resources": {"limits": {wk.GPU_RESOURCE: str(gpus)}}}],
    }
    if node_name:
        spec["nodeName"] = node_name
    return {
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": f"uid-{name}",
            "labels": labels,
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": spec,
        "status": {"phase": "Running" if node_name else "Pending"},
    }


def wlc(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": spec}


def make(
    *objects: tuple[str, dict[str, Any]],
) -> tuple[Scheduler, RecordingActions, queue.Queue[Event]]:
    q: queue.Queue[Event] = queue.Queue()
    actions = RecordingActions()
    clock = FakeClock(dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC))
    # No pod backoff here: these tests step a fake clock and expect a woken pod to be
    # tried at once; the backoff has its own tests (test_pod_backoff.py).
    s = Scheduler(actions, q, clock, Config(pod_initial_backoff_s=0))  # type: ignore[arg-type]
    for kind in s.required:
        q.put(Event(kind, "RELIST", {}))
    for kind, obj in objects:
        q.put(Event(kind, "SYNC", obj))
    for kind in s.required:
        q.put(Event(kind, "SYNCED", {}))
    return s, actions, q


def run(s: Scheduler, steps: int = 5) -> None:
    for _ in range(steps):
        s.step(0)
