"""PodDisruptionBudget handlers: follow where each protected class has pods.

Namespaces are discovered from pods labelled ``ballast.dev/class`` (a kopf
index; finished pods are not counted). A class is reconciled when it
changes, when the set of namespaces where it has pods changes, when one of
its PDBs is edited or deleted by someone else (drift), and on each pass of
the resync loop (handlers/resync.py). Each class is reconciled by one task at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import kopf
from pydantic import ValidationError

from ballast.api.v1alpha1.workloadclass import WorkloadClassSpec
from ballast.api.wellknown import (
    API_VERSION,
    GROUP,
    LABEL_CLASS,
    LABEL_MANAGED_BY,
    MANAGED_BY,
    VERSION,
)
from ballast.controller import disruption as logic
from ballast.controller.events import post
from ballast.kube.raw import NAMESPACES, Kube
from ballast.logs import kv

log = logging.getLogger(__name__)
WLC = (GROUP, VERSION, "workloadclasses")
PDB = ("policy", "v1", "poddisruptionbudgets")

# Class name → the footprints its PDBs were last made for, and a lock so that
# one class is reconciled by one task at a time (module state: one process).
_synced: dict[str, frozenset[logic.Footprint]] = {}
_locks: dict[str, asyncio.Lock] = {}


def _live(status: kopf.Status, **_: Any) -> bool:
    return status.get("phase") not in ("Succeeded", "Failed")


@kopf.index("v1", "pods", labels={LABEL_CLASS: kopf.PRESENT}, when=_live)
async def class_pod_namespaces(
    namespace: str | None, labels: kopf.Labels, meta: kopf.Meta, **_: Any
) -> dict[str, tuple[str, bool]]:
    """class name → (namespace, has a scalable controller) of each of its live pods."""
    scalable = logic.is_scalable_owner(meta.get("ownerReferences"))
    return {str(labels[LABEL_CLASS]): (str(namespace), scalable)}


def _ours(labels: kopf.Labels, **_: Any) -> bool:
    return labels.get(LABEL_MANAGED_BY) == MANAGED_BY and str(
        labels.get("ballast.dev/owner", "")
    ).startswith("workloadclass.")


@kopf.index(*PDB, when=_ours)
async def class_pdbs(namespace: str | None, labels: kopf.Labels, **_: Any) -> dict[str, str]:
    """class name → each namespace where a Ballast PDB of the class exists (the watch's view)."""
    class_name = labels.get(LABEL_CLASS)
    return {class_name: str(namespace)} if isinstance(class_name, str) else {}


def _has_pdbs(indexes: Mapping[str, Any], class_name: str) -> bool:
    index: Any = indexes.get("class_pdbs") or {}
    return bool(index.get(class_name))


def _namespaces(indexes: Mapping[str, Any], class_name: str) -> frozenset[logic.Footprint]:
    index: Any = indexes.get("class_pod_namespaces") or {}
    return logic.footprints(index.get(class_name, ()))


def _class_entry(indexes: Mapping[str, Any], class_name: str) -> Mapping[str, Any] | None:
    wlc_index: Any = indexes.get("workloadclass_index") or {}
    for entry in wlc_index.get(class_name, ()):
        if not entry["deleting"]:
            return dict(entry)
    return None


async def reconcile_class(
    memo: Any, indexes: Mapping[str, Any], class_name: str, *, force: bool = False
) -> list[str]:
    """Bring the class's PDBs in line; returns the errors (empty when all is right).

    Without ``force``, nothing is read or written when the namespaces are
    those of the last successful reconciliation.
    """
    lock = _locks.setdefault(class_name, asyncio.Lock())
    async with lock:
        namespaces = _namespaces(indexes, class_name)
        if not force and _synced.get(class_name) == namespaces:
            return []
        entry = _class_entry(indexes, class_name)
        spec: WorkloadClassSpec | None = None
        uid = ""
        if entry is not None:
            uid = entry["uid"]
            try:
                spec = WorkloadClassSpec.model_validate(entry["spec"])
            except ValidationError:
                return []  # reported by the class's own reconciliation; leave PDBs as they are
        if not namespaces and not _has_pdbs(indexes, class_name):
            # No live pod of the class and no PDB of it in the watch's view:
            # nothing to apply or delete, so no LIST (thousands of classes
            # without pods cost the API server nothing on a resync).
            _synced[class_name] = namespaces
            if entry is None:
                _synced.pop(class_name, None)
                _locks.pop(class_name, None)
            return []
        kube: Kube = memo.kube
        try:
            plan, errors = await asyncio.to_thread(_sync, kube, class_name, uid, spec, namespaces)
        except Exception as exc:  # API down, timeouts: report and let the caller retry
            errors = [f"{type(exc).__name__}: {exc}"]
            plan = None
        if entry is not None and plan is not None:
            ref = {
                "apiVersion": API_VERSION,
                "kind": "WorkloadClass",
                "metadata": {"name": class_name, "uid": uid},
            }
            for pdb in plan.apply:
                ns = pdb["metadata"]["namespace"]
                post(ref, "Normal", "DisruptionBudgetApplied",
                     f"PodDisruptionBudget {ns}/{pdb['metadata']['name']} {_budget_text(pdb)}")  # fmt: skip
            for ns in plan.delete:
                post(ref, "Normal", "DisruptionBudgetDeleted",
                     f"PodDisruptionBudget {ns}/{logic.pdb_name(class_name)} removed")  # fmt: skip
            for error in errors:
                post(ref, "Warning", "DisruptionBudgetFailed", error)
        if errors:
            _synced.pop(class_name, None)
            log.warning("pdb sync failed", extra=kv(workloadclass=class_name, errors=errors))
        else:
            _synced[class_name] = namespaces
        if entry is None and not errors:
            _synced.pop(class_name, None)
            _locks.pop(class_name, None)
        return errors


def _budget_text(pdb: Mapping[str, Any]) -> str:
    spec = pdb["spec"]
    if "minAvailable" in spec:
        return f"minAvailable {spec['minAvailable']}"
    return f"maxUnavailable {spec['maxUnavailable']}"


def _sync(
    kube: Kube,
    class_name: str,
    uid: str,
    spec: WorkloadClassSpec | None,
    where: frozenset[logic.Footprint],
) -> tuple[logic.PdbPlan, list[str]]:
    if spec is not None and spec.namespace_selector is not None and where:
        labels_of: dict[str, Mapping[str, str] | None] = {}
        for fp in where:
            obj = kube.get(NAMESPACES.path(fp.namespace))
            labels_of[fp.namespace] = None if obj is None else obj["metadata"].get("labels") or {}
        selector = spec.namespace_selector.wire()
        admitted = set(logic.admitted_namespaces(labels_of, selector, labels_of))
        where = frozenset(f for f in where if f.namespace in admitted)
    return logic.sync_pdbs(kube, class_name, uid, spec, where)


@kopf.on.event("v1", "pods", labels={LABEL_CLASS: kopf.PRESENT})
async def class_pod_disruption(labels: kopf.Labels, memo: Any, **kwargs: Any) -> None:
    """A class pod changed: reconcile the class's PDBs when its namespaces changed."""
    class_name = str(labels.get(LABEL_CLASS, ""))
    if _synced.get(class_name) != _namespaces(kwargs, class_name):
        await reconcile_class(memo, kwargs, class_name)


@kopf.on.event(*PDB, when=_ours)
async def pdb_drift(
    type: str, name: str, labels: kopf.Labels, body: kopf.Body, memo: Any, **kwargs: Any
) -> None:
    """A Ballast PDB was edited or deleted: restore it (or let it go) from its class."""
    class_name = labels.get(LABEL_CLASS)
    if not isinstance(class_name, str) or logic.pdb_name(class_name) != name:
        return
    entry = _class_entry(kwargs, class_name)
    if entry is None:
        return  # the class is gone: the garbage collector removes its PDBs
    if type == "DELETED" or _drifted(class_name, entry, body, _namespaces(kwargs, class_name)):
        await reconcile_class(memo, kwargs, class_name, force=True)


def _drifted(
    class_name: str,
    entry: Mapping[str, Any],
    body: kopf.Body,
    where: frozenset[logic.Footprint],
) -> bool:
    try:
        spec = WorkloadClassSpec.model_validate(entry["spec"])
    except ValidationError:
        return False
    ns = str(body["metadata"]["namespace"])
    here = next((f for f in where if f.namespace == ns), None)
    if here is None or not logic.wants_pdb(class_name, spec):
        return True  # should not exist: the reconciliation deletes it
    desired = logic.build_pdb(class_name, entry["uid"], spec, ns, here.pods)
    return logic.pdb_drift(desired, body) is not None


async def reconcile_or_retry(memo: Any, kwargs: Mapping[str, Any], name: str) -> None:
    """Reconcile the class's PDBs from the live objects; TemporaryError when that failed."""
    errors = await reconcile_class(memo, kwargs, name, force=True)
    if errors:
        raise kopf.TemporaryError("; ".join(errors)[:1024], delay=5)


@kopf.on.resume(*WLC)
@kopf.on.create(*WLC)
@kopf.on.update(*WLC)
async def workloadclass_disruption(name: str, memo: Any, **kwargs: Any) -> None:
    """Create, change or remove the class's PodDisruptionBudgets after a spec change.

    The safety net is the operator's one resync loop (handlers/resync.py).
    """
    await reconcile_or_retry(memo, kwargs, name)
