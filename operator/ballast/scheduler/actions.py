"""Everything the scheduler writes to the API server, off the scheduling thread.

The verbs (bind, evict, checkpoint requests, pod conditions, status, events)
are here; how a write is run (thread pools, one token bucket, fencing by
leadership term, backoff, which results are reported and with which fields)
is :mod:`ballast.scheduler.writer`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from ballast.kube.raw import EVENTS, MERGE, NODES, PODS, STRATEGIC
from ballast.logs import kv
from ballast.scheduler.healthtaint import TaintChange
from ballast.scheduler.writer import (
    API_ERRORS,
    CONTROLLER,
    RESULT,
    STATUS_BACKOFF,
    WRITE_BACKOFF,
    FencedWriter,
    Timers,
    _micro,
    _Write,
)

__all__ = ["RESULT", "STATUS_BACKOFF", "WRITE_BACKOFF", "Actions", "Timers", "condition_key"]

log = logging.getLogger(__name__)


def condition_key(uid: str) -> str:
    """The writer key of a pod's PodScheduled condition (the latest one wins)."""
    return f"condition/{uid}"


class Actions(FencedWriter):
    """Asynchronous, fenced API writes with backoff and one shared rate limit."""

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
        pod_path = PODS.path(meta["name"], meta["namespace"])
        self.supersede(condition_key(meta["uid"]))

        def bound_here() -> bool:
            try:
                live = self.kube.request("GET", pod_path, timeout=self.timeout_s, retries=False)
            except API_ERRORS:
                return False
            return bool(
                (live.get("metadata") or {}).get("uid") == meta["uid"]
                and (live.get("spec") or {}).get("nodeName") == node
            )

        self._submit(
            _Write(
                "bind",
                meta["uid"],
                self._http("POST", f"{pod_path}/binding", body),
                0,
                self.backoff,
                {"node": node},
                report_ok=True,
                name=f"{meta['namespace']}/{meta['name']}",
                on_conflict=bound_here,
            )
        )

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
        self._submit(
            _Write(
                "condition",
                meta["uid"],
                self._http("PATCH", path, {"status": status}, STRATEGIC),
                0,
                self.status_backoff,
                {},
                report_ok=False,
                key=condition_key(meta["uid"]),
                name=f"{meta['namespace']}/{meta['name']}",
                bulk=nominated is None,
            )
        )

    # -- preemption -----------------------------------------------------------------------

    def request_checkpoint(self, victim: Mapping[str, Any], annotation: str, message: str) -> None:
        """Annotate the victim with the checkpoint request and tell it why (event)."""
        meta = victim["metadata"]
        path = PODS.path(meta["name"], meta["namespace"])
        stamp = self.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        self._submit(
            _Write(
                "checkpoint",
                meta["uid"],
                self._http(
                    "PATCH", path, {"metadata": {"annotations": {annotation: stamp}}}, MERGE
                ),
                0,
                self.backoff,
                {},
                report_ok=False,
                # Shared with withdraw_checkpoint: the newer of the two wins.
                key=f"checkpoint/{meta['uid']}",
                name=f"{meta['namespace']}/{meta['name']}",
            )
        )
        self.event(victim, "Normal", "CheckpointRequested", message, action="Preempting")

    def withdraw_checkpoint(self, victim: Mapping[str, Any], annotation: str) -> None:
        """Remove a checkpoint request: the preemption it announced was called off."""
        meta = victim["metadata"]
        path = PODS.path(meta["name"], meta["namespace"])
        self._submit(
            _Write(
                "withdraw",
                meta["uid"],
                self._http("PATCH", path, {"metadata": {"annotations": {annotation: None}}}, MERGE),
                0,
                self.backoff,
                {},
                report_ok=False,
                key=f"checkpoint/{meta['uid']}",
                name=f"{meta['namespace']}/{meta['name']}",
            )
        )
        self.event(victim, "Normal", "CheckpointWithdrawn",
                   "the preemption was called off; no eviction will follow", action="Preempting")  # fmt: skip

    def evict(self, victim: Mapping[str, Any], preemptor_uid: str) -> None:
        """POST pods/<name>/eviction (PodDisruptionBudgets apply); result: ``evict``."""
        meta = victim["metadata"]
        body = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        }
        path = PODS.path(meta["name"], meta["namespace"], "eviction")
        self._submit(
            _Write(
                "evict",
                meta["uid"],
                self._http("POST", path, body),
                0,
                self.backoff,
                {"preemptor": preemptor_uid},
                report_ok=True,
                name=f"{meta['namespace']}/{meta['name']}",
            )
        )

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
        """Post an events.k8s.io/v1 Event about ``obj`` (best effort, never blocks scheduling).

        Events are fenced like every write but neither retried nor reported.
        """
        term = self.fence()
        if term is None or self.event_backlog >= self.max_event_backlog:
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
        with self._lock:
            self.event_backlog += 1
        send = self._http("POST", EVENTS.path(namespace=namespace), body)

        def run() -> None:
            try:
                if self.fence() != term:
                    return
                self.bucket.take()
                if self.fence() != term:
                    return
                send()
            except API_ERRORS as exc:
                log.debug("event post failed", extra=kv(reason=reason, error=exc))
            finally:
                with self._lock:
                    self.event_backlog -= 1

        try:
            self.event_pool.submit(run)
        except RuntimeError:
            with self._lock:
                self.event_backlog -= 1

    # -- node taints ------------------------------------------------------------------------

    def set_node_taints(self, change: TaintChange) -> None:
        """Write a node's taint list, fenced on the ``resourceVersion`` it was read at.

        A 409 (the node changed since) is not retried: the Node event that
        follows brings the new version, and the decision is made again.
        """
        body = {
            "metadata": {"resourceVersion": change.resource_version},
            "spec": {"taints": [dict(t) for t in change.taints]},
        }
        self._submit(
            _Write(
                "taint",
                "",
                self._http("PATCH", NODES.path(change.node), body, MERGE),
                0,
                self.backoff,
                {"node": change.node},
                report_ok=False,
                key=f"taint/{change.node}",
                name=change.node,
            )
        )
        reason = "GPUsUnhealthy" if change.tainted else "GPUsHealthy"
        node = {"metadata": {"name": change.node, "uid": change.uid}}
        self.event(node, "Warning" if change.tainted else "Normal", reason, change.message,
                   action="Tainting", kind="Node")  # fmt: skip

    # -- custom resource status --------------------------------------------------------------

    def patch_status(self, path: str, status: Mapping[str, Any]) -> None:
        """Merge-patch a custom resource's status subresource, retried until it lands."""
        self._submit(
            _Write(
                "status",
                "",
                self._http("PATCH", path, {"status": dict(status)}, MERGE),
                0,
                self.status_backoff,
                {"path": path},
                report_ok=False,
                key=f"status/{path}",
                name=path,
                bulk=True,
            )
        )
