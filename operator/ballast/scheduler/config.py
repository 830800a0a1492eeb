"""Scheduler settings (set from CLI flags)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Config:
    """Scheduler settings (CLI flags)."""

    scheduler_name: str = "ballast"
    profile: str = "ballast"
    max_batch: int = 256  # decisions per cycle before draining events again
    # Parked pods are woken by the changes that can help them (hints.py); every
    # one is retried at least this often anyway (kube-scheduler's
    # podMaxInUnschedulablePodsDuration), so a change a hint misses strands none.
    flush_s: float = 300.0
    status_s: float = 5.0  # GPUQuota / WorkloadClass status refresh
    # kube-scheduler's podInitialBackoffSeconds and podMaxBackoffSeconds: a pod that
    # found no room (or no quota) n times in a row is tried again, once a change may
    # help it, no sooner than initial * 2^(n-1) (at most max) after its last attempt,
    # so a backlog is not retried on every pod that ends (0: no backoff).
    pod_initial_backoff_s: float = 1.0
    pod_max_backoff_s: float = 10.0
    seed: int = 0
