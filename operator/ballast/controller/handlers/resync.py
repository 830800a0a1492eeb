"""One safety-net resync per WorkloadClass for everything made from it.

Every class has one kopf timer, which re-checks the PriorityClass and the
window reference, the class's PodDisruptionBudgets and ScaledObjects, and
pokes the node-pool pass. kopf runs a task per object and timer, so one
timer instead of one per concern keeps the operator's memory and wake-ups
per class flat at thousands of classes. Idle classes cost no API call for
the PriorityClass unless something differs.
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from ballast.controller.handlers import disruption, nodepools
from ballast.controller.handlers import workloadclass as wlc
from ballast.controller.scaling_sync import scaling_enabled
from ballast.controller.settings import RESYNC_SECONDS


@kopf.timer(*wlc.WLC, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
async def workloadclass_resync(
    body: kopf.Body,
    name: str,
    uid: str,
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    patch: kopf.Patch,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    """Safety net: repair what events missed; every part runs even when another fails."""
    failed: list[kopf.TemporaryError] = []
    parts: list[Any] = [
        lambda: asyncio.to_thread(
            wlc.run, body, name, uid, spec, status, meta, patch, memo, kwargs
        ),
        lambda: disruption.reconcile_or_retry(memo, kwargs, name),
    ]
    if scaling_enabled():  # the scaling handlers exist only then
        from ballast.controller.handlers import scaling

        if spec.get("scaling") or scaling.synced(name):
            parts.append(lambda: scaling.reconcile_or_retry(memo, kwargs, name))
    for part in parts:
        try:
            await part()
        except kopf.TemporaryError as exc:
            failed.append(exc)
    nodepools.resync_pools(memo, kwargs)
    if failed:
        raise kopf.TemporaryError(
            "; ".join(str(e) for e in failed)[:1024],
            delay=min(e.delay or 1.0 for e in failed),
        )
