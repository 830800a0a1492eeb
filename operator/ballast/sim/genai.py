"""Turn the GenAI request trace (plus openb background jobs) into a mixed-tier workload.

- **Serving** (Interactive): requests are grouped per base model
  (``checkpoint_model_version_id``) into windows of ``window_s``. A model
  needs ``ceil(busy seconds / (window_s * target_util))`` replicas in a
  window, held for ``keepalive`` windows after demand drops (scale-down
  delay); each replica is a 1-GPU pod that loads the model. Scale-down
  removes the youngest replica.
- **Batch** (Nearline): a tenant (``groupId``) sending at least
  ``batch_min_requests`` requests for one model in one window submits them
  as one batch job in its own namespace: 1 GPU, the model, and the requests'
  execution time back to back.
- **Background** (Offline): openb pods drawn at random (seeded) arriving as a
  Poisson process whose offered GPU load is ``background_load`` of the
  cluster, each running its trace lifetime clipped to ``[10 min, 4 h]``.

Model sizes and load times: each model draws one base-model load latency from
``basemodel_update_latency_anon.csv`` (seeded); its size is that time at
``load_bandwidth`` bytes per second, clipped to 2-16 GB.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from ballast.placement.admission import QuotaSet
from ballast.placement.objects import (
    ClassPolicy,
    Pod,
    PreemptionPolicy,
    QuotaPolicy,
    ScoringPolicy,
    gpus,
)
from ballast.sim.traces import Request, TraceTask

GB = 10**9


@dataclass(frozen=True, slots=True)
class Model:
    """A base model: its size in a node cache and the time to load it on a miss."""

    name: str
    bytes: int
    load_s: float


@dataclass(frozen=True, slots=True)
class Job:
    """One pod arriving at ``arrival``; ``duration_s`` None runs until removed."""

    pod: Pod
    arrival: float
    duration_s: float | None
    kind: str  # serving | batch | background


@dataclass(slots=True)
class Workload:
    """Everything a replay needs: arrivals, scheduled removals, models, policies."""

    jobs: list[Job]
    removals: list[tuple[float, str]]
    models: dict[str, Model]
    classes: dict[str, ClassPolicy]
    quotas: QuotaSet
    horizon_s: float
    notes: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GenAIConfig:
    """Knobs of the workload (defaults used by bench/locality.py)."""

    start_day: float = 5.0
    days: float = 2.0
    window_s: float = 600.0
    target_util: float = 0.5
    keepalive: int = 1
    batch_min_requests: int = 4
    background_load: float = 0.85
    load_bandwidth: float = 200e6
    tenant_quota_gpus: float = 4.0
    seed: int = 0


def classes(locality_weight: float | None = None) -> dict[str, ClassPolicy]:
    """The three classes of the scenario (``locality_weight`` overrides DataLocality's)."""
    w = {} if locality_weight is None else {"DataLocality": locality_weight}
    serve_w = {"DataLocality": 2.0} if locality_weight is None else w
    return {
        "serving": ClassPolicy(
            "serving",
            "Interactive",
            100,
            PreemptionPolicy("lower-tier", preemptible=False, for_locality=True),
            placement=ScoringPolicy(weights=serve_w),
        ),
        "genai-batch": ClassPolicy(
            "genai-batch",
            "Nearline",
            50,
            PreemptionPolicy("lower-tier", preemptible=True, min_runtime_s=120),
            placement=ScoringPolicy(weights=w),
        ),
        "research": ClassPolicy(
            "research",
            "Offline",
            0,
            PreemptionPolicy("never", preemptible=True, min_runtime_s=300),
            placement=ScoringPolicy(weights=w),
        ),
    }


def draw_models(
    names: Sequence[str], latencies_ms: Sequence[float], cfg: GenAIConfig
) -> dict[str, Model]:
    """One load time per model from the measured latencies; size from the load time."""
    rng = random.Random(cfg.seed)
    out: dict[str, Model] = {}
    for name in sorted(names):
        load_s = rng.choice(latencies_ms) / 1000 if latencies_ms else 22.7
        size = int(min(16 * GB, max(2 * GB, load_s * cfg.load_bandwidth)))
        out[name] = Model(name, size, load_s)
    return out


def _serving_pod(model: str, n: int, t: float) -> Pod:
    return Pod(
        namespace="serving",
        name=f"serve-{model.lower()}-{n}",
        uid=f"serve-{model}-{n}",
        class_name="serving",
        gpus=1,
        cpu_milli=8000,
        memory_mib=32768,
        models=(model,),
        creation_time=t,
        spread_key=f"serve-{model}",
        labels={"app": f"serve-{model}"},
    )


def genai_jobs(
    requests: Sequence[Request], cfg: GenAIConfig
) -> tuple[list[Job], list[tuple[float, str]], set[str]]:
    """Serving replicas (with their removals) and batch jobs from the requests in range."""
    t0 = cfg.start_day * 86400
    t1 = t0 + cfg.days * 86400
    reqs = [q for q in requests if t0 <= q.time < t1]
    w = cfg.window_s
    groups: dict[tuple[str, str, int], list[Request]] = defaultdict(list)
    for q in reqs:
        groups[(q.tenant, q.model, int((q.time - t0) // w))].append(q)
    jobs: list[Job] = []
    busy: dict[tuple[str, int], float] = defaultdict(float)
    for (tenant, model, win), qs in sorted(groups.items()):
        if len(qs) >= cfg.batch_min_requests:
            start = min(q.time for q in qs) - t0
            pod = Pod(
                namespace=f"tenant-{tenant.lower()}",
                name=f"batch-{tenant}-{model}-{win}",
                uid=f"batch-{tenant}-{model}-{win}",
                class_name="genai-batch",
                gpus=1,
                cpu_milli=8000,
                memory_mib=32768,
                models=(model,),
                creation_time=start,
            )
            jobs.append(Job(pod, start, max(60.0, sum(q.exec_s for q in qs)), "batch"))
        else:
            for q in qs:
                busy[(model, win)] += max(q.exec_s, 1.0)
    nwin = math.ceil(cfg.days * 86400 / w)
    removals: list[tuple[float, str]] = []
    models = {q.model for q in reqs}
    for model in sorted(models):
        need = [math.ceil(busy.get((model, i), 0.0) / (w * cfg.target_util)) for i in range(nwin)]
        live: list[str] = []
        made = 0
        for i in range(nwin):
            want = max(need[max(0, i - cfg.keepalive) : i + 1])
            t = i * w
            while len(live) < want:
                made += 1
                pod = _serving_pod(model, made, t)
                live.append(pod.uid)
                jobs.append(Job(pod, t, None, "serving"))
            while len(live) > want:
                removals.append((t, live.pop()))
    return jobs, removals, models


def background_jobs(
    tasks: Sequence[TraceTask], capacity_milli: int, horizon_s: float, cfg: GenAIConfig
) -> list[Job]:
    """openb pods as Offline jobs arriving so that offered GPU load is ``background_load``."""
    pool = [t for t in tasks if t.pod.demand_milli]
    if not pool or cfg.background_load <= 0:
        return []
    rng = random.Random(cfg.seed + 1)

    def life(t: TraceTask) -> float:
        return min(4 * 3600.0, max(600.0, t.duration_s or 4 * 3600.0))

    mean_work = sum(t.pod.demand_milli * life(t) for t in pool) / len(pool)
    rate = cfg.background_load * capacity_milli / mean_work  # arrivals per second
    jobs: list[Job] = []
    # Start with the cluster already busy: a burst at t=0 worth the offered load.
    t, n = 0.0, 0
    warm = 0
    while warm < cfg.background_load * capacity_milli:
        src = pool[rng.randrange(len(pool))]
        warm += src.pod.demand_milli
        jobs.append(_background(src, n, 0.0, life(src)))
        n += 1
    while True:
        t += rng.expovariate(rate)
        if t >= horizon_s:
            break
        src = pool[rng.randrange(len(pool))]
        jobs.append(_background(src, n, t, life(src)))
        n += 1
    return jobs


def _background(src: TraceTask, n: int, t: float, duration: float) -> Job:
    p = src.pod
    pod = Pod(
        namespace="research",
        name=f"{p.name}-{n}",
        uid=f"bg-{n}",
        class_name="research",
        gpus=p.gpus,
        gpu_milli=p.gpu_milli,
        cpu_milli=p.cpu_milli,
        memory_mib=p.memory_mib,
        gpu_products=p.gpu_products,
        creation_time=t,
        labels={"app": "research"},
    )
    return Job(pod, t, duration, "background")


def build_workload(
    requests: Sequence[Request],
    latencies_ms: Sequence[float],
    background: Sequence[TraceTask],
    capacity_milli: int,
    cfg: GenAIConfig,
    locality_weight: float | None = None,
) -> Workload:
    """The whole scenario, deterministic for ``cfg.seed``."""
    genai, removals, names = genai_jobs(requests, cfg)
    horizon = cfg.days * 86400
    bg = background_jobs(background, capacity_milli, horizon, cfg)
    jobs = sorted(genai + bg, key=lambda j: (j.arrival, j.pod.uid))
    tenants = sorted({j.pod.namespace for j in jobs if j.kind == "batch"})
    quotas = [
        QuotaPolicy(
            ns,
            gpus(cfg.tenant_quota_gpus),
            cohort="shared",
            borrowing_limit_milli=gpus(cfg.tenant_quota_gpus),
        )
        for ns in tenants
    ]
    quotas.append(
        QuotaPolicy(
            "research",
            int(capacity_milli * 0.8),
            cohort="shared",
            borrowing_limit_milli=int(capacity_milli * 0.15),
        )
    )
    return Workload(
        jobs,
        removals,
        draw_models(sorted(names), latencies_ms, cfg),
        classes(locality_weight),
        QuotaSet(quotas),
        horizon,
        {
            "serving_jobs": sum(j.kind == "serving" for j in jobs),
            "batch_jobs": sum(j.kind == "batch" for j in jobs),
            "background_jobs": len(bg),
        },
    )
