"""GPUQuota handlers: validate on change and re-check conflicts on a timer."""

from __future__ import annotations

from typing import Any

import kopf

from ballast.api.wellknown import GROUP, VERSION
from ballast.controller import gpuquota as logic
from ballast.controller.events import post
from ballast.controller.settings import RESYNC_SECONDS

GQ = (GROUP, VERSION, "gpuquotas")


@kopf.index(*GQ)
def gpuquota_index(name: str, spec: kopf.Spec, meta: kopf.Meta, **_: Any) -> dict[str, Any]:
    """name → the quota as stored (metadata that decides ownership, and spec)."""
    return {
        name: {
            "metadata": {"name": name, "creationTimestamp": meta.get("creationTimestamp")},
            "spec": dict(spec),
        }
    }


def _run(
    body: kopf.Body,
    name: str,
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    patch: kopf.Patch,
    memo: Any,
    gpuquota_index: kopf.Index[str, Any],
) -> None:
    quotas = {n: e for n, entries in gpuquota_index.items() for e in entries}
    # This object as the handler sees it wins over a possibly older index entry.
    quotas[name] = {
        "metadata": {"name": name, "creationTimestamp": meta.get("creationTimestamp")},
        "spec": dict(spec),
    }
    new_status, events = logic.quota_status(
        name, spec, status, meta.get("generation"), quotas, memo.clock.now()
    )
    for type_, reason, message in events:
        post(body, type_, reason, message)
    if dict(status) | new_status != dict(status):
        patch.status.update(new_status)


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
    _run(body, name, spec, status, meta, patch, memo, kwargs["gpuquota_index"])


@kopf.timer(*GQ, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
def gpuquota_resync(
    body: kopf.Body,
    name: str,
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    patch: kopf.Patch,
    memo: Any,
    **kwargs: Any,
) -> None:
    """Re-check conflicts that appear or vanish when other quotas change."""
    _run(body, name, spec, status, meta, patch, memo, kwargs["gpuquota_index"])
