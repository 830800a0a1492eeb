"""The scheduling thread: one owner of the cache, the queue and the decisions.

Informers and API writers feed one event queue; this thread drains it,
keeps the placement engine's snapshot in line with the cluster, and places
pending pods in queue order (tier, priority, age). Like kube-scheduler it
*assumes* a placement as soon as it decides and before the bind completes,
so a burst never hands out the same GPU twice, and forgets the assumption if
the bind fails. Pods it cannot place yet are parked with a reason and
retried when something that could change the answer happens.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ballast.api import wellknown as wk
from ballast.clock import Clock
from ballast.controller.batchwindow import schedule_from_spec
from ballast.placement import admission
from ballast.placement.engine import Decision, Engine
from ballast.placement.objects import DEFAULT_CLASS, ClassPolicy, Pod, QuotaPolicy, WindowState
from ballast.placement.preemption import plan_preemption
from ballast.placement.queue import QueueKey, queue_key
from ballast.placement.snapshot import Snapshot
from ballast.scheduler import mapping
from ballast.scheduler.actions import RESULT, Actions
from ballast.scheduler.informer import Event
from ballast.scheduler.metrics import SchedulerMetrics
from ballast.scheduler.sources import AnnotationSource, NodeDataSource
from ballast.scheduler.status import status_writes
from ballast.windows import InvalidWindow, WindowSchedule, state_at

log = logging.getLogger(__name__)

TERMINAL = ("Succeeded", "Failed")
RETRY_BIND_S = 1.0
# After this many retried pods in a row stay unschedulable, the other retried
# pods wait for the next change instead of each paying a full decision (on a
# full cluster thousands of parked pods would otherwise be re-decided after
# every pod that leaves). New pods are always tried.
RETRY_STREAK = 64
CONDITION_REFRESH_S = 30.0


@dataclass
class Preemption:
    """A preemption under way: victims told to checkpoint, evicted after their grace."""

    preemptor: str
    node: str
    victims: dict[str, float]  # uid -> when to evict (monotonic)
    evicted: set[str] = field(default_factory=set)
    started: float = 0.0


@dataclass
class Config:
    """Scheduler settings (CLI flags)."""

    scheduler_name: str = "ballast"
    profile: str = "ballast"
    max_batch: int = 256  # decisions per cycle before draining events again
    flush_s: float = 15.0  # retry every parked pod at least this often
    status_s: float = 5.0  # GPUQuota / WorkloadClass status refresh
    seed: int = 0


class Scheduler:
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
        self.raw_pods: dict[str, dict[str, Any]] = {}  # uid -> latest object (ours and bound)
        self.node_pending: dict[str, list[dict[str, Any]]] = {}  # bound pods whose node is unknown
        self.classes: dict[str, ClassPolicy] = {}
        self.class_specs: dict[str, dict[str, Any]] = {}
        self.quotas: dict[str, QuotaPolicy] = {}  # tenant -> policy
        self.quota_set = admission.QuotaSet()
        self.tenant_of_ns: dict[str, str] = {}
        self.quota_specs: dict[str, dict[str, Any]] = {}
        self.windows: dict[str, WindowSchedule | None] = {}
        self.pdbs: dict[str, Any] = {}
        self.engine = Engine(config.profile, {})
        self.active: dict[str, Pod] = {}  # pending pods to try, uid -> engine pod
        self.parked: dict[str, tuple[str, str]] = {}  # uid -> (reason, message)
        self.conditions: dict[str, tuple[str, str]] = {}  # last condition written per pod
        self.inflight: dict[str, float] = {}  # uid -> monotonic bind start
        self.retry_at: dict[str, float] = {}
        # Parked pods given another attempt after a change: uid -> why they waited.
        self.retrying: dict[str, str] = {}
        self.parked_pods: dict[str, Pod] = {}  # engine view of parked pods (no re-mapping)
        self.condition_at: dict[str, float] = {}
        self._streak = 0
        self._dump_requested = False
        self.preemptions: dict[str, Preemption] = {}
        self.victim_of: dict[str, str] = {}
        self.synced: set[str] = set()
        self.required = {
            "nodes",
            "pods",
            "workloadclasses",
            "gpuquotas",
            "batchwindows",
            "poddisruptionbudgets",
        }
        self._relisting: dict[str, set[str]] = {}
        self._dirty = True
        self._last_flush = 0.0
        self._last_status = 0.0
        self._next_window_edge: dt.datetime | None = None
        self._warned_nodes: dict[str, tuple[str, ...]] = {}
        self._status_written: dict[str, dict[str, Any]] = {}
        self.leader = True
        self.decisions = 0
        # Held while the scheduling thread changes state; the extender's HTTP
        # threads take it to read a consistent snapshot.
        self.lock = threading.RLock()

    # ------------------------------------------------------------------ loop
    @property
    def ready(self) -> bool:
        """All informers have listed once."""
        return self.required <= self.synced

    def step(self, wait_s: float = 0.05) -> int:
        """Drain events, then (as leader) place up to ``max_batch`` pods; returns pods tried."""
        try:
            first = (
                self.events.get(timeout=wait_s)
                if wait_s > 0 and not self.active
                else self.events.get_nowait()
            )
        except queue.Empty:
            first = None
        with self.lock:
            if first is not None:
                self._handle(first)
                self._drain()
            return self._step()

    def request_dump(self) -> None:
        """Ask the scheduling thread to log its view of the cluster at its next step."""
        self._dump_requested = True

    def _dump(self) -> None:
        snap = self.snapshot
        for name in sorted(snap.node_names()):
            r = snap.row(name)
            log.info(
                "node view",
                extra={
                    "kv": {
                        "node": name,
                        "gpus": int(snap.gpu_count[r]),
                        "free_milli": ",".join(
                            str(int(x)) for x in snap.free[r, : snap.gpu_count[r]]
                        ),
                        "unschedulable": bool(snap.unschedulable[r]),
                        "sick": r in snap.sick_rows,
                        "pods": " ".join(
                            f"{p.namespace}/{p.name}@{','.join(map(str, p.gpus))}"
                            for p in snap.row_pods[r].values()
                        ),
                    }
                },
            )
        log.info(
            "queue view",
            extra={
                "kv": {
                    "active": len(self.active),
                    "parked": len(self.parked),
                    "inflight": len(self.inflight),
                    "preemptions": len(self.preemptions),
                }
            },
        )

    def _step(self) -> int:
        if self._dump_requested:
            self._dump_requested = False
            self._dump()
        if not (self.leader and self.ready):
            return 0
        now_m = time.monotonic()
        if (
            self._dirty
            or now_m - self._last_flush > self.config.flush_s
            or self._window_edge_passed()
        ):
            self._unpark_all()
            self._last_flush = now_m
        self._advance_preemptions(now_m)
        tried = self._cycle()
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

    # ---------------------------------------------------------------- events
    def _handle(self, ev: Event) -> None:
        if ev.kind == RESULT:
            self._on_result(ev)
            return
        if ev.type == "RELIST":
            self._relisting[ev.kind] = set()
            return
        if ev.type == "SYNCED":
            self._finish_relist(ev.kind)
            self.synced.add(ev.kind)
            self._dirty = True
            return
        if ev.type == "SYNC":
            seen = self._relisting.get(ev.kind)
            if seen is not None:
                seen.add(self._key(ev.kind, ev.obj))
        handler = getattr(self, f"_on_{ev.kind}", None)
        if handler is not None:
            handler("DELETED" if ev.type == "DELETED" else "UPSERT", ev.obj)

    @staticmethod
    def _key(kind: str, obj: Mapping[str, Any]) -> str:
        meta = obj.get("metadata") or {}
        if kind == "pods":
            return str(meta.get("uid", ""))
        return f"{meta.get('namespace', '')}/{meta.get('name', '')}"

    def _finish_relist(self, kind: str) -> None:
        seen = self._relisting.pop(kind, None)
        if seen is None:
            return
        known: dict[str, dict[str, Any]] = {}
        if kind == "pods":
            known = {uid: p for uid, p in self.raw_pods.items() if uid not in seen}
        elif kind == "nodes":
            known = {
                f"/{n}": {"metadata": {"name": n}}
                for n in list(self.snapshot.node_names())
                if f"/{n}" not in seen
            }
        elif kind == "workloadclasses":
            known = {
                f"/{n}": {"metadata": {"name": n}} for n in self.class_specs if f"/{n}" not in seen
            }
        elif kind == "gpuquotas":
            known = {
                f"/{n}": {"metadata": {"name": n}} for n in self.quota_specs if f"/{n}" not in seen
            }
        elif kind == "batchwindows":
            known = {
                f"/{n}": {"metadata": {"name": n}} for n in self.windows if f"/{n}" not in seen
            }
        elif kind == "poddisruptionbudgets":
            known = {
                k: {"metadata": {"namespace": k.split("/")[0], "name": k.split("/")[1]}}
                for k in self.pdbs
                if k not in seen
            }
        handler = getattr(self, f"_on_{kind}")
        for obj in known.values():
            handler("DELETED", obj)

    def _on_nodes(self, op: str, node: dict[str, Any]) -> None:
        name = (node.get("metadata") or {}).get("name", "")
        self._dirty = True
        if op == "DELETED":
            if name in self.snapshot:
                for p in self.snapshot.remove_node(name):
                    raw = self.raw_pods.get(p.uid)
                    if raw is not None:
                        self.node_pending.setdefault(name, []).append(raw)
            return
        mapped = mapping.node_info(node, self.source)
        if mapped.problems:
            self._warn_node(node, mapped.problems)
        if name in self.snapshot:
            self.snapshot.update_node(mapped.value)
        else:
            self.snapshot.add_node(mapped.value)
            for raw in self.node_pending.pop(name, []):
                self._account_bound(raw)
        if mapped.value.telemetry is not None:
            self.snapshot.set_telemetry(name, mapped.value.telemetry)

    def _warn_node(self, node: dict[str, Any], problems: list[str]) -> None:
        name = node["metadata"]["name"]
        key = tuple(problems)
        if self._warned_nodes.get(name) == key:
            return
        self._warned_nodes[name] = key
        log.warning(
            "node data ignored", extra={"kv": {"node": name, "problems": "; ".join(problems)}}
        )
        self.actions.event(
            node, "Warning", "InvalidNodeData",
            "ignored (treated as no data): " + "; ".join(problems), kind="Node",
        )  # fmt: skip

    def _on_workloadclasses(self, op: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if op == "DELETED":
            self.class_specs.pop(name, None)
            self.classes.pop(name, None)
        else:
            self.class_specs[name] = obj.get("spec") or {}
            self.classes[name] = mapping.class_policy(name, self.class_specs[name])
        self.engine = Engine(self.config.profile, self.classes)
        self._dirty = True

    def _on_gpuquotas(self, op: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if op == "DELETED":
            self.quota_specs.pop(name, None)
        else:
            self.quota_specs[name] = obj.get("spec") or {}
        self.quotas = {}
        self.tenant_of_ns = {}
        # The oldest claim on a namespace wins, as the operator reports.
        for qname, spec in sorted(self.quota_specs.items()):
            for q in mapping.quota_policies(qname, spec):
                self.quotas[q.namespace] = q
            for ns in spec.get("namespaces") or ():
                self.tenant_of_ns.setdefault(ns, qname)
        self.quota_set = admission.QuotaSet(self.quotas.values())
        self._dirty = True

    def _on_batchwindows(self, op: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if op == "DELETED":
            self.windows.pop(name, None)
        else:
            try:
                self.windows[name] = schedule_from_spec(obj.get("spec") or {}, self.clock.now())
            except InvalidWindow:
                self.windows[name] = None
        self._next_window_edge = None
        self._dirty = True

    def _on_poddisruptionbudgets(self, op: str, obj: dict[str, Any]) -> None:
        key = self._key("pdb", obj)
        if op == "DELETED":
            self.pdbs.pop(key, None)
        else:
            budget = mapping.disruption_budget(obj)
            if budget is not None:
                self.pdbs[key] = budget
        self._dirty = True

    # ------------------------------------------------------------------ pods
    def _on_pods(self, op: str, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        uid = meta.get("uid", "")
        spec = pod.get("spec") or {}
        phase = (pod.get("status") or {}).get("phase")
        if op == "DELETED" or phase in TERMINAL:
            self._drop_pod(uid)
            return
        self.raw_pods[uid] = pod
        if spec.get("nodeName"):
            self._account_bound(pod)
            return
        if spec.get("schedulerName") != self.config.scheduler_name or meta.get("deletionTimestamp"):
            return
        if uid in self.inflight or uid in self.snapshot.pods:
            return  # our assumption; the bind result or the bound pod will follow
        if uid not in self.active and uid not in self.parked:
            self._enqueue(pod)

    def _drop_pod(self, uid: str) -> None:
        raw = self.raw_pods.pop(uid, None)
        if self.snapshot.forget(uid) is not None:
            self._dirty = True
        self.active.pop(uid, None)
        self.parked.pop(uid, None)
        self.conditions.pop(uid, None)
        self.inflight.pop(uid, None)
        self.retry_at.pop(uid, None)
        self.retrying.pop(uid, None)
        self.parked_pods.pop(uid, None)
        self.condition_at.pop(uid, None)
        self.preemptions.pop(uid, None)
        preemptor = self.victim_of.pop(uid, None)
        if preemptor and preemptor in self.preemptions:
            self.preemptions[preemptor].victims.pop(uid, None)
        if raw is not None:
            node = (raw.get("spec") or {}).get("nodeName")
            if node in self.node_pending:
                self.node_pending[node] = [
                    p for p in self.node_pending[node] if p["metadata"]["uid"] != uid
                ]

    def _tenant(self, namespace: str) -> str:
        return self.tenant_of_ns.get(namespace, namespace)

    def _class_for(self, pod: Mapping[str, Any]) -> tuple[ClassPolicy | None, str]:
        name = ((pod.get("metadata") or {}).get("labels") or {}).get(wk.LABEL_CLASS)
        if not name:
            return DEFAULT_CLASS, ""
        cls = self.classes.get(name)
        return cls, name

    def _engine_pod(self, pod: dict[str, Any]) -> mapping.Mapped:
        cls, _ = self._class_for(pod)
        return mapping.engine_pod(pod, cls, self._tenant(pod["metadata"].get("namespace", "")))

    def _account_bound(self, pod: dict[str, Any]) -> None:
        """Count a bound pod's resources (ours after restart, or another scheduler's)."""
        uid = pod["metadata"]["uid"]
        node = pod["spec"]["nodeName"]
        self.active.pop(uid, None)
        self.parked.pop(uid, None)
        self.parked_pods.pop(uid, None)
        self.retrying.pop(uid, None)
        self.inflight.pop(uid, None)
        if uid in self.snapshot.pods:
            return
        if node not in self.snapshot:
            self.node_pending.setdefault(node, []).append(pod)
            return
        mapped = self._engine_pod(pod)
        epod: Pod | None = mapped.value
        if epod is None:
            return
        gpus = mapping.gpu_ids(pod) or self._any_gpus(epod, node)
        cls, _ = self._class_for(pod)
        start = mapping.parse_time((pod.get("status") or {}).get("startTime")) or epod.creation_time
        self.snapshot.assume(
            epod, node, gpus, start_time=start, tier=(cls or DEFAULT_CLASS).tier, force=True
        )

    def _any_gpus(self, pod: Pod, node: str) -> tuple[int, ...]:
        """GPUs to charge a pod placed by someone else (no index recorded): the freest first."""
        want = pod.gpus if pod.gpus else (1 if pod.gpu_milli else 0)
        if not want:
            return ()
        r = self.snapshot.row(node)
        count = int(self.snapshot.gpu_count[r])
        order = sorted(range(count), key=lambda g: -int(self.snapshot.free[r, g]))
        return tuple(order[: min(want, count)])

    def _enqueue(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        cls, class_name = self._class_for(pod)
        if cls is None:
            self._park(
                pod,
                "UnknownClass",
                f"WorkloadClass {class_name!r} does not exist; the pod waits until it is created",
            )
            return
        mapped = self._engine_pod(pod)
        if mapped.value is None:
            self._park(pod, "InvalidRequest", "cannot schedule: " + "; ".join(mapped.problems))
            return
        self.active[uid] = mapped.value

    # -------------------------------------------------------------- deciding
    def _cycle(self) -> int:
        if not self.active:
            return 0
        now_m = time.monotonic()
        now = self.clock.now()
        now_s = now.timestamp()
        windows = self._window_states(now)
        order = sorted(self.active.values(), key=self._queue_key)
        tried = 0
        for epod in order[: self.config.max_batch]:
            if epod.id not in self.active or self.retry_at.get(epod.id, 0.0) > now_m:
                continue
            # Only pods that waited for room count towards (and are cut by) the
            # streak: one held by a window or a quota is cheap to re-check and
            # must not starve behind unrelated full-cluster failures.
            retried = self.retrying.get(epod.id) == "Unschedulable"
            if retried and self._streak >= RETRY_STREAK:
                self._repark_retries()
                continue
            self.active.pop(epod.id, None)
            self.retrying.pop(epod.id, None)
            raw = self.raw_pods.get(epod.id)
            if raw is None:
                continue
            tried += 1
            self._try(raw, epod, now_s, windows)
            if retried:
                stuck = self.parked.get(epod.id, ("", ""))[0] == "Unschedulable"
                self._streak = self._streak + 1 if stuck else 0
        return tried

    def _repark_retries(self) -> None:
        """Send the remaining retried pods back to wait, keeping their last condition."""
        for uid, reason in list(self.retrying.items()):
            if reason != "Unschedulable":
                continue
            epod = self.active.pop(uid, None)
            if epod is not None:
                self.parked[uid] = self.conditions.get(uid, ("Unschedulable", ""))
                self.parked_pods[uid] = epod
            del self.retrying[uid]

    def _queue_key(self, pod: Pod) -> QueueKey:
        return queue_key(pod, self.classes.get(pod.class_name, DEFAULT_CLASS))

    def _try(
        self, raw: dict[str, Any], epod: Pod, now_s: float, windows: Mapping[str, WindowState]
    ) -> None:
        cls = self.classes.get(epod.class_name, DEFAULT_CLASS)
        adm = admission.admit(epod, cls, self.snapshot, self.quota_set, windows)
        if not adm.admitted:
            reason = "WindowClosed" if "window" in adm.reason else "QuotaExceeded"
            self.metrics.attempts.labels("window" if reason == "WindowClosed" else "quota").inc()
            self._park(raw, reason, adm.reason, epod)
            return
        t0 = time.perf_counter()
        decision = self.engine.decide(self.snapshot, epod, now=now_s, seed=self.config.seed)
        self.metrics.decision_seconds.observe(time.perf_counter() - t0)
        self.decisions += 1
        if decision.node is not None:
            self._place(raw, epod, cls, decision, adm.borrowed, now_s)
            return
        if epod.id in self.preemptions:
            node = self.preemptions[epod.id].node
            self._park(raw, "Preempting", f"waiting for preempted pods to leave {node}", epod)
            return
        if not self._could_preempt(epod, cls):
            self.metrics.attempts.labels("unschedulable").inc()
            self._park(raw, "Unschedulable", decision.summary(), epod)
            return
        plan = plan_preemption(
            self.engine, self.snapshot, epod, now=now_s, budgets=list(self.pdbs.values()),
            quotas=self.quota_set, exclude={p.node for p in self.preemptions.values()},
            claimed=self.victim_of.keys(),
        )  # fmt: skip
        if plan is not None:
            self._start_preemption(raw, epod, plan)
            return
        self.metrics.attempts.labels("unschedulable").inc()
        self._park(raw, "Unschedulable", decision.summary(), epod)

    def _could_preempt(self, pod: Pod, cls: ClassPolicy) -> bool:
        """Whether planning a preemption can help: the class preempts, owns a reserved
        pool, or its tenant may reclaim quota lent to its cohort."""
        if cls.preemption.may_preempt != "never" or cls.pool.reserved:
            return True
        quota = self.quota_set.get(pod.tenant_key)
        return quota is not None and bool(quota.cohort)

    def _place(
        self,
        raw: dict[str, Any],
        epod: Pod,
        cls: ClassPolicy,
        d: Decision,
        borrowed: bool,
        now_s: float,
    ) -> None:
        assert d.node is not None
        self.snapshot.assume(
            epod, d.node, d.gpus, start_time=now_s, tier=cls.tier, borrowed=borrowed
        )
        self.inflight[epod.id] = time.monotonic()
        self.parked.pop(epod.id, None)
        self.parked_pods.pop(epod.id, None)
        annotations = {mapping.GPU_IDS_ANNOTATION: ",".join(map(str, d.gpus))} if d.gpus else {}
        self.actions.bind(raw, d.node, annotations)
        self.actions.event(raw, "Normal", "Scheduled", d.message(), action="Binding")
        self.metrics.attempts.labels("scheduled").inc()

    def _park(self, raw: dict[str, Any], reason: str, message: str, pod: Pod | None = None) -> None:
        uid = raw["metadata"]["uid"]
        self.parked[uid] = (reason, message)
        if pod is not None:
            self.parked_pods[uid] = pod
        last = self.conditions.get(uid)
        now_m = time.monotonic()
        # A new reason is written at once; a new message for the same reason (the
        # node counts move with every change) at most every CONDITION_REFRESH_S.
        if (
            last is None
            or last[0] != reason
            or (
                last[1] != message
                and now_m - self.condition_at.get(uid, 0.0) >= CONDITION_REFRESH_S
            )
        ):
            self.conditions[uid] = (reason, message)
            self.condition_at[uid] = now_m
            nominated = self.preemptions[uid].node if uid in self.preemptions else None
            self.actions.set_condition(raw, reason, message, nominated)
            self.actions.event(
                raw,
                "Warning" if reason in ("InvalidRequest", "UnknownClass") else "Normal",
                "FailedScheduling" if reason == "Unschedulable" else reason,
                message,
            )

    def _unpark_all(self) -> None:
        self._dirty = False
        self._streak = 0
        for uid, (reason, _) in list(self.parked.items()):
            epod = self.parked_pods.get(uid)
            if epod is None:
                # Parked before it could be mapped (unknown class, bad request): map again.
                raw = self.raw_pods.get(uid)
                if raw is None:
                    self.parked.pop(uid, None)
                    continue
                cls, _ = self._class_for(raw)
                if cls is None:
                    continue  # still unknown: stays parked without a new attempt
                epod = self._engine_pod(raw).value
                if epod is None:
                    continue
            self.active[uid] = epod
            self.parked.pop(uid, None)
            self.parked_pods.pop(uid, None)
            self.retrying[uid] = reason

    # ------------------------------------------------------------ preemption
    def _start_preemption(self, raw: dict[str, Any], epod: Pod, plan: Any) -> None:
        now_m = time.monotonic()
        p = Preemption(epod.id, plan.node, {}, started=now_m)
        cls = self.classes.get(epod.class_name, DEFAULT_CLASS)
        for v in plan.victims:
            vraw = self.raw_pods.get(v.uid)
            vcls = self.classes.get(v.class_name, DEFAULT_CLASS)
            grace = vcls.preemption.grace_period_s
            p.victims[v.uid] = now_m + grace
            self.victim_of[v.uid] = epod.id
            if vraw is not None:
                when = (self.clock.now() + dt.timedelta(seconds=grace)).strftime("%H:%M:%SZ")
                self.actions.request_checkpoint(
                    vraw, wk.ANNOTATION_CHECKPOINT_REQUEST,
                    f"preempted by {epod.key} ({cls.tier} class {cls.name or 'default'}) to make room on "
                    f"{plan.node}; checkpoint now, eviction at {when}",
                )  # fmt: skip
        self.preemptions[epod.id] = p
        self.metrics.attempts.labels("preempting").inc()
        self._park(raw, "Preempting", plan.message(), epod)

    def _advance_preemptions(self, now_m: float) -> None:
        for pre in list(self.preemptions.values()):
            for uid, due in list(pre.victims.items()):
                if due <= now_m and uid not in pre.evicted:
                    vraw = self.raw_pods.get(uid)
                    if vraw is None:
                        pre.victims.pop(uid, None)
                        continue
                    pre.evicted.add(uid)
                    self.actions.evict(vraw, pre.preemptor)
            if not pre.victims:
                # Room made: the preemptor competes again at the head of the queue.
                self.preemptions.pop(pre.preemptor, None)
                raw = self.raw_pods.get(pre.preemptor)
                if raw is not None and pre.preemptor in self.parked:
                    self.parked.pop(pre.preemptor)
                    self.parked_pods.pop(pre.preemptor, None)
                    mapped = self._engine_pod(raw)
                    if mapped.value is not None:
                        self.active[pre.preemptor] = mapped.value

    # --------------------------------------------------------------- results
    def _on_result(self, ev: Event) -> None:
        uid = ev.obj["uid"]
        if ev.type == "bind":
            started = self.inflight.pop(uid, None)
            if ev.obj["ok"]:
                self.metrics.binds.inc()
                raw = self.raw_pods.get(uid)
                if raw is not None:
                    created = mapping.parse_time(raw["metadata"].get("creationTimestamp"))
                    if created:
                        self.metrics.e2e_seconds.observe(max(0.0, time.time() - created))
                return
            self.metrics.bind_errors.inc()
            placed = self.snapshot.pods.get(uid)
            raw = self.raw_pods.get(uid)
            log.warning(
                "bind failed",
                extra={
                    "kv": {
                        "uid": uid,
                        "node": ev.obj.get("node"),
                        "status": ev.obj.get("status"),
                        "error": ev.obj.get("error"),
                    }
                },
            )
            if placed is not None and not ((raw or {}).get("spec") or {}).get("nodeName"):
                self.snapshot.forget(uid)
                self._dirty = True
            if raw is not None and ev.obj.get("status") != 404 and not raw["spec"].get("nodeName"):
                mapped = self._engine_pod(raw)
                if mapped.value is not None:
                    self.active[uid] = mapped.value
                    self.retry_at[uid] = time.monotonic() + RETRY_BIND_S
            _ = started
        elif ev.type == "evict":
            preemptor = ev.obj.get("preemptor", "")
            pre = self.preemptions.get(preemptor)
            if ev.obj["ok"]:
                self.metrics.preemptions.inc()
            elif pre is not None:
                # Refused (a PodDisruptionBudget, 429) or failed: try again shortly.
                pre.evicted.discard(uid)
                if uid in pre.victims:
                    pre.victims[uid] = time.monotonic() + 5.0

    # --------------------------------------------------------------- windows
    def _window_states(self, now: dt.datetime) -> dict[str, WindowState]:
        out = {}
        edge: dt.datetime | None = None
        for name, sched in self.windows.items():
            if sched is None:
                out[name] = WindowState(name, False)
                continue
            st = state_at(sched, now)
            out[name] = WindowState(name, st.open)
            e = st.next_edge()
            if e is not None and (edge is None or e < edge):
                edge = e
        self._next_window_edge = edge
        return out

    def _window_edge_passed(self) -> bool:
        edge = self._next_window_edge
        return edge is not None and self.clock.now() >= edge

    # ---------------------------------------------------------------- status
    def _publish_depth(self) -> None:
        depth = {"Interactive": 0, "Nearline": 0, "Offline": 0}
        for uid in list(self.active) + list(self.parked):
            raw = self.raw_pods.get(uid)
            cls, _ = self._class_for(raw) if raw else (None, "")
            depth[(cls or DEFAULT_CLASS).tier] += 1
        for tier, n in depth.items():
            self.metrics.queue_depth.labels(tier).set(n)

    def _write_status(self) -> None:
        """Usage into GPUQuota status, pod counts into WorkloadClass status (when changed)."""
        for path, status in status_writes(self).items():
            if self._status_written.get(path) != status:
                self._status_written[path] = status
                self.actions.patch_status(path, status)
