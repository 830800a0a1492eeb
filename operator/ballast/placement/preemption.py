"""Preemption planning: the cheapest set of pods on one node whose eviction lets a pod fit.

Only nodes the filters rejected for lack of resources are considered (a node
outside the pod's pool stays outside however many pods leave it). A victim
must be preemptible, past its class's minimum runtime, allowed by the
preemptor's class (``lower-tier``: a lower tier band; ``lower-priority``: a
lower (tier, priority) rank; ``never``: nothing), or be capacity it borrowed
from the preemptor's cohort or pool, and its eviction must fit every
PodDisruptionBudget. On each node all eligible pods are removed, then as many
as possible are put back, most important first (kube-scheduler's reprieve).
Between nodes the plan with the least important victims wins, then the
fewest, then the youngest (least run time lost).

The planner only plans: it returns victims and a nominated node and never
evicts anything.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import NamedTuple, ParamSpec

import numpy as np

from ballast.api.wellknown import LABEL_POOL
from ballast.placement.admission import QuotaSet
from ballast.placement.dra import HOLD_PREFIX
from ballast.placement.engine import Engine
from ballast.placement.framework import CycleState
from ballast.placement.objects import (
    DEFAULT_CLASS,
    MILLI,
    TIER_RANK,
    ClassPolicy,
    DisruptionBudget,
    Pod,
)
from ballast.placement.queue import rank
from ballast.placement.snapshot import Placement, Snapshot

P = ParamSpec("P")


@dataclass(frozen=True, slots=True)
class PreemptionPlan:
    """Victims to evict and the node to nominate once they are gone."""

    pod: str
    node: str
    victims: tuple[Placement, ...]

    def message(self) -> str:
        """One line for an event."""
        names = ", ".join(f"{v.namespace}/{v.name}" for v in self.victims)
        return f"preempting {len(self.victims)} pod(s) on {self.node} for {self.pod}: {names}"


class Outlook(NamedTuple):
    """A plan, or when none: the soonest a pod now kept only by its minimum runtime is free.

    ``protected_until`` (the planner's clock; None when a plan was found or
    no such pod exists) is when the first pod that the preemptor could take,
    but for its class's ``minRuntimeSeconds``, becomes takeable: nothing else
    happens in the cluster at that instant, so a caller that parks the
    preemptor sets a timer for it rather than waiting for an unrelated change.
    """

    plan: PreemptionPlan | None
    protected_until: float | None


def may_preempt(
    preemptor: ClassPolicy,
    pod: Pod,
    victim: Placement,
    victim_cls: ClassPolicy,
    *,
    reclaim: bool = False,
) -> bool:
    """Whether ``pod`` (of class ``preemptor``) may evict ``victim`` at all.

    ``reclaim`` is true when ``victim`` holds capacity borrowed from the
    preemptor (cohort quota or its reserved pool); a lender may take that back
    from pods of its own tier or below even when its class may not preempt.
    Minimum runtime and disruption budgets are checked separately.
    """
    if not victim_cls.preemption.preemptible:
        return False
    if reclaim and TIER_RANK[victim.tier] <= TIER_RANK[preemptor.tier]:
        return True
    rule = preemptor.preemption.may_preempt
    if rule == "lower-tier":
        return TIER_RANK[victim.tier] < TIER_RANK[preemptor.tier]
    if rule == "lower-priority":
        return rank(victim_cls, victim.priority) < rank(preemptor, pod.priority)
    return False


def _fits(state: CycleState, row: int, freed: Sequence[Placement]) -> bool:
    snap, pod = state.snapshot, state.pod
    free = state.free[row].copy()
    cpu = int(snap.cpu_free[row])
    mem = int(snap.mem_free[row])
    sick = row in state.sick
    for v in freed:
        for g in v.gpus:
            if not (sick and snap.gpu_sick[row, g]):
                free[g] += v.milli_per_gpu
        cpu += v.cpu_milli
        mem += v.memory_mib
    if pod.cpu_milli > cpu or pod.memory_mib > mem:
        return False
    if pod.gpus:
        return int(np.count_nonzero(free >= MILLI)) >= pod.gpus
    if pod.gpu_milli:
        return int(free.max()) >= pod.gpu_milli
    return True


def _lent_by_cohort(v: Placement, pod: Pod, cohort: str, quotas: QuotaSet | None) -> bool:
    """Whether ``v`` runs on quota its tenant borrowed from ``pod``'s cohort."""
    if not (quotas and v.borrowed and cohort and v.tenant_key != pod.tenant_key):
        return False
    vq = quotas.get(v.tenant_key)
    return vq is not None and vq.cohort == cohort


def _budget_ok(victims: Sequence[Placement], budgets: Sequence[DisruptionBudget]) -> bool:
    for b in budgets:
        hit = sum(1 for v in victims if b.matches(v.namespace, v.labels))
        if hit > b.disruptions_allowed:
            return False
    return True


def plan_outlook(
    engine: Engine,
    snapshot: Snapshot,
    pod: Pod,
    *,
    now: float,
    budgets: Sequence[DisruptionBudget] = (),
    quotas: QuotaSet | None = None,
    seed: int = 0,
    nodes: Collection[str] | None = None,
    exclude: Collection[str] = (),
    claimed: Collection[str] = (),
    exhaustive: bool = False,
) -> Outlook:
    """Plan the cheapest preemption for ``pod``, or say when one may become possible.

    Without a plan, the outlook names the instant the first pod kept only by
    its class's minimum runtime becomes takeable (see :class:`Outlook`).
    With ``nodes``, only those nodes are considered and a plan is made even
    though the pod fits elsewhere: this is how a class that opts in
    (``PreemptionPolicy.for_locality``) makes room next to its cached data
    instead of starting cold (see :func:`warm_nodes`). ``exclude`` names
    nodes not to plan on (a preemption is already under way there) and
    ``claimed`` the uids of pods already chosen as victims by another plan,
    so that concurrent preemptors spread over nodes instead of queueing for one.

    Once a plan is found, a node is skipped without trying its victims when
    even its best conceivable plan (its least important eligible victim
    alone, the least run time lost) could not beat it: on a full cluster of
    a thousand nodes this is most of them. The plan is the same as with
    ``exhaustive`` (every node tried; the reference the tests compare with).
    """
    state = engine.cycle(snapshot, pod, now, seed)
    filtered = engine.filter(state)
    candidates = filtered.resolvable
    if nodes is not None:
        wanted = np.array(sorted(snapshot.row(n) for n in nodes if n in snapshot), dtype=np.int64)
        candidates = candidates[np.isin(candidates, wanted)]
    elif filtered.feasible.shape[0]:
        return Outlook(None, None)
    cls = state.cls
    classes = engine.classes
    quota = quotas.get(pod.tenant_key) if quotas else None
    cohort = quota.cohort if quota else ""
    within_nominal = quota is not None and (
        snapshot.tenant_usage(pod.tenant_key).total_milli + pod.demand_milli <= quota.nominal_milli
    )
    pool_col = snapshot.labels.column(LABEL_POOL)
    pool_id = snapshot.labels.value_id(LABEL_POOL, cls.pool.name) if cls.pool.name else -3
    best: tuple[tuple[object, ...], PreemptionPlan] | None = None
    soonest: float | None = None  # the first minimum runtime to end among takeable pods
    for row in candidates.tolist():
        if exclude and snapshot.names[row] in exclude:
            continue
        in_pool = cls.pool.reserved and pool_col is not None and int(pool_col[row]) == pool_id
        eligible: list[tuple[tuple[object, ...], Placement]] = []
        ranks: list[tuple[int, int, int]] = []
        for v in snapshot.row_pods[row].values():
            if (claimed and v.uid in claimed) or v.uid.startswith(HOLD_PREFIX):
                continue  # another plan's victim, or a DRA claim's device hold (not a pod)
            vcls = classes.get(v.class_name, DEFAULT_CLASS)
            reclaim = (within_nominal and _lent_by_cohort(v, pod, cohort, quotas)) or (
                in_pool and vcls.pool.name != cls.pool.name
            )
            if not may_preempt(cls, pod, v, vcls, reclaim=reclaim):
                continue
            if any(
                b.matches(v.namespace, v.labels) and b.disruptions_allowed <= 0 for b in budgets
            ):
                continue
            free_at = v.start_time + vcls.preemption.min_runtime_s
            if now < free_at:
                soonest = free_at if soonest is None else min(soonest, free_at)
                continue
            # Borrowers of the preemptor's reserved pool first, then the cheapest:
            # lowest rank, then youngest (latest start).
            borrower = in_pool and vcls.pool.name != cls.pool.name
            ranks.append(rank(vcls, v.priority))
            eligible.append(((not borrower, ranks[-1], -v.start_time, v.uid), v))
        if not eligible:
            continue
        if best is not None and not exhaustive:
            # A lower bound of this node's key: (worst, count, lost, name) compared in order.
            ran = [now - v.start_time for _, v in eligible]
            ahead = sum(x for x in ran if x < 0)  # start times in the future (clock skew)
            least_lost = ahead if ahead < 0 else min(ran)
            least = (min(ranks), 1, least_lost, snapshot.names[row])
            if least >= best[0]:
                continue
        if not _fits(state, row, [v for _, v in eligible]):
            continue
        eligible.sort(key=lambda e: e[0])
        victims = [v for _, v in eligible]
        # Reprieve: put back the most important victims first while the pod still fits.
        for _, v in reversed(eligible):
            trial = [x for x in victims if x is not v]
            if _fits(state, row, trial):
                victims = trial
        if not _budget_ok(victims, budgets):
            continue
        worst = max(rank(classes.get(v.class_name, DEFAULT_CLASS), v.priority) for v in victims)
        lost = sum(now - v.start_time for v in victims)
        key = (worst, len(victims), lost, snapshot.names[row])
        if best is None or key < best[0]:
            plan = PreemptionPlan(pod.key, snapshot.names[row], tuple(victims))
            best = (key, plan)
    return Outlook(best[1], None) if best else Outlook(None, soonest)


def _plan_only(outlook: Callable[P, Outlook]) -> Callable[P, PreemptionPlan | None]:
    def plan(*args: P.args, **kwargs: P.kwargs) -> PreemptionPlan | None:
        return outlook(*args, **kwargs).plan

    plan.__doc__ = (
        "Plan the cheapest preemption for ``pod``; None when it fits already or nothing "
        "helps: the plan of :func:`plan_outlook` with the same arguments."
    )
    return plan


plan_preemption = _plan_only(plan_outlook)


def warm_nodes(snapshot: Snapshot, pod: Pod) -> list[str]:
    """Nodes that cache every model and dataset ``pod`` loads (empty when it loads none)."""
    keys = pod.item_keys
    if not keys:
        return []
    rows: set[int] | None = None
    for key in keys:
        held = set(snapshot.caches.holders(key).tolist())
        rows = held if rows is None else rows & held
    return [snapshot.names[r] for r in sorted(rows or ())]
