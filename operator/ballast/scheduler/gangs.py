"""Gangs from the scheduling thread: a pod group is admitted, placed and bound all or nothing.

A mixin of :class:`~ballast.scheduler.core.Scheduler`. When a pod of a gang
is tried, the whole group is tried (see :mod:`ballast.scheduler.groups` for
what makes a group and :mod:`ballast.placement.gang` for the placement):

- its PodGroup is missing or invalid: every member waits with the reason;
- the group's minimum has already started: the pod is scheduled alone;
- too few members exist yet: if those there fit, their places are reserved
  in the snapshot (nothing is bound, no GPU is held on a node) until the
  group's timeout, and the group waits for the rest;
- every member has a place and is admitted (quota, window, counted together):
  all are assumed and bound at once;
- otherwise no member is bound: all wait with the group's explanation
  (``waiting: 3 of 4 members fit; 1 needs 8 GPUs on one node``), or, where
  their class may preempt, victims are chosen for the whole group or none.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ballast.clock import Clock
from ballast.logs import kv
from ballast.placement import admission
from ballast.placement.engine import Engine
from ballast.placement.gang import GroupPlan, place_group
from ballast.placement.gang_preemption import plan_group_preemption, whole_groups
from ballast.placement.objects import ClassPolicy, Pod, WindowState
from ballast.placement.preemption import PreemptionPlan
from ballast.placement.snapshot import Snapshot
from ballast.scheduler import podspec
from ballast.scheduler.actions import Actions
from ballast.scheduler.config import Config
from ballast.scheduler.groups import (
    KUBE_KIND,
    PLUGINS_KIND,
    GroupBook,
    GroupKey,
    Reservation,
    pod_group,
)
from ballast.scheduler.hints import Changes
from ballast.scheduler.metrics import SchedulerMetrics
from ballast.scheduler.podcache import PodCache, PodRecord
from ballast.scheduler.policies import Policies
from ballast.scheduler.preempting import Ended, Preemptions
from ballast.scheduler.schedqueue import SchedulingQueue

log = logging.getLogger(__name__)

GROUP_KINDS = (PLUGINS_KIND, KUBE_KIND)
_PENDING = ("new", "active", "parked")


class Ganging:
    """Group scheduling for the scheduler (see the module docstring)."""

    actions: Actions
    clock: Clock
    config: Config
    metrics: SchedulerMetrics
    snapshot: Snapshot
    pods: PodCache
    queue: SchedulingQueue
    policies: Policies
    preemptions: Preemptions
    engine: Engine
    changes: Changes
    groups: GroupBook

    if TYPE_CHECKING:  # defined by the scheduler or its other parts

        def _park(
            self, rec: PodRecord, reason: str, message: str,
            rejections: Mapping[str, int] = {}, *, preempts: bool = False,
        ) -> None: ...  # fmt: skip

        def _view(self, rec: PodRecord) -> tuple[ClassPolicy | None, str, str]: ...

        def _end_plan(self, ended: Ended | None) -> None: ...

        def _could_preempt(self, pod: Pod, cls: ClassPolicy) -> bool: ...

        def _start_preemption(
            self, rec: PodRecord, epod: Pod, cls: ClassPolicy, plan: Any
        ) -> None: ...

    # ----------------------------------------------------------------- events
    def _on_group_object(self, kind: str, deleted: bool, obj: dict[str, Any]) -> None:
        """A PodGroup changed: its members are tried again (a problem is told on the object)."""
        key = self.groups.on_object(kind, deleted, obj)
        if key is None:
            return
        mapped = self.groups.specs.get(key)
        if mapped is not None and mapped.problems:
            self.metrics.invalid_objects.labels("PodGroup").inc()
            note = "; ".join(mapped.problems)[:900]
            log.warning("invalid object", extra=kv(kind="PodGroup", group=str(key), problems=note))
            self.actions.event(obj, "Warning", "InvalidGroup", note, kind="PodGroup",
                               api_version=str(obj.get("apiVersion") or ""))  # fmt: skip
        self._release(key)
        woken = [r for r in self._members(key) if r.stage == "parked"]
        self.queue.unpark(woken)

    def _known_groups(self, kind: str) -> list[dict[str, Any]]:
        """Minimal objects of the groups known from ``kind`` (relist pruning)."""
        return [
            {"metadata": {"namespace": k.namespace, "name": k.name}} for k in self.groups.keys(kind)
        ]

    # ---------------------------------------------------------------- members
    def _members(self, key: GroupKey) -> list[PodRecord]:
        return [
            rec
            for rec in self.pods.records.values()
            if rec.namespace == key.namespace
            and rec.stage != "ignored"
            and pod_group(rec.obj).value == key
        ]

    def _release(self, key: GroupKey) -> None:
        """Give back the places reserved for ``key``'s members."""
        res = self.groups.reservations.pop(key, None)
        if res is None:
            return
        for uid in res.uids:
            rec = self.pods.get(uid)
            if rec is not None and not rec.node and rec.stage != "inflight":
                self.changes.freed(self.pods.forget(rec))

    def _gang_tick(self, now_m: float) -> None:
        """Reservations past their group's timeout are given back; the group waits on."""
        for key, res in list(self.groups.reservations.items()):
            if now_m < res.expires:
                continue
            self._release(key)
            members = [r for r in self._members(key) if r.stage in _PENDING]
            self.groups.expired_with[key] = len(members)
            for rec in members:
                self.actions.event(rec.obj, "Normal", "GroupTimeout",
                                   f"places reserved for group {key} given back: the group's "
                                   "other members did not arrive in time")  # fmt: skip

    # ---------------------------------------------------------------- deciding
    def _try_gang(self, rec: PodRecord, now_s: float, windows: Mapping[str, WindowState]) -> bool:
        """Decide ``rec``'s whole group; False when the pod is to be scheduled alone."""
        ref = pod_group(rec.obj)
        key: GroupKey | None = ref.value
        if key is None:
            if ref.problems:
                self._park(rec, "InvalidGroup", "cannot schedule: " + "; ".join(ref.problems))
                return True
            return False
        self._release(key)
        members = self._members(key)
        pending = [r for r in members if r.stage in _PENDING and not r.node]
        mapped = self.groups.specs.get(key)
        if mapped is None or mapped.value is None:
            reason, why = (
                ("WaitingForGroup", f"{key.kind} {key} does not exist (yet)")
                if mapped is None
                else ("InvalidGroup", f"{key.kind} {key} is invalid: " + "; ".join(mapped.problems))
            )
            for r in pending:
                self._park_member(r, reason, f"{why}; the pod waits for it")
            return True
        spec = mapped.value
        if not spec.gang:
            return False
        started = sum(1 for r in members if r.node or r.stage in ("inflight", "placed"))
        need = spec.min_member - started
        if need <= 0:
            return False  # the group has started: further members go one by one
        views: list[tuple[PodRecord, ClassPolicy, Pod]] = []
        for r in pending:
            cls, reason, message = self._view(r)
            if reason or cls is None or r.pod is None:
                self._park(r, reason or "InvalidRequest", message)
                continue
            views.append((r, cls, r.pod))
        head = f"group {key} ({spec.min_member} must start together, {started} running)"
        if len(views) < need:
            self._wait_for_members(key, views, need, spec.timeout_s, now_s, head)
            return True
        plan = self._plan(views, need, now_s, windows, spec.within)
        if plan.complete:
            self._bind_group(key, views, plan, now_s)
            return True
        self._unplaceable(key, views, plan, need, now_s, head)
        return True

    def _admitter(
        self, views: list[tuple[PodRecord, ClassPolicy, Pod]],
        windows: Mapping[str, WindowState],
    ) -> Any:  # fmt: skip
        classes = {p.id: c for _, c, p in views}

        def admit(pod: Pod) -> str:
            cls = classes[pod.id]
            if cls.window and self.policies.window_problem(cls.window):
                return f"batch window {cls.window} cannot be computed"
            adm = admission.admit(pod, cls, self.snapshot, self.policies.quota_set, windows)
            return "" if adm.admitted else adm.reason

        return admit

    def _plan(
        self, views: list[tuple[PodRecord, ClassPolicy, Pod]], need: int, now_s: float,
        windows: Mapping[str, WindowState], within: str = "",
    ) -> GroupPlan:  # fmt: skip
        t0 = time.perf_counter()
        plan = place_group(self.engine, self.snapshot, [p for _, _, p in views], now=now_s,
                           need=need, seed=self.config.seed,
                           admit=self._admitter(views, windows), within=within)  # fmt: skip
        self.metrics.decision_seconds.observe(time.perf_counter() - t0)
        return plan

    def _park_member(self, rec: PodRecord, reason: str, message: str,
                     rejections: Mapping[str, int] = {}, preempts: bool = False) -> None:  # fmt: skip
        self.queue.remove(rec.uid)
        self._park(rec, reason, message, rejections, preempts=preempts)

    def _wait_for_members(
        self, key: GroupKey, views: list[tuple[PodRecord, ClassPolicy, Pod]], need: int,
        timeout_s: float, now_s: float, head: str,
    ) -> None:  # fmt: skip
        """Too few members yet: reserve places for those here if they fit, and wait."""
        text = f"{head}: {len(views)} of {need} pending members exist"
        reserved = False
        if views and len(views) > self.groups.expired_with.get(key, -1):
            plan = place_group(self.engine, self.snapshot, [p for _, _, p in views], now=now_s,
                               seed=self.config.seed)  # fmt: skip
            if plan.complete:
                recs = {r.uid: (r, c) for r, c, _ in views}
                for m in plan.placed:
                    self.snapshot.assume(m.pod, m.node, m.gpus, start_time=now_s,
                                         tier=recs[m.pod.id][1].tier)  # fmt: skip
                expires = self.clock.monotonic() + timeout_s
                self.groups.reservations[key] = Reservation(
                    tuple(m.pod.id for m in plan.placed), tuple(m.node for m in plan.placed),
                    expires,
                )  # fmt: skip
                reserved = True
                text += f"; their places are reserved for {timeout_s:g}s"
        for r, _, _ in views:
            self._park_member(r, "WaitingForMembers", text + ("" if reserved else "; waiting"))

    def _bind_group(
        self, key: GroupKey, views: list[tuple[PodRecord, ClassPolicy, Pod]], plan: GroupPlan,
        now_s: float,
    ) -> None:  # fmt: skip
        """Assume every member, then bind them all."""
        recs = {r.uid: (r, c) for r, c, _ in views}
        note = f"; group {key}: {plan.message()}"
        self.groups.expired_with.pop(key, None)
        for m in plan.placed:
            rec, cls = recs[m.pod.id]
            adm = admission.admit(m.pod, cls, self.snapshot, self.policies.quota_set, {})
            self.queue.remove(rec.uid)
            self.pods.assume(rec, m.pod, m.node, m.gpus, start_time=now_s, tier=cls.tier,
                             borrowed=adm.borrowed)  # fmt: skip
            self._end_plan(self.preemptions.cancel(rec.uid))
        for m in plan.placed:
            rec, _ = recs[m.pod.id]
            ann = {podspec.GPU_IDS_ANNOTATION: ",".join(map(str, m.gpus))} if m.gpus else {}
            self.actions.bind(rec.obj, m.node, ann)
            self.actions.event(rec.obj, "Normal", "Scheduled", m.decision.message() + note,
                               action="Binding")  # fmt: skip
            self.metrics.attempts.labels("scheduled").inc()
        placed = {m.pod.id for m in plan.placed}
        for r, _, _ in views:  # beyond the minimum and without a place: alone, later
            if r.uid not in placed:
                self._park_member(r, "Unschedulable", f"group {key} started without this pod; "
                                  "it is scheduled alone when room appears")  # fmt: skip
        log.info("group placed", extra=kv(group=str(key), members=len(plan.placed),
                                          domain=plan.domain))  # fmt: skip
        ref = self.groups.refs.get(key)
        if ref is not None:  # the group-level record, on the PodGroup itself
            nodes = ", ".join(f"{m.pod.name}@{m.node}" for m in plan.placed)
            self.actions.event(ref, "Normal", "GroupScheduled", f"{plan.message()}: {nodes}"[:900],
                               kind="PodGroup", api_version=ref["apiVersion"])  # fmt: skip

    def _unplaceable(
        self, key: GroupKey, views: list[tuple[PodRecord, ClassPolicy, Pod]], plan: GroupPlan,
        need: int, now_s: float, head: str,
    ) -> None:  # fmt: skip
        """No member is bound: preempt for the whole group where allowed, else wait."""
        text = f"{head}: {plan.message()}"
        refused = [u for u in plan.unplaced if not u.admitted]
        if refused:
            reason = "WindowClosed" if "window" in refused[0].reason else "QuotaExceeded"
            self.metrics.attempts.labels("window" if reason == "WindowClosed" else "quota").inc()
            for r, _, _ in views:
                self._park_member(r, reason, text)
            return
        planned = [r for r, _, _ in views if r.uid in self.preemptions]
        if planned:
            for r, _, _ in views:
                self._park_member(r, "Preempting", f"{text}; waiting for preempted pods to leave")
            return
        rejections = next((u.rejections for u in plan.unplaced if u.rejections), {})
        could = all(self._could_preempt(p, c) for _, c, p in views)
        if could:
            gplan = plan_group_preemption(
                self.engine, self.snapshot, [p for _, _, p in views], now=now_s, need=need,
                budgets=self.policies.budgets(), quotas=self.policies.quota_set,
                exclude=self.preemptions.nodes(), claimed=self.preemptions.claimed(),
                groups=self._victim_groups(),
            )  # fmt: skip
            if gplan is not None:
                recs = {r.uid: (r, c) for r, c, _ in views}
                for pod, member_plan in gplan:
                    r, c = recs[pod.id]
                    self._start_preemption(r, pod, c, member_plan)
                for r, _, _ in views:
                    if r.uid not in self.preemptions:
                        self._park_member(r, "Preempting", f"{text}; room is being made for "
                                          "the whole group")  # fmt: skip
                return
        self.metrics.attempts.labels("unschedulable").inc()
        for r, _, _ in views:
            self._park_member(r, "Unschedulable", text, rejections, could)

    def _whole_groups(self, pod: Pod, plan: PreemptionPlan | None, now_s: float
                      ) -> PreemptionPlan | None:  # fmt: skip
        """A single pod's plan with gang victims' whole groups added (None: a mate may not go)."""
        if plan is None:
            return None
        keys: set[GroupKey] = set()
        for v in plan.victims:
            rec = self.pods.get(v.uid)
            key = pod_group(rec.obj).value if rec is not None else None
            if key is not None:
                keys.add(key)
        if not keys:  # the common case: no victim belongs to a gang, no walk over every pod
            return plan
        return whole_groups(self.engine, self.snapshot, pod, plan, self._victim_groups(keys),
                            now=now_s, budgets=self.policies.budgets())  # fmt: skip

    def _victim_groups(self, only: set[GroupKey] | None = None) -> dict[str, tuple[str, ...]]:
        """For each placed pod of a gang (of a group in ``only``, when given), the uids of
        all its group's placed pods."""
        by_key: dict[GroupKey, list[str]] = {}
        for uid in self.snapshot.pods:
            rec = self.pods.get(uid)
            if rec is None or not (rec.node or rec.stage in ("inflight", "placed")):
                continue
            key = pod_group(rec.obj).value
            if key is not None and (only is None or key in only):
                by_key.setdefault(key, []).append(uid)
        return {u: tuple(us) for us in by_key.values() for u in us}
