"""Figures of one replay from the recorded pod timelines (pure; the same for both schedulers).

A timeline holds what the API server said about one pod, in seconds after
the replay started: when it was created, when it was bound (``spec.nodeName``
first seen) and where, when it ended (completed by kwok, removed by the
trace, or deleted by someone else: a preemption), and the reasons its
``PodScheduled`` condition gave while it waited.

Queue wait is bind time minus creation time; a pod never placed counts
with its wait until it was removed or the replay ended (a lower bound), so
a scheduler cannot look better by never placing the hardest pods.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

TIERS = ("Interactive", "Nearline", "Offline")
PREEMPTED = "preempted"
QUOTA_REASON = "QuotaExceeded"
WINDOW_REASON = "WindowClosed"


@dataclass(slots=True)
class Timeline:
    """One pod as the API server showed it."""

    name: str
    namespace: str
    kind: str
    tier: str
    gpu_milli: int  # GPUs this pod holds once bound, in milli-GPUs, on this scheduler
    created: float
    bound: float | None = None
    node: str | None = None
    ended: float | None = None
    end: str = ""  # completed | removed | preempted | "" (still there)
    reasons: set[str] = field(default_factory=set)
    # The trace's GPU demand in milli-GPUs, the same on both schedulers (a share
    # is its fraction here even where the scheduler took a whole GPU for it); -1:
    # gpu_milli.
    work_milli: int = -1
    models: tuple[str, ...] = ()
    cache_hit: bool | None = None  # set at bind for pods that load a model
    cold_start_s: float = 0.0  # trace seconds of model load paid at bind (misses)
    # Its class's minimumRuntimeSeconds (replay seconds): a preemption before it
    # breaks the class's promise (kube-scheduler knows no such field).
    min_runtime_s: float = 0.0

    def preempted_early(self) -> bool:
        """Whether it was preempted before it had run its class's minimum runtime."""
        if self.end != PREEMPTED or self.bound is None or self.ended is None:
            return False
        return self.ended - self.bound < self.min_runtime_s


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    s = sorted(values)
    rank = max(1, min(len(s), -(-q * len(s) // 100)))
    return s[int(rank) - 1]


def _r(x: float | None, nd: int = 2) -> float | None:
    return None if x is None else round(x, nd)


def _mean_pct(values: Sequence[float], capacity: int) -> float | None:
    return _r(100 * sum(values) / len(values) / capacity) if values and capacity else None


def allocation_series(
    pods: Sequence[Timeline], capacity_gpus: int, end_s: float, step_s: float
) -> dict[str, list[float]]:
    """GPUs allocated (bound pods), the trace's GPU work they serve, and GPUs demanded.

    Allocated counts what the scheduler took (a whole GPU for a share where it
    knows no shares); served counts the trace's demand of the bound pods, the
    same measure on both schedulers; demand counts bound and waiting pods.
    """
    times: list[float] = []
    allocated: list[float] = []
    served: list[float] = []
    demand: list[float] = []
    t = 0.0
    while t <= end_s + 1e-9:
        alloc = work = want = 0
        for p in pods:
            stop = p.ended if p.ended is not None else float("inf")
            if p.created <= t < stop:
                want += p.gpu_milli
                if p.bound is not None and p.bound <= t:
                    alloc += p.gpu_milli
                    work += p.gpu_milli if p.work_milli < 0 else p.work_milli
        times.append(round(t, 3))
        allocated.append(min(alloc / 1000, float(capacity_gpus)))
        served.append(min(work / 1000, float(capacity_gpus)))
        demand.append(want / 1000)
        t += step_s
    return {"t_s": times, "allocated_gpus": allocated, "served_gpus": served,
            "demand_gpus": demand}  # fmt: skip


def summarize(
    pods: Sequence[Timeline],
    capacity_gpus: int,
    end_s: float,
    step_s: float = 1.0,
    window_open_s: float | None = None,
) -> dict[str, Any]:
    """Every figure of the report for one scheduler.

    ``window_open_s``: when the batch window opened; the work served from then
    on is reported apart, the figure that the window's hold does not weigh on.
    """
    tiers: dict[str, Any] = {}
    for tier in TIERS:
        mine = [p for p in pods if p.tier == tier]
        waits = [
            (p.bound if p.bound is not None else (p.ended if p.ended is not None else end_s))
            - p.created
            for p in mine
        ]
        tiers[tier] = {
            "pods": len(mine),
            "placed": sum(p.bound is not None for p in mine),
            "never_placed": sum(p.bound is None for p in mine),
            "queue_wait_p50_s": _r(percentile(waits, 50)),
            "queue_wait_p95_s": _r(percentile(waits, 95)),
            "queue_wait_p99_s": _r(percentile(waits, 99)),
            "preempted": sum(p.end == PREEMPTED for p in mine),
            "preempted_before_min_runtime": sum(p.preempted_early() for p in mine),
            "quota_waits": sum(QUOTA_REASON in p.reasons for p in mine),
            "window_holds": sum(WINDOW_REASON in p.reasons for p in mine),
        }
    series = allocation_series(pods, capacity_gpus, end_s, step_s)
    alloc, demand = series["allocated_gpus"], series["demand_gpus"]
    served = series["served_gpus"]
    peak = max(range(len(demand)), key=lambda i: (demand[i], -i)) if demand else 0
    loading = [p for p in pods if p.models and p.bound is not None]
    return {
        "tiers": tiers,
        "pods": len(pods),
        "placed": sum(p.bound is not None for p in pods),
        "never_placed": sum(p.bound is None for p in pods),
        "preemptions": sum(p.end == PREEMPTED for p in pods),
        "preempted_before_min_runtime": sum(p.preempted_early() for p in pods),
        "quota_waits": sum(QUOTA_REASON in p.reasons for p in pods),
        "window_holds": sum(WINDOW_REASON in p.reasons for p in pods),
        "gpu_capacity": capacity_gpus,
        "gpu_allocation_mean_pct": _r(100 * sum(alloc) / len(alloc) / capacity_gpus)
        if alloc and capacity_gpus
        else None,
        "gpu_work_served_mean_pct": _r(100 * sum(served) / len(served) / capacity_gpus)
        if served and capacity_gpus
        else None,
        "gpu_work_served_after_window_opens_mean_pct": _mean_pct(
            [x for t, x in zip(series["t_s"], served, strict=True) if t >= window_open_s],
            capacity_gpus,
        )
        if window_open_s is not None
        else None,
        "peak": {
            "t_s": series["t_s"][peak] if demand else None,
            "demand_gpus": _r(demand[peak]) if demand else None,
            "allocated_gpus": _r(alloc[peak]) if alloc else None,
            "unallocated_gpus": _r(capacity_gpus - alloc[peak]) if alloc else None,
        },
        "waiting_reasons": dict(
            sorted(Counter(r for p in pods for r in p.reasons).items(), key=lambda kv: -kv[1])
        ),
        "model_placements": len(loading),
        "cache_hits": sum(p.cache_hit is True for p in loading),
        "cold_start_s": _r(sum(p.cold_start_s for p in loading), 1),
        "series": series,
    }
