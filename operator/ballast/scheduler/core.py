"""The scheduling thread: drains watch events, then places pending pods in queue order.

Informers and API writers feed one event queue; this thread is the only one
that changes the scheduler's state, which lives in four parts:

- :class:`~ballast.scheduler.podcache.PodCache`: one validated record per
  pod, and the GPUs bound pods hold in the placement snapshot;
- :class:`~ballast.scheduler.schedqueue.SchedulingQueue`: active and parked pods;
- :class:`~ballast.scheduler.policies.Policies`: classes, quotas, windows, PDBs;
- :class:`~ballast.scheduler.preempting.Preemptions`: plans under way.

Like kube-scheduler it *assumes* a placement as soon as it decides, before
the bind completes, so a burst never hands out the same GPU twice, and
forgets the assumption if the bind fails.

Every watch event and every decision is isolated: an unexpected exception is
logged with the object's name, counted in ``ballast_scheduler_errors_total``
by stage, and the object is retried with backoff. One bad object never stops
the loop; the process exits only on a signal or a lost lease (see cli.py).
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Mapping
from typing import Any

from ballast.api import wellknown as wk
from ballast.clock import Clock
from ballast.logs import kv
from ballast.placement import admission
from ballast.placement.engine import Decision, Engine
from ballast.placement.objects import ClassPolicy, NodeInfo, Pod, WindowState
from ballast.placement.preemption import plan_outlook
from ballast.placement.queue import QueueKey, queue_key
from ballast.placement.snapshot import PlacementError, Snapshot
from ballast.scheduler import podspec
from ballast.scheduler.actions import Actions
from ballast.scheduler.config import Config
from ballast.scheduler.dra_state import DraHandlers
from ballast.scheduler.dra_writes import bind_with_claims
from ballast.scheduler.gangs import Ganging
from ballast.scheduler.groups import GroupBook
from ballast.scheduler.healthtaint import HealthTaints
from ballast.scheduler.hints import Change, Changes
from ballast.scheduler.informer import Event
from ballast.scheduler.metrics import SchedulerMetrics
from ballast.scheduler.parking import Parking
from ballast.scheduler.podcache import PodCache, PodRecord
from ballast.scheduler.policies import Policies
from ballast.scheduler.preempting import Preemptions
from ballast.scheduler.preemptor import Preempting
from ballast.scheduler.results import WriteResults
from ballast.scheduler.schedqueue import SchedulingQueue, backoff
from ballast.scheduler.sources import AnnotationSource, NodeDataSource
from ballast.scheduler.status import status_writes
from ballast.scheduler.watch import WatchHandlers

log = logging.getLogger(__name__)

__all__ = ["Config", "Scheduler"]

# After this many retried pods in a row stay unschedulable, the other retried
# pods wait for the next change instead of each paying a full decision (on a
# full cluster thousands of parked pods would otherwise be re-decided after
# every pod that leaves). New pods are always tried.
RETRY_STREAK = 64
EVENT_RETRIES = 5
_KINDS = (
    "nodes",
    "pods",
    "workloadclasses",
    "gpuquotas",
    "batchwindows",
    "poddisruptionbudgets",
    "namespaces",
)


class Scheduler(Parking, DraHandlers, WatchHandlers, WriteResults, Preempting, Ganging):
    """Cache + queue + decisions; run :meth:`step` repeatedly from one thread."""

    def __init__(
        self, actions: Actions, events: queue.Queue[Event], clock: Clock, config: Config,
        metrics: SchedulerMetrics | None = None, source: NodeDataSource | None = None,
    ) -> None:  # fmt: skip
        self.actions = actions
        self.events = events
        self.clock = clock
        self.config = config
        self.metrics = metrics or SchedulerMetrics()
        self.source = source or AnnotationSource()
        self.snapshot = Snapshot()
        self.pods = PodCache(self.snapshot)
        self._dra_init()  # ResourceSlices, DeviceClasses, ResourceClaims (dra_state.py)
        self.queue = SchedulingQueue()
        self.policies = Policies()
        self.preemptions = Preemptions()
        self.groups = GroupBook()  # pod groups (gangs.py)
        self.engine = Engine(config.profile, {})
        self.synced: set[str] = set()
        self.required = set(_KINDS)
        self._relisting: dict[str, set[str]] = {}
        self._redo: list[tuple[float, int, int, Event]] = []  # (due, seq, attempt, event)
        self._seq = itertools.count()
        self.changes = Changes(Change.ALL)  # since parked pods were last woken (hints.py)
        self._last_flush = -1e18
        self._last_status = -1e18
        self._next_window_edge: dt.datetime | None = None
        # When the first pod now kept from preemptors only by its class's minimum
        # runtime becomes takeable (monotonic): a VICTIMS change no event brings.
        self._victims_free_at: float | None = None
        self._warned_nodes: dict[str, tuple[str, ...]] = {}
        self._node_facts: dict[str, NodeInfo] = {}  # what the engine read of each node
        self.health_taints = HealthTaints()
        self._status_written: dict[str, dict[str, Any]] = {}
        self._dump_requested = False
        self.leader = True
        self.decisions = 0
        # Held while the scheduling thread changes state; the extender's HTTP
        # threads take it to read a consistent snapshot.
        self.lock = threading.RLock()

    # ----------------------------------------------------------- read-only views
    @property
    def ready(self) -> bool:
        """All informers have listed once."""
        return self.required <= self.synced

    def pending_lists(self) -> set[str]:
        """The informers that have not listed once yet (safe from any thread)."""
        return self.required - self.synced

    # ------------------------------------------------------------------- loop
    def step(self, wait_s: float = 0.05) -> int:
        """Drain events, then (as leader) place up to ``max_batch`` pods; returns pods tried.

        Waits up to ``wait_s`` for an event unless an active pod is due: pods in
        backoff are not a reason to spin (the loop would take a core from the
        API server it waits on), and a replica that is not leading waits too.
        """
        timeout = self._idle_wait(wait_s)
        try:
            first = self.events.get(timeout=timeout) if timeout > 0 else self.events.get_nowait()
        except queue.Empty:
            first = None
        with self.lock:
            if first is not None:
                self._handle(first)
                self._drain()
            self._redo_due()
            return self._step()

    def _idle_wait(self, wait_s: float) -> float:
        """How long the next step may wait for an event (0: a pod is due now)."""
        if wait_s <= 0 or not (self.leader and self.ready):
            return wait_s
        due = self.queue.next_due()
        if due is None:
            return wait_s
        return min(wait_s, max(0.0, due - self.clock.monotonic()))

    def _now(self) -> dt.datetime:
        return self.clock.now()

    def request_dump(self) -> None:
        """Ask the scheduling thread to log its view of the cluster at its next step."""
        self._dump_requested = True

    def _step(self) -> int:
        if self._dump_requested:
            self._dump_requested = False
            self._dump()
        # The fence closes on time even between the CLI's polls of the elector.
        if not (self.leader and self.ready) or self.actions.fence() is None:
            return 0
        now_m = self.clock.monotonic()
        self._advance_preemptions(now_m)
        self._gang_tick(now_m)
        # New pods, pods due after a backoff and preemptors whose room is made
        # are decided first; only then are the parked pods that the changes
        # since the last step can help woken, against the room still left.
        tried = self._cycle(self.config.max_batch)
        if self._window_edge_passed():
            self.changes.add(Change.WINDOW)
        if self._victims_free_at is not None and now_m >= self._victims_free_at:
            self._victims_free_at = None
            self.changes.add(Change.VICTIMS)
        if now_m - self._last_flush > self.config.flush_s:
            self.changes = Changes()
            self._wake(self.queue.unpark_all())
            self._last_flush = now_m
        elif self.changes:
            self._wake(self._woken())
        if tried < self.config.max_batch:
            tried += self._cycle(self.config.max_batch - tried)
        if now_m - self._last_status > self.config.status_s:
            # Both walk every waiting pod: once per status period, not per cycle.
            self._publish_depth()
            self._write_status()
            self._last_status = now_m
        return tried

    def _drain(self, limit: int = 20000) -> None:
        for _ in range(limit):
            try:
                ev = self.events.get_nowait()
            except queue.Empty:
                return
            self._handle(ev)

    def _dump(self) -> None:
        snap = self.snapshot
        for name in sorted(snap.node_names()):
            r = snap.row(name)
            log.info("node view", extra=kv(
                node=name, gpus=int(snap.gpu_count[r]),
                free_milli=",".join(str(int(x)) for x in snap.free[r, : snap.gpu_count[r]]),
                unschedulable=bool(snap.unschedulable[r]), sick=r in snap.sick_rows,
                pods=" ".join(f"{p.namespace}/{p.name}@{','.join(map(str, p.gpus))}"
                              for p in snap.row_pods[r].values()),
            ))  # fmt: skip
        log.info("queue view", extra=kv(
            active=len(self.queue.active), parked=len(self.queue.parked),
            pods=len(self.pods), preemptions=len(self.preemptions),
        ))  # fmt: skip

    # --------------------------------------------------------------- isolation
    def _handle(self, ev: Event, attempt: int = 0) -> None:
        try:
            self._dispatch(ev)
        except Exception as exc:
            self._error("event", ev.kind, ev.obj, exc)
            if attempt < EVENT_RETRIES:
                due = self.clock.monotonic() + backoff(attempt + 1)
                heapq.heappush(self._redo, (due, next(self._seq), attempt + 1, ev))

    def _redo_due(self) -> None:
        now = self.clock.monotonic()
        while self._redo and self._redo[0][0] <= now:
            _, _, attempt, ev = heapq.heappop(self._redo)
            self._handle(ev, attempt)

    def _error(self, stage: str, kind: str, obj: Mapping[str, Any], exc: BaseException) -> None:
        meta = obj.get("metadata") if isinstance(obj, Mapping) else None
        meta = meta if isinstance(meta, Mapping) else {}
        self.metrics.errors.labels(stage).inc()
        log.error(
            "unexpected error; object retried with backoff",
            exc_info=exc,
            extra=kv(stage=stage, kind=kind, namespace=meta.get("namespace", ""),
                     name=meta.get("name", ""), error=repr(exc)),
        )  # fmt: skip

    # --------------------------------------------------------------- deciding
    def _cycle(self, limit: int) -> int:
        if not self.queue.active:
            return 0
        now_m = self.clock.monotonic()
        now = self.clock.now()
        windows = self._window_states(now)
        tried = 0
        for rec in self.queue.batch(self._queue_key, limit, now_m, self.policies.generation):
            if rec.stage != "active":
                continue
            # Only pods that waited for room count towards (and are cut by) the
            # streak: one held by a window or a quota is cheap to re-check and
            # must not starve behind unrelated full-cluster failures.
            retried = rec.retrying == "Unschedulable"
            if retried and self.queue.streak >= RETRY_STREAK:
                self.queue.repark_retries("Unschedulable")
                continue
            self.queue.remove(rec.uid)
            rec.retrying = ""
            tried += 1
            try:
                self._try(rec, now.timestamp(), windows)
            except Exception as exc:
                self._attempt_failed(rec, exc)
                continue
            if retried:
                stuck = rec.uid in self.queue.parked and rec.reason == "Unschedulable"
                self.queue.streak = self.queue.streak + 1 if stuck else 0
        return tried

    def _attempt_failed(self, rec: PodRecord, exc: Exception) -> None:
        self._error("decide", "pods", rec.obj, exc)
        if rec.uid in self.snapshot.pods and not rec.node:
            self.changes.freed(self.pods.forget(rec))
        rec.failures += 1
        rec.retry_at = self.clock.monotonic() + backoff(rec.failures)
        rec.view_generation = -1
        if rec.uid in self.pods.records:
            self.queue.add(rec)

    def _queue_key(self, rec: PodRecord) -> QueueKey:
        pod = rec.pod or Pod(rec.namespace, rec.name, rec.uid)
        return queue_key(pod, self.policies.class_policy(rec.labels.get(wk.LABEL_CLASS, "")))

    def _try(self, rec: PodRecord, now_s: float, windows: Mapping[str, WindowState]) -> None:
        if self._try_gang(rec, now_s, windows):
            return  # a member of a gang: its whole group was decided (gangs.py)
        cls, reason, message = self._view(rec)
        if reason or cls is None or rec.pod is None:
            self._park(rec, reason or "InvalidRequest", message)
            return
        epod = rec.pod
        if rec.obj["spec"].get("resourceClaims"):  # DRA: the claims' devices (dra_state.py)
            epod, reason, message = self._dra_prepare(rec, epod)
            if reason:
                self._park(rec, reason, message)
                return
        if cls.window and self.policies.window_problem(cls.window):
            problem = self.policies.window_problem(cls.window)
            self._park(rec, "InvalidSchedule", f"batch window {cls.window} cannot be computed "
                       f"({problem}); the pod waits until it is fixed")  # fmt: skip
            return
        adm = admission.admit(epod, cls, self.snapshot, self.policies.quota_set, windows)
        if not adm.admitted:
            reason = "WindowClosed" if "window" in adm.reason else "QuotaExceeded"
            self.metrics.attempts.labels("window" if reason == "WindowClosed" else "quota").inc()
            self._park(rec, reason, adm.reason)
            return
        t0 = time.perf_counter()
        decision = self.engine.decide(self.snapshot, epod, now=now_s, seed=self.config.seed)
        self.metrics.decision_seconds.observe(time.perf_counter() - t0)
        self.decisions += 1
        if decision.node is not None:
            if not self._preempt_for_locality(rec, epod, cls, decision.node, now_s):
                self._place(rec, epod, cls, decision, adm.borrowed, now_s)
            return
        dra_reason = self._dra_unschedulable(epod, decision)
        if dra_reason:  # no preemption for claims: their devices are held by claims, not pods
            self.metrics.attempts.labels("unschedulable").inc()
            self._park(rec, "Unschedulable", dra_reason, decision.rejections)
            return
        could = self._could_preempt(epod, cls)
        if rec.uid in self.preemptions:
            if could:
                node = self.preemptions.node_of(rec.uid)
                self._park(rec, "Preempting", f"waiting for preempted pods to leave {node}")
                return
            self._end_plan(self.preemptions.cancel(rec.uid))
        if not could:
            self.metrics.attempts.labels("unschedulable").inc()
            self._park(rec, "Unschedulable", decision.summary(), decision.rejections)
            return
        if self._preempt_for_locality(rec, epod, cls, None, now_s):
            return
        outlook = plan_outlook(
            self.engine, self.snapshot, epod, now=now_s, budgets=self.policies.budgets(),
            quotas=self.policies.quota_set, exclude=self.preemptions.nodes(),
            claimed=self.preemptions.claimed(),
        )  # fmt: skip
        plan = self._whole_groups(epod, outlook.plan, now_s)  # a gang goes whole or not at all
        if plan is not None:
            self._start_preemption(rec, epod, cls, plan)
            return
        if outlook.protected_until is not None:
            self._victims_free(outlook.protected_until - now_s)
        self.metrics.attempts.labels("unschedulable").inc()
        self._park(rec, "Unschedulable", decision.summary(), decision.rejections, preempts=True)

    def _place(self, rec: PodRecord, epod: Pod, cls: ClassPolicy, d: Decision,
               borrowed: bool, now_s: float) -> None:  # fmt: skip
        assert d.node is not None
        claims = None
        if rec.obj["spec"].get("resourceClaims"):
            committed = self._dra_commit(rec, epod, d, cls)
            if isinstance(committed, str):
                self._park(rec, "Unschedulable", committed)
                return
            epod, claims = committed  # the devices are held by the claims, not the pod
        try:
            gpus = d.gpus if claims is None else ()  # a claim's devices are held by the claim
            self.pods.assume(rec, epod, d.node, gpus, start_time=now_s, tier=cls.tier,
                             borrowed=borrowed)  # fmt: skip
        except PlacementError as exc:
            # The engine chose something the snapshot refuses: a bug, never a crash.
            raise RuntimeError(f"engine chose an impossible placement: {exc}") from exc
        # Placed (elsewhere or at last): a plan it had is over, unevicted victims are released.
        self._end_plan(self.preemptions.cancel(rec.uid))
        annotations = {podspec.GPU_IDS_ANNOTATION: ",".join(map(str, d.gpus))} if d.gpus else {}
        if claims is not None:
            bind_with_claims(self.actions, rec.obj, d.node, {}, claims)
        else:
            self.actions.bind(rec.obj, d.node, annotations)
        self.actions.event(rec.obj, "Normal", "Scheduled", d.message(), action="Binding")
        self.metrics.attempts.labels("scheduled").inc()
        keys = epod.item_keys
        if keys:
            held = self.snapshot.caches.items(self.snapshot.row(d.node))
            hits = sum(1 for k in keys if k in held)
            result = "hit" if hits == len(keys) else "partial" if hits else "miss"
            self.metrics.cache_placements.labels(cls.name or "", result).inc()

    # ----------------------------------------------------------------- status
    def _publish_depth(self) -> None:
        depth = {"Interactive": 0, "Nearline": 0, "Offline": 0}
        for rec in self.queue.waiting():
            depth[self.policies.class_policy(rec.labels.get(wk.LABEL_CLASS, "")).tier] += 1
        for tier, n in depth.items():
            self.metrics.queue_depth.labels(tier).set(n)

    def _write_status(self) -> None:
        """Usage into GPUQuota status, pod counts into WorkloadClass status (when changed)."""
        writes = status_writes(self)
        for path in list(self._status_written):
            if path not in writes:
                del self._status_written[path]
        for path, status in writes.items():
            if self._status_written.get(path) != status:
                self._status_written[path] = status
                self.actions.patch_status(path, status)
