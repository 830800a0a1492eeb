"""One safety-net resync loop for every WorkloadClass and what is made from it.

Every ``BALLAST_RESYNC_SECONDS`` the loop lists the classes (in pages) and,
class by class, re-checks the PriorityClass and the window reference
(writing status only where it differs), the class's PodDisruptionBudgets and
ScaledObjects, then pokes the node-pool pass. Drift and references are
event-driven; this only repairs what events missed.

It is one task for the whole operator, not a kopf timer per class: a timer
costs kopf a task and a held copy of the object per class, and makes kopf
put its finalizer on every class, so that deleting a class would wait for
the operator. Under peering, a replica paused by a peer of higher priority
skips the pass (the rule kopf applies to its handlers, read from the peering
object). The loop is started from the first class event, inside kopf's
handler context, so that the events it posts go through kopf's poster.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from typing import Any

import kopf

from ballast.controller import resync as logic
from ballast.controller.events import post
from ballast.controller.handlers import disruption, nodepools
from ballast.controller.handlers import workloadclass as wlc
from ballast.controller.scaling_sync import scaling_enabled
from ballast.controller.settings import CLUSTER_PEERINGS, RESYNC_SECONDS
from ballast.kube.raw import TRANSPORT_ERRORS, WORKLOADCLASSES, Kube, KubeError
from ballast.logs import kv

log = logging.getLogger(__name__)
_ERRORS: tuple[type[Exception], ...] = (KubeError, *TRANSPORT_ERRORS)
PAGE = 500  # classes per LIST page: memory stays flat at thousands of classes
_state: dict[str, asyncio.Task[None]] = {}


def _paused(memo: Any) -> bool:
    settings = getattr(memo, "settings", None)
    if settings is None or settings.peering.standalone:
        return False
    peering = memo.kube.get(CLUSTER_PEERINGS.path(settings.peering.name))
    return logic.peering_paused(peering, settings.peering.priority, memo.clock.now())


def _pages(kube: Kube) -> Any:
    token: str | None = None
    while True:
        query: dict[str, Any] = {"limit": PAGE}
        if token:
            query["continue"] = token
        page = kube.list(WORKLOADCLASSES.path(), **query)
        yield page.get("items") or []
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return


async def resync_class(memo: Any, indexes: Mapping[str, Any], obj: Mapping[str, Any]) -> list[str]:
    """Re-check one class and what is made from it; returns what failed (every part runs)."""
    meta = obj["metadata"]
    name, uid = str(meta["name"]), str(meta["uid"])
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    failed: list[str] = []
    outcome = await asyncio.to_thread(wlc.reconcile, name, uid, spec, status, meta, memo, indexes)
    for type_, reason, message in outcome.events:
        post(obj, type_, reason, message)
    patch = logic.status_patch(obj, outcome.status)
    if patch is not None:
        try:
            await asyncio.to_thread(
                memo.kube.patch, WORKLOADCLASSES.path(name, sub="status"), patch
            )
        except KubeError as exc:
            if not (exc.conflict or exc.not_found):  # changed or gone: its events handle it
                failed.append(f"status: {exc}")
    if outcome.retry is not None:
        failed.append(outcome.retry)
    parts = [disruption.reconcile_or_retry]
    if scaling_enabled():  # the scaling handlers exist only then
        from ballast.controller.handlers import scaling

        if spec.get("scaling") or scaling.synced(name):
            parts.append(scaling.reconcile_or_retry)
    for part in parts:
        try:
            await part(memo, indexes, name)
        except kopf.TemporaryError as exc:
            failed.append(str(exc))
    return failed


async def resync_all(memo: Any, indexes: Mapping[str, Any]) -> int:
    """One pass over every class (unless a peer pauses this replica); returns classes seen."""
    if await asyncio.to_thread(_paused, memo):
        return 0
    seen = 0
    pages = _pages(memo.kube)
    while (items := await asyncio.to_thread(next, pages, None)) is not None:
        for obj in items:
            if obj["metadata"].get("deletionTimestamp"):
                continue
            seen += 1
            failed = await resync_class(memo, indexes, obj)
            if failed:
                log.warning(
                    "resync failed",
                    extra=kv(workloadclass=obj["metadata"]["name"], errors="; ".join(failed)[:512]),
                )
    nodepools.resync_pools(memo, indexes)
    return seen


async def _loop(memo: Any, indexes: Mapping[str, Any]) -> None:
    while True:
        # A little jitter, so that replicas and restarts do not pass in step.
        await asyncio.sleep(RESYNC_SECONDS * random.uniform(0.9, 1.1))
        try:
            await resync_all(memo, indexes)
        except _ERRORS as exc:
            log.warning("resync pass failed", extra=kv(error=exc))
        except Exception:
            log.exception("resync pass failed")


@kopf.on.event(*wlc.WLC)
async def workloadclass_resync_start(memo: kopf.Memo, **kwargs: Any) -> None:
    """Start the resync loop once, from kopf's handler context (its event poster)."""
    task = _state.get("task")
    if task is not None and not task.done():
        return
    # kopf's indexes are live mappings: the loop keeps them, not this event.
    indexes = {k: v for k, v in kwargs.items() if isinstance(v, kopf.Index)}
    _state["task"] = asyncio.create_task(_loop(memo, indexes), name="ballast-resync")


@kopf.on.cleanup()
async def stop_resync(**_: Any) -> None:
    """Stop the loop with the operator."""
    task = _state.pop("task", None)
    if task is not None:
        task.cancel()
