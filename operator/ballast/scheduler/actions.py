"""Everything the scheduler writes to the API server, off the scheduling thread.

Binds, evictions, checkpoint requests, pod conditions and events run on a
thread pool behind one token bucket. Results that change the scheduler's
state (a bind that failed, an eviction refused by a PodDisruptionBudget)
come back as events on the scheduler's queue, so the scheduling thread stays
the only one that touches its cache.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import queue
import socket
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ballast.kube.raw import EVENTS, PODS, STRATEGIC, Kube, KubeError
from ballast.logs import kv
from ballast.scheduler.informer import Event
from ballast.scheduler.ratelimit import TokenBucket

log = logging.getLogger(__name__)
RESULT = "_result"  # Event.kind for results of asynchronous writes
CONTROLLER = "ballast.dev/scheduler"


def _micro(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Actions:
    """Asynchronous API writes with retries and one shared rate limit."""

    def __init__(
        self,
        kube: Kube,
        out: queue.Queue[Event],
        *,
        bucket: TokenBucket,
        workers: int = 16,
        scheduler_name: str = "ballast",
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.kube = kube
        self.out = out
        self.bucket = bucket
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="api")
        # Events are best effort and must never delay a bind: their own small pool.
        self.event_pool = ThreadPoolExecutor(2, thread_name_prefix="events")
        self.event_backlog = 0
        self.max_event_backlog = 5000
        self.instance = f"{scheduler_name}-{socket.gethostname()}-{os.getpid()}"
        self.now = now

    def shutdown(self) -> None:
        """Finish queued writes and stop the pools."""
        self.pool.shutdown(wait=True, cancel_futures=False)
        self.event_pool.shutdown(wait=False, cancel_futures=True)

    def _call(self, fn: Callable[[], Any]) -> Any:
        self.bucket.take()
        return fn()

    def _report(self, what: str, uid: str, ok: bool, **extra: Any) -> None:
        self.out.put(Event(RESULT, what, {"uid": uid, "ok": ok, **extra}))

    # -- binds ----------------------------------------------------------------------------

    def bind(self, pod: Mapping[str, Any], node: str, annotations: Mapping[str, str]) -> None:
        """POST pods/<name>/binding; the outcome comes back as a ``bind`` result."""
        meta = pod["metadata"]
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            # Binding annotations are copied onto the pod by the API server.
            "metadata": {
                "name": meta["name"],
                "uid": meta["uid"],
                "annotations": dict(annotations),
            },
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        path = PODS.path(meta["name"], meta["namespace"], "binding")

        def run() -> None:
            try:
                self._call(lambda: self.kube.create(path, body))
                self._report("bind", meta["uid"], True, node=node)
            except KubeError as exc:
                self._report(
                    "bind", meta["uid"], False, node=node, status=exc.status, error=exc.message
                )
            except OSError as exc:
                self._report("bind", meta["uid"], False, node=node, status=0, error=str(exc))

        self.pool.submit(run)

    # -- pod status -----------------------------------------------------------------------

    def set_condition(
        self, pod: Mapping[str, Any], reason: str, message: str, nominated: str | None = None
    ) -> None:
        """Set ``PodScheduled=False`` with ``reason``/``message`` (and nominatedNodeName)."""
        meta = pod["metadata"]
        status: dict[str, Any] = {
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": reason,
                    "message": message[:4000],
                    "lastTransitionTime": self.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            ]
        }
        if nominated is not None:
            status["nominatedNodeName"] = nominated
        path = PODS.path(meta["name"], meta["namespace"], "status")

        def run() -> None:
            try:
                self._call(
                    lambda: self.kube.patch(path, {"status": status}, content_type=STRATEGIC)
                )
            except (KubeError, OSError) as exc:
                if not (isinstance(exc, KubeError) and exc.not_found):
                    log.warning("condition patch failed", extra=kv(pod=meta["name"], error=exc))

        self.pool.submit(run)

    # -- preemption -----------------------------------------------------------------------

    def request_checkpoint(self, victim: Mapping[str, Any], annotation: str, message: str) -> None:
        """Annotate the victim with the checkpoint request and tell it why (event)."""
        meta = victim["metadata"]
        path = PODS.path(meta["name"], meta["namespace"])
        stamp = self.now().strftime("%Y-%m-%dT%H:%M:%SZ")

        def run() -> None:
            try:
                self._call(
                    lambda: self.kube.patch(
                        path, {"metadata": {"annotations": {annotation: stamp}}}
                    )
                )
            except (KubeError, OSError) as exc:
                log.warning("checkpoint request failed", extra=kv(pod=meta["name"], error=exc))

        self.pool.submit(run)
        self.event(victim, "Normal", "CheckpointRequested", message, action="Preempting")

    def evict(self, victim: Mapping[str, Any], preemptor_uid: str) -> None:
        """POST pods/<name>/eviction (PodDisruptionBudgets apply); result: ``evict``."""
        meta = victim["metadata"]
        body = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        }
        path = PODS.path(meta["name"], meta["namespace"], "eviction")

        def run() -> None:
            try:
                self._call(lambda: self.kube.create(path, body))
                self._report("evict", meta["uid"], True, preemptor=preemptor_uid)
            except KubeError as exc:
                # 404: already gone, which is what we wanted.
                ok = exc.not_found
                self._report(
                    "evict",
                    meta["uid"],
                    ok,
                    preemptor=preemptor_uid,
                    status=exc.status,
                    error=exc.message,
                )
            except OSError as exc:
                self._report(
                    "evict", meta["uid"], False, preemptor=preemptor_uid, status=0, error=str(exc)
                )

        self.pool.submit(run)

    # -- events ---------------------------------------------------------------------------

    def event(
        self,
        obj: Mapping[str, Any],
        type_: str,
        reason: str,
        note: str,
        *,
        action: str = "Scheduling",
        kind: str = "Pod",
        api_version: str = "v1",
    ) -> None:
        """Post an events.k8s.io/v1 Event about ``obj`` (best effort, never blocks scheduling)."""
        if self.event_backlog >= self.max_event_backlog:
            return  # shed load rather than fall behind; the condition still tells the story
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        now = self.now()
        body = {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            # Named like client-go's recorder: <object>.<unique hex suffix>.
            "metadata": {
                "name": f"{meta.get('name', 'obj')}.{uuid.uuid4().hex[:16]}",
                "namespace": namespace,
            },
            "eventTime": _micro(now),
            "reportingController": CONTROLLER,
            "reportingInstance": self.instance[:128],
            "action": action,
            "reason": reason,
            "note": note[:1024],
            "type": type_,
            "regarding": {
                "apiVersion": api_version,
                "kind": kind,
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
            },
        }
        self.event_backlog += 1

        def run() -> None:
            try:
                self._call(lambda: self.kube.create(EVENTS.path(namespace=namespace), body))
            except (KubeError, OSError) as exc:
                log.debug("event post failed", extra=kv(reason=reason, error=exc))
            finally:
                self.event_backlog -= 1

        self.event_pool.submit(run)

    # -- custom resource status --------------------------------------------------------------

    def patch_status(self, path: str, status: Mapping[str, Any]) -> None:
        """Merge-patch a custom resource's status subresource (best effort)."""

        def run() -> None:
            try:
                self._call(lambda: self.kube.patch(path, {"status": dict(status)}))
            except (KubeError, OSError) as exc:
                log.warning("status patch failed", extra=kv(path=path, error=exc))

        self.pool.submit(run)
