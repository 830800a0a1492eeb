"""Leader election through a coordination.k8s.io/v1 Lease.

Only the holder schedules. The holder renews every ``renew_s``; a standby
takes the lease once ``renewTime + leaseDurationSeconds`` has passed. Every
write is guarded by the Lease's resourceVersion, so two candidates can never
both believe they won.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from typing import Any

from ballast.clock import Clock
from ballast.kube.raw import LEASES, Kube, KubeError
from ballast.logs import kv

log = logging.getLogger(__name__)


def _micro(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(ts: str | None) -> dt.datetime | None:
    if not ts:
        return None
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))


class LeaderElector(threading.Thread):
    """Acquire and renew a Lease; call back on gaining and losing it."""

    def __init__(
        self,
        kube: Kube,
        *,
        namespace: str,
        name: str,
        identity: str,
        clock: Clock,
        lease_s: int = 8,
        renew_s: float = 2.0,
        on_started: Callable[[], None] = lambda: None,
        on_stopped: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(name="leader-elector", daemon=True)
        self.kube = kube
        self.path = LEASES.path(name, namespace)
        self.collection = LEASES.path(namespace=namespace)
        self.name = name
        self.identity = identity
        self.clock = clock
        self.lease_s = lease_s
        self.renew_s = renew_s
        self.on_started = on_started
        self.on_stopped = on_stopped
        self.is_leader = threading.Event()
        self._stop = threading.Event()

    def stop(self) -> None:
        """Stop renewing (the lease then expires and a standby takes over)."""
        self._stop.set()

    def run(self) -> None:
        """Try to acquire, then renew until the lease is lost or the thread stops."""
        while not self._stop.is_set():
            try:
                won = self._try()
            except (KubeError, OSError) as exc:
                log.warning("lease request failed", extra=kv(error=exc))
                won = False
            if won and not self.is_leader.is_set():
                log.info("became leader", extra=kv(identity=self.identity, lease=self.name))
                self.is_leader.set()
                self.on_started()
            elif not won and self.is_leader.is_set():
                log.warning("lost leadership", extra=kv(identity=self.identity))
                self.is_leader.clear()
                self.on_stopped()
            self._stop.wait(self.renew_s if self.is_leader.is_set() else self.renew_s / 2)

    def _spec(self, now: dt.datetime, acquired: str | None, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.lease_s,
            "acquireTime": acquired or _micro(now),
            "renewTime": _micro(now),
            "leaseTransitions": transitions,
        }

    def _try(self) -> bool:
        now = self.clock.now()
        lease = self.kube.get(self.path)
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name},
                "spec": self._spec(now, None, 0),
            }
            try:
                self.kube.create(self.collection, body)
                return True
            except KubeError as exc:
                if exc.conflict:
                    return False
                raise
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        renewed = _parse(spec.get("renewTime"))
        duration = dt.timedelta(seconds=int(spec.get("leaseDurationSeconds") or self.lease_s))
        expired = renewed is None or now > renewed + duration
        if holder != self.identity and not expired and holder:
            return False
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if holder == self.identity else 1)
        acquired = spec.get("acquireTime") if holder == self.identity else None
        lease["spec"] = self._spec(now, acquired, transitions)
        try:
            # PUT with the resourceVersion we read: a concurrent writer gets 409.
            self.kube.request("PUT", self.path, body=lease)
        except KubeError as exc:
            if exc.conflict:
                return False
            raise
        return True

    def release(self) -> None:
        """Give the lease up on a clean shutdown so a standby need not wait for expiry."""
        if not self.is_leader.is_set():
            return
        try:
            lease = self.kube.get(self.path)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = ""
                lease["spec"]["renewTime"] = _micro(self.clock.now() - dt.timedelta(hours=1))
                self.kube.request("PUT", self.path, body=lease)
        except (KubeError, OSError) as exc:
            log.warning("lease release failed", extra=kv(error=exc))
        self.is_leader.clear()
