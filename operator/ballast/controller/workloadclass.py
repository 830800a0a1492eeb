"""Reconciling a WorkloadClass: plan (pure) and carry out (API calls)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ballast.api.v1alpha1.workloadclass import WorkloadClassSpec
from ballast.api.wellknown import FIELD_MANAGER, LABEL_MANAGED_BY, MANAGED_BY
from ballast.controller.builders import (
    build_priority_class,
    priority_class_drift,
    priority_class_name,
)
from ballast.controller.conditions import Cond, merge_conditions, ready_from
from ballast.kube.raw import BATCHWINDOWS, PRIORITY_CLASSES, WORKLOADCLASSES, Kube, KubeError
from ballast.logs import kv

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What a reconciliation did: the status to write and the events to post."""

    status: dict[str, Any]
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem, with the field path in camelCase as the user wrote it."""
    parts = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"])
        parts.append(f"spec.{path}: {err['msg']}")
    return "; ".join(parts)


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
    no window. Raises ``KubeError`` only for transient API trouble (the
    handler retries); everything the user can fix ends up in conditions.
    """
    old_conditions = (old_status or {}).get("conditions")
    events: list[tuple[str, str, str]] = []
    try:
        parsed = WorkloadClassSpec.model_validate(dict(spec))
    except ValidationError as exc:
        message = format_validation_error(exc)
        cond = Cond("SpecValid", False, "InvalidSpec", message)
        conditions = merge_conditions(
            old_conditions, [cond, ready_from([cond])], generation=generation, now=now
        )
        return Outcome(
            {"observedGeneration": generation, "conditions": conditions},
            [("Warning", "InvalidSpec", message)],
        )

    desired = build_priority_class(name, uid, parsed)
    pc_cond = _sync_priority_class(kube, name, desired, actual_pc, events)
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
            )
        )
    conditions = merge_conditions(
        old_conditions, [*parts, ready_from(parts)], generation=generation, now=now
    )
    status = {
        "observedGeneration": generation,
        "priorityClassName": desired["metadata"]["name"],
        "priorityValue": desired["value"],
        "conditions": conditions,
    }
    return Outcome(status, events)


def _sync_priority_class(
    kube: Kube,
    class_name: str,
    desired: dict[str, Any],
    actual: dict[str, Any] | None,
    events: list[tuple[str, str, str]],
) -> Cond:
    pc_name = desired["metadata"]["name"]
    path = PRIORITY_CLASSES.path(pc_name)
    if actual is not None and not _ours(actual, desired):
        return Cond(
            "PriorityClassReady",
            False,
            "NameConflict",
            f"PriorityClass {pc_name} exists and is not managed by Ballast; rename the class "
            "or delete that PriorityClass",
        )
    drift = priority_class_drift(desired, actual)
    if drift is None:
        return _pc_ready(desired)
    if drift == "value" and actual is not None:
        # Value is immutable: replace. Delete only the incarnation we saw and
        # create the new one at once; existing pods keep their resolved
        # priority, new pods see the class missing for one round trip at most.
        kube.delete(path, uid=actual["metadata"].get("uid"))
        _create_or_accept(kube, desired)
        events.append(
            (
                "Normal",
                "PriorityClassReplaced",
                f"PriorityClass {pc_name} value {actual.get('value')} -> {desired['value']} "
                "(value is immutable, so it was replaced)",
            )
        )
        log.info(
            "priorityclass replaced", extra=kv(workloadclass=class_name, value=desired["value"])
        )
        return _pc_ready(desired)
    try:
        kube.apply(path, desired, field_manager=FIELD_MANAGER)
    except KubeError as exc:
        if exc.status == 422 and "immutable" in exc.message:
            # Our view was stale and the live object has another value.
            live = kube.get(path)
            return _sync_priority_class(kube, class_name, desired, live, events)
        raise
    reason = "PriorityClassCreated" if drift == "missing" else "PriorityClassRestored"
    verb = "created" if drift == "missing" else "restored to the desired state"
    events.append(("Normal", reason, f"PriorityClass {pc_name} {verb} (value {desired['value']})"))
    log.info("priorityclass applied", extra=kv(workloadclass=class_name, drift=drift))
    return _pc_ready(desired)


def _create_or_accept(kube: Kube, desired: dict[str, Any]) -> None:
    try:
        kube.create(PRIORITY_CLASSES.path(), desired)
    except KubeError as exc:
        if not exc.conflict:
            raise
        # Someone (our own drift handler) created it first; accept it if right.
        live = kube.get(PRIORITY_CLASSES.path(desired["metadata"]["name"]))
        if live is None or live.get("value") != desired["value"]:
            raise
    kube.apply(
        PRIORITY_CLASSES.path(desired["metadata"]["name"]), desired, field_manager=FIELD_MANAGER
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


__all__ = ["Outcome", "priority_class_name", "reconcile", "reconcile_from_api"]
