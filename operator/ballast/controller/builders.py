"""Pure builders: a custom resource's spec → the Kubernetes objects it produces.

No I/O here; handlers call these and apply the result. Tests exercise them
directly without a cluster.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from ballast.api.v1alpha1.workloadclass import WorkloadClassSpec, priority_value
from ballast.api.wellknown import (
    API_VERSION,
    LABEL_MANAGED_BY,
    LABEL_OWNER,
    MANAGED_BY,
)

PRIORITY_CLASS_PREFIX = "ballast-"

# Kubernetes limits on what Ballast derives from user-chosen names.
DNS_SUBDOMAIN_MAX = 253  # object names such as a PriorityClass's
LABEL_VALUE_MAX = 63
_HASH_CHARS = 10  # hex digits of sha256 kept when a name must be shortened
_TRIM = "-._"
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def bounded(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else a prefix plus a short hash.

    The one helper for every derived name and label value: the result is at
    most ``limit`` long, deterministic, distinct for distinct long inputs
    (``-`` + the first 10 hex digits of sha256 of the whole text), and, when
    ``text`` is made of name characters (``[a-z0-9.-]``, as Kubernetes names
    are), starts and ends with an alphanumeric, so it stays a valid DNS
    subdomain or label value.
    """
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:_HASH_CHARS]
    head = text[: max(0, limit - _HASH_CHARS - 1)].rstrip(_TRIM)
    return f"{head}-{digest}" if head else digest


def is_label_value(text: str) -> bool:
    """Whether ``text`` is a valid Kubernetes label value."""
    return len(text) <= LABEL_VALUE_MAX and bool(_LABEL_VALUE_RE.match(text))


def is_dns_subdomain(text: str) -> bool:
    """Whether ``text`` is a valid object name (RFC 1123 subdomain, at most 253)."""
    return 0 < len(text) <= DNS_SUBDOMAIN_MAX and bool(_SUBDOMAIN_RE.match(text))


def priority_class_name(class_name: str) -> str:
    """``ballast-<class>``: the PriorityClass a WorkloadClass produces (hashed when too long)."""
    return bounded(f"{PRIORITY_CLASS_PREFIX}{class_name}", DNS_SUBDOMAIN_MAX)


def owner_label_value(kind: str, name: str) -> str:
    """``<kind>.<name>`` for the ``ballast.dev/owner`` label, within the 63-character limit."""
    return bounded(f"{kind.lower()}.{name}", LABEL_VALUE_MAX)


def owner_labels(kind: str, name: str) -> dict[str, str]:
    """Labels every produced object carries."""
    return {LABEL_MANAGED_BY: MANAGED_BY, LABEL_OWNER: owner_label_value(kind, name)}


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


# Fields the API server refuses to change on update: a difference in any of
# them means delete-and-create, never an apply.
PRIORITY_CLASS_IMMUTABLE = ("value", "preemptionPolicy")
# What an absent field means: the API server omits ``globalDefault: false``
# (omitempty) and defaults ``preemptionPolicy``; comparing the raw absence
# would see drift in every object it returns.
_SERVER_DEFAULTS: dict[str, Any] = {
    "globalDefault": False,
    "description": "",
    "preemptionPolicy": "PreemptLowerPriority",
}


def _field(actual: dict[str, Any], key: str) -> Any:
    """``actual[key]``, where absent or null what the server means by that."""
    value = actual.get(key)
    return _SERVER_DEFAULTS.get(key) if value is None else value


def priority_class_drift(desired: dict[str, Any], actual: dict[str, Any] | None) -> str | None:
    """Why ``actual`` differs from ``desired``, or None when it does not.

    "missing"; the name of an immutable field ("value", "preemptionPolicy"),
    which means the object must be replaced; or "fields" for anything an
    apply can fix.
    """
    if actual is None:
        return "missing"
    for key in PRIORITY_CLASS_IMMUTABLE:
        if _field(actual, key) != desired[key]:
            return key
    for key in ("description", "globalDefault"):
        if _field(actual, key) != desired[key]:
            return "fields"
    labels = (actual.get("metadata") or {}).get("labels") or {}
    if any(labels.get(k) != v for k, v in desired["metadata"]["labels"].items()):
        return "fields"
    owners = (actual.get("metadata") or {}).get("ownerReferences") or []
    if not any(o.get("uid") == desired["metadata"]["ownerReferences"][0]["uid"] for o in owners):
        return "fields"
    return None
