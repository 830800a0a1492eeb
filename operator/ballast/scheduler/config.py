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
    seed: int = 0
