"""What the node-pool reconciler writes: the class's pool status and the node patch.

:mod:`ballast.controller.nodepools` decides which nodes each pool holds;
this module turns one pass's outcome into what is written: a class's
``status.pool`` and ``PoolReady`` condition (with the reason and a message
a platform team can act on), and the merge patch that gives a node exactly
the label, taint and annotations of its membership. Pure: no I/O, no clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ballast.api.wellknown import LABEL_POOL, TAINT_POOL
from ballast.controller.conditions import Cond, merge_conditions, rfc3339
from ballast.controller.nodepool_views import (
    ANNOTATION_BORROWABLE,
    ANNOTATION_MEMBER,
    ANNOTATION_PHASE,
    ANNOTATION_SINCE,
    CONDITION,
    TAINT_EFFECT,
    ClassView,
    Membership,
    PoolSpec,
)

# ---------------------------------------------------------------- the class status


@dataclass(frozen=True, slots=True)
class ClassPool:
    """What a class's status should say about its pool (``pool`` None: clear it)."""

    pool: dict[str, Any] | None
    condition: Cond | None


@dataclass
class PoolResult:
    """What one pass chose for one pool, as the class status reports it."""

    spec: PoolSpec
    members: list[str]
    pending: dict[str, int]  # node -> pods of other classes still there
    wanted_nodes: int
    wanted_gpus: int
    reserved_gpus: int
    used_gpus: int
    borrowed_gpus: int
    filled: bool
    held_by: dict[str, str]  # matching node -> pool that holds it
    hand_labelled: int


def class_status(
    c: ClassView,
    owners: Mapping[str, ClassView],
    results: Mapping[str, PoolResult],
) -> ClassPool:
    """What ``c``'s status says about its pool, given every pool's result."""
    if c.pool is None:
        return ClassPool(None, None)
    pool = c.pool.name
    owner = owners[pool]
    r = results[pool]
    status: dict[str, Any] = {
        "name": pool,
        "members": r.members,
        "pendingNodes": sorted(r.pending),
        "wantedNodes": r.wanted_nodes,
        "wantedGPUs": r.wanted_gpus,
        "reservedGPUs": r.reserved_gpus,
        "usedGPUs": r.used_gpus,
        "borrowedGPUs": r.borrowed_gpus,
        "borrowable": r.spec.allow_borrowing and r.spec.reserves,
        "definedBy": owner.name,
    }
    if owner.name != c.name and c.pool.reserves:
        return ClassPool(
            status,
            Cond(
                CONDITION,
                False,
                "PoolConflict",
                f"pool {pool} is defined by class {owner.name} (the oldest class that names it); "
                f"this class's reservedNodes/reservedGPUs are not applied: reserve in "
                f"{owner.name} or use another pool name",
            ),
        )
    return ClassPool(status, _condition(r, owners))


def _condition(r: PoolResult, owners: Mapping[str, ClassView]) -> Cond:
    pool = r.spec.name
    have = len(r.members)
    if not r.spec.reserves:
        if r.hand_labelled:
            return Cond(
                CONDITION, True, "NotReserved",
                f"pool {pool} reserves nothing; {r.hand_labelled} node(s) labelled "
                f"{LABEL_POOL}={pool} by hand form it",
            )  # fmt: skip
        return Cond(
            CONDITION, False, "NoNodes",
            f"no node carries {LABEL_POOL}={pool}: set nodePool.reservedNodes or "
            f"reservedGPUs, or label nodes by hand",
        )  # fmt: skip
    size = f"pool {pool} has {have} of {r.wanted_nodes} node(s)"
    if r.wanted_gpus:
        size += f" ({r.reserved_gpus} of {r.wanted_gpus} GPUs reserved)"
    if not r.filled:
        if r.held_by:
            holders: dict[str, list[str]] = {}
            for node, other in sorted(r.held_by.items()):
                holders.setdefault(other, []).append(node)
            parts = []
            for other, ns in sorted(holders.items()):
                who = owners[other].name if other in owners else "labelled by hand"
                parts.append(f"{', '.join(ns[:5])}{' ...' if len(ns) > 5 else ''} "
                             f"held by pool {other} ({who})")  # fmt: skip
            return Cond(
                CONDITION, False, "PoolConflict",
                f"{size}; matching nodes are in other pools and are not taken: "
                + "; ".join(parts),
            )  # fmt: skip
        return Cond(
            CONDITION, False, "NotEnoughNodes",
            f"{size}: not enough Ready, schedulable nodes match "
            f"(gpuProducts {list(r.spec.gpu_products) or 'any'}, "
            f"minGPUMemoryMiB {r.spec.min_gpu_memory_mib}); nothing is taken from other pools",
        )  # fmt: skip
    if r.pending:
        waiting = ", ".join(f"{n} ({k} pod(s))" for n, k in sorted(r.pending.items()))
        return Cond(
            CONDITION, False, "PendingJoin",
            f"{size}; waiting for pods of other classes to finish on {waiting}: "
            f"no new work of other classes lands there, running pods are not evicted",
        )  # fmt: skip
    return Cond(CONDITION, True, "Filled", f"{size}")


def status_differs(c: ClassView, want: ClassPool) -> bool:
    """Whether the class's status must be written to say ``want``."""
    if (c.status_pool or None) != want.pool:
        return True
    cur = next((x for x in c.conditions if x.get("type") == CONDITION), None)
    if want.condition is None:
        return cur is not None
    if cur is None:
        return True
    return (
        cur.get("status") != want.condition.status_text
        or cur.get("reason") != want.condition.reason
        or cur.get("message") != want.condition.message
        or cur.get("observedGeneration") != c.generation
    )


# ---------------------------------------------------------------- the node patch


def node_patch(node: Mapping[str, Any], want: Membership | None) -> dict[str, Any] | None:
    """The merge patch that gives ``node`` exactly ``want``'s pool fields, or None.

    Other labels, annotations and taints are kept; ``spec.taints`` is written
    whole (a list is replaced by a merge patch), so the patch carries the
    node's ``resourceVersion`` and fails with 409 if it changed since read.
    """
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    ann = meta.get("annotations") or {}
    taints = [t for t in (node.get("spec") or {}).get("taints") or () if isinstance(t, Mapping)]
    mine = ann.get(ANNOTATION_MEMBER)
    if want is None:
        if not mine:
            return None
        new_labels: dict[str, Any] = {LABEL_POOL: None} if labels.get(LABEL_POOL) == mine else {}
        new_ann: dict[str, Any] = {
            k: None
            for k in (ANNOTATION_MEMBER, ANNOTATION_SINCE, ANNOTATION_PHASE, ANNOTATION_BORROWABLE)
            if k in ann
        }
        keep = [t for t in taints if not (t.get("key") == TAINT_POOL and t.get("value") == mine)]
    else:
        new_labels = {} if labels.get(LABEL_POOL) == want.pool else {LABEL_POOL: want.pool}
        target = {
            ANNOTATION_MEMBER: want.pool,
            ANNOTATION_SINCE: rfc3339(want.since),
            ANNOTATION_PHASE: want.phase,
            ANNOTATION_BORROWABLE: "true" if want.borrowable else None,
        }
        new_ann = {k: v for k, v in target.items() if ann.get(k) != v}
        keep = [t for t in taints if t.get("key") != TAINT_POOL]
        keep.append({"key": TAINT_POOL, "value": want.pool, "effect": TAINT_EFFECT})
        # Keep the existing order when the pool taint is already there exactly once.
        if [t for t in taints if t.get("key") == TAINT_POOL] == [keep[-1]]:
            keep = list(taints)
    patch: dict[str, Any] = {"metadata": {"resourceVersion": meta.get("resourceVersion")}}
    if new_labels:
        patch["metadata"]["labels"] = new_labels
    if new_ann:
        patch["metadata"]["annotations"] = new_ann
    if [dict(t) for t in keep] != [dict(t) for t in taints]:
        patch["spec"] = {"taints": [dict(t) for t in keep]}
    if len(patch) == 1 and len(patch["metadata"]) == 1:
        return None
    return patch


def pool_conditions(
    old: Iterable[Mapping[str, Any]] | None,
    want: Cond | None,
    *,
    generation: int | None,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """The class's conditions with PoolReady set to ``want`` (removed when None)."""
    if want is None:
        return [dict(c) for c in old or () if c.get("type") != CONDITION]
    return merge_conditions(old, [want], generation=generation, now=now)
