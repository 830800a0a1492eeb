"""Drift repair: a Ballast PriorityClass edited or deleted by someone else is restored."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from ballast.api.wellknown import LABEL_OWNER
from ballast.controller import workloadclass as logic
from ballast.controller.builders import PRIORITY_CLASS_PREFIX
from ballast.controller.events import post
from ballast.kube.raw import WORKLOADCLASSES

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
    wlc = memo.kube.get(WORKLOADCLASSES.path(class_name))
    if wlc is None or wlc["metadata"]["uid"] != entry["uid"]:
        return
    outcome = logic.reconcile(
        memo.kube,
        name=class_name,
        uid=entry["uid"],
        generation=wlc["metadata"].get("generation"),
        spec=wlc.get("spec", {}),
        old_status=wlc.get("status"),
        actual_pc=actual,
        window_exists=None,
        now=memo.clock.now(),
    )
    for type_, reason, message in outcome.events:
        post(wlc, type_, reason, message)
