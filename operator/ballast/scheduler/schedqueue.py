"""The scheduling queue: pods to try now (active) and pods waiting for a change (parked).

Like kube-scheduler's activeQ and unschedulable pods: a pod is in at most one
of the two, and its record says which (``PodRecord.stage``). Pods are tried
in queue order (tier, priority, age); a pod that failed recently carries a
``retry_at`` and is skipped until then, so no pod is retried in a hot loop.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from ballast.scheduler.podcache import PodRecord

BACKOFF_S = 1.0
BACKOFF_MAX_S = 300.0


def backoff(failures: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after ``failures`` consecutive failures: exponential, jittered ±20%."""
    if failures <= 0:
        return 0.0
    base = min(BACKOFF_MAX_S, BACKOFF_S * 2 ** min(failures - 1, 20))
    jitter = rng.random() if rng is not None else random.random()
    return float(base * (0.8 + 0.4 * jitter))


def unschedulable_backoff(parks: int, initial_s: float, max_s: float) -> float:
    """Seconds before the next attempt after ``parks`` attempts in a row found no room.

    kube-scheduler's pod backoff (``initial_s * 2^(parks-1)``, at most ``max_s``):
    without it a backlog of parked pods is retried on every pod that ends, and
    those retries take the scheduling thread from new pods.
    """
    if parks <= 0 or initial_s <= 0:
        return 0.0
    return float(min(max_s, initial_s * 2 ** min(parks - 1, 20)))


class SchedulingQueue:
    """Active and parked pods, by uid."""

    def __init__(self) -> None:
        self.active: dict[str, PodRecord] = {}
        self.parked: dict[str, PodRecord] = {}
        # Retried pods that stayed unschedulable in a row (see Scheduler's RETRY_STREAK).
        self.streak = 0

    def __len__(self) -> int:
        return len(self.active) + len(self.parked)

    def waiting(self) -> list[PodRecord]:
        """Every pod in the queue, active first."""
        return [*self.active.values(), *self.parked.values()]

    def add(self, rec: PodRecord) -> None:
        """Make ``rec`` active (it is tried at the next cycle, after its ``retry_at``)."""
        self.parked.pop(rec.uid, None)
        self.active[rec.uid] = rec
        rec.stage = "active"

    def park(self, rec: PodRecord) -> None:
        """Move ``rec`` to wait for a change."""
        self.active.pop(rec.uid, None)
        self.parked[rec.uid] = rec
        rec.stage = "parked"
        rec.retrying = ""

    def remove(self, uid: str) -> None:
        """Take a pod out of the queue (placed, bound elsewhere, deleted)."""
        self.active.pop(uid, None)
        self.parked.pop(uid, None)

    def batch(self, key: Callable[[PodRecord], Any], limit: int, now: float) -> list[PodRecord]:
        """Up to ``limit`` active pods due now, in queue order."""
        due = [r for r in self.active.values() if r.retry_at <= now and r.pod is not None]
        due += [r for r in self.active.values() if r.retry_at <= now and r.pod is None]
        due.sort(key=key)
        return due[:limit]

    def next_due(self) -> float | None:
        """The earliest ``retry_at`` among active pods (None when none is active)."""
        return min((r.retry_at for r in self.active.values()), default=None)

    def unpark(self, recs: list[PodRecord]) -> list[PodRecord]:
        """These parked pods become active again, remembering why they waited."""
        self.streak = 0
        for rec in recs:
            del self.parked[rec.uid]
            self.active[rec.uid] = rec
            rec.stage = "active"
            rec.retrying = rec.reason
        return recs

    def unpark_all(self) -> list[PodRecord]:
        """Every parked pod becomes active again, remembering why it waited."""
        return self.unpark(list(self.parked.values()))

    def repark_retries(self, reason: str) -> None:
        """Send the retried pods that waited for ``reason`` back to wait, unchanged."""
        for uid, rec in list(self.active.items()):
            if rec.retrying == reason:
                del self.active[uid]
                self.parked[uid] = rec
                rec.stage = "parked"
                rec.retrying = ""
