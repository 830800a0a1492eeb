"""What the API writers report back to the scheduling thread, folded into its state.

A mixin of :class:`~ballast.scheduler.core.Scheduler`. Each write the
scheduler queued (a bind, an eviction, a pod condition, a status patch)
comes back as an event:

- a write never sent because leadership ended (``fenced``): a bind's
  assumption is undone and the pod decided again by whoever leads;
- a bind that succeeded: counted, and its end-to-end latency observed; one
  that failed: the assumption is undone and the pod retried with backoff,
  or parked ``BindRefused`` when the API server's answer is final;
- an eviction refused: the plan is told (it retries, then gives up);
- a condition or status write that gave up: written again next time.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from ballast.api import wellknown as wk
from ballast.clock import Clock
from ballast.logs import kv
from ballast.placement.snapshot import Snapshot
from ballast.scheduler import mapping
from ballast.scheduler.hints import Changes
from ballast.scheduler.informer import Event
from ballast.scheduler.metrics import SchedulerMetrics
from ballast.scheduler.podcache import PodCache, PodRecord
from ballast.scheduler.preempting import Ended, Preemptions
from ballast.scheduler.schedqueue import SchedulingQueue, backoff

log = logging.getLogger(__name__)


class WriteResults:
    """Handles the writers' result events (see the module docstring)."""

    clock: Clock
    metrics: SchedulerMetrics
    snapshot: Snapshot
    pods: PodCache
    queue: SchedulingQueue
    preemptions: Preemptions
    changes: Changes
    _status_written: dict[str, dict[str, Any]]

    if TYPE_CHECKING:  # defined by the scheduler or its other parts

        def _park(self, rec: PodRecord, reason: str, message: str) -> None: ...

        def _end_plan(self, ended: Ended | None) -> None: ...

        def _dra_bind_failed(self, uid: str) -> None: ...

    def _on_result(self, ev: Event) -> None:
        """Fold one writer's report into the scheduler's state (see the module docstring)."""
        uid = ev.obj["uid"]
        rec = self.pods.get(uid)
        now_m = self.clock.monotonic()
        if ev.obj.get("fenced"):
            # Never sent: leadership ended while it was queued. Undo the
            # assumption; whoever leads now decides again.
            if ev.type == "bind" and rec is not None and not rec.node:
                if uid in self.snapshot.pods:
                    self.changes.freed(self.pods.forget(rec))
                self.queue.add(rec)
            return
        if ev.type == "condition" and rec is not None:
            rec.written = None  # the next park writes it again
            log.warning("condition write gave up", extra=kv(pod=rec.key, error=ev.obj.get("error")))
            return
        if ev.type == "status":
            path = str(ev.obj.get("path", ""))
            self._status_written.pop(path, None)
            log.warning("status write refused", extra=kv(path=path, error=ev.obj.get("error")))
            return
        if ev.type == "bind":
            if ev.obj["ok"]:
                self.metrics.binds.inc()
                if rec is not None:
                    rec.failures = 0
                    created = mapping.parse_time(rec.obj["metadata"]["creationTimestamp"])
                    if created:
                        cls = (
                            rec.pod.class_name
                            if rec.pod is not None
                            else (rec.obj["metadata"].get("labels") or {}).get(wk.LABEL_CLASS, "")
                        )
                        self.metrics.e2e_seconds.labels(cls).observe(
                            max(0.0, time.time() - created)
                        )
                    if rec.stage == "inflight":
                        rec.stage = "placed"
                return
            self.metrics.bind_errors.inc()
            status = int(ev.obj.get("status") or 0)
            log.warning("bind failed", extra=kv(uid=uid, node=ev.obj.get("node"), status=status,
                                                error=ev.obj.get("error")))  # fmt: skip
            if rec is None or rec.node:
                return  # gone, or bound after all (the pod update says where)
            if uid in self.snapshot.pods:
                self.changes.freed(self.pods.forget(rec))
            self._dra_bind_failed(uid)
            if status == 404:
                return
            rec.failures += 1
            rec.retry_at = now_m + backoff(rec.failures)
            permanent = bool(ev.obj.get("permanent")) or (
                400 <= status < 500 and status not in (409, 429)
            )
            if permanent:
                self._park(rec, "BindRefused", f"the API server refused the binding ({status}): "
                           f"{str(ev.obj.get('error') or '')[:300]}")  # fmt: skip
            else:
                self.queue.add(rec)
        elif ev.type == "evict":
            preemptor = ev.obj.get("preemptor", "")
            if ev.obj["ok"]:
                self.metrics.preemptions.inc()
            else:
                self._end_plan(self.preemptions.refused(preemptor, uid, now_m))
