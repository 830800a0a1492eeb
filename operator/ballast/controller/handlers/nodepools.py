"""Node pool handlers: views of nodes, pods and classes; one pass decides every pool.

Pools compete for nodes, so they are decided together: any change that can
matter (a node's GPU or pool labels, taints or readiness; a pod bound to or
leaving a node; a class's ``nodePool`` or status) pokes one debounced pass
that runs :func:`ballast.controller.nodepools.plan` over the indexes and
writes the nodes and class statuses that differ. Node heartbeats and other
status-only churn change no view and cost nothing. A pass is also asked for
when a dwell time ends, on each pass of the resync loop, and after a failed
write (5 s later).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from ballast.api.wellknown import API_VERSION, GROUP, VERSION
from ballast.controller import nodepool_views as views
from ballast.controller import nodepool_writes as writes
from ballast.controller import nodepools as logic
from ballast.controller.events import post
from ballast.controller.settings import POOL_DWELL_SECONDS
from ballast.kube.raw import NODES, TRANSPORT_ERRORS, WORKLOADCLASSES, Kube, KubeError
from ballast.logs import kv

log = logging.getLogger(__name__)
WLC = (GROUP, VERSION, "workloadclasses")
DEBOUNCE_SECONDS = 0.3  # a burst of events (a node and its pods) costs one pass
RETRY_SECONDS = 5.0
_ERRORS: tuple[type[Exception], ...] = (KubeError, *TRANSPORT_ERRORS)
ATTEMPTS = 4  # read-modify-write attempts per object (409: someone wrote in between)


def _live_bound(spec: kopf.Spec, status: kopf.Status, **_: Any) -> bool:
    return bool(spec.get("nodeName")) and status.get("phase") not in ("Succeeded", "Failed")


@kopf.index("v1", "nodes")
async def pool_nodes(name: str, body: kopf.Body, **_: Any) -> dict[str, views.NodeView]:
    """node name → what pools read from it."""
    return {name: views.node_view(body)}


@kopf.index("v1", "pods", when=_live_bound)
async def pool_pods(body: kopf.Body, **_: Any) -> dict[str, views.PodView]:
    """node name → the live pods bound to it."""
    view = views.pod_view(body)
    return {view.node: view} if view is not None else {}


@kopf.index(*WLC)
async def pool_classes(
    name: str,
    uid: str,
    meta: kopf.Meta,
    spec: kopf.Spec,
    status: kopf.Status,
    **_: Any,
) -> dict[str, views.ClassView]:
    """class name → its pool spec and pool status (a class being deleted is gone)."""
    if meta.get("deletionTimestamp"):
        return {}
    return {name: views.class_view(name, uid, meta, spec, status)}


class _Runner:
    """One pass at a time; pokes during a pass make one more pass (module state: one process)."""

    def __init__(self) -> None:
        self.dirty = False
        self.task: asyncio.Task[None] | None = None
        self.memo: Any = None
        self.indexes: Mapping[str, Any] = {}
        self.wake_at: dt.datetime | None = None
        self.wake: asyncio.TimerHandle | None = None
        self.seen: dict[str, Any] = {}

    def poke(self, memo: Any, indexes: Mapping[str, Any]) -> None:
        self.memo = memo
        self.indexes = indexes
        self.dirty = True
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._loop())

    def later(self, seconds: float, at: dt.datetime | None = None) -> None:
        """Poke again in ``seconds`` (an earlier request replaces a later one)."""
        if at is not None and self.wake_at is not None and self.wake_at <= at and self.wake:
            return
        if self.wake is not None:
            self.wake.cancel()
        self.wake_at = at
        memo, indexes = self.memo, self.indexes
        self.wake = asyncio.get_running_loop().call_later(
            max(0.0, seconds), lambda: self.poke(memo, indexes)
        )

    def changed(self, key: str, view: Any) -> bool:
        """Whether ``view`` differs from the one last seen under ``key`` (and remember it)."""
        if self.seen.get(key, ...) == view:
            return False
        if view is None:
            self.seen.pop(key, None)
        else:
            self.seen[key] = view
        return True

    async def _loop(self) -> None:
        while self.dirty:
            self.dirty = False
            await asyncio.sleep(DEBOUNCE_SECONDS)
            try:
                retry = await run_pass(self.memo, self.indexes, self)
            except Exception as exc:  # API down, a bug: never kill the runner
                log.warning("node pool pass failed", extra=kv(error=repr(exc)))
                retry = True
            if retry:
                self.later(RETRY_SECONDS)


_runner = _Runner()


def _views(index: Any) -> list[Any]:
    return [v for store in (index or {}).values() for v in store]


async def run_pass(memo: Any, indexes: Mapping[str, Any], runner: _Runner) -> bool:
    """Plan every pool and write what differs; True when something must be retried."""
    classes: list[views.ClassView] = _views(indexes.get("pool_classes"))
    now = memo.clock.now()
    plan = logic.plan(
        classes,
        _views(indexes.get("pool_nodes")),
        _views(indexes.get("pool_pods")),
        now=now,
        dwell=dt.timedelta(seconds=POOL_DWELL_SECONDS),
    )
    kube: Kube = memo.kube
    by_name = {c.name: c for c in classes}
    retry = False
    for change in plan.changes:
        try:
            wrote = await asyncio.to_thread(_write_node, kube, change)
        except _ERRORS as exc:
            log.warning("node pool write failed", extra=kv(node=change.node, error=str(exc)))
            retry = True
            continue
        owner = by_name.get(change.owner)
        if wrote and owner is not None:
            post(_ref(owner), "Normal", change.reason, change.why)
    for name, want in plan.status.items():
        cls = by_name.get(name)
        if cls is None or not writes.status_differs(cls, want):
            continue
        try:
            old = await asyncio.to_thread(_write_status, kube, cls, want, now)
        except _ERRORS as exc:
            log.warning("pool status write failed", extra=kv(workloadclass=name, error=str(exc)))
            retry = True
            continue
        cond = want.condition
        if (
            cond is not None
            and cond.status is False
            and old != cond.reason
            and cond.reason in ("PoolConflict", "NotEnoughNodes")
        ):
            post(_ref(cls), "Warning", cond.reason, cond.message)
    if plan.next_review is not None:
        runner.later((plan.next_review - now).total_seconds() + 0.5, plan.next_review)
    return retry


def _ref(c: views.ClassView) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "WorkloadClass",
        "metadata": {"name": c.name, "uid": c.uid},
    }


def _write_node(kube: Kube, change: logic.NodeChange) -> bool:
    """Read the node, patch its pool fields with a resourceVersion precondition; True if written.

    The node is left alone when it changed hands since the plan (another pool's
    member, or labelled by hand): the watch brings a new pass.
    """
    for _ in range(ATTEMPTS):
        node = kube.get(NODES.path(change.node))
        if node is None:
            return False
        view = views.node_view(node)
        if view.member_of != change.expected:
            return False
        if change.want is not None and view.member_of is None and view.pool_label is not None:
            return False  # labelled by hand meanwhile
        patch = writes.node_patch(node, change.want)
        if patch is None:
            return False
        try:
            kube.patch(NODES.path(change.node), patch)
        except KubeError as exc:
            if exc.conflict:
                continue
            raise
        log.info(change.why, extra=kv(node=change.node, workloadclass=change.owner))
        return True
    raise KubeError(409, "Conflict", f"node {change.node} kept changing")


def _write_status(
    kube: Kube, cls: views.ClassView, want: writes.ClassPool, now: dt.datetime
) -> str | None:
    """Write ``status.pool`` and ``PoolReady`` over the class's current status; returns the
    reason PoolReady had before. Other conditions are kept (resourceVersion precondition)."""
    path = WORKLOADCLASSES.path(cls.name)
    for _ in range(ATTEMPTS):
        obj = kube.get(path)
        if obj is None or obj["metadata"].get("uid") != cls.uid:
            return None
        status = obj.get("status") or {}
        old = next(
            (
                c.get("reason")
                for c in status.get("conditions") or ()
                if c.get("type") == "PoolReady"
            ),
            None,
        )
        conditions = writes.pool_conditions(
            status.get("conditions"), want.condition,
            generation=obj["metadata"].get("generation"), now=now,
        )  # fmt: skip
        patch = {
            "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
            "status": {"pool": want.pool, "conditions": conditions},
        }
        try:
            kube.patch(WORKLOADCLASSES.path(cls.name, sub="status"), patch)
        except KubeError as exc:
            if exc.conflict:
                continue
            raise
        return str(old) if old else None
    raise KubeError(409, "Conflict", f"workloadclass {cls.name} kept changing")


@kopf.on.event("v1", "nodes")
async def node_pool_watch(
    type: str, name: str, body: kopf.Body, memo: kopf.Memo, **kwargs: Any
) -> None:
    """A node appeared, changed or left: a pass when what pools read from it changed."""
    view = None if type == "DELETED" else views.node_view(body)
    if _runner.changed(f"node/{name}", view):
        _runner.poke(memo, kwargs)


@kopf.on.event("v1", "pods")
async def pod_pool_watch(
    type: str, uid: str, body: kopf.Body, memo: kopf.Memo, **kwargs: Any
) -> None:
    """A pod was bound, finished or deleted: a pass when its view changed."""
    view = None if type == "DELETED" else views.pod_view(body)
    if _runner.changed(f"pod/{uid}", view):
        _runner.poke(memo, kwargs)


async def workloadclass_pool_watch(
    type: str,
    name: str,
    uid: str,
    meta: kopf.Meta,
    spec: kopf.Spec,
    status: kopf.Status,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    """A class changed (spec, or its status lost PoolReady to another writer), or left."""
    gone = type == "DELETED" or bool(meta.get("deletionTimestamp"))
    view = None if gone else views.class_view(name, uid, meta, spec, status)
    if _runner.changed(f"class/{name}", view):
        _runner.poke(memo, kwargs)


def resync_pools(memo: Any, indexes: Mapping[str, Any]) -> None:
    """Safety net: a pass over every pool (writes only what differs).

    Called by each pass of the resync loop (handlers/resync.py); pokes during a
    pass make one more pass, not one each.
    """
    _runner.poke(memo, indexes)
