"""GPU node pools: which nodes each pool holds, as a pure function of what the operator sees.

The handlers (``controller/handlers/nodepools.py``) keep compact views of
nodes, pods and WorkloadClasses in kopf indexes and call :func:`plan`; this
module decides, with no I/O and no clock of its own:

- **members**: for every pool (``nodePool.name``) with a reservation, the
  nodes whose ``nvidia.com/gpu.product`` / ``nvidia.com/gpu.memory`` labels
  match, up to ``reservedNodes`` nodes and enough nodes to hold
  ``reservedGPUs`` GPUs;
- **preference** (deterministic and stable): nodes that do not run pods
  of other classes first, then nodes already in the pool, then nodes that
  run the class's pods, then by name;
- **hysteresis**: a member stays at least ``dwell`` after it was chosen
  while the pool exists and the node still matches;
- **no stealing**: a node of another pool is never taken; a chosen node that
  still runs pods of other classes is ``Pending`` (labelled and tainted, so
  no new foreign work lands, its pods are never touched) and joins when they
  are gone;
- **conflicts**: a node in a pool stays there; a free node wanted by several
  pools goes to the pool of the oldest class (``creationTimestamp``, then
  name); the class that went short gets ``PoolReady=False, PoolConflict``;
- **status** per class: ``status.pool`` and the ``PoolReady`` condition
  (worded in :mod:`ballast.controller.nodepool_writes`, which also builds
  the node patch).

What Ballast writes on a member node (see docs/operator.md, "Node pools"):
the label ``ballast.dev/pool=<pool>``, the taint
``ballast.dev/pool=<pool>:NoSchedule`` (the toleration the webhook gives
the class's pods), and the ``ballast.dev/pool-*`` annotations
(:mod:`ballast.controller.nodepool_views`). The annotation
``ballast.dev/pool-member`` is how Ballast knows a node is its own: nodes
labelled by hand without it are never changed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ballast.controller.nodepool_views import (
    ClassView,
    Membership,
    NodeView,
    Phase,
    PodView,
    PoolSpec,
)
from ballast.controller.nodepool_writes import ClassPool, PoolResult, class_status

# ---------------------------------------------------------------- the plan


@dataclass(frozen=True, slots=True)
class NodeChange:
    """One node whose pool fields must be written (``want`` None: give it back)."""

    node: str
    want: Membership | None
    owner: str  # the class the change is reported on ("" when the class is gone)
    reason: str  # event reason: PoolNodeAdded, PoolNodeJoined, PoolNodeRestored, PoolNodeReleased
    why: str
    expected: str | None = None  # the node's ballast.dev/pool-member when planned


@dataclass
class Plan:
    """The outcome of one pass over every pool."""

    changes: list[NodeChange] = field(default_factory=list)
    status: dict[str, ClassPool] = field(default_factory=dict)
    next_review: dt.datetime | None = None  # when a dwell ends and a surplus member may leave

    def wake(self, at: dt.datetime) -> None:
        """Ask for another pass at ``at`` (the earliest request wins)."""
        if self.next_review is None or at < self.next_review:
            self.next_review = at


def in_sync(node: NodeView, want: Membership | None) -> bool:
    """Whether the node already carries exactly what ``want`` asks (labels, taint, notes)."""
    if want is None:
        return node.member_of is None
    return (
        node.member_of == want.pool
        and node.pool_label == want.pool
        and node.pool_taints == (want.pool,)
        and node.since == want.since
        and node.phase == want.phase
        and node.borrowable == want.borrowable
    )


def _blockers(pool: str, sharers: frozenset[str], pods: Sequence[PodView]) -> list[PodView]:
    """Pods on a node that keep it from joining ``pool``: not daemons, not of a class
    that names the pool, not tolerating its taint."""
    return [p for p in pods if not p.daemon and p.cls not in sharers and not p.tolerates(pool)]


def _free(node: NodeView) -> bool:
    """A node no pool holds (by Ballast or by hand) and that can take new work."""
    return (
        node.member_of is None
        and node.pool_label is None
        and not node.pool_taints
        and node.ready
        and not node.unschedulable
    )


def applied(node: NodeView, want: Membership | None) -> NodeView:
    """The node as it reads after ``node_patch(node, want)`` is written."""
    if want is None:
        mine = node.member_of
        return dataclasses.replace(
            node,
            pool_label=None if node.pool_label == mine else node.pool_label,
            pool_taints=tuple(t for t in node.pool_taints if t != mine),
            member_of=None,
            since=None,
            phase=None,
            borrowable=False,
        )
    return dataclasses.replace(
        node,
        pool_label=want.pool,
        pool_taints=(want.pool,),
        member_of=want.pool,
        since=want.since,
        phase=want.phase,
        borrowable=want.borrowable,
    )


MAX_ROUNDS = 4


def plan(
    classes: Iterable[ClassView],
    nodes: Iterable[NodeView],
    pods: Iterable[PodView],
    *,
    now: dt.datetime,
    dwell: dt.timedelta,
) -> Plan:
    """Choose every pool's members and each class's pool status.

    Deterministic: the result depends on the inputs' content, never on their
    order. Stable: applying it and planning again with the same pods changes
    nothing. A node one pool gives back may be taken by another in the same
    plan, so rounds are repeated over the planned state until nothing moves
    (a node then gets one change: from what it is to what it ends as).
    """
    classes = list(classes)
    pods = list(pods)
    start = {n.name: n for n in nodes}
    state = dict(start)
    last: dict[str, NodeChange] = {}
    out = Plan()
    for _ in range(MAX_ROUNDS):
        out = _plan_once(classes, state.values(), pods, now=now, dwell=dwell)
        if not out.changes:
            break
        for c in out.changes:
            state[c.node] = applied(state[c.node], c.want)
            last[c.node] = c
    changes = []
    for name, c in sorted(last.items()):
        was, now_is = start[name], state[name]
        if was == now_is:
            continue
        want = None if now_is.member_of is None else Membership(
            now_is.member_of, now_is.since or now, now_is.phase or "Pending", now_is.borrowable
        )  # fmt: skip
        changes.append(dataclasses.replace(c, want=want, expected=was.member_of))
    out.changes = changes
    return out


def _plan_once(
    classes: Iterable[ClassView],
    nodes: Iterable[NodeView],
    pods: Iterable[PodView],
    *,
    now: dt.datetime,
    dwell: dt.timedelta,
) -> Plan:
    out = Plan()
    by_name = {n.name: n for n in sorted(nodes, key=lambda n: n.name)}
    pods_on: dict[str, list[PodView]] = {}
    for p in pods:
        pods_on.setdefault(p.node, []).append(p)

    ordered = sorted(classes, key=lambda c: c.order)
    sharers: dict[str, list[ClassView]] = {}
    frozen: set[str] = set()
    for c in ordered:
        if c.pool is not None:
            sharers.setdefault(c.pool.name, []).append(c)
        elif c.invalid and c.invalid_pool_name:
            frozen.add(c.invalid_pool_name)
    owners = {pool: cs[0] for pool, cs in sharers.items()}
    names_of = {pool: frozenset(c.name for c in cs) for pool, cs in sharers.items()}

    # Phase 1: current members stay claimed by a pool that still exists and they still match.
    claimed: dict[str, str] = {}
    current: dict[str, list[NodeView]] = {}
    for node in by_name.values():
        pool = node.member_of
        if pool is None:
            continue
        if pool in frozen and pool not in owners:
            claimed[node.name] = pool  # an invalid class: leave its nodes exactly as they are
            continue
        owner = owners.get(pool)
        if owner is None or owner.pool is None:
            out.changes.append(
                NodeChange(node.name, None, "", "PoolNodeReleased",
                           f"node {node.name} leaves pool {pool}: no class names it", pool)
            )  # fmt: skip
            continue
        if not owner.pool.reserves or not owner.pool.matches(node):
            why = "it reserves nothing" if not owner.pool.reserves else "the node no longer matches"
            out.changes.append(
                NodeChange(node.name, None, owner.name, "PoolNodeReleased",
                           f"node {node.name} leaves pool {pool}: {why}", pool)
            )  # fmt: skip
            continue
        claimed[node.name] = pool
        current.setdefault(pool, []).append(node)

    # Phase 2: pools in class order keep or add members; older classes pick free nodes first.
    results: dict[str, PoolResult] = {}
    for pool, owner in sorted(owners.items(), key=lambda kv: kv[1].order):
        assert owner.pool is not None
        results[pool] = _choose(
            owner, owner.pool, names_of[pool], current.get(pool, []), by_name, pods_on,
            claimed, now, dwell, out,
        )  # fmt: skip

    for c in ordered:
        if not c.invalid:  # an invalid nodePool is reported by the class's own reconciliation
            out.status[c.name] = class_status(c, owners, results)
    return out


def _choose(
    owner: ClassView,
    spec: PoolSpec,
    sharers: frozenset[str],
    members: list[NodeView],
    by_name: Mapping[str, NodeView],
    pods_on: Mapping[str, list[PodView]],
    claimed: dict[str, str],
    now: dt.datetime,
    dwell: dt.timedelta,
    out: Plan,
) -> PoolResult:
    pool = spec.name
    member_names = {n.name for n in members}

    def blockers(n: NodeView) -> list[PodView]:
        if n.name in member_names and n.phase == "Joined":
            return []  # joined: foreign pods now are borrowers (or started before the taint)
        return _blockers(pool, sharers, pods_on.get(n.name, ()))

    def own(n: NodeView) -> bool:
        return any(p.cls in sharers for p in pods_on.get(n.name, ()))

    candidates = list(members)
    if spec.reserves:
        candidates += [
            n for n in by_name.values()
            if n.name not in claimed and _free(n) and spec.matches(n)
        ]  # fmt: skip
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)

    def preference(n: NodeView) -> tuple[bool, bool, dt.datetime, bool, str]:
        # Free of other classes' pods, already a member (the longest-standing first), running
        # the class's pods, name. Members sort by seniority so that re-planning after this
        # plan is applied picks the same nodes (stability).
        member = n.name in member_names
        since = (n.since or now) if member else epoch
        return (bool(blockers(n)), not member, since, not own(n), n.name)

    candidates.sort(key=preference)

    chosen: list[NodeView] = []
    gpus = 0
    for n in candidates:
        if len(chosen) >= spec.reserved_nodes and gpus >= spec.reserved_gpus:
            break
        chosen.append(n)
        gpus += n.gpus
    filled = len(chosen) >= spec.reserved_nodes and gpus >= spec.reserved_gpus
    chosen_names = {n.name for n in chosen}

    # Members not needed any more: a joined one stays until its dwell has passed.
    for n in members:
        if n.name in chosen_names:
            continue
        since = n.since or now
        if n.phase == "Joined" and since + dwell > now:
            chosen.append(n)
            chosen_names.add(n.name)
            out.wake(since + dwell)
            continue
        claimed.pop(n.name, None)
        why = "surplus" if n.phase == "Joined" else "replaced by a free node"
        out.changes.append(
            NodeChange(n.name, None, owner.name, "PoolNodeReleased",
                       f"node {n.name} leaves pool {pool} ({why})", pool)
        )  # fmt: skip

    pending: dict[str, int] = {}
    result_members: list[str] = []
    for n in sorted(chosen, key=lambda n: n.name):
        claimed[n.name] = pool
        result_members.append(n.name)
        block = blockers(n)
        phase: Phase = "Pending" if block else "Joined"
        if block:
            pending[n.name] = len(block)
        new = n.name not in member_names
        since = now if new or n.since is None else n.since
        want = Membership(pool, since, phase, spec.allow_borrowing and phase == "Joined")
        if not in_sync(n, want):
            if new and phase == "Joined":
                reason, why = "PoolNodeAdded", f"node {n.name} joins pool {pool}"
            elif new:
                reason, why = (
                    "PoolNodeAdded",
                    (
                        f"node {n.name} chosen for pool {pool}, pending join: {len(block)} pod(s) "
                        f"of other classes still run there"
                    ),
                )
            elif n.phase == "Pending" and phase == "Joined":
                reason = "PoolNodeJoined"
                why = f"node {n.name} joins pool {pool}: the pods of other classes are gone"
            else:
                reason, why = "PoolNodeRestored", f"node {n.name} restored in pool {pool}"
            out.changes.append(
                NodeChange(n.name, want, owner.name, reason, why, None if new else pool)
            )

    reserved = sum(by_name[m].gpus for m in result_members if m not in pending)
    used = borrowed = 0
    for m in result_members:
        for p in pods_on.get(m, ()):
            used += p.gpus
            if p.cls not in sharers:
                borrowed += p.gpus
    held_by = {
        n.name: claimed[n.name]
        for n in by_name.values()
        if n.name in claimed and claimed[n.name] != pool and spec.matches(n)
    }
    held_by.update(
        {n.name: n.pool_label or "" for n in by_name.values()
         if n.member_of is None and n.pool_label not in (None, pool) and spec.matches(n)}
    )  # fmt: skip
    hand = sum(1 for n in by_name.values() if n.member_of is None and n.pool_label == pool)
    wanted_nodes = max(spec.reserved_nodes, len(chosen) if filled else 0)
    if not filled and gpus < spec.reserved_gpus:
        per_node = max([n.gpus for n in by_name.values() if spec.matches(n)] or [1])
        wanted_nodes = max(
            spec.reserved_nodes, len(chosen) + math.ceil((spec.reserved_gpus - gpus) / per_node)
        )
    elif filled and spec.reserved_gpus:
        wanted_nodes = max(spec.reserved_nodes, _needed(chosen, spec))
    return PoolResult(
        spec=spec,
        members=result_members,
        pending=pending,
        wanted_nodes=wanted_nodes,
        wanted_gpus=spec.reserved_gpus,
        reserved_gpus=reserved,
        used_gpus=used,
        borrowed_gpus=borrowed,
        filled=filled,
        held_by=held_by,
        hand_labelled=hand,
    )


def _needed(chosen: Sequence[NodeView], spec: PoolSpec) -> int:
    """Nodes of ``chosen`` (largest first) needed to hold the reserved GPUs."""
    total = 0
    for k, n in enumerate(sorted(chosen, key=lambda n: -n.gpus), start=1):
        total += n.gpus
        if total >= spec.reserved_gpus:
            return k
    return len(chosen)
