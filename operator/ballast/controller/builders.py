"""Pure builders: a custom resource's spec → the Kubernetes objects it produces.

No I/O here; handlers call these and apply the result. Tests exercise them
directly without a cluster.
"""

from __future__ import annotations

from typing import Any

from ballast.api.v1alpha1.workloadclass import WorkloadClassSpec, priority_value
from ballast.api.wellknown import (
    API_VERSION,
    LABEL_MANAGED_BY,
    LABEL_OWNER,
    MANAGED_BY,
)

PRIORITY_CLASS_PREFIX = "ballast-"


def priority_class_name(class_name: str) -> str:
    """``ballast-<class>``: the PriorityClass a WorkloadClass produces."""
    return f"{PRIORITY_CLASS_PREFIX}{class_name}"


def owner_labels(kind: str, name: str) -> dict[str, str]:
    """Labels every produced object carries."""
    return {LABEL_MANAGED_BY: MANAGED_BY, LABEL_OWNER: f"{kind.lower()}.{name}"}


def owner_reference(kind: str, name: str, uid: str) -> dict[str, Any]:
    """A controller owner reference, so deleting the owner garbage-collects the object."""
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def build_priority_class(name: str, uid: str, spec: WorkloadClassSpec) -> dict[str, Any]:
    """The PriorityClass for WorkloadClass ``name``.

    ``preemptionPolicy`` is ``Never`` for classes that may not preempt, so
    kube-scheduler (when it places class pods, e.g. in extender mode) does not
    preempt on their behalf either.
    """
    value = priority_value(spec.tier, spec.priority)
    text = spec.description or f"Ballast {spec.tier} class {name}"
    return {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {
            "name": priority_class_name(name),
            "labels": {
                **owner_labels("WorkloadClass", name),
                "ballast.dev/tier": spec.tier.lower(),
            },
            "ownerReferences": [owner_reference("WorkloadClass", name, uid)],
        },
        "value": value,
        "globalDefault": False,
        "preemptionPolicy": "Never"
        if spec.preemption.policy == "Never"
        else "PreemptLowerPriority",
        "description": f"{text} (tier {spec.tier}, priority {spec.priority}; managed by Ballast)",
    }


def priority_class_drift(desired: dict[str, Any], actual: dict[str, Any] | None) -> str | None:
    """Why ``actual`` differs from ``desired`` ("missing", "value", "fields"), or None.

    "value" means the object must be replaced (PriorityClass.value is immutable).
    """
    if actual is None:
        return "missing"
    if actual.get("value") != desired["value"]:
        return "value"
    for key in ("preemptionPolicy", "description", "globalDefault"):
        if actual.get(key) != desired[key]:
            return "fields"
    labels = (actual.get("metadata") or {}).get("labels") or {}
    if any(labels.get(k) != v for k, v in desired["metadata"]["labels"].items()):
        return "fields"
    owners = (actual.get("metadata") or {}).get("ownerReferences") or []
    if not any(o.get("uid") == desired["metadata"]["ownerReferences"][0]["uid"] for o in owners):
        return "fields"
    return None
