"""PodDisruptionBudgets for classes that are not preemptible: pure builders, thin apply.

A WorkloadClass with ``preemption.preemptible: false`` gets one
PodDisruptionBudget (policy/v1) in every namespace where it has pods,
selecting ``ballast.dev/class=<name>``. Voluntary disruption (``kubectl
drain``, the Eviction API, Ballast's own planner) then takes at most the
budget at a time.

The default is "one pod of the class per namespace at a time", with
``unhealthyPodEvictionPolicy: AlwaysAllow``: a drain always makes progress,
even when the class has a single replica (a ``minAvailable`` equal to the
replica count would block the drain forever), and a pod that is not Ready
(crash-looping, never started) never blocks a drain at all. It is written
as ``maxUnavailable: 1`` where every pod of the class in the namespace
belongs to a ReplicaSet, StatefulSet or ReplicationController; otherwise
(bare pods, Jobs) as ``minAvailable: <live pods - 1>``, kept current as pods
come and go, because the disruption controller can only resolve
``maxUnavailable`` and percentages through a controller's scale and would
otherwise allow no eviction at all (``expectedPods: 0``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ballast.api.v1alpha1.workloadclass import WorkloadClassSpec
from ballast.api.wellknown import FIELD_MANAGER, LABEL_CLASS, LABEL_OWNER
from ballast.controller.builders import (
    DNS_SUBDOMAIN_MAX,
    bounded,
    is_label_value,
    owner_label_value,
    owner_labels,
    owner_reference,
)
from ballast.kube.raw import PDBS, Kube, KubeError
from ballast.logs import kv

log = logging.getLogger(__name__)

PDB_PREFIX = "ballast-"
DEFAULT_MAX_UNAVAILABLE = 1
# Controllers whose scale the disruption controller reads to resolve
# maxUnavailable and percentages.
SCALABLE_OWNERS = frozenset({"ReplicaSet", "StatefulSet", "ReplicationController"})


@dataclass(frozen=True, slots=True)
class Footprint:
    """The class's live pods in one namespace, as far as the budget depends on them.

    ``pods`` is None when every pod has a scalable controller (the count then
    does not matter: the budget is a fixed ``maxUnavailable``).
    """

    namespace: str
    pods: int | None


def footprints(entries: Iterable[tuple[str, bool]]) -> frozenset[Footprint]:
    """(namespace, has a scalable controller) for each live pod → one footprint per namespace."""
    counts: dict[str, int] = {}
    scaled: dict[str, bool] = {}
    for ns, scalable in entries:
        counts[ns] = counts.get(ns, 0) + 1
        scaled[ns] = scaled.get(ns, True) and scalable
    return frozenset(Footprint(ns, None if scaled[ns] else n) for ns, n in counts.items())


def is_scalable_owner(owner_references: Iterable[Mapping[str, Any]] | None) -> bool:
    """Whether a pod's controller is one whose scale the disruption controller can read."""
    for ref in owner_references or ():
        if ref.get("controller") and ref.get("kind") in SCALABLE_OWNERS:
            return True
    return False


def pdb_name(class_name: str) -> str:
    """``ballast-<class>`` (hashed when too long), the same name in every namespace."""
    return bounded(f"{PDB_PREFIX}{class_name}", DNS_SUBDOMAIN_MAX)


def wants_pdb(class_name: str, spec: WorkloadClassSpec) -> bool:
    """Whether the class is protected: not preemptible, and a name pods can carry as a label."""
    return not spec.preemption.preemptible and is_label_value(class_name)


def budget(spec: WorkloadClassSpec, pods: int | None = None) -> dict[str, int | str]:
    """The PDB's budget field: the class's ``disruptionBudget``, else one pod at a time.

    ``pods`` is the number of live pods in the namespace when some lack a
    scalable controller (see ``Footprint``), None otherwise.
    """
    db = spec.preemption.disruption_budget
    if db is not None and db.min_available is not None:
        return {"minAvailable": db.min_available}
    if db is not None and db.max_unavailable is not None:
        return {"maxUnavailable": db.max_unavailable}
    if pods is not None:
        return {"minAvailable": max(0, pods - DEFAULT_MAX_UNAVAILABLE)}
    return {"maxUnavailable": DEFAULT_MAX_UNAVAILABLE}


def build_pdb(
    class_name: str, uid: str, spec: WorkloadClassSpec, namespace: str, pods: int | None = None
) -> dict[str, Any]:
    """The PodDisruptionBudget of class ``class_name`` in ``namespace``."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {
            "name": pdb_name(class_name),
            "namespace": namespace,
            "labels": {**owner_labels("WorkloadClass", class_name), LABEL_CLASS: class_name},
            "ownerReferences": [owner_reference("WorkloadClass", class_name, uid)],
        },
        "spec": {
            **budget(spec, pods),
            "selector": {"matchLabels": {LABEL_CLASS: class_name}},
            # Pods that are not Ready may always be evicted: a broken pod never
            # holds a drain hostage.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def owner_selector(class_name: str) -> str:
    """Label selector of every PDB Ballast made for the class."""
    return f"{LABEL_OWNER}={owner_label_value('WorkloadClass', class_name)}"


def pdb_drift(desired: Mapping[str, Any], actual: Mapping[str, Any] | None) -> str | None:
    """Why ``actual`` differs from ``desired`` ("missing", "spec", "metadata"), or None."""
    if actual is None:
        return "missing"
    spec = actual.get("spec") or {}
    for key, value in desired["spec"].items():
        if spec.get(key) != value:
            return "spec"
    for key in ("minAvailable", "maxUnavailable"):
        if key not in desired["spec"] and spec.get(key) is not None:
            return "spec"
    meta = actual.get("metadata") or {}
    labels = meta.get("labels") or {}
    if any(labels.get(k) != v for k, v in desired["metadata"]["labels"].items()):
        return "metadata"
    uid = desired["metadata"]["ownerReferences"][0]["uid"]
    if not any(o.get("uid") == uid for o in meta.get("ownerReferences") or ()):
        return "metadata"
    return None


@dataclass
class PdbPlan:
    """The PDBs to apply and the namespaces whose PDB to delete."""

    apply: list[dict[str, Any]] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    keep: list[str] = field(default_factory=list)


def plan_pdbs(
    class_name: str,
    uid: str,
    spec: WorkloadClassSpec | None,
    where: Iterable[Footprint],
    actual: Mapping[str, Mapping[str, Any]],
) -> PdbPlan:
    """What to write so the class has exactly the PDBs it should.

    ``spec`` None means the class is gone (delete everything); ``where``
    holds the namespaces where the class has pods (and that its
    ``namespaceSelector`` admits); ``actual`` maps namespace to the PDB
    Ballast made there, as last seen. Unchanged PDBs are not rewritten.
    """
    out = PdbPlan()
    protect = spec is not None and wants_pdb(class_name, spec)
    wanted = sorted(where, key=lambda f: f.namespace) if protect else []
    for fp in wanted:
        assert spec is not None
        desired = build_pdb(class_name, uid, spec, fp.namespace, fp.pods)
        if pdb_drift(desired, actual.get(fp.namespace)) is None:
            out.keep.append(fp.namespace)
        else:
            out.apply.append(desired)
    out.delete = sorted(set(actual) - {f.namespace for f in wanted})
    return out


def sync_pdbs(
    kube: Kube,
    class_name: str,
    uid: str,
    spec: WorkloadClassSpec | None,
    where: Iterable[Footprint],
) -> tuple[PdbPlan, list[str]]:
    """Read the class's PDBs, then apply and delete to match; returns the plan and errors.

    Server-side apply under Ballast's field manager, so re-applying the same
    object changes nothing. A PDB is deleted only by its uid, so one created
    meanwhile by a newer reconciliation survives.
    """
    items = kube.list(PDBS.path(), labelSelector=owner_selector(class_name))["items"]
    name = pdb_name(class_name)
    actual = {
        p["metadata"]["namespace"]: p
        for p in items
        if p["metadata"]["name"] == name
        and (spec is None or _owned_by(p, uid) or not p["metadata"].get("ownerReferences"))
    }
    plan = plan_pdbs(class_name, uid, spec, where, actual)
    errors: list[str] = []
    for desired in plan.apply:
        ns = desired["metadata"]["namespace"]
        try:
            kube.apply(PDBS.path(name, ns), desired, field_manager=FIELD_MANAGER)
        except KubeError as exc:
            if exc.not_found:  # the namespace is being deleted
                continue
            errors.append(f"PodDisruptionBudget {ns}/{name}: {exc}")
        else:
            log.info("pdb applied", extra=kv(workloadclass=class_name, namespace=ns))
    for ns in plan.delete:
        try:
            kube.delete(PDBS.path(name, ns), uid=actual[ns]["metadata"].get("uid"))
        except KubeError as exc:
            if not exc.conflict:
                errors.append(f"PodDisruptionBudget {ns}/{name}: {exc}")
        else:
            log.info("pdb deleted", extra=kv(workloadclass=class_name, namespace=ns))
    return plan, errors


def _owned_by(pdb: Mapping[str, Any], uid: str) -> bool:
    refs = (pdb.get("metadata") or {}).get("ownerReferences") or ()
    return any(r.get("uid") == uid for r in refs)


def admitted_namespaces(
    namespaces: Iterable[str], selector: Any, labels_of: Mapping[str, Mapping[str, str] | None]
) -> list[str]:
    """The namespaces whose pods belong to the class under its ``namespaceSelector``.

    ``labels_of`` maps a namespace to its labels (None when it is gone). A
    selector that cannot be read admits nothing: no PDB protects pods whose
    membership is in doubt.
    """
    from ballast import selectors

    parsed, _ = selectors.parse(selector)
    if parsed is None:
        return []
    out = []
    for ns in sorted(set(namespaces)):
        labels = labels_of.get(ns)
        if labels is not None and parsed.matches(labels):
            out.append(ns)
    return out
