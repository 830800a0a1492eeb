"""GPUQuota handlers: validate on change; one loop re-checks conflicts between quotas.

The loop is one task for the whole operator, not a kopf timer per quota
(``loops.py`` says why): every ``BALLAST_RESYNC_SECONDS`` it lists the
quotas (in pages) and re-runs ``controller/gpuquota.py`` for each against
all of them, since a conflict appears or vanishes when *another* quota
changes. Status is written only where it differs, fenced on the
``resourceVersion`` it was computed from; events are posted once it is
written. Under peering, a replica paused by a peer of higher priority skips
the pass.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from ballast.api.wellknown import GROUP, VERSION
from ballast.controller import gpuquota as logic
from ballast.controller.events import post
from ballast.controller.handlers import loops
from ballast.controller.resync import status_patch
from ballast.controller.settings import RESYNC_SECONDS
from ballast.kube.raw import GPUQUOTAS, KubeError
from ballast.logs import kv

GQ = (GROUP, VERSION, "gpuquotas")
log = logging.getLogger(__name__)


def _stored(name: str, meta: Mapping[str, Any], spec: Mapping[str, Any]) -> dict[str, Any]:
    """A quota as ``logic.quota_status`` compares it: what decides ownership, and the spec."""
    return {
        "metadata": {"name": name, "creationTimestamp": meta.get("creationTimestamp")},
        "spec": dict(spec),
    }


@kopf.index(*GQ)
async def gpuquota_index(name: str, spec: kopf.Spec, meta: kopf.Meta, **_: Any) -> dict[str, Any]:
    """name → the quota as stored (metadata that decides ownership, and spec)."""
    return {name: _stored(name, meta, spec)}


@kopf.on.resume(*GQ)
@kopf.on.create(*GQ)
@kopf.on.update(*GQ)
def gpuquota_reconcile(
    body: kopf.Body,
    name: str,
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    patch: kopf.Patch,
    memo: Any,
    **kwargs: Any,
) -> None:
    """Validate and report."""
    index: kopf.Index[str, Any] = kwargs["gpuquota_index"]
    quotas = {n: e for n, entries in index.items() for e in entries}
    # This object as the handler sees it wins over a possibly older index entry.
    quotas[name] = _stored(name, meta, spec)
    new_status, events = logic.quota_status(
        name, spec, status, meta.get("generation"), quotas, memo.clock.now()
    )
    for type_, reason, message in events:
        post(body, type_, reason, message)
    if dict(status) | new_status != dict(status):
        patch.status.update(new_status)


async def resync_quotas(memo: Any) -> int:
    """Re-check every quota against all (unless a peer pauses this replica); returns writes."""
    if await asyncio.to_thread(loops.paused, memo):
        return 0
    # Ownership is decided over every quota: the whole list first (quotas are few).
    items = [obj async for page in loops.listed(memo.kube, GPUQUOTAS) for obj in page]
    quotas = {
        str(obj["metadata"]["name"]): _stored(
            str(obj["metadata"]["name"]), obj["metadata"], obj.get("spec") or {}
        )
        for obj in items
    }
    written = 0
    for obj in items:
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            continue
        name = str(meta["name"])
        new_status, events = logic.quota_status(
            name,
            obj.get("spec") or {},
            obj.get("status") or {},
            meta.get("generation"),
            quotas,
            memo.clock.now(),
        )
        patch = status_patch(obj, new_status)
        if patch is None:
            continue
        try:
            await asyncio.to_thread(memo.kube.patch, GPUQUOTAS.path(name, sub="status"), patch)
        except KubeError as exc:
            if not (exc.conflict or exc.not_found):  # changed or gone: its events handle it
                log.warning("gpuquota resync failed", extra=kv(gpuquota=name, error=exc))
            continue
        written += 1
        for type_, reason, message in events:
            post(obj, type_, reason, message)
    return written


@kopf.on.event(*GQ)
async def gpuquota_resync_start(memo: kopf.Memo, **_: Any) -> None:
    """Start the quota resync loop once, from kopf's handler context (its event poster)."""
    delays = loops.jittered(RESYNC_SECONDS)
    loops.start(
        "gpuquota-resync",
        lambda: loops.repeat("gpuquota-resync", delays, lambda: resync_quotas(memo)),
    )
