"""Drift repair: a Ballast PriorityClass edited or deleted by someone else is restored."""

from __future__ import annotations

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
    priority_class_drift,
)
from ballast.kube.raw import PRIORITY_CLASSES

PC = ("scheduling.k8s.io", "v1", "priorityclasses")


def _is_candidate(name: str, **_: Any) -> bool:
    return name.startswith(PRIORITY_CLASS_PREFIX)


@kopf.index(*PC, when=_is_candidate)
def priorityclass_index(name: str, body: kopf.Body, **_: Any) -> dict[str, Any]:
    """name → the live object (only ``ballast-*`` names; clusters have few PriorityClasses)."""
    return {
        name: {
            "value": body.get("value"),
            "metadata": dict(body.get("metadata", {})),
            **{k: body.get(k) for k in ("preemptionPolicy", "description", "globalDefault")},
        }
    }


@kopf.on.event(*PC, when=_is_candidate)
def priorityclass_drift(
    type: str,
    name: str,
    body: kopf.Body,
    memo: Any,
    **kwargs: Any,
) -> None:
    """Re-apply the owner's desired PriorityClass when the live one differs or vanished."""
    owner_label = (body.get("metadata", {}).get("labels") or {}).get(LABEL_OWNER, "")
    class_name = name[len(PRIORITY_CLASS_PREFIX) :]
    if owner_label and owner_label != f"workloadclass.{class_name}":
        return
    workloadclass_index: kopf.Index[str, Any] = kwargs["workloadclass_index"]
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
    # The event may be stale (our own replace races with it): decide on the live object.
    live = memo.kube.get(PRIORITY_CLASSES.path(name))
    logic.reconcile_from_api(memo.kube, class_name, actual_pc=live, now=memo.clock.now())
