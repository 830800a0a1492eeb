"""Preemption from the scheduling thread: planning, checkpoint requests, evictions, plan ends.

The pure lifecycle of a plan lives in :mod:`ballast.scheduler.preempting`;
this mixin of :class:`~ballast.scheduler.core.Scheduler` carries it out:
it asks the planner for victims (also for ``forLocality`` classes that would
rather evict on a warm node than start cold), tells victims to checkpoint
(unless their class's ``signal`` is ``None``), evicts them when their grace
period is over, and releases what a finished or cancelled plan held.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from ballast.api import wellknown as wk
from ballast.clock import Clock
from ballast.placement.engine import Engine
from ballast.placement.objects import ClassPolicy, Pod
from ballast.placement.plugins.data_locality import NAME as DATA_LOCALITY
from ballast.placement.preemption import PreemptionPlan, plan_preemption, warm_nodes
from ballast.placement.snapshot import Snapshot
from ballast.scheduler.actions import Actions
from ballast.scheduler.hints import Change, Changes
from ballast.scheduler.metrics import SchedulerMetrics
from ballast.scheduler.podcache import PodCache, PodRecord
from ballast.scheduler.policies import Policies
from ballast.scheduler.preempting import Ended, Preemptions
from ballast.scheduler.schedqueue import SchedulingQueue


class Preempting:
    """Carries out preemption plans (see the module docstring)."""

    actions: Actions
    clock: Clock
    metrics: SchedulerMetrics
    snapshot: Snapshot
    pods: PodCache
    queue: SchedulingQueue
    policies: Policies
    preemptions: Preemptions
    engine: Engine
    changes: Changes

    if TYPE_CHECKING:  # defined by the scheduler or its other parts

        def _park(self, rec: PodRecord, reason: str, message: str) -> None: ...

        def _whole_groups(
            self, pod: Pod, plan: PreemptionPlan | None, now_s: float
        ) -> PreemptionPlan | None: ...

    def _preempt_for_locality(
        self, rec: PodRecord, epod: Pod, cls: ClassPolicy, chosen: str | None, now_s: float
    ) -> bool:
        """A class with ``forLocality`` makes room on a node caching its data (see the API).

        Only when the pod loads cached items, the engine would place it on a
        cold node (``chosen``) or nowhere (None: when it must preempt anyway,
        a warm node is tried before the cheapest cold one), and a preemption
        on a warm node is possible within policy.
        """
        if not (cls.preemption.for_locality and epod.item_keys):
            return False
        if not any(p.name == DATA_LOCALITY for p, _ in self.engine.weights(cls)):
            return False
        planned = self.preemptions.node_of(rec.uid)
        if planned is not None:
            # Room is being made on a warm node: a cold node that frees up
            # meanwhile does not win it back (that is what forLocality asks).
            if chosen is not None and planned in warm_nodes(self.snapshot, epod):
                self._park(rec, "Preempting", f"waiting for preempted pods to leave {planned}, "
                           "which caches the pod's data")  # fmt: skip
                return True
            return False
        warm = [n for n in warm_nodes(self.snapshot, epod) if n not in self.preemptions.nodes()]
        if not warm or chosen in warm:
            return False
        plan = plan_preemption(
            self.engine, self.snapshot, epod, now=now_s, budgets=self.policies.budgets(),
            quotas=self.policies.quota_set, nodes=warm, claimed=self.preemptions.claimed(),
        )  # fmt: skip
        plan = self._whole_groups(epod, plan, now_s)  # a gang goes whole or not at all
        if plan is None:
            return False
        self._start_preemption(rec, epod, cls, plan)
        return True

    def _could_preempt(self, pod: Pod, cls: ClassPolicy) -> bool:
        """Whether planning a preemption can help: the class preempts, owns a reserved
        pool, or its tenant may reclaim quota lent to its cohort."""
        if cls.preemption.may_preempt != "never" or cls.pool.reserved:
            return True
        quota = self.policies.quota_set.get(pod.tenant_key)
        return quota is not None and bool(quota.cohort)

    # ------------------------------------------------------------- preemption
    def _start_preemption(self, rec: PodRecord, epod: Pod, cls: ClassPolicy, plan: Any) -> None:
        now_m = self.clock.monotonic()
        graces: dict[str, float] = {}
        for v in plan.victims:
            graces[v.uid] = self.policies.class_policy(v.class_name).preemption.grace_period_s
        self.preemptions.start(epod.id, plan.node, graces, now_m)
        for uid, grace in graces.items():
            vrec = self.pods.get(uid)
            if vrec is None:
                continue
            vcls = self.policies.class_policy(vrec.labels.get(wk.LABEL_CLASS, ""))
            if not vcls.preemption.checkpoint:
                continue  # signal None: evicted after the grace period, not told first
            when = (self.clock.now() + dt.timedelta(seconds=grace)).strftime("%H:%M:%SZ")
            self.actions.request_checkpoint(
                vrec.obj, wk.ANNOTATION_CHECKPOINT_REQUEST,
                f"preempted by {epod.key} ({cls.tier} class {cls.name or 'default'}) to make room "
                f"on {plan.node}; checkpoint now, eviction at {when}",
            )  # fmt: skip
        self.metrics.attempts.labels("preempting").inc()
        self._park(rec, "Preempting", plan.message())

    def _advance_preemptions(self, now_m: float) -> None:
        for plan, uid in self.preemptions.due(now_m):
            vrec = self.pods.get(uid)
            if vrec is None:
                self.preemptions.victim_gone(uid)
                continue
            self.actions.evict(vrec.obj, plan.preemptor)
        for ended in self.preemptions.settle(now_m):
            self._end_plan(ended)

    def _end_plan(self, ended: Ended | None) -> None:
        """Release what a finished plan held, and let its preemptor compete again."""
        if ended is None:
            return
        for uid in ended.release:
            vrec = self.pods.get(uid)
            if vrec is not None:
                self.actions.withdraw_checkpoint(vrec.obj, wk.ANNOTATION_CHECKPOINT_REQUEST)
        rec = self.pods.get(ended.plan.preemptor)
        if ended.why in ("expired", "refused") and rec is not None:
            self.actions.event(rec.obj, "Normal", "PreemptionRetried",
                               f"preemption on {ended.plan.node} {ended.why}; planning again")  # fmt: skip
        if ended.why != "cancelled" and rec is not None and rec.stage == "parked":
            # Room made (or the plan lapsed): the preemptor competes again at once.
            rec.retry_at = 0.0
            self.queue.add(rec)
        self.changes.add(Change.VICTIMS)  # victims not evicted are free to be chosen again
