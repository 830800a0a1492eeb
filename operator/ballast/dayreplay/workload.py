"""The day to replay: timed pods, classes, quotas and a batch window (pure; no cluster).

The scenario is the simulator's GenAI one (:func:`ballast.sim.genai.build_workload`,
the same readers and the same rules): per-model serving replicas that scale
with the request trace (Interactive), per-tenant batch jobs (Nearline), and
openb background jobs (Offline) offered at ``background_load`` of the
cluster, run here under a batch window. ``hours`` of the trace from
``start_day`` are compressed into ``minutes`` of replay: every arrival,
lifetime, scale-down, minimum runtime and preemption grace period is divided
by :attr:`DayConfig.speedup`.
Any files of the same formats can be replayed; nothing here knows the shared traces.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ballast.api import wellknown as wk
from ballast.placement.objects import MILLI, ClassPolicy
from ballast.sim.genai import GenAIConfig, Model, Workload, build_workload
from ballast.sim.traces import load_genai_requests, load_latencies_ms, load_openb_pods

WINDOW = "off-peak"  # the BatchWindow of the background class
BACKGROUND_CLASS = "research"
REPLAY_LABEL = f"{wk.GROUP}/replay"  # value: serving | batch | background
RUN_FOR = "pod-complete.stage.kwok.x-k8s.io/delay"  # kwok completes the pod after this
MAX_NAME = 63


@dataclass(frozen=True, slots=True)
class DayConfig:
    """What part of the traces to replay, and how fast."""

    minutes: float = 3.0
    hours: float = 8.0
    start_day: float = 5.0
    background_load: float = 0.85
    window_opens_at: float = 0.25  # fraction of the replay; open from then to the end
    seed: int = 0

    def __post_init__(self) -> None:
        if self.minutes <= 0 or self.hours <= 0:
            raise ValueError("minutes and hours must be positive")
        if not 0 <= self.window_opens_at < 1:
            raise ValueError("window_opens_at must be in [0, 1)")

    @property
    def speedup(self) -> float:
        """Trace seconds per replay second."""
        return self.hours * 60 / self.minutes

    @property
    def replay_s(self) -> float:
        """Length of the replay in real seconds."""
        return self.minutes * 60


@dataclass(frozen=True, slots=True)
class ReplayPod:
    """One pod of the replay, its times in real seconds after the replay starts."""

    name: str
    namespace: str
    cls: str
    tier: str
    kind: str  # serving | batch | background
    gpus: int
    gpu_milli: int  # a share of one GPU (0: whole GPUs)
    cpu_milli: int
    memory_mib: int
    models: tuple[str, ...]
    gpu_products: tuple[str, ...]
    at_s: float
    run_s: float | None  # runs this long once started (None: until removed)
    remove_at_s: float | None  # the trace scales it down then (serving)

    @property
    def demand_milli(self) -> int:
        """GPU demand in milli-GPUs (a share counts its share)."""
        return self.gpus * MILLI + self.gpu_milli


@dataclass(frozen=True, slots=True)
class QuotaSpec:
    """A GPUQuota of the replay (whole GPUs)."""

    name: str
    namespace: str
    gpus: int
    cohort: str
    borrowing_limit: int | None


@dataclass(frozen=True, slots=True)
class DayPlan:
    """Everything the driver needs."""

    pods: tuple[ReplayPod, ...]
    classes: Mapping[str, ClassPolicy]
    quotas: tuple[QuotaSpec, ...]
    models: Mapping[str, Model]
    window_open_s: float  # real seconds after start when the batch window opens
    config: DayConfig

    @property
    def namespaces(self) -> list[str]:
        """Every namespace the pods and quotas live in."""
        return sorted({p.namespace for p in self.pods} | {q.namespace for q in self.quotas})

    def counts(self) -> dict[str, int]:
        """Pods per kind."""
        out: dict[str, int] = {}
        for p in self.pods:
            out[p.kind] = out.get(p.kind, 0) + 1
        return out


def dns_label(raw: str, limit: int = MAX_NAME) -> str:
    """``raw`` as a DNS-1123 label (lower case, ``[a-z0-9-]``, at most ``limit`` characters)."""
    s = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")[:limit].rstrip("-")
    return s or "x"


def plan(work: Workload, cfg: DayConfig) -> DayPlan:
    """Compress ``work`` (trace seconds) into the replay (real seconds)."""
    k = cfg.speedup
    removal = {uid: t / k for t, uid in work.removals}
    classes = dict(work.classes)
    if BACKGROUND_CLASS in classes:
        classes[BACKGROUND_CLASS] = replace(classes[BACKGROUND_CLASS], window=WINDOW)
    classes = {
        n: replace(
            c,
            preemption=replace(
                c.preemption,
                min_runtime_s=c.preemption.min_runtime_s / k,
                grace_period_s=c.preemption.grace_period_s / k,
            ),
        )
        for n, c in classes.items()
    }
    pods: list[ReplayPod] = []
    for i, job in enumerate(work.jobs):
        p = job.pod
        cls = classes.get(p.class_name)
        if cls is None:
            raise ValueError(f"pod {p.name}: no class {p.class_name!r} in the workload")
        pods.append(
            ReplayPod(
                name=dns_label(f"{job.kind[:5]}-{i:05d}-{p.name}"),
                namespace=dns_label(p.namespace),
                cls=p.class_name,
                tier=cls.tier,
                kind=job.kind,
                gpus=p.gpus,
                gpu_milli=p.gpu_milli,
                cpu_milli=p.cpu_milli,
                memory_mib=p.memory_mib,
                models=p.models,
                gpu_products=p.gpu_products,
                at_s=job.arrival / k,
                run_s=None if job.duration_s is None else job.duration_s / k,
                remove_at_s=removal.get(p.uid),
            )
        )
    quotas = tuple(
        QuotaSpec(
            name=dns_label(q.namespace),
            namespace=dns_label(q.namespace),
            gpus=max(0, q.nominal_milli // MILLI),
            cohort=q.cohort,
            borrowing_limit=None
            if q.borrowing_limit_milli is None
            else q.borrowing_limit_milli // MILLI,
        )
        for q in work.quotas
    )
    return DayPlan(
        pods=tuple(sorted(pods, key=lambda p: (p.at_s, p.name))),
        classes=classes,
        quotas=quotas,
        models=dict(work.models),
        window_open_s=cfg.window_opens_at * cfg.replay_s,
        config=cfg,
    )


@dataclass(frozen=True, slots=True)
class TracePaths:
    """The three trace files a replay reads."""

    requests: Path
    latencies: Path
    background: Path


def load(paths: TracePaths, capacity_gpus: int, cfg: DayConfig) -> DayPlan:
    """Read the traces and build the plan for a cluster of ``capacity_gpus``."""
    gcfg = GenAIConfig(
        start_day=cfg.start_day,
        days=cfg.hours / 24,
        background_load=cfg.background_load,
        seed=cfg.seed,
    )
    work = build_workload(
        load_genai_requests(paths.requests),
        load_latencies_ms(paths.latencies),
        load_openb_pods(paths.background),
        capacity_gpus * MILLI,
        gcfg,
    )
    return plan(work, cfg)


def pod_body(
    pod: ReplayPod, scheduler: str, priority_class: str | None, shares: bool
) -> dict[str, Any]:
    """The Pod object. ``shares``: the scheduler understands ``ballast.dev/gpu-milli``;
    otherwise a share asks for one whole GPU (what it takes without GPU sharing)."""
    requests: dict[str, str] = {}
    if pod.cpu_milli:
        requests["cpu"] = f"{pod.cpu_milli}m"
    if pod.memory_mib:
        requests["memory"] = f"{pod.memory_mib}Mi"
    annotations: dict[str, str] = {}
    gpus = pod.gpus
    if pod.gpu_milli:
        if shares:
            annotations[wk.ANNOTATION_GPU_MILLI] = str(pod.gpu_milli)
        else:
            gpus = 1
    limits: dict[str, str] = {}
    if gpus:
        requests[wk.GPU_RESOURCE] = limits[wk.GPU_RESOURCE] = str(gpus)
    if pod.models:
        annotations[wk.ANNOTATION_MODELS] = ",".join(pod.models)
    if pod.run_s is not None:
        annotations[RUN_FOR] = f"{max(pod.run_s, 0.001):.3f}s"
    spec: dict[str, Any] = {
        "schedulerName": scheduler,
        "terminationGracePeriodSeconds": 0,
        "restartPolicy": "Never",
        "containers": [
            {
                "name": "main",
                "image": f"registry.local/{pod.kind}:1",
                "resources": {"requests": requests, **({"limits": limits} if limits else {})},
            }
        ],
    }
    if priority_class:
        spec["priorityClassName"] = priority_class
    if pod.gpu_products:
        term = {"key": wk.LABEL_GPU_PRODUCT, "operator": "In", "values": list(pod.gpu_products)}
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [term]}]
                }
            }
        }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod.name,
            "namespace": pod.namespace,
            "labels": {wk.LABEL_CLASS: pod.cls, REPLAY_LABEL: pod.kind},
            **({"annotations": annotations} if annotations else {}),
        },
        "spec": spec,
    }


def whole_seconds(seconds: float) -> int:
    """A compressed duration as the API's whole seconds: the nearest."""
    return round(seconds)


def class_body(cls: ClassPolicy) -> dict[str, Any]:
    """The WorkloadClass for one of the scenario's classes."""
    policy = {"never": "Never", "lower-tier": "LowerTier", "lower-priority": "LowerPriority"}
    pre = cls.preemption
    preemption: dict[str, Any] = {
        "policy": policy.get(pre.may_preempt, "Never"),
        "preemptible": pre.preemptible,
        # Whole seconds in the API: the nearest, so a compressed 30 s grace period
        # (0.19 s at 160x) is 0 rather than 1 s, five times its compressed length.
        "minRuntimeSeconds": whole_seconds(pre.min_runtime_s),
        "gracePeriodSeconds": whole_seconds(pre.grace_period_s),
    }
    if pre.for_locality and pre.may_preempt != "never":
        preemption["forLocality"] = True
    spec: dict[str, Any] = {"tier": cls.tier, "priority": cls.priority, "preemption": preemption}
    if cls.window:
        spec["window"] = cls.window
    return {
        "apiVersion": wk.API_VERSION,
        "kind": "WorkloadClass",
        "metadata": {"name": cls.name},
        "spec": spec,
    }


def quota_body(q: QuotaSpec) -> dict[str, Any]:
    """The GPUQuota object."""
    spec: dict[str, Any] = {"namespaces": [q.namespace], "gpus": q.gpus}
    if q.cohort:
        spec["cohort"] = q.cohort
        if q.borrowing_limit is not None:
            spec["borrowingLimit"] = q.borrowing_limit
    return {
        "apiVersion": wk.API_VERSION,
        "kind": "GPUQuota",
        "metadata": {"name": q.name},
        "spec": spec,
    }


def window_body(open_at: str, open_seconds: int) -> dict[str, Any]:
    """The BatchWindow: one opening at ``open_at`` (RFC 3339) for ``open_seconds``.

    Its cron schedule (1 January, 00:00 UTC, one minute) only satisfies the
    schema; the replay's opening is the extra one.
    """
    return {
        "apiVersion": wk.API_VERSION,
        "kind": "BatchWindow",
        "metadata": {"name": WINDOW},
        "spec": {
            "schedule": "0 0 1 1 *",
            "duration": "1m",
            "timeZone": "UTC",
            "onClose": "Finish",
            "extraOpenings": [{"start": open_at, "duration": f"{max(1, open_seconds)}s"}],
        },
    }
