"""What the node-pool reconciler reads: nodes, pods and classes as small typed views.

Parsing is tolerant (a malformed object becomes an empty or partial view,
never an exception); :mod:`ballast.controller.nodepools` plans on these.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ballast.api.v1alpha1.workloadclass import NodePool
from ballast.api.wellknown import (
    ANNOTATION_POOL_BORROWABLE,
    GPU_RESOURCE,
    GROUP,
    LABEL_CLASS,
    LABEL_GPU_COUNT,
    LABEL_GPU_MEMORY_MIB,
    LABEL_GPU_PRODUCT,
    LABEL_POOL,
    TAINT_POOL,
)

# Annotations Ballast keeps on the nodes it put in a pool.
ANNOTATION_MEMBER = f"{GROUP}/pool-member"  # the pool; its presence means "Ballast's"
ANNOTATION_SINCE = f"{GROUP}/pool-since"  # RFC 3339: when the node was chosen (dwell)
ANNOTATION_PHASE = f"{GROUP}/pool-phase"  # Pending | Joined
ANNOTATION_BORROWABLE = ANNOTATION_POOL_BORROWABLE  # "true": others may borrow idle GPUs
TAINT_EFFECT = "NoSchedule"  # must equal webhook.mutate.POOL_TOLERATION_EFFECT
CONDITION = "PoolReady"
DEFAULT_DWELL_SECONDS = 300.0

Phase = Literal["Pending", "Joined"]


@dataclass(frozen=True, slots=True)
class Membership:
    """What Ballast wants on a node it keeps in a pool (written by ``nodepool_writes.node_patch``)."""

    pool: str
    since: dt.datetime
    phase: Phase
    borrowable: bool


# ---------------------------------------------------------------- views


@dataclass(frozen=True, slots=True)
class NodeView:
    """What the pool logic reads from a Node."""

    name: str
    product: str = ""
    gpu_memory_mib: int = 0
    gpus: int = 0
    ready: bool = True
    unschedulable: bool = False
    pool_label: str | None = None
    pool_taints: tuple[str, ...] = ()  # values of ballast.dev/pool NoSchedule taints
    member_of: str | None = None  # ballast.dev/pool-member
    since: dt.datetime | None = None
    phase: Phase | None = None
    borrowable: bool = False


@dataclass(frozen=True, slots=True)
class PodView:
    """A live pod bound to a node, as far as pools care."""

    node: str
    cls: str = ""
    gpus: int = 0
    tolerates_all: bool = False  # an Exists toleration for the pool key (or every key)
    tolerated: frozenset[str] = frozenset()  # pool names whose taint it tolerates
    daemon: bool = False  # owned by a DaemonSet: runs on every node, never blocks

    def tolerates(self, pool: str) -> bool:
        """Whether the pod tolerates ``ballast.dev/pool=<pool>:NoSchedule``."""
        return self.tolerates_all or pool in self.tolerated


@dataclass(frozen=True, slots=True)
class PoolSpec:
    """The parts of ``nodePool`` that choose members."""

    name: str
    gpu_products: tuple[str, ...] = ()
    min_gpu_memory_mib: int = 0
    reserved_nodes: int = 0
    reserved_gpus: int = 0
    allow_borrowing: bool = True

    @property
    def reserves(self) -> bool:
        """Whether the pool holds nodes at all."""
        return self.reserved_nodes > 0 or self.reserved_gpus > 0

    def matches(self, node: NodeView) -> bool:
        """The node's GPU labels fit the pool (model, memory per GPU, at least one GPU)."""
        if node.gpus <= 0:
            return False
        if self.gpu_products and node.product not in self.gpu_products:
            return False
        return node.gpu_memory_mib >= self.min_gpu_memory_mib


@dataclass(frozen=True, slots=True)
class ClassView:
    """A WorkloadClass as the pool logic needs it."""

    name: str
    uid: str = ""
    created: str = ""  # metadata.creationTimestamp (RFC 3339 sorts as text)
    generation: int | None = None
    pool: PoolSpec | None = None
    invalid: bool = False  # nodePool did not validate: its pool is left as it is
    invalid_pool_name: str | None = None
    status_pool: Mapping[str, Any] | None = None
    conditions: tuple[Mapping[str, Any], ...] = ()

    @property
    def order(self) -> tuple[str, str]:
        """Conflict order: the older class first, then by name."""
        return (self.created, self.name)


# ---------------------------------------------------------------- parsing


def _int(raw: Any) -> int:
    try:
        return max(0, int(str(raw)))
    except (TypeError, ValueError):
        return 0


def _time(raw: Any) -> dt.datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        t = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def node_view(node: Mapping[str, Any]) -> NodeView:
    """Parse a Node (never raises on odd input: missing or bad values read as absent)."""
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    ann = meta.get("annotations") or {}
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    gpus = _int(labels.get(LABEL_GPU_COUNT))
    if not gpus:
        gpus = _int((status.get("allocatable") or {}).get(GPU_RESOURCE))
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or ()
        if isinstance(c, Mapping)
    )
    taints = tuple(
        str(t.get("value") or "")
        for t in spec.get("taints") or ()
        if isinstance(t, Mapping) and t.get("key") == TAINT_POOL and t.get("effect") == TAINT_EFFECT
    )
    phase = ann.get(ANNOTATION_PHASE)
    member = ann.get(ANNOTATION_MEMBER) or None
    return NodeView(
        name=str(meta.get("name", "")),
        product=str(labels.get(LABEL_GPU_PRODUCT, "")),
        gpu_memory_mib=_int(labels.get(LABEL_GPU_MEMORY_MIB)),
        gpus=gpus,
        ready=ready,
        unschedulable=bool(spec.get("unschedulable")),
        pool_label=labels.get(LABEL_POOL),
        pool_taints=taints,
        member_of=member,
        since=_time(ann.get(ANNOTATION_SINCE)) if member else None,
        phase=(phase if phase in ("Pending", "Joined") else "Pending") if member else None,
        borrowable=ann.get(ANNOTATION_BORROWABLE) == "true",
    )


def pod_gpus(spec: Mapping[str, Any]) -> int:
    """Whole GPUs a pod asks for: the sum over its containers (requests, else limits)."""
    total = 0
    for c in spec.get("containers") or ():
        res = (c or {}).get("resources") or {}
        raw = (res.get("requests") or {}).get(GPU_RESOURCE)
        if raw is None:
            raw = (res.get("limits") or {}).get(GPU_RESOURCE)
        total += _int(raw)
    return total


def pod_view(pod: Mapping[str, Any]) -> PodView | None:
    """A bound, live pod's view; None for unbound or finished pods."""
    spec = pod.get("spec") or {}
    node = spec.get("nodeName")
    phase = (pod.get("status") or {}).get("phase")
    if not node or phase in ("Succeeded", "Failed"):
        return None
    meta = pod.get("metadata") or {}
    every = False
    pools: set[str] = set()
    for t in spec.get("tolerations") or ():
        if not isinstance(t, Mapping) or t.get("effect") not in (None, "", TAINT_EFFECT):
            continue
        key = t.get("key") or ""
        op = t.get("operator") or "Equal"
        if key == "" and op == "Exists":
            every = True
        elif key == TAINT_POOL:
            if op == "Exists":
                every = True
            elif isinstance(t.get("value"), str):
                pools.add(t["value"])
    daemon = any(
        isinstance(o, Mapping) and o.get("kind") == "DaemonSet"
        for o in meta.get("ownerReferences") or ()
    )
    return PodView(
        node=str(node),
        cls=str((meta.get("labels") or {}).get(LABEL_CLASS, "")),
        gpus=pod_gpus(spec),
        tolerates_all=every,
        tolerated=frozenset(pools),
        daemon=daemon,
    )


def class_view(
    name: str,
    uid: str,
    meta: Mapping[str, Any],
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
) -> ClassView:
    """A WorkloadClass's view; a nodePool that does not validate freezes its pool."""
    raw = spec.get("nodePool")
    pool: PoolSpec | None = None
    invalid = False
    invalid_name: str | None = None
    if isinstance(raw, Mapping):
        try:
            np = NodePool.model_validate(dict(raw))
        except ValueError:
            invalid = True
            invalid_name = raw.get("name") if isinstance(raw.get("name"), str) else None
        else:
            if np.name:
                pool = PoolSpec(
                    name=np.name,
                    gpu_products=tuple(np.gpu_products or ()),
                    min_gpu_memory_mib=np.min_gpu_memory_mib,
                    reserved_nodes=np.reserved_nodes,
                    reserved_gpus=np.reserved_gpus,
                    allow_borrowing=np.allow_borrowing,
                )
    return ClassView(
        name=name,
        uid=uid,
        created=str(meta.get("creationTimestamp") or ""),
        generation=meta.get("generation"),
        pool=pool,
        invalid=invalid,
        invalid_pool_name=invalid_name,
        status_pool=status.get("pool"),
        conditions=tuple(c for c in status.get("conditions") or () if isinstance(c, Mapping)),
    )
