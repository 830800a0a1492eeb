"""Drift repair: a Ballast PriorityClass edited or deleted by someone else is restored."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import kopf
from pydantic import ValidationError

from ballast.api.v1alpha1.workloadclass import WorkloadClassSpec
from ballast.api.wellknown import LABEL_OWNER
from ballast.controller import workloadclass as logic
from ballast.controller.builders import (
    PRIORITY_CLASS_PREFIX,
    build_priority_class,
    owner_label_value,
    priority_class_drift,
    priority_class_name,
)
from ballast.controller.settings import retry_delay
from ballast.kube.raw import PRIORITY_CLASSES
from ballast.logs import kv

PC = ("scheduling.k8s.io", "v1", "priorityclasses")
# A failed repair is tried again this many times with exponential backoff
# (1, 2, 4, ... s) before the class's resync timer (with kopf's backoff) is
# left to it; an event handler is not retried by kopf on its own.
DRIFT_REPAIR_ATTEMPTS = 6
log = logging.getLogger(__name__)


def _is_candidate(name: str, **_: Any) -> bool:
    return name.startswith(PRIORITY_CLASS_PREFIX)


# What drift checks and replacement read of a live PriorityClass's metadata;
# the rest (managedFields above all) is not kept for every class.
_PC_META = ("name", "uid", "labels", "ownerReferences")


@kopf.index(*PC, when=_is_candidate)
async def priorityclass_index(name: str, body: kopf.Body, **_: Any) -> dict[str, Any]:
    """name → the fields of the live object that reconciling reads (only ``ballast-*`` names)."""
    meta = body.get("metadata", {})
    return {
        name: {
            "value": body.get("value"),
            "metadata": {k: meta[k] for k in _PC_META if k in meta},
            # Absent stays absent (the server omits ``globalDefault: false``).
            **{
                k: body[k]
                for k in ("preemptionPolicy", "description", "globalDefault")
                if k in body
            },
        }
    }


def owning_class(pc_name: str, metadata: Mapping[str, Any], class_names: Any) -> str | None:
    """The WorkloadClass whose PriorityClass is ``pc_name``, or None.

    The owner reference names it; without one (stripped by hand), the class
    whose derived name is ``pc_name`` (names may be hashed, so they are
    derived forwards, never parsed backwards). A ``ballast.dev/owner`` label
    naming another owner means the object is not this class's.
    """
    for ref in metadata.get("ownerReferences") or ():
        if (
            isinstance(ref, Mapping)
            and ref.get("kind") == "WorkloadClass"
            and priority_class_name(str(ref.get("name"))) == pc_name
        ):
            candidate: str | None = str(ref["name"])
            break
    else:
        candidate = next((c for c in class_names if priority_class_name(c) == pc_name), None)
    if candidate is None:
        return None
    owner_label = (metadata.get("labels") or {}).get(LABEL_OWNER, "")
    if owner_label and owner_label != owner_label_value("WorkloadClass", candidate):
        return None
    return candidate


@kopf.on.event(*PC, when=_is_candidate)
async def priorityclass_drift(
    type: str,
    name: str,
    body: kopf.Body,
    memo: Any,
    **kwargs: Any,
) -> None:
    """Re-apply the owner's desired PriorityClass when the live one differs or vanished.

    A repair that fails (API error, lost race) is retried here with backoff;
    the class shows ``Ready=False`` meanwhile.
    """
    workloadclass_index: kopf.Index[str, Any] = kwargs["workloadclass_index"]
    # The index itself, not a copy of its names: only a PriorityClass without
    # an owner reference makes owning_class walk them.
    class_name = owning_class(name, body.get("metadata", {}), workloadclass_index)
    if class_name is None:
        return
    entries: Any = workloadclass_index.get(class_name, [])
    entry: Mapping[str, Any] | None = next(iter(entries), None)
    if entry is None or entry["deleting"]:
        return  # no owner (or it is going away): nothing to restore
    actual = None if type == "DELETED" else dict(body)
    try:
        desired = build_priority_class(
            class_name, entry["uid"], WorkloadClassSpec.model_validate(entry["spec"])
        )
    except ValidationError:
        return  # the class handler reports an invalid spec
    if priority_class_drift(desired, actual) is None:
        return  # our own write echoing back, or an edit that changed nothing we own
    await repair_with_backoff(memo, class_name)


async def repair_with_backoff(memo: Any, class_name: str, **reconcile_kw: Any) -> None:
    """Reconcile ``class_name`` from the live objects until it succeeds (bounded, backoff)."""

    def once() -> bool:
        # The event may be stale (our own replace races with it): decide on the live object.
        live = memo.kube.get(PRIORITY_CLASSES.path(priority_class_name(class_name)))
        outcome = logic.reconcile_from_api(
            memo.kube, class_name, actual_pc=live, now=memo.clock.now(), **reconcile_kw
        )
        return outcome is None or outcome.retry is None

    for attempt in range(DRIFT_REPAIR_ATTEMPTS):
        try:
            if await asyncio.to_thread(once):
                return
            problem = "the PriorityClass is not yet right"
        except Exception as exc:  # API trouble while reading or writing status
            problem = f"{type(exc).__name__}: {exc}"
        if attempt + 1 == DRIFT_REPAIR_ATTEMPTS:
            break
        delay = retry_delay(attempt)
        log.warning(
            "drift repair failed; retrying",
            extra=kv(workloadclass=class_name, attempt=attempt + 1, delay=delay, error=problem),
        )
        await memo.clock.sleep(delay)
    log.warning("drift repair left to the resync timer", extra=kv(workloadclass=class_name))
