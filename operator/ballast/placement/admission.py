"""Admission: a pod may be placed only while its batch window is open and its quota allows.

Quota semantics (GPUQuota, amounts in milli-GPUs): a tenant's per-class and
per-tier limits are hard caps. Up to its nominal quota a tenant needs nobody;
above it, a tenant in a cohort borrows the unused quota other members lend
(each lends at most its lending limit), never more than its own borrowing
limit. A pod admitted above nominal is marked *borrowed*: the lender may
reclaim that capacity by preemption. CPU-only pods use no GPU quota.

Held pods are not rejected: the result says why they wait.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from ballast.placement.objects import ClassPolicy, Pod, QuotaPolicy, WindowState
from ballast.placement.snapshot import Snapshot

_INF = 1 << 62


@dataclass(frozen=True, slots=True)
class Admission:
    """Whether a pod may go to placement now; ``reason`` says why not."""

    admitted: bool
    reason: str = ""
    borrowed: bool = False


def fmt_gpus(milli: int) -> str:
    """Milli-GPUs as a short GPU count (``16``, ``2.5``)."""
    return f"{milli / 1000:g}"


class QuotaSet:
    """Every GPUQuota in force, indexed by namespace and by cohort."""

    def __init__(self, quotas: Iterable[QuotaPolicy] = ()) -> None:
        self._by_ns: dict[str, QuotaPolicy] = {}
        self._cohorts: dict[str, list[QuotaPolicy]] = {}
        for q in quotas:
            if q.namespace in self._by_ns:
                raise ValueError(f"two quotas for namespace {q.namespace}")
            self._by_ns[q.namespace] = q
            if q.cohort:
                self._cohorts.setdefault(q.cohort, []).append(q)

    def get(self, namespace: str) -> QuotaPolicy | None:
        """The quota of ``namespace`` (None: unlimited)."""
        return self._by_ns.get(namespace)

    def members(self, cohort: str) -> list[QuotaPolicy]:
        """Quotas in ``cohort``."""
        return self._cohorts.get(cohort, [])

    def __iter__(self) -> Iterator[QuotaPolicy]:
        return iter(self._by_ns.values())

    def __len__(self) -> int:
        return len(self._by_ns)


def cohort_lendable(tenant: str, cohort: str, quotas: QuotaSet, snapshot: Snapshot) -> int:
    """Milli-GPUs the other members of ``cohort`` can lend ``tenant`` in total.

    What they lend (unused nominal quota, capped by each lending limit) minus
    what members other than ``tenant`` already borrow; the tenant's own
    borrowing counts against this total.
    """
    lend = borrowed = 0
    for q in quotas.members(cohort):
        if q.namespace == tenant:
            continue
        used = snapshot.usage.total(q.namespace)
        limit = _INF if q.lending_limit_milli is None else q.lending_limit_milli
        lend += min(limit, max(0, q.nominal_milli - used))
        borrowed += max(0, used - q.nominal_milli)
    return max(0, lend - borrowed)


def admit(
    pod: Pod,
    cls: ClassPolicy,
    snapshot: Snapshot,
    quotas: QuotaSet,
    windows: Mapping[str, WindowState],
) -> Admission:
    """Decide whether ``pod`` may be placed now."""
    if cls.window:
        w = windows.get(cls.window)
        if w is None or not w.open:
            state = "unknown" if w is None else "closed"
            return Admission(False, f"waiting for batch window {cls.window} ({state})")
    q = quotas.get(pod.tenant_key)
    need = pod.demand_milli
    if q is None or need == 0:
        return Admission(True)
    u = snapshot.usage.peek(pod.tenant_key)
    limit = q.class_limits_milli.get(cls.name)
    used = u.by_class.get(cls.name, 0)
    if limit is not None and used + need > limit:
        return Admission(
            False,
            f"quota {q.namespace}: class {cls.name} at {fmt_gpus(used)}/{fmt_gpus(limit)} GPUs",
        )
    limit = q.tier_limits_milli.get(cls.tier)
    used = u.by_tier.get(cls.tier, 0)
    if limit is not None and used + need > limit:
        return Admission(
            False,
            f"quota {q.namespace}: tier {cls.tier} at {fmt_gpus(used)}/{fmt_gpus(limit)} GPUs",
        )
    after = u.total_milli + need
    if after <= q.nominal_milli:
        return Admission(True)
    head = f"quota {q.namespace} at {fmt_gpus(u.total_milli)}/{fmt_gpus(q.nominal_milli)} GPUs"
    if not q.cohort:
        return Admission(False, head)
    borrow = after - q.nominal_milli
    if q.borrowing_limit_milli is not None and borrow > q.borrowing_limit_milli:
        return Admission(
            False, f"{head}, borrowing limit {fmt_gpus(q.borrowing_limit_milli)} reached"
        )
    available = cohort_lendable(q.namespace, q.cohort, quotas, snapshot)
    if borrow > available:
        return Admission(False, f"{head}, cohort {q.cohort} has {fmt_gpus(available)} to lend")
    return Admission(True, borrowed=True)
