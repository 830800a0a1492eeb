"""Pods as the scheduler reads them: the trust boundary for tenant-written objects.

:func:`slim_pod` turns whatever the API server delivered into the few
fields the scheduler uses, each of a checked type; :func:`engine_pod` and
:func:`bound_pod` turn that into the placement engine's :class:`Pod`;
:func:`gpu_ids` reads the GPU indices a bound pod carries. Nothing here
raises on a malformed object: problems come back with the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ballast.api import wellknown as wk
from ballast.placement.objects import (
    ClassPolicy,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    Pod,
    Toleration,
)
from ballast.scheduler.mapping import (
    MILLI,
    Mapped,
    parse_time,
    quantity_mib,
    quantity_milli,
    str_map,
    text,
)


def _ballast_key(key: str) -> bool:
    return key.startswith(wk.GROUP + "/")


_RESOURCE_KEYS = ("cpu", "memory", wk.GPU_RESOURCE)


def _resources(raw: Any) -> dict[str, Any]:
    res = raw if isinstance(raw, Mapping) else {}
    out: dict[str, Any] = {}
    for part in ("limits", "requests"):
        values = res.get(part)
        if isinstance(values, Mapping):
            out[part] = {k: values[k] for k in _RESOURCE_KEYS if k in values}
    return out


_CLAIM_KEYS = ("name", "resourceClaimName", "resourceClaimTemplateName")


class SlimPod(dict[str, Any]):
    """A pod :func:`slim_pod` made: its type tells a second :func:`slim_pod` to pass it on."""

    __slots__ = ()


def slim_pod(pod: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a Pod the scheduler reads, with every type checked.

    This is the trust boundary for pods: the result has the shape the rest of
    the scheduler assumes (strings where strings are expected, maps of
    strings, lists of maps) whatever the tenant wrote, and keeps nothing else
    (no managedFields, no container images, commands or env), so the cache
    holds a few hundred bytes per pod. It is idempotent: the pods informer
    slims each pod before queueing it, and the scheduling thread slims it again;
    a :class:`SlimPod` comes back as it is, so the second pass costs nothing.
    """
    if type(pod) is SlimPod:
        return pod
    meta = pod.get("metadata") if isinstance(pod.get("metadata"), Mapping) else {}
    spec = pod.get("spec") if isinstance(pod.get("spec"), Mapping) else {}
    status = pod.get("status") if isinstance(pod.get("status"), Mapping) else {}
    assert isinstance(meta, Mapping) and isinstance(spec, Mapping) and isinstance(status, Mapping)

    def text(m: Mapping[str, Any], key: str) -> str:
        v = m.get(key)
        return v if isinstance(v, str) else ""

    raw_owners = meta.get("ownerReferences")
    owners = [
        {"kind": o["kind"], "name": o["name"], "controller": True}
        for o in (raw_owners if isinstance(raw_owners, list) else ())
        if isinstance(o, Mapping)
        and o.get("controller") is True
        and isinstance(o.get("kind"), str)
        and isinstance(o.get("name"), str)
    ][:1]
    raw_containers = spec.get("containers")
    containers = [
        {"resources": _resources(c.get("resources"))}
        for c in (raw_containers if isinstance(raw_containers, list) else [])
        if isinstance(c, Mapping)
    ]
    priority = spec.get("priority")
    affinity = spec.get("affinity")
    node_affinity = affinity.get("nodeAffinity") if isinstance(affinity, Mapping) else None
    slim = {
        "metadata": {
            "name": text(meta, "name"),
            "namespace": text(meta, "namespace"),
            "uid": text(meta, "uid"),
            "labels": str_map(meta.get("labels")),
            "annotations": str_map(meta.get("annotations"), _ballast_key),
            "creationTimestamp": text(meta, "creationTimestamp"),
            "deletionTimestamp": text(meta, "deletionTimestamp"),
            "ownerReferences": owners,
        },
        "spec": {
            "nodeName": text(spec, "nodeName"),
            "schedulerName": text(spec, "schedulerName"),
            "priority": priority
            if isinstance(priority, int) and not isinstance(priority, bool)
            else 0,
            "containers": containers,
            "nodeSelector": str_map(spec.get("nodeSelector")),
            "affinity": {"nodeAffinity": node_affinity}
            if isinstance(node_affinity, Mapping)
            else {},
            "tolerations": [t for t in spec.get("tolerations") or () if isinstance(t, Mapping)]
            if isinstance(spec.get("tolerations"), list)
            else [],
            # The Workload API's PodGroup reference (checked in scheduler/groups.py).
            "schedulingGroup": {"podGroupName": spec["schedulingGroup"]["podGroupName"]}
            if isinstance(spec.get("schedulingGroup"), Mapping)
            and "podGroupName" in spec["schedulingGroup"]
            else {},
            # DRA: [{name, resourceClaimName | resourceClaimTemplateName}] (checked types)
            "resourceClaims": [
                {k: c[k] for k in _CLAIM_KEYS if isinstance(c.get(k), str)}
                for c in spec.get("resourceClaims") or ()
                if isinstance(c, Mapping)
            ][:32]
            if isinstance(spec.get("resourceClaims"), list)
            else [],
        },
        "status": {
            "phase": text(status, "phase"),
            "startTime": text(status, "startTime"),
            "resourceClaimStatuses": [
                {k: c[k] for k in ("name", "resourceClaimName") if isinstance(c.get(k), str)}
                for c in status.get("resourceClaimStatuses") or ()
                if isinstance(c, Mapping)
            ][:32]
            if isinstance(status.get("resourceClaimStatuses"), list)
            else [],
        },
    }
    return SlimPod(slim)


def _requests(pod: Mapping[str, Any]) -> tuple[int, int, int]:
    gpus = cpu = mem = 0
    for c in (pod.get("spec") or {}).get("containers") or ():
        res = c.get("resources") or {}
        req = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        try:
            gpus += int(str(req.get(wk.GPU_RESOURCE, "0")))
        except ValueError:
            raise ValueError(f"{wk.GPU_RESOURCE} request is not a whole number") from None
        cpu += quantity_milli(req.get("cpu"))
        mem += quantity_mib(req.get("memory"))
    return gpus, cpu, mem


def _affinity(spec: Mapping[str, Any]) -> tuple[NodeSelectorTerm, ...]:
    """Required node affinity; a malformed term raises ValueError (the pod is then invalid)."""
    na = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    if not isinstance(na, Mapping):
        raise ValueError("nodeAffinity.required is not an object")
    terms = []
    for term in na.get("nodeSelectorTerms") or ():
        exprs = term.get("matchExpressions") if isinstance(term, Mapping) else None
        reqs = []
        for e in exprs or ():
            if not isinstance(e, Mapping) or not isinstance(e.get("key"), str):
                raise ValueError("a node affinity expression has no key")
            values = e.get("values") or []
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise ValueError(f"node affinity values for {e['key']} are not strings")
            if e.get("operator") not in ("In", "NotIn", "Exists", "DoesNotExist"):
                # Gt/Lt and unknown operators: not understood, so not satisfiable here.
                raise ValueError(f"node affinity operator {e.get('operator')!r} is not supported")
            reqs.append(NodeSelectorRequirement(e["key"], e["operator"], tuple(values)))
        terms.append(NodeSelectorTerm(tuple(reqs)))
    return tuple(terms)


def engine_pod(pod: Mapping[str, Any], cls: ClassPolicy | None, tenant: str) -> Mapped:
    """A Pod as the engine's :class:`Pod`; ``value`` is None when the request is unusable."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    annotations = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    problems: list[str] = []
    try:
        gpus, cpu, mem = _requests(pod)
    except ValueError as exc:
        return Mapped(None, [str(exc)])
    milli = wk.parse_gpu_milli(annotations.get(wk.ANNOTATION_GPU_MILLI))
    if milli.problems:
        return Mapped(None, milli.problems)
    gpu_milli = milli.value if milli.value < MILLI else 0
    if milli.value >= MILLI and not gpus:
        gpus = 1
    if gpus and gpu_milli:
        return Mapped(
            None, [f"{wk.ANNOTATION_GPU_MILLI} and a {wk.GPU_RESOURCE} request are exclusive"]
        )
    tolerations = tuple(
        Toleration(
            text(t.get("key")),
            "Exists" if t.get("operator") == "Exists" else "Equal",
            text(t.get("value")),
            text(t.get("effect")),
        )
        for t in spec.get("tolerations") or ()
        if isinstance(t, Mapping)
    )
    if cls is not None and cls.pool.name:
        # Membership is the class: its pods tolerate their own pool's taint
        # whether or not the webhook added the toleration.
        tolerations += (Toleration(wk.TAINT_POOL, "Equal", cls.pool.name, "NoSchedule"),)
    owner = next((o for o in meta.get("ownerReferences") or () if o.get("controller")), None)
    spread_key = f"{meta.get('namespace')}/{owner['kind']}/{owner['name']}" if owner else ""
    try:
        affinity = _affinity(spec)
        value = Pod(
            namespace=meta.get("namespace", ""),
            name=meta.get("name", ""),
            uid=meta.get("uid", ""),
            class_name=cls.name if cls else "",
            priority=int(spec.get("priority") or 0),
            gpus=gpus,
            gpu_milli=gpu_milli,
            cpu_milli=cpu,
            memory_mib=mem,
            gpu_products=cls.pool.gpu_products if cls else (),
            min_gpu_memory_mib=cls.pool.min_gpu_memory_mib if cls else 0,
            node_selector=dict(spec.get("nodeSelector") or {}),
            affinity=affinity,
            tolerations=tolerations,
            models=wk.parse_name_list(annotations.get(wk.ANNOTATION_MODELS)),
            datasets=wk.parse_name_list(annotations.get(wk.ANNOTATION_DATASETS)),
            creation_time=parse_time(meta.get("creationTimestamp")),
            labels=dict(labels),
            spread_key=spread_key,
            tenant=tenant,
        )
    except ValueError as exc:
        return Mapped(None, [str(exc)])
    return Mapped(value, problems)


def bound_pod(pod: Mapping[str, Any], cls: ClassPolicy | None, tenant: str) -> Mapped:
    """A bound pod as the engine's :class:`Pod`, always: it holds resources whatever it says.

    A request the scheduler could not place (a malformed share annotation,
    a share together with whole GPUs, an unsupported affinity) is still
    charged: conservatively, as its whole-GPU request or one whole GPU if it
    asked for a share.
    """
    mapped = engine_pod(pod, cls, tenant)
    if mapped.value is not None:
        return mapped
    meta = pod.get("metadata") or {}
    try:
        gpus, cpu, mem = _requests(pod)
    except ValueError:
        gpus, cpu, mem = 1, 0, 0
    annotations = meta.get("annotations") or {}
    if gpus <= 0 and annotations.get(wk.ANNOTATION_GPU_MILLI):
        gpus = 1
    value = Pod(
        namespace=text(meta.get("namespace")),
        name=text(meta.get("name")),
        uid=text(meta.get("uid")),
        class_name=cls.name if cls else "",
        gpus=max(0, gpus),
        cpu_milli=cpu,
        memory_mib=mem,
        creation_time=parse_time(meta.get("creationTimestamp")),
        labels=str_map(meta.get("labels")),
        tenant=tenant,
    )
    return Mapped(value, [*mapped.problems, f"charged as {value.gpus} whole GPU(s)"])


def gpu_ids(pod: Mapping[str, Any]) -> Mapped:
    """The GPU indices recorded on a bound pod (``ballast.dev/gpu-ids``).

    ``value`` is a tuple of ints, or None when the annotation is absent;
    see :func:`ballast.api.wellknown.parse_gpu_ids` (shared with the node
    agent) for what is accepted.
    """
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(GPU_IDS_ANNOTATION)
    parsed = wk.parse_gpu_ids(None if raw is None else str(raw))
    return Mapped(parsed.value, parsed.problems)


GPU_IDS_ANNOTATION = wk.ANNOTATION_GPU_IDS
