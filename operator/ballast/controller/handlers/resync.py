"""One safety-net resync loop for every WorkloadClass and what is made from it.

Every ``BALLAST_RESYNC_SECONDS`` the loop lists the classes (in pages) and,
class by class, re-checks the PriorityClass and the window reference
(writing status only where it differs), the class's PodDisruptionBudgets and
ScaledObjects, then pokes the node-pool pass. Drift and references are
event-driven; this only repairs what events missed.

It is one task for the whole operator, not a kopf timer per class (why:
``loops.py``, which it shares with the other loops). Under peering, a
replica paused by a peer of higher priority skips the pass (the rule kopf
applies to its handlers, read from the peering object).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from ballast.controller import resync as logic
from ballast.controller.events import post
from ballast.controller.handlers import disruption, loops, nodepools
from ballast.controller.handlers import workloadclass as wlc
from ballast.controller.scaling_sync import scaling_enabled
from ballast.controller.settings import RESYNC_SECONDS
from ballast.kube.raw import WORKLOADCLASSES, KubeError
from ballast.logs import kv

log = logging.getLogger(__name__)


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
    if await asyncio.to_thread(loops.paused, memo):
        return 0
    seen = 0
    async for items in loops.listed(memo.kube, WORKLOADCLASSES):
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


async def workloadclass_resync_start(memo: kopf.Memo, **kwargs: Any) -> None:
    """Start the resync loop once, from kopf's handler context (its event poster)."""
    # kopf's indexes are live mappings: the loop keeps them, not this event.
    indexes = loops.indexes_of(kwargs)
    delays = loops.jittered(RESYNC_SECONDS)
    loops.start("resync", lambda: loops.repeat("resync", delays, lambda: resync_all(memo, indexes)))
