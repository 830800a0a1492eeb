"""Autoscaling handlers: keep each scaling class's KEDA ScaledObjects and ``ScalingReady``.

Workloads are discovered from Deployments and StatefulSets whose pod
template carries ``ballast.dev/class`` (kopf indexes). A class is
reconciled when it changes, when the set of its workloads changes, when one
of its ScaledObjects is edited or deleted by someone else (drift) or KEDA's
view of it changes, when KEDA's CRD appears or goes, and on each pass of
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
from ballast.controller import scaling as logic
from ballast.controller import scaling_sync as sync
from ballast.controller.disruption import admitted_namespaces
from ballast.controller.events import post
from ballast.kube.raw import NAMESPACES, Kube
from ballast.logs import kv

log = logging.getLogger(__name__)
WLC = (GROUP, VERSION, "workloadclasses")
SCALED_OBJECT = (logic.KEDA_GROUP, logic.KEDA_VERSION, logic.SCALED_OBJECTS)
KEDA_CRD = f"{logic.SCALED_OBJECTS}.{logic.KEDA_GROUP}"

# Class name → the workloads its ScaledObjects were last made for, the
# ScalingReady it was last given, and a lock per class (one process).
_synced: dict[str, frozenset[logic.Workload]] = {}
_written: dict[str, tuple[str, str, str] | None] = {}
_locks: dict[str, asyncio.Lock] = {}


def _has_class(spec: kopf.Spec, **_: Any) -> bool:
    return logic.template_class(spec) is not None


@kopf.index("apps", "v1", "deployments", when=_has_class)
async def scaling_deployments(
    namespace: str | None, name: str, spec: kopf.Spec, **_: Any
) -> dict[str, logic.Workload]:
    """class name → each Deployment whose pods carry the class label."""
    w = logic.workload_of("Deployment", namespace, name)
    cls = logic.template_class(spec)
    return {cls: w} if w is not None and cls is not None else {}


@kopf.index("apps", "v1", "statefulsets", when=_has_class)
async def scaling_statefulsets(
    namespace: str | None, name: str, spec: kopf.Spec, **_: Any
) -> dict[str, logic.Workload]:
    """class name → each StatefulSet whose pods carry the class label."""
    w = logic.workload_of("StatefulSet", namespace, name)
    cls = logic.template_class(spec)
    return {cls: w} if w is not None and cls is not None else {}


def _ours(labels: kopf.Labels, **_: Any) -> bool:
    return labels.get(LABEL_MANAGED_BY) == MANAGED_BY and str(
        labels.get("ballast.dev/owner", "")
    ).startswith("workloadclass.")


@kopf.index(*SCALED_OBJECT, when=_ours)
async def class_scaled_objects(
    namespace: str | None, name: str, labels: kopf.Labels, **_: Any
) -> Any:
    """class name → each Ballast ScaledObject of the class (the watch's view)."""
    class_name = labels.get(LABEL_CLASS)
    return {class_name: (str(namespace), name)} if isinstance(class_name, str) else {}


def _quiet(indexes: Mapping[str, Any], entry: Mapping[str, Any] | None, class_name: str) -> bool:
    """The class does not scale, has no ScaledObject and no ScalingReady: nothing to do.

    Read from the watches (kopf indexes), so that the thousands of classes
    without scaling cost no API call when they change or resync.
    """
    if entry is None or entry["spec"].get("scaling"):
        return False
    index: Any = indexes.get("class_scaled_objects") or {}
    return not index.get(class_name) and sync.CONDITION not in entry.get("conditions", ())


def _workloads(indexes: Mapping[str, Any], class_name: str) -> frozenset[logic.Workload]:
    found: set[logic.Workload] = set()
    for key in ("scaling_deployments", "scaling_statefulsets"):
        index: Any = indexes.get(key) or {}
        found.update(index.get(class_name, ()))
    return frozenset(found)


def _class_entry(indexes: Mapping[str, Any], class_name: str) -> Mapping[str, Any] | None:
    wlc_index: Any = indexes.get("workloadclass_index") or {}
    for entry in wlc_index.get(class_name, ()):
        if not entry["deleting"]:
            return dict(entry)
    return None


def _scaling_classes(indexes: Mapping[str, Any]) -> list[str]:
    """Every class that has (or had, in this process) ScaledObjects to look after."""
    wlc_index: Any = indexes.get("workloadclass_index") or {}
    names = {
        n for n, entries in wlc_index.items() if any(e["spec"].get("scaling") for e in entries)
    }
    return sorted(names | set(_synced))


def _admitted(
    kube: Kube, spec: WorkloadClassSpec, where: frozenset[logic.Workload]
) -> frozenset[logic.Workload]:
    if spec.namespace_selector is None or not where:
        return where
    labels_of: dict[str, Mapping[str, str] | None] = {}
    for ns in {w.namespace for w in where}:
        obj = kube.get(NAMESPACES.path(ns))
        labels_of[ns] = None if obj is None else obj["metadata"].get("labels") or {}
    admitted = set(admitted_namespaces(labels_of, spec.namespace_selector.wire(), labels_of))
    return frozenset(w for w in where if w.namespace in admitted)


def _sync(
    kube: Kube, class_name: str, uid: str, spec: WorkloadClassSpec | None,
    where: frozenset[logic.Workload], now: Any,
) -> sync.Outcome:  # fmt: skip
    scaling = spec.scaling if spec is not None else None
    if spec is not None and scaling is not None:
        where = _admitted(kube, spec, where)
    outcome = sync.sync(kube, class_name, uid, scaling, where, sync.prometheus_url())
    if spec is not None:
        sync.write_condition(kube, class_name, uid, outcome.condition, now)
    return outcome


def _cond_key(outcome: sync.Outcome) -> tuple[str, str, str] | None:
    c = outcome.condition
    return None if c is None else (c.status_text, c.reason, c.message)


async def reconcile_class(
    memo: Any, indexes: Mapping[str, Any], class_name: str, *, force: bool = False
) -> list[str]:
    """Bring the class's ScaledObjects and ScalingReady in line; returns the errors.

    Without ``force``, nothing is read or written when the workloads are
    those of the last successful reconciliation.
    """
    lock = _locks.setdefault(class_name, asyncio.Lock())
    async with lock:
        where = _workloads(indexes, class_name)
        if not force and _synced.get(class_name) == where:
            return []
        entry = _class_entry(indexes, class_name)
        spec: WorkloadClassSpec | None = None
        uid = ""
        if entry is not None:
            uid = entry["uid"]
            try:
                spec = WorkloadClassSpec.model_validate(entry["spec"])
            except ValidationError:
                return []  # reported by the class's own reconciliation
        if entry is None and class_name not in _synced:
            return []
        if _quiet(indexes, entry, class_name):
            _synced.pop(class_name, None)
            _written.pop(class_name, None)
            return []
        try:
            outcome = await asyncio.to_thread(
                _sync, memo.kube, class_name, uid, spec, where, memo.clock.now()
            )
        except Exception as exc:  # API down, timeouts: report and let the caller retry
            _synced.pop(class_name, None)
            log.warning("scaling sync failed", extra=kv(workloadclass=class_name, error=exc))
            return [f"{type(exc).__name__}: {exc}"]
        if entry is not None:
            _events(class_name, uid, outcome)
        if outcome.errors:
            _synced.pop(class_name, None)
            log.warning("scaling sync failed", extra=kv(workloadclass=class_name,
                                                        errors=outcome.errors))  # fmt: skip
        elif entry is None or spec is None or spec.scaling is None:
            _synced.pop(class_name, None)
            _written.pop(class_name, None)
        else:
            _synced[class_name] = where
        if entry is not None and spec is not None and spec.scaling is not None:
            _written[class_name] = _cond_key(outcome)
        return outcome.errors


def _events(class_name: str, uid: str, outcome: sync.Outcome) -> None:
    ref = {"apiVersion": API_VERSION, "kind": "WorkloadClass",
           "metadata": {"name": class_name, "uid": uid}}  # fmt: skip
    for obj in outcome.plan.apply:
        ns, name = logic.key_of(obj)
        target = obj["spec"]["scaleTargetRef"]
        kinds = ", ".join(t["name"] for t in obj["spec"]["triggers"])
        post(ref, "Normal", "ScaledObjectApplied",
             f"ScaledObject {ns}/{name} scales {target['kind']} {target['name']} on {kinds}")  # fmt: skip
    for ns, name in outcome.plan.delete:
        post(ref, "Normal", "ScaledObjectDeleted", f"ScaledObject {ns}/{name} removed")
    c = outcome.condition
    if c is not None and c.status is False and _written.get(class_name) != _cond_key(outcome):
        post(ref, "Warning", c.reason, c.message)


async def _reconcile_changed(memo: Any, indexes: Mapping[str, Any]) -> None:
    for class_name in _scaling_classes(indexes):
        if _synced.get(class_name) != _workloads(indexes, class_name):
            await reconcile_class(memo, indexes, class_name)


@kopf.on.event("apps", "v1", "deployments")
async def deployment_scaling(memo: Any, **kwargs: Any) -> None:
    """A Deployment changed: reconcile the classes whose workloads changed."""
    await _reconcile_changed(memo, kwargs)


@kopf.on.event("apps", "v1", "statefulsets")
async def statefulset_scaling(memo: Any, **kwargs: Any) -> None:
    """A StatefulSet changed: reconcile the classes whose workloads changed."""
    await _reconcile_changed(memo, kwargs)


@kopf.on.event(*SCALED_OBJECT, when=_ours)
async def scaledobject_drift(
    type: str, labels: kopf.Labels, body: kopf.Body, memo: Any, **kwargs: Any
) -> None:
    """A Ballast ScaledObject was edited, deleted or judged by KEDA: restore and re-judge."""
    class_name = labels.get(LABEL_CLASS)
    if not isinstance(class_name, str) or _class_entry(kwargs, class_name) is None:
        return  # the class is gone: the garbage collector removes its ScaledObjects
    if type == "DELETED" or _differs(class_name, kwargs, body):
        await reconcile_class(memo, kwargs, class_name, force=True)


def _differs(class_name: str, indexes: Mapping[str, Any], body: kopf.Body) -> bool:
    """Whether the object drifted, or KEDA's readiness of it is not what the class says."""
    entry = _class_entry(indexes, class_name)
    assert entry is not None
    try:
        spec = WorkloadClassSpec.model_validate(entry["spec"])
    except ValidationError:
        return False
    ns, name = logic.key_of(body)
    mine = next(
        (w for w in _workloads(indexes, class_name)
         if w.namespace == ns and logic.scaled_object_name(w) == name), None,
    )  # fmt: skip
    server = sync.prometheus_url()
    if spec.scaling is None or mine is None or not server:
        return True  # should not exist: the reconciliation deletes it
    desired = logic.build_scaled_object(class_name, entry["uid"], spec.scaling, mine, server)
    if logic.drift(desired, body) is not None:
        return True
    written = _written.get(class_name)
    keda_ok = sync.keda_not_ready(body) is None
    return written is None or (written[0] == "True") != keda_ok


def _is_keda_crd(name: str, **_: Any) -> bool:
    return name == KEDA_CRD


@kopf.on.event("apiextensions.k8s.io", "v1", "customresourcedefinitions", when=_is_keda_crd)
async def keda_crd_scaling(memo: Any, **kwargs: Any) -> None:
    """KEDA's ScaledObject CRD appeared, changed or went: re-judge every scaling class."""
    for class_name in _scaling_classes(kwargs):
        await reconcile_class(memo, kwargs, class_name, force=True)


async def workloadclass_scaling_watch(
    name: str, spec: kopf.Spec, status: kopf.Status, memo: Any, **kwargs: Any
) -> None:
    """Another writer dropped, changed or brought back ScalingReady: write it again.

    The class's own reconcile writes ``status.conditions`` whole, from the copy
    its handler was given: when that copy predates the removal of ScalingReady
    (``scaling`` just taken out of the spec), the write brings the condition
    back. A class without ``scaling`` whose status says ScalingReady is
    reconciled again, which removes it.
    """
    have = next(
        (c for c in status.get("conditions") or () if c.get("type") == sync.CONDITION), None
    )
    if not spec.get("scaling"):
        if have is not None:
            await reconcile_class(memo, kwargs, name, force=True)
        return
    if name not in _written:
        return
    key = None if have is None else (have.get("status"), have.get("reason"), have.get("message"))
    if key != _written[name]:
        await reconcile_class(memo, kwargs, name, force=True)


def synced(name: str) -> bool:
    """Whether class ``name`` has ScaledObjects Ballast made (they need checking)."""
    return name in _synced


async def reconcile_or_retry(memo: Any, kwargs: Mapping[str, Any], name: str) -> None:
    """Reconcile the class's ScaledObjects from the live objects; TemporaryError on failure."""
    errors = await reconcile_class(memo, kwargs, name, force=True)
    if errors:
        raise kopf.TemporaryError("; ".join(errors)[:1024], delay=5)


@kopf.on.resume(*WLC)
@kopf.on.create(*WLC)
@kopf.on.update(*WLC)
async def workloadclass_scaling(name: str, memo: Any, **kwargs: Any) -> None:
    """Create, change or remove the class's ScaledObjects after a spec change.

    The safety net is the operator's one resync loop (handlers/resync.py): it
    re-reads the ScaledObjects of a class that scales or had them (a class
    that does not scale was cleaned up when the operator resumed it).
    """
    await reconcile_or_retry(memo, kwargs, name)
