"""WorkloadClass handlers: reconcile on change, on start, and on a resync timer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from ballast.api.wellknown import GROUP, VERSION
from ballast.controller import workloadclass as logic
from ballast.controller.builders import priority_class_name
from ballast.controller.events import post
from ballast.controller.settings import retry_delay

WLC = (GROUP, VERSION, "workloadclasses")


@kopf.index(*WLC)
async def workloadclass_index(
    name: str,
    uid: str,
    spec: Mapping[str, Any],
    meta: Mapping[str, Any],
    status: Mapping[str, Any],
    **_: Any,
) -> dict[str, Any]:
    """name → what drift repair needs to rebuild the PriorityClass without a GET.

    ``conditions`` are the types the class's status has, so that a handler
    can tell without a GET that there is no condition of its own to remove.
    """
    types = tuple(
        str(c.get("type")) for c in (status.get("conditions") or ()) if isinstance(c, Mapping)
    )
    return {
        name: {
            "uid": uid,
            "spec": dict(spec),
            "deleting": bool(meta.get("deletionTimestamp")),
            "conditions": types,
        }
    }


def reconcile(
    name: str,
    uid: str,
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    meta: Mapping[str, Any],
    memo: Any,
    indexes: Mapping[str, Any],
) -> logic.Outcome:
    """The class's PriorityClass made right (from the indexes' view) and the status it earns."""
    priorityclass_index: Any = indexes["priorityclass_index"]
    batchwindow_index: Any = indexes["batchwindow_index"]
    window = spec.get("window")
    pcs: Any = priorityclass_index.get(priority_class_name(name), [])
    return logic.reconcile(
        memo.kube,
        name=name,
        uid=uid,
        generation=meta.get("generation"),
        spec=spec,
        old_status=status,
        actual_pc=next(iter(pcs), None),
        window_exists=None if not window else window in batchwindow_index,
        now=memo.clock.now(),
    )


def run(
    body: kopf.Body,
    name: str,
    uid: str,
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    meta: Mapping[str, Any],
    patch: kopf.Patch,
    memo: Any,
    indexes: Mapping[str, Any],
) -> None:
    """Reconcile, post events, write status; raise TemporaryError (backoff) when it failed."""
    outcome = reconcile(name, uid, spec, status, meta, memo, indexes)
    for type_, reason, message in outcome.events:
        post(body, type_, reason, message)
    if dict(status) | outcome.status != dict(status):
        # kopf applies the patch even when the handler raises below, so a
        # failure is on the object (Ready=False) while the retry waits.
        patch.status.update(outcome.status)
    if outcome.retry is not None:
        raise kopf.TemporaryError(outcome.retry, delay=retry_delay(indexes.get("retry", 0)))


@kopf.on.resume(*WLC)
@kopf.on.create(*WLC)
@kopf.on.update(*WLC)
def workloadclass_reconcile(
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
    """Create/replace the PriorityClass and report status."""
    run(body, name, uid, spec, status, meta, patch, memo, kwargs)


def ready_lost(status: Mapping[str, Any], meta: Mapping[str, Any]) -> bool:
    """The class was reconciled for its generation, yet its Ready condition is gone.

    Several writers share ``status.conditions`` (this reconcile, the SLO reader,
    the scaling sync); a merge patch replaces the whole list, so a writer that
    computed from an older copy can drop another's condition. Then write it again.
    """
    if meta.get("deletionTimestamp") or status.get("observedGeneration") is None:
        return False
    if status.get("observedGeneration") != meta.get("generation"):
        return False  # a change is being reconciled: the change handler writes Ready
    return not any(c.get("type") == "Ready" for c in status.get("conditions") or ())


def _ready_lost(status: kopf.Status, meta: kopf.Meta, **_: Any) -> bool:
    return ready_lost(status, meta)


@kopf.on.event(*WLC, when=_ready_lost)
def workloadclass_ready_restore(
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
    """Another writer dropped Ready: reconcile again, which writes it back."""
    run(body, name, uid, spec, status, meta, patch, memo, kwargs)
