"""Writes of the same object's condition reach the server in the order they were made."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

import pytest

from ballast.kube.raw import KubeError
from ballast.scheduler.actions import Actions
from ballast.scheduler.informer import Event
from ballast.scheduler.ratelimit import TokenBucket

POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "u-1"}}


class SlowFirstKube:
    """The first PATCH blocks until released; every PATCH body is recorded in arrival order."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.first = True
        self.lock = threading.Lock()
        self.bodies: list[str] = []

    def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> Any:
        with self.lock:
            first, self.first = self.first, False
        if first:
            self.release.wait(5)
        with self.lock:
            self.bodies.append(body["status"]["conditions"][0]["reason"])
        return {}


def test_a_newer_condition_waits_for_the_one_in_flight() -> None:
    kube = SlowFirstKube()
    out: queue.Queue[Event] = queue.Queue()
    actions = Actions(kube, out, bucket=TokenBucket(0, 1), workers=8)  # type: ignore[arg-type]
    try:
        actions.set_condition(POD, "WaitingForMembers", "2 of 4")
        time.sleep(0.2)  # the first write is on the wire
        actions.set_condition(POD, "Unschedulable", "3 of 4 fit")
        time.sleep(0.3)
        assert kube.bodies == []  # the newer one did not overtake it
        kube.release.set()
        deadline = time.monotonic() + 5
        while len(kube.bodies) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert kube.bodies == ["WaitingForMembers", "Unschedulable"]
    finally:
        kube.release.set()
        actions.shutdown()


class RecordingKube(SlowFirstKube):
    """Like SlowFirstKube, and records binds too."""

    def request(self, method: str, path: str, *, body: Any = None, **kw: Any) -> Any:
        if path.endswith("/binding"):
            with self.lock:
                self.bodies.append("bind")
            return {}
        return super().request(method, path, body=body, **kw)


def test_a_bind_drops_the_conditions_not_yet_sent() -> None:
    """A nomination sent after the binding would be refused (422): it is never sent."""
    kube = RecordingKube()
    out: queue.Queue[Event] = queue.Queue()
    actions = Actions(kube, out, bucket=TokenBucket(0, 1), workers=8)  # type: ignore[arg-type]
    try:
        actions.set_condition(POD, "Unschedulable", "no room")
        time.sleep(0.2)  # on the wire: it still lands
        actions.set_condition(POD, "Preempting", "victims leaving", nominated="n1")
        actions.bind(POD, "n1", {})
        time.sleep(0.3)
        kube.release.set()
        time.sleep(0.5)
        assert kube.bodies == ["bind", "Unschedulable"]
        bind = out.get(timeout=2)
        assert bind.type == "bind" and bind.obj["ok"] is True
        assert out.empty()  # the dropped condition reports nothing
    finally:
        kube.release.set()
        actions.shutdown()


class BoundFirstKube(RecordingKube):
    """The condition on the wire is answered after the bind, as the API server would: 422."""

    def request(self, method: str, path: str, *, body: Any = None, **kw: Any) -> Any:
        result = super().request(method, path, body=body, **kw)
        if not path.endswith("/binding"):
            raise KubeError(
                422,
                "Invalid",
                {"message": "status.nominatedNodeName: Forbidden: may not be set on bound pods"},
            )
        return result


def test_a_condition_on_the_wire_when_the_bind_lands_is_moot_not_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The nomination raced the bind and lost: nothing is retried, reported or warned about."""
    kube = BoundFirstKube()
    out: queue.Queue[Event] = queue.Queue()
    actions = Actions(kube, out, bucket=TokenBucket(0, 1), workers=8)  # type: ignore[arg-type]
    try:
        actions.set_condition(POD, "Preempting", "victims leaving", nominated="n1")
        time.sleep(0.2)  # on the wire
        actions.bind(POD, "n1", {})
        bind = out.get(timeout=2)
        assert bind.type == "bind" and bind.obj["ok"] is True
        with caplog.at_level(logging.WARNING, logger="ballast.scheduler.writer"):
            kube.release.set()  # the server now refuses the nomination: the pod is bound
            time.sleep(0.5)
        assert kube.bodies == ["bind", "Preempting"]  # sent once, not retried
        assert out.empty()  # no failure reported to the scheduler
        assert not caplog.records
        # A condition written after the bind (a later write for the same key) still reports.
        actions.set_condition(POD, "Unschedulable", "gone again")
        failed = out.get(timeout=2)
        assert failed.type == "condition" and failed.obj["permanent"] is True
    finally:
        kube.release.set()
        actions.shutdown()
