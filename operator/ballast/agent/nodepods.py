"""The pods bound to this node that carry Ballast's GPU assignment, kept by list+watch.

One list and then one long watch (renewed every few minutes) of
``pods?fieldSelector=spec.nodeName=<node>,status.phase!=Succeeded,status.phase!=Failed``
through :class:`ballast.scheduler.informer.Informer`: a pod that finishes
leaves the selection (a DELETED event), and the agent sends no request per
collection. Only what attribution reads is kept per pod
(:class:`ballast.agent.attribution.BallastPod`); API requests are counted
by verb for ``ballast_agent_pod_api_requests_total``.
"""

from __future__ import annotations

import queue
import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any

from ballast.agent.attribution import BallastPod, ballast_pod
from ballast.kube.raw import PODS, Kube
from ballast.scheduler.informer import Event, Informer

TERMINAL_PHASES = ("Succeeded", "Failed")


def field_selector(node: str) -> str:
    """The pods of ``node`` that may still hold a GPU."""
    return ",".join([f"spec.nodeName={node}", *(f"status.phase!={p}" for p in TERMINAL_PHASES)])


class _CountingKube(Kube):
    """The same connection, counting requests as ``list`` or ``watch``."""

    def __init__(self, kube: Kube, counts: Counter[str], lock: threading.Lock) -> None:
        super().__init__(kube.api)
        self._counts = counts
        self._lock = lock

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Count, then send (see :meth:`Kube.request`)."""
        query = kwargs.get("query") or {}
        with self._lock:
            verb = "watch" if query.get("watch") else "list" if method == "GET" else method.lower()
            self._counts[verb] += 1
        return super().request(method, path, **kwargs)


class NodePods:
    """This node's live pods with ``ballast.dev/gpu-ids``; ``current()`` is None until synced."""

    def __init__(self, kube: Kube, node_name: str) -> None:
        self.node_name = node_name
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._events: queue.Queue[Event] = queue.Queue()
        self._informer = Informer(
            _CountingKube(kube, self.requests, self._lock),
            PODS,
            self._events,
            field_selector=field_selector(node_name),
            page_size=500,
        )
        self._pods: dict[tuple[str, str], BallastPod] = {}
        self._staging: dict[tuple[str, str], BallastPod] | None = None
        self._synced = False

    def start(self) -> None:
        """Start listing and watching (a daemon thread)."""
        self._informer.start()

    def stop(self) -> None:
        """Stop after the current watch request."""
        self._informer.stop()

    def wait_synced(self, timeout_s: float) -> bool:
        """Block until the first full list arrived (or ``timeout_s``); whether it did."""
        return self._informer.synced.wait(timeout_s)

    def request_counts(self) -> dict[str, int]:
        """API requests sent so far, by verb (``list`` per page, ``watch``)."""
        with self._lock:
            return dict(self.requests)

    def current(self) -> list[BallastPod] | None:
        """Apply the events received so far; the pods, or None before the first full list."""
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
            self._apply(event)
        if not self._synced:
            return None
        return [self._pods[k] for k in sorted(self._pods)]

    def _apply(self, event: Event) -> None:
        if event.type == "RELIST":
            self._staging = {}
            return
        if event.type == "SYNCED":
            if self._staging is not None:
                self._pods, self._staging = self._staging, None
            self._synced = True
            return
        key, pod = _entry(event.obj)
        if key is None:
            return
        if event.type == "SYNC":
            if self._staging is not None and pod is not None:
                self._staging[key] = pod
            return
        if event.type == "DELETED" or pod is None:
            self._pods.pop(key, None)
        else:
            self._pods[key] = pod


def _entry(obj: Mapping[str, Any]) -> tuple[tuple[str, str] | None, BallastPod | None]:
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        return None, None
    key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
    return key, ballast_pod(obj)
