"""Event-driven replay of a mixed workload through queue → admission → engine → preemption.

Time only moves between events (arrivals, completions, scale-downs). After
each instant the pending queue is walked in order (tier, priority, age): a
pod is admitted (quota, window), placed, or, when it fits nowhere and its
class may preempt, the preemption planner's victims are evicted and put back
in the queue with the work they had left (as if checkpointed), and the pod
is placed on the nominated node. Eviction is instant here: the grace period
is not simulated.

A pod that fitted nowhere is not retried until something frees resources,
and pods of the same shape and class are skipped for the rest of a pass once
one of them failed: the engine would answer the same.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from ballast.api.wellknown import CacheItem
from ballast.placement.admission import admit
from ballast.placement.engine import Engine
from ballast.placement.fragmentation import WorkloadMix
from ballast.placement.objects import ClassPolicy, NodeInfo, Pod, WindowState
from ballast.placement.plugins.data_locality import NAME as DATA_LOCALITY
from ballast.placement.preemption import plan_preemption, warm_nodes
from ballast.placement.queue import PendingQueue
from ballast.sim.caches import LRUCaches
from ballast.sim.fill import build_snapshot
from ballast.sim.genai import Job, Workload

FINISH, REMOVE, ARRIVE = 0, 1, 2


@dataclass(slots=True)
class ReplayResult:
    """Every figure one policy produced on one workload."""

    policy: str
    capacity_milli: int
    horizon_s: float
    alloc: list[tuple[float, float]] = field(default_factory=list)
    waits: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    pending_at_end: Counter[str] = field(default_factory=Counter)
    placements: Counter[str] = field(default_factory=Counter)
    hits: Counter[str] = field(default_factory=Counter)
    cold_start_s: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    preempted: Counter[str] = field(default_factory=Counter)
    preemptions: int = 0
    holds: Counter[str] = field(default_factory=Counter)
    decision_ms: list[float] = field(default_factory=list)
    evictions: int = 0

    def allocation_pct(self, start: float = 0.0) -> float:
        """Time-weighted mean share of GPU capacity allocated, from ``start`` to the horizon."""
        total = span = 0.0
        for (t, pct), (t2, _) in zip(
            self.alloc, [*self.alloc[1:], (self.horizon_s, 0.0)], strict=True
        ):
            a, b = max(t, start), min(t2, self.horizon_s)
            if b > a:
                total += pct * (b - a)
                span += b - a
        return total / span if span else 0.0

    def hit_rate(self, kind: str) -> float:
        """Cache hits per placement of pods of ``kind`` that load a model."""
        n = self.placements[kind]
        return self.hits[kind] / n if n else 0.0


@dataclass(slots=True)
class _Live:
    job: Job
    tier: str
    queued_at: float
    remaining: float | None
    gen: int = 0
    node: str = ""
    started: float = 0.0


def _locality_preemption(engine: Engine, cls: ClassPolicy) -> bool:
    """Whether ``cls`` opted in and the policy scores data locality for it at all."""
    return cls.preemption.for_locality and any(
        p.name == DATA_LOCALITY for p, _ in engine.weights(cls)
    )


def _hold_kind(reason: str) -> str:
    return "window" if reason.startswith("waiting for batch window") else "quota"


def replay(
    nodes: Sequence[NodeInfo],
    work: Workload,
    policy: str,
    *,
    seed: int = 0,
    cache_bytes: int = 100 * 10**9,
    windows: dict[str, WindowState] | None = None,
) -> ReplayResult:
    """Run ``work`` on ``nodes`` under ``policy``; deterministic for ``seed``."""
    snap = build_snapshot(nodes, WorkloadMix(window=1000))
    engine = Engine(policy, classes=work.classes)
    caches = LRUCaches(snap, cache_bytes)
    queue = PendingQueue(work.classes)
    res = ReplayResult(policy, snap.capacity_milli(), work.horizon_s)
    events: list[tuple[float, int, int, str]] = []
    live: dict[str, _Live] = {}
    seq = 0

    def push(t: float, kind: int, uid: str) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, kind, seq, uid))

    for job in work.jobs:
        cls = work.classes[job.pod.class_name]
        live[job.pod.id] = _Live(job, cls.tier, job.arrival, job.duration_s)
        push(job.arrival, ARRIVE, job.pod.id)
    for t, uid in work.removals:
        push(t, REMOVE, uid)

    freed = 0
    stuck: dict[str, int] = {}
    held: set[tuple[str, str]] = set()

    def stop(uid: str) -> None:
        nonlocal freed
        p = snap.forget(uid)
        if p is not None:
            for key in live[uid].job.pod.item_keys:
                caches.release(p.node, key)
            freed += 1

    def bind(
        pod: Pod, cls: ClassPolicy, node: str, gpus: tuple[int, ...], t: float, borrowed: bool
    ) -> None:
        st = live[pod.id]
        snap.assume(pod, node, gpus, start_time=t, tier=cls.tier, borrowed=borrowed)
        queue.remove(pod.id)
        res.waits[cls.tier].append(t - st.queued_at)
        load = 0.0
        for m in pod.models:
            model = work.models[m]
            hit = caches.use(node, CacheItem("model", m, model.bytes))
            res.placements[st.job.kind] += 1
            if hit:
                res.hits[st.job.kind] += 1
            else:
                load += model.load_s
                res.cold_start_s[st.job.kind] += model.load_s
        st.node, st.started = node, t
        st.gen += 1
        if st.remaining is not None:
            push(t + load + st.remaining, FINISH, f"{pod.id}#{st.gen}")

    def schedule(t: float) -> None:
        failed: set[tuple[object, ...]] = set()
        for pod in queue.ordered():
            if stuck.get(pod.id) == freed:
                continue
            cls = work.classes[pod.class_name]
            adm = admit(pod, cls, snap, work.quotas, windows or {})
            if not adm.admitted:
                mark = (pod.id, _hold_kind(adm.reason))
                if mark not in held:
                    held.add(mark)
                    res.holds[mark[1]] += 1
                continue
            shape = (
                pod.gpus,
                pod.gpu_milli,
                pod.cpu_milli,
                pod.memory_mib,
                pod.gpu_products,
                cls.name,
            )
            if shape in failed:
                continue
            t0 = time.perf_counter()
            d = engine.decide(snap, pod, now=t, seed=seed)
            res.decision_ms.append((time.perf_counter() - t0) * 1000)
            plan = None
            if d.node is None and cls.preemption.may_preempt != "never":
                plan = plan_preemption(engine, snap, pod, now=t, quotas=work.quotas, seed=seed)
            elif d.node is not None and pod.item_keys and _locality_preemption(engine, cls):
                warm = warm_nodes(snap, pod)
                if warm and d.node not in warm:
                    plan = plan_preemption(
                        engine, snap, pod, now=t, quotas=work.quotas, seed=seed, nodes=warm
                    )
            if plan is not None:
                res.preemptions += 1
                for v in plan.victims:
                    vst = live[v.uid]
                    if vst.remaining is not None:
                        vst.remaining = max(1.0, vst.remaining - (t - vst.started))
                    stop(v.uid)
                    vst.gen += 1
                    vst.queued_at = t
                    res.preempted[vst.tier] += 1
                    queue.push(vst.job.pod)
                d = engine.decide(snap, pod, now=t, seed=seed, nominated=plan.node)
            if d.node is None:
                failed.add(shape)
                stuck[pod.id] = freed
                continue
            bind(pod, cls, d.node, d.gpus, t, adm.borrowed)

    while events and events[0][0] < work.horizon_s:
        t = events[0][0]
        while events and events[0][0] == t:
            _, kind, _, ref = heapq.heappop(events)
            if kind == ARRIVE:
                snap.mix.observe(live[ref].job.pod)
                queue.push(live[ref].job.pod)
            elif kind == REMOVE:
                queue.remove(ref)
                stop(ref)
            else:
                uid, gen = ref.rsplit("#", 1)
                if live[uid].gen == int(gen):
                    stop(uid)
        schedule(t)
        res.alloc.append((t, snap.allocated_milli() / max(1, res.capacity_milli) * 100))
    for pod in queue.ordered():
        res.pending_at_end[work.classes[pod.class_name].tier] += 1
    res.evictions = caches.evictions
    return res
