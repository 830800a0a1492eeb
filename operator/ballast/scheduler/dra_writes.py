"""Writing a DRA allocation: each claim's ``status.allocation`` and ``reservedFor``, then the bind.

One write does both, in order, so a pod is never bound before its claims
are allocated and reserved for it (the kubelet refuses to start a pod whose
claims are not). The write is idempotent: a claim that already carries the
same allocation and reservation is left alone, so a retried write after a
lost answer does no harm; a claim that changed under us (allocated to other
devices, or updated since it was read) fails the write with 409, and the
scheduler decides again.
"""

from __future__ import annotations

import queue
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ballast.kube import compat
from ballast.kube.raw import MERGE, PODS, Kube, KubeError, Resource
from ballast.scheduler.actions import Actions, condition_key
from ballast.scheduler.informer import Event, Informer
from ballast.scheduler.writer import _Write

RESOURCECLAIMS = Resource("resource.k8s.io", "v1", "resourceclaims", True)
RESOURCESLICES = Resource("resource.k8s.io", "v1", "resourceslices", False)
DEVICECLASSES = Resource("resource.k8s.io", "v1", "deviceclasses", False)


@dataclass(frozen=True, slots=True)
class ClaimWrite:
    """What one claim must say before the pod is bound.

    ``allocation`` is None for a claim that is already allocated (only the
    reservation is added).
    """

    namespace: str
    name: str
    uid: str
    allocation: Mapping[str, Any] | None
    resource_version: str = ""  # as the informer saw it unallocated: one PATCH, no GET


def allocation_body(node: str, results: Sequence[Mapping[str, str]], now: str) -> dict[str, Any]:
    """``status.allocation`` for devices on ``node`` (node-local slices: a metadata.name selector)."""
    return {
        "devices": {"results": [dict(r) for r in results]},
        "nodeSelector": {
            "nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
            ]
        },
        "allocationTimestamp": now,
    }


def _same_devices(a: Any, b: Mapping[str, Any]) -> bool:
    def keys(x: Any) -> set[tuple[str, ...]]:
        res = ((x or {}).get("devices") or {}).get("results") or []
        return {(r.get("request"), r.get("driver"), r.get("pool"), r.get("device")) for r in res}

    return keys(a) == keys(b)


def _claim_send(actions: Actions, w: ClaimWrite, pod: Mapping[str, Any]) -> None:
    meta = pod["metadata"]
    path = RESOURCECLAIMS.path(w.name, w.namespace)
    if w.allocation is not None and w.resource_version:
        # The claim was unallocated (so reserved for no one) at this resourceVersion.
        ref = {"resource": "pods", "name": meta["name"], "uid": meta["uid"]}
        body = {"metadata": {"resourceVersion": w.resource_version},
                "status": {"allocation": dict(w.allocation), "reservedFor": [ref]}}  # fmt: skip
        try:
            actions.kube.request("PATCH", f"{path}/status", body=body, content_type=MERGE,
                                 timeout=actions.timeout_s, retries=False)  # fmt: skip
            return
        except KubeError as exc:
            if exc.status != 409:
                raise
        # Changed since the informer saw it (or our own earlier try landed): read and check.
    live = actions.kube.request("GET", path, timeout=actions.timeout_s, retries=False)
    lmeta = live.get("metadata") or {}
    status = live.get("status") or {}
    if lmeta.get("uid") != w.uid:
        raise KubeError(409, "Conflict", {"message": f"claim {w.name} was replaced"})
    reserved = [r for r in status.get("reservedFor") or [] if isinstance(r, dict)]
    is_reserved = any(r.get("uid") == meta["uid"] for r in reserved)
    current = status.get("allocation")
    patch: dict[str, Any] = {}
    if w.allocation is not None:
        if current and not _same_devices(current, w.allocation):
            raise KubeError(409, "Conflict", {"message": f"claim {w.name} allocated elsewhere"})
        if not current:
            patch["allocation"] = dict(w.allocation)
    elif not current:
        raise KubeError(409, "Conflict", {"message": f"claim {w.name} lost its allocation"})
    if not is_reserved:
        ref = {"resource": "pods", "name": meta["name"], "uid": meta["uid"]}
        patch["reservedFor"] = [*reserved, ref]
    if not patch:
        return
    body = {"metadata": {"resourceVersion": lmeta.get("resourceVersion")}, "status": patch}
    actions.kube.request("PATCH", f"{path}/status", body=body, content_type=MERGE,
                         timeout=actions.timeout_s, retries=False)  # fmt: skip


def bind_with_claims(
    actions: Actions,
    pod: Mapping[str, Any],
    node: str,
    annotations: Mapping[str, str],
    claims: Sequence[ClaimWrite],
) -> None:
    """Allocate and reserve ``claims`` for ``pod``, then bind it (one ``bind`` result)."""
    meta = pod["metadata"]
    pod_path = PODS.path(meta["name"], meta["namespace"])
    actions.supersede(condition_key(meta["uid"]))
    body = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": meta["name"], "uid": meta["uid"], "annotations": dict(annotations)},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    }

    def send() -> Any:
        for w in claims:
            _claim_send(actions, w, pod)
        return actions.kube.request("POST", f"{pod_path}/binding", body=body,
                                    timeout=actions.timeout_s, retries=False)  # fmt: skip

    def bound_here() -> bool:
        try:
            live = actions.kube.request("GET", pod_path, timeout=actions.timeout_s, retries=False)
        except Exception:
            return False
        return bool((live.get("spec") or {}).get("nodeName") == node)

    actions._submit(
        _Write("bind", meta["uid"], send, 0, actions.backoff, {"node": node}, report_ok=True,
               name=f"{meta['namespace']}/{meta['name']}", on_conflict=bound_here)
    )  # fmt: skip


def dra_informers(kube: Kube, events: queue.Queue[Event], required: set[str]) -> list[Informer]:
    """Informers for slices, classes and claims where the server serves ``resource.k8s.io/v1``.

    Each becomes required: the scheduler decides only once all have listed.
    """
    if not compat.serves(kube.get, "resource.k8s.io/v1", RESOURCECLAIMS.plural):
        return []
    out = []
    for res in (RESOURCESLICES, DEVICECLASSES, RESOURCECLAIMS):
        required.add(res.plural)
        out.append(Informer(kube, res, events))
    return out
