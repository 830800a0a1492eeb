"""Preemption for and of gangs: victims for a whole group or none; a group is evicted whole.

For a group that does not fit, :func:`plan_group_preemption` walks its
members (largest first) on a copy of the snapshot: a member that fits is
assumed; one that does not gets the cheapest single-node plan of
:func:`~ballast.placement.preemption.plan_preemption`, its victims leave the
copy, and it is assumed in the room made. Only when at least ``need``
members have a place is anything returned; otherwise nothing is evicted.

A victim that belongs to a gang never leaves alone: :func:`whole_groups`
adds every placed member of its group to the victims, or refuses the plan
when one of them may not be preempted (class, minimum runtime, disruption
budget). Pure: the caller's snapshot is never changed.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping, Sequence

from ballast.placement.admission import QuotaSet
from ballast.placement.engine import Engine
from ballast.placement.gang import member_order
from ballast.placement.objects import DEFAULT_CLASS, DisruptionBudget, Pod
from ballast.placement.preemption import PreemptionPlan, may_preempt, plan_preemption
from ballast.placement.snapshot import Placement, Snapshot

#: Victim uid → the uids of every placed member of its gang (itself included).
VictimGroups = Mapping[str, tuple[str, ...]]


def whole_groups(
    engine: Engine,
    snapshot: Snapshot,
    pod: Pod,
    plan: PreemptionPlan,
    groups: VictimGroups,
    *,
    now: float,
    budgets: Sequence[DisruptionBudget] = (),
) -> PreemptionPlan | None:
    """``plan`` with every gang victim's whole group added; None when a mate may not go."""
    if not groups or not any(v.uid in groups for v in plan.victims):
        return plan
    cls = engine.class_of(pod)
    victims: dict[str, Placement] = {v.uid: v for v in plan.victims}
    for v in plan.victims:
        for uid in groups.get(v.uid, ()):
            mate = snapshot.pods.get(uid)
            if mate is None or uid in victims:
                continue
            mcls = engine.classes.get(mate.class_name, DEFAULT_CLASS)
            if now - mate.start_time < mcls.preemption.min_runtime_s:
                return None
            if not may_preempt(cls, pod, mate, mcls):
                return None
            victims[uid] = mate
    chosen = tuple(victims.values())
    for b in budgets:
        if sum(1 for v in chosen if b.matches(v.namespace, v.labels)) > b.disruptions_allowed:
            return None
    return PreemptionPlan(plan.pod, plan.node, chosen)


def plan_group_preemption(
    engine: Engine,
    snapshot: Snapshot,
    members: Sequence[Pod],
    *,
    now: float,
    need: int | None = None,
    budgets: Sequence[DisruptionBudget] = (),
    quotas: QuotaSet | None = None,
    exclude: Collection[str] = (),
    claimed: Collection[str] = (),
    groups: VictimGroups | None = None,
    seed: int = 0,
) -> list[tuple[Pod, PreemptionPlan]] | None:
    """One plan per member that needs room, such that at least ``need`` members fit; or None."""
    order = member_order(members)
    want = len(order) if need is None else max(1, min(need, len(order)))
    snap = copy.deepcopy(snapshot)
    taken = set(claimed) | {p.id for p in order}  # never a member of the group itself
    nodes = set(exclude)
    plans: list[tuple[Pod, PreemptionPlan]] = []
    placed = 0
    for pod in order:
        d = engine.decide(snap, pod, now=now, seed=seed)
        if d.node is None:
            plan = plan_preemption(engine, snap, pod, now=now, budgets=budgets, quotas=quotas,
                                   seed=seed, exclude=nodes, claimed=taken)  # fmt: skip
            if plan is not None:
                plan = whole_groups(engine, snap, pod, plan, groups or {}, now=now,
                                    budgets=budgets)  # fmt: skip
            if plan is None:
                continue
            for v in plan.victims:
                snap.forget(v.uid)
                taken.add(v.uid)
            d = engine.decide(snap, pod, now=now, seed=seed, nominated=plan.node)
            if d.node is None:
                continue
            nodes.add(plan.node)
            plans.append((pod, PreemptionPlan(plan.pod, d.node, plan.victims)))
        snap.assume(pod, d.node, d.gpus, start_time=now, tier=engine.class_of(pod).tier)
        placed += 1
    if placed < want or not plans:
        return None
    return plans
