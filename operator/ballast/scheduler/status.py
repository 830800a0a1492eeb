"""What the scheduler reports into GPUQuota and WorkloadClass status.

Pure: reads the scheduler's state, returns ``{status path: status fields}``.
The scheduler writes only the entries that changed since its last write.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ballast.kube.raw import GPUQUOTAS, WORKLOADCLASSES
from ballast.placement.objects import QuotaPolicy

if TYPE_CHECKING:
    from ballast.scheduler.core import Scheduler

MILLI = 1000


def _gpus(milli: int) -> int:
    # Status shows whole GPUs; shares round up (a started GPU is a used GPU).
    return -(-milli // MILLI)


def status_writes(s: Scheduler) -> dict[str, dict[str, Any]]:
    """Quota usage (used, borrowed, lent, waiting) and class pod counts."""
    out: dict[str, dict[str, Any]] = {}
    waiting_by_tenant: dict[str, int] = {}
    pending_by_class: dict[str, int] = {}
    running_by_class: dict[str, int] = {}
    for rec in s.queue.waiting():
        cls_name = rec.labels.get("ballast.dev/class", "")
        pending_by_class[cls_name] = pending_by_class.get(cls_name, 0) + 1
        if rec.reason == "QuotaExceeded" and rec.stage == "parked" and rec.pod is not None:
            tenant = rec.pod.tenant_key
            waiting_by_tenant[tenant] = waiting_by_tenant.get(tenant, 0) + rec.pod.demand_milli
    for p in s.snapshot.pods.values():
        running_by_class[p.class_name] = running_by_class.get(p.class_name, 0) + 1
    quotas = {q.namespace: q for q in s.policies.quota_set}
    for name, q in quotas.items():
        usage = s.snapshot.tenant_usage(name)
        lent = max(0, q.nominal_milli - usage.total_milli) if q.cohort else 0
        out[GPUQUOTAS.path(name, sub="status")] = {
            "usedGPUs": _gpus(usage.total_milli),
            "borrowedGPUs": _gpus(usage.borrowed_milli),
            "lentGPUs": _lent(s, quotas, name, lent),
            "waitingGPUs": _gpus(waiting_by_tenant.get(name, 0)),
        }
    for name in s.policies.class_names():
        out[WORKLOADCLASSES.path(name, sub="status")] = {
            "pendingPods": pending_by_class.get(name, 0),
            "runningPods": running_by_class.get(name, 0),
        }
    return out


def _lent(s: Scheduler, quotas: dict[str, QuotaPolicy], tenant: str, idle_milli: int) -> int:
    """Idle GPUs of ``tenant`` actually used by cohort members above their quota."""
    q = quotas[tenant]
    if not q.cohort or idle_milli <= 0:
        return 0
    borrowed = sum(
        s.snapshot.tenant_usage(other).borrowed_milli
        for other, oq in quotas.items()
        if other != tenant and oq.cohort == q.cohort
    )
    limit = idle_milli if q.lending_limit_milli is None else min(idle_milli, q.lending_limit_milli)
    return _gpus(min(limit, borrowed))
