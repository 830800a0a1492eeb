"""Scheduler settings (set from CLI flags)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Config:
    """Scheduler settings (CLI flags)."""

    scheduler_name: str = "ballast"
    profile: str = "ballast"
    max_batch: int = 256  # decisions per cycle before draining events again
    flush_s: float = 15.0  # retry every parked pod at least this often
    status_s: float = 5.0  # GPUQuota / WorkloadClass status refresh
    seed: int = 0
