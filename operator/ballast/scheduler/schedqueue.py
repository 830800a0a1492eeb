"""The scheduling queue: pods to try now (active) and pods waiting for a change (parked).

Like kube-scheduler's activeQ and unschedulable pods: a pod is in at most one
of the two, and its record says which (``PodRecord.stage``). Pods are tried
in queue order (tier, priority, age); a pod that failed recently carries a
``retry_at`` and is skipped until then, so no pod is retried in a hot loop.
"""

from __future__ import annotations

import heapq
import itertools
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
    """Active and parked pods, by uid.

    Active pods are split as in kube-scheduler (activeQ and backoffQ): a
    heap of those found due, by queue key, and a heap of the others by
    ``retry_at``. A cycle moves the pods that came due from one heap to the
    other and takes the first ``limit``; the earliest ``retry_at`` is the
    backoff heap's top. On a backlog of tens of thousands of pods, walking
    or sorting every active pod cost milliseconds, several times a step. A
    pod's entry is the one made when it last became active (``retry_at`` is
    read then: set it first) or was found due; older entries are dropped
    when they reach the top.
    """

    def __init__(self) -> None:
        self.active: dict[str, PodRecord] = {}
        self.parked: dict[str, PodRecord] = {}
        self._due: dict[str, PodRecord] = {}  # active pods found due (retry_at <= now)
        self._backoff: list[tuple[float, int, str]] = []  # (retry_at, seq, uid)
        self._filed: dict[str, int] = {}  # uid -> seq of its live heap entry
        self._order: list[tuple[Any, int, str]] = []  # (queue key, seq, uid) of due pods
        self._ordered: dict[str, int] = {}  # uid -> seq of its live entry in _order
        self._epoch = 0
        self._seq = itertools.count()
        # Retried pods that stayed unschedulable in a row (see Scheduler's RETRY_STREAK).
        self.streak = 0

    def __len__(self) -> int:
        return len(self.active) + len(self.parked)

    def waiting(self) -> list[PodRecord]:
        """Every pod in the queue, active first."""
        return [*self.active.values(), *self.parked.values()]

    def _activate(self, rec: PodRecord) -> None:
        self.parked.pop(rec.uid, None)
        self.active[rec.uid] = rec
        rec.stage = "active"
        self._due.pop(rec.uid, None)
        self._ordered.pop(rec.uid, None)
        self._file(rec)

    def _file(self, rec: PodRecord) -> None:
        seq = next(self._seq)
        self._filed[rec.uid] = seq
        heapq.heappush(self._backoff, (rec.retry_at, seq, rec.uid))

    def _leave(self, uid: str) -> None:
        self.active.pop(uid, None)
        self._due.pop(uid, None)
        self._ordered.pop(uid, None)
        self._filed.pop(uid, None)

    def add(self, rec: PodRecord) -> None:
        """Make ``rec`` active: tried at the first cycle at or after its ``retry_at``."""
        self._activate(rec)

    def park(self, rec: PodRecord) -> None:
        """Move ``rec`` to wait for a change."""
        self._leave(rec.uid)
        self.parked[rec.uid] = rec
        rec.stage = "parked"
        rec.retrying = ""

    def remove(self, uid: str) -> None:
        """Take a pod out of the queue (placed, bound elsewhere, deleted)."""
        self._leave(uid)
        self.parked.pop(uid, None)

    def _top(self) -> float | None:
        """The earliest live entry's time (older entries are dropped on the way)."""
        heap = self._backoff
        while heap:
            at, seq, uid = heap[0]
            if self._filed.get(uid) == seq:
                return at
            heapq.heappop(heap)
        return None

    def batch(
        self, key: Callable[[PodRecord], Any], limit: int, now: float, epoch: int = 0
    ) -> list[PodRecord]:
        """Up to ``limit`` active pods due now, in queue order (``key``, smallest first).

        A pod's key is computed when it is found due and kept while it stays
        due; a new ``epoch`` (the policies changed: a class's priority may
        have) computes every due pod's key again.
        """
        if epoch != self._epoch:
            self._epoch = epoch
            self._order, self._ordered = [], {}
            for rec in self._due.values():
                self._enqueue_due(rec, key)
        while (at := self._top()) is not None and at <= now:
            _, _, uid = heapq.heappop(self._backoff)
            del self._filed[uid]
            rec = self.active[uid]
            if rec.retry_at <= now:
                self._due[uid] = rec
                self._enqueue_due(rec, key)
            else:  # its retry_at moved later while it was active: wait for that
                self._file(rec)
        picked: list[tuple[Any, int, str]] = []
        while self._order and len(picked) < limit:
            entry = heapq.heappop(self._order)
            uid = entry[2]
            if self._ordered.get(uid) != entry[1]:
                continue  # it left, or was found due again since
            rec = self._due[uid]
            if rec.retry_at > now:  # its retry_at moved later since: back to the backoff heap
                del self._due[uid], self._ordered[uid]
                self._file(rec)
                continue
            picked.append(entry)
        for entry in picked:  # they stay due until tried (the caller removes those it tries)
            heapq.heappush(self._order, entry)
        return [self._due[e[2]] for e in picked]

    def _enqueue_due(self, rec: PodRecord, key: Callable[[PodRecord], Any]) -> None:
        seq = next(self._seq)
        self._ordered[rec.uid] = seq
        heapq.heappush(self._order, (key(rec), seq, rec.uid))

    def next_due(self) -> float | None:
        """When the next cycle has an active pod to try (None when none is active).

        The earliest ``retry_at`` among the pods not yet found due; ``-inf``
        when some are due now.
        """
        if self._due:
            return float("-inf")
        return self._top()

    def unpark(self, recs: list[PodRecord]) -> list[PodRecord]:
        """These parked pods become active again, remembering why they waited."""
        self.streak = 0
        for rec in recs:
            self._activate(rec)
            rec.retrying = rec.reason
        return recs

    def unpark_all(self) -> list[PodRecord]:
        """Every parked pod becomes active again, remembering why it waited."""
        return self.unpark(list(self.parked.values()))

    def repark_retries(self, reason: str) -> None:
        """Send the retried pods that waited for ``reason`` back to wait, unchanged."""
        for rec in [r for r in self.active.values() if r.retrying == reason]:
            self.park(rec)
