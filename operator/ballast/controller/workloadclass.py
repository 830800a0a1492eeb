"""Reconciling a WorkloadClass: plan (pure) and carry out (API calls)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ballast.api.v1alpha1.common import format_validation_error
from ballast.api.v1alpha1.workloadclass import WorkloadClassSpec
from ballast.api.wellknown import FIELD_MANAGER, LABEL_MANAGED_BY, MANAGED_BY
from ballast.controller.builders import (
    PRIORITY_CLASS_IMMUTABLE,
    build_priority_class,
    priority_class_drift,
    priority_class_name,
)
from ballast.controller.conditions import Cond, kstatus_conditions, merge_conditions, ready_from
from ballast.kube.raw import BATCHWINDOWS, PRIORITY_CLASSES, WORKLOADCLASSES, Kube, KubeError
from ballast.logs import kv

log = logging.getLogger(__name__)


# Attempts of one reconciliation at making the PriorityClass right (a stale
# view, a lost race with drift repair, an immutable field discovered by a 422)
# before it gives up, reports Ready=False and lets kopf retry with backoff.
MAX_SYNC_ATTEMPTS = 4


@dataclass
class Outcome:
    """What a reconciliation did: the status to write, the events to post, whether to retry.

    ``retry`` is set (to why) when the produced objects could not be made
    right; the status then says ``Ready=False`` and the caller retries with
    backoff.
    """

    status: dict[str, Any]
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    retry: str | None = None


class SyncFailed(Exception):
    """The PriorityClass could not be brought to the desired state; ``reason`` names why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def reconcile(
    kube: Kube,
    *,
    name: str,
    uid: str,
    generation: int | None,
    spec: Mapping[str, Any],
    old_status: Mapping[str, Any] | None,
    actual_pc: dict[str, Any] | None,
    window_exists: bool | None,
    now: dt.datetime,
) -> Outcome:
    """Bring the class's PriorityClass in line and compute its status.

    ``actual_pc`` is the PriorityClass as last seen (from the operator's
    index; None when absent); ``window_exists`` is None when the class names
    no window. Never raises: API trouble becomes ``Ready=False`` with a reason
    and a Warning event, and ``Outcome.retry`` asks the caller to try again.
    ``Ready=True`` is reported only when the PriorityClass the API server
    returned (from the write, or as observed when nothing needed writing)
    equals the desired one.
    """
    old_conditions = (old_status or {}).get("conditions")
    events: list[tuple[str, str, str]] = []
    try:
        parsed = WorkloadClassSpec.model_validate(dict(spec))
    except ValidationError as exc:
        message = format_validation_error(exc)
        cond = Cond("SpecValid", False, "InvalidSpec", message)
        ready = ready_from([cond])
        conditions = merge_conditions(
            old_conditions,
            [cond, ready, *kstatus_conditions(ready)],
            generation=generation,
            now=now,
        )
        return Outcome(
            {"observedGeneration": generation, "conditions": conditions},
            [("Warning", "InvalidSpec", message)],
        )

    desired = build_priority_class(name, uid, parsed)
    retry: str | None = None
    try:
        pc_cond = _sync_priority_class(kube, name, desired, actual_pc, events)
    except SyncFailed as exc:
        pc_cond = Cond("PriorityClassReady", False, exc.reason, str(exc), progressing=True)
        retry = str(exc)
    except KubeError as exc:
        rejected = 400 <= exc.status < 500 and not exc.conflict
        pc_cond = Cond(
            "PriorityClassReady",
            False,
            "PriorityClassRejected" if rejected else "PriorityClassSyncFailed",
            f"PriorityClass {desired['metadata']['name']}: {exc}"[:1024],
            # A rejection (an admission policy) needs a person; a 5xx passes.
            progressing=not rejected,
        )
        retry = str(exc)
    except Exception as exc:  # transport errors, timeouts: report, never raise
        pc_cond = Cond(
            "PriorityClassReady",
            False,
            "PriorityClassSyncFailed",
            f"PriorityClass {desired['metadata']['name']}: {type(exc).__name__}: {exc}"[:1024],
            progressing=True,
        )
        retry = str(exc) or type(exc).__name__
    parts = [Cond("SpecValid", True, "Valid", "spec passed validation"), pc_cond]
    if window_exists is not None:
        parts.append(
            Cond("WindowResolved", True, "WindowFound", f"BatchWindow {parsed.window} exists")
            if window_exists
            else Cond(
                "WindowResolved",
                False,
                "WindowNotFound",
                f"BatchWindow {parsed.window!r} does not exist; pods of this class wait "
                "until it is created",
                # GitOps applies a class and its window together, in any order.
                progressing=True,
            )
        )
    ready = ready_from(parts)
    conditions = merge_conditions(
        old_conditions, [*parts, ready, *kstatus_conditions(ready)], generation=generation, now=now
    )
    if pc_cond.status is False and _changed(old_conditions, pc_cond, generation):
        events.append(("Warning", pc_cond.reason, pc_cond.message))
    status = {
        "observedGeneration": generation,
        "priorityClassName": desired["metadata"]["name"],
        "priorityValue": desired["value"],
        "conditions": conditions,
    }
    if retry is not None:
        log.warning(
            "priorityclass sync failed", extra=kv(workloadclass=name, reason=pc_cond.reason)
        )
    return Outcome(status, events, retry)


def _changed(old_conditions: Any, cond: Cond, generation: int | None) -> bool:
    """Whether ``cond`` is news compared to the same-typed condition in ``old_conditions``."""
    for c in old_conditions or ():
        if isinstance(c, Mapping) and c.get("type") == cond.type:
            return (
                c.get("status") != cond.status_text
                or c.get("reason") != cond.reason
                or c.get("observedGeneration") != generation
            )
    return True


def _sync_priority_class(
    kube: Kube,
    class_name: str,
    desired: dict[str, Any],
    actual: dict[str, Any] | None,
    events: list[tuple[str, str, str]],
) -> Cond:
    """Make the live PriorityClass equal ``desired``; a bounded loop, never recursion.

    Each attempt decides on the freshest view it has: an apply for mutable
    drift, a uid-guarded delete then create for a change of an immutable
    field (``value``, ``preemptionPolicy``, or whatever the server calls
    immutable in a 422). The object the server returns must equal
    ``desired``; otherwise the next attempt starts from it. Raises
    ``SyncFailed`` after ``MAX_SYNC_ATTEMPTS`` and ``KubeError`` for API
    errors it cannot work around.
    """
    pc_name = desired["metadata"]["name"]
    path = PRIORITY_CLASSES.path(pc_name)
    force_replace = False
    last = "no attempt made"
    for _ in range(MAX_SYNC_ATTEMPTS):
        if actual is not None and not _ours(actual, desired):
            return Cond(
                "PriorityClassReady",
                False,
                "NameConflict",
                f"PriorityClass {pc_name} exists and is not managed by Ballast; rename the "
                "class or delete that PriorityClass",
            )
        drift = priority_class_drift(desired, actual)
        if drift is None:
            return _pc_ready(desired)
        replace = actual is not None and (force_replace or drift in PRIORITY_CLASS_IMMUTABLE)
        try:
            if replace:
                assert actual is not None
                # Delete only the incarnation we saw (a 409 means someone
                # replaced it meanwhile: look again), then create at once;
                # existing pods keep their resolved priority.
                kube.delete(path, uid=actual["metadata"].get("uid"))
            written = kube.apply(path, desired, field_manager=FIELD_MANAGER)
        except KubeError as exc:
            if exc.status == 422 and _immutable(exc.message):
                force_replace = True  # the live object differs in a field we cannot patch
            elif not exc.conflict:
                raise
            last = str(exc)
            actual = kube.get(path)
            continue
        still = priority_class_drift(desired, written)
        if still is not None:
            last = f"the server returned it with {still} different from the desired state"
            actual = written
            continue
        events.append(_sync_event(pc_name, drift, replace, actual, desired))
        log.info(
            "priorityclass synced",
            extra=kv(workloadclass=class_name, drift=drift, replaced=replace),
        )
        return _pc_ready(desired)
    raise SyncFailed(
        "PriorityClassNotConverged",
        f"PriorityClass {pc_name} did not reach the desired state after "
        f"{MAX_SYNC_ATTEMPTS} attempts (last: {last}); retrying with backoff",
    )


def _immutable(message: str) -> bool:
    """Whether a 422 says a field cannot change (the wordings the API server uses)."""
    return "immutable" in message or "may not be changed" in message


def _sync_event(
    pc_name: str,
    drift: str,
    replaced: bool,
    actual: Mapping[str, Any] | None,
    desired: Mapping[str, Any],
) -> tuple[str, str, str]:
    if replaced and actual is not None:
        changes = ", ".join(
            f"{k} {actual.get(k)} -> {desired[k]}"
            for k in PRIORITY_CLASS_IMMUTABLE
            if actual.get(k) != desired[k]
        )
        return (
            "Normal",
            "PriorityClassReplaced",
            f"PriorityClass {pc_name} replaced ({changes or drift}; "
            "immutable fields change only by delete and create)",
        )
    if drift == "missing":
        return (
            "Normal",
            "PriorityClassCreated",
            f"PriorityClass {pc_name} created (value {desired['value']})",
        )
    return (
        "Normal",
        "PriorityClassRestored",
        f"PriorityClass {pc_name} restored to the desired state (value {desired['value']})",
    )


def _ours(actual: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    meta = actual.get("metadata") or {}
    if (meta.get("labels") or {}).get(LABEL_MANAGED_BY) == MANAGED_BY:
        return True
    uid = desired["metadata"]["ownerReferences"][0]["uid"]
    return any(o.get("uid") == uid for o in meta.get("ownerReferences") or [])


def _pc_ready(desired: Mapping[str, Any]) -> Cond:
    return Cond(
        "PriorityClassReady",
        True,
        "Applied",
        f"PriorityClass {desired['metadata']['name']} has value {desired['value']}",
    )


def reconcile_from_api(
    kube: Kube,
    name: str,
    *,
    actual_pc: dict[str, Any] | None,
    now: dt.datetime,
    window_exists: bool | None = None,
) -> Outcome | None:
    """Reconcile class ``name`` outside its own kopf handler (drift, window events).

    Reads the class, reconciles, posts events and writes status when it
    changed. ``window_exists`` None means "look it up". Returns None when the
    class is gone or being deleted.
    """
    from ballast.controller.events import post

    wlc = kube.get(WORKLOADCLASSES.path(name))
    if wlc is None or wlc["metadata"].get("deletionTimestamp"):
        return None
    spec = wlc.get("spec") or {}
    window = spec.get("window")
    if window and window_exists is None:
        window_exists = kube.get(BATCHWINDOWS.path(window)) is not None
    outcome = reconcile(
        kube,
        name=name,
        uid=wlc["metadata"]["uid"],
        generation=wlc["metadata"].get("generation"),
        spec=spec,
        old_status=wlc.get("status"),
        actual_pc=actual_pc,
        window_exists=window_exists if window else None,
        now=now,
    )
    for type_, reason, message in outcome.events:
        post(wlc, type_, reason, message)
    old = wlc.get("status") or {}
    if old | outcome.status != old:
        kube.patch(WORKLOADCLASSES.path(name, sub="status"), {"status": outcome.status})
    return outcome


__all__ = [
    "Outcome",
    "SyncFailed",
    "format_validation_error",
    "priority_class_name",
    "reconcile",
    "reconcile_from_api",
]
