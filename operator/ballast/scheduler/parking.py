"""Pods that cannot be placed now: why they wait, and what wakes them.

A mixin of :class:`~ballast.scheduler.core.Scheduler`. A pod that is not
placed is *parked* with a reason (its ``PodScheduled`` condition, and an
event when the reason changes) and the kinds of change that could help it
(:mod:`~ballast.scheduler.hints`, kube-scheduler's queueing hints). After
each batch of watch events the changes are matched against the parked pods
and only those they can help go back to the active queue. Two changes have
no watch event and are kept here as instants: a batch window's next edge,
and the moment the first pod kept only by its ``minRuntimeSeconds`` becomes
a possible victim.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ballast.api import wellknown as wk
from ballast.clock import Clock
from ballast.placement.objects import ClassPolicy, WindowState
from ballast.placement.snapshot import Snapshot
from ballast.scheduler.actions import Actions
from ballast.scheduler.config import Config
from ballast.scheduler.hints import Change, Changes, Size, free_rooms, helps, sized, wakes_for
from ballast.scheduler.podcache import PodRecord
from ballast.scheduler.policies import Policies
from ballast.scheduler.preempting import Preemptions
from ballast.scheduler.schedqueue import SchedulingQueue, unschedulable_backoff

#: A new message for the same reason is written at most this often (the node
#: counts in it move with every change).
CONDITION_REFRESH_S = 30.0
# Reasons that mean "the pod itself (or its class) is unusable as it is": the
# pod is re-mapped, not re-decided, when something changes.
UNUSABLE = ("UnknownClass", "InvalidClass", "ClassNotAllowed", "InvalidRequest")
_WARNING_REASONS = (*UNUSABLE, "InvalidSchedule", "BindRefused")
# Reasons whose pods back off before their next attempt (schedqueue.unschedulable_backoff).
_BACKOFF_REASONS = ("Unschedulable", "QuotaExceeded")


class Parking:
    """Parks pods with a reason and wakes those a change can help (see the module docstring)."""

    actions: Actions
    clock: Clock
    config: Config
    policies: Policies
    preemptions: Preemptions
    queue: SchedulingQueue
    snapshot: Snapshot
    changes: Changes
    _next_window_edge: dt.datetime | None
    _victims_free_at: float | None

    if TYPE_CHECKING:  # defined by the scheduler's watch handlers

        def _view(self, rec: PodRecord) -> tuple[ClassPolicy | None, str, str]: ...

    def _interactive(self, rec: PodRecord) -> bool:
        """Whether the pod's class is in the Interactive tier (never held by backoff:
        such pods are few, and how soon they start is what the tier promises)."""
        return self.policies.class_policy(rec.labels.get(wk.LABEL_CLASS, "")).tier == "Interactive"

    def _park(self, rec: PodRecord, reason: str, message: str,
              rejections: Mapping[str, int] = {}, *, preempts: bool = False) -> None:  # fmt: skip
        self.queue.park(rec)
        rec.reason, rec.message = reason, message
        rec.wake = wakes_for(reason, rejections, preempts)
        if reason in _BACKOFF_REASONS and not self._interactive(rec):
            rec.parks += 1
            cfg = self.config
            wait = unschedulable_backoff(
                rec.parks, cfg.pod_initial_backoff_s, cfg.pod_max_backoff_s
            )
            due = self.clock.monotonic() + wait
            rec.retry_at = max(rec.retry_at, due)
        elif reason == "Preempting" and rec.failures == 0:
            rec.retry_at = 0.0  # room is being made for it: it competes first once made
        pod = rec.pod
        rec.need = (
            Size(pod.gpus, pod.gpu_milli, pod.cpu_milli, pod.memory_mib)
            if pod is not None and sized(rec.wake, reason, rejections)
            else None
        )
        now_m = self.clock.monotonic()
        # A new reason is written at once; a new message for the same reason (the
        # node counts move with every change) at most every CONDITION_REFRESH_S.
        last = rec.written
        if (
            last is None
            or last[0] != reason
            or (last[1] != message and now_m - rec.written_at >= CONDITION_REFRESH_S)
        ):
            rec.written, rec.written_at = (reason, message), now_m
            self.actions.set_condition(rec.obj, reason, message, self.preemptions.node_of(rec.uid))
            self.actions.event(
                rec.obj,
                "Warning" if reason in _WARNING_REASONS else "Normal",
                "FailedScheduling" if reason == "Unschedulable" else reason,
                message,
            )

    def _woken(self) -> list[PodRecord]:
        """Re-activate the parked pods that the changes since the last wake can help."""
        changes, self.changes = self.changes, Changes()
        if changes.kinds & Change.POLICY:
            return self.queue.unpark_all()
        rooms = None if changes.anywhere else free_rooms(self.snapshot, changes.rooms)
        woken = [r for r in self.queue.parked.values() if helps(r.wake, r.need, changes, rooms)]
        return self.queue.unpark(woken)

    def _wake(self, recs: list[PodRecord]) -> None:
        """Woken pods whose class or view is unusable go back to wait, with a fresh reason;
        the others are active (one backing off after a failure waits for its ``retry_at``)."""
        for rec in recs:
            if rec.reason in UNUSABLE or rec.view_generation != self.policies.generation:
                _, reason, message = self._view(rec)
                if reason:
                    self.queue.park(rec)
                    if (reason, message) != (rec.reason, rec.message):
                        self._park(rec, reason, message)

    # ---------------------------------------------------------------- windows
    def _window_states(self, now: dt.datetime) -> dict[str, WindowState]:
        states, edge = self.policies.window_states(now)
        # An edge passed since the last look wakes the pods held by windows, even
        # when it is this cycle, deciding other pods, that notices it first.
        if self._window_edge_passed():
            self.changes.add(Change.WINDOW)
        self._next_window_edge = edge
        return states

    def _victims_free(self, in_s: float) -> None:
        """Note that a pod kept only by its minimum runtime becomes takeable in ``in_s``.

        The soonest such instant is kept: the pods it wakes are tried again and
        each notes its next one, so later instants are not lost.
        """
        at = self.clock.monotonic() + max(0.0, in_s)
        if self._victims_free_at is None or at < self._victims_free_at:
            self._victims_free_at = at

    def _window_edge_passed(self) -> bool:
        edge = self._next_window_edge
        return edge is not None and self.clock.now() >= edge
