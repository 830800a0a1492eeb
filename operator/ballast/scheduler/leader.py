"""Leader election through a coordination.k8s.io/v1 Lease, with client-go's semantics.

Only the holder schedules, and only while its claim is fresh:

- **Renew deadline.** The leader renews every ``retry_s``. If no renewal has
  succeeded within ``renew_deadline_s`` of the last good one it stops acting
  at once (``is_leader`` cleared, ``on_stopped`` called), even while its lease
  request still hangs: the request runs on a separate thread and the elector
  only waits for it until the deadline. ``term()`` checks the deadline itself,
  so the write fence is exact even if the elector thread is starved.
- **Expiry by the observer's clock.** A candidate never compares its wall
  clock with the holder's ``renewTime`` (two machines' clocks disagree). It
  notes *when it saw the lease record change* on its own monotonic clock, and
  takes the lease only after ``leaseDurationSeconds`` more without a change.
- **Bounded requests.** Every lease request times out after
  ``request_timeout_s`` (well inside the renew deadline) and is never retried
  transparently by urllib3, so a hung API server costs one timeout.

Why the timings are safe: the leader's claim ends ``renew_deadline_s`` after
it *sent* its last successful renewal; a candidate can only observe that
renewal after the server applied it, and waits ``lease_s`` from that moment.
With ``renew_deadline_s < lease_s`` the old leader has stopped before anyone
else may take over, with ``lease_s - renew_deadline_s`` to spare for clock
rate drift and scheduling delays. Every write of the Lease is guarded by the
resourceVersion read or written last, so two candidates can never both win.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import random
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from ballast.clock import Clock
from ballast.kube.raw import LEASES, TRANSPORT_ERRORS, Kube, KubeError
from ballast.logs import kv

log = logging.getLogger(__name__)

# client-go's JitterFactor for acquisition attempts: candidates wait between
# retry_s and 2.2 * retry_s so that they do not hit the server in step.
ACQUIRE_JITTER = 1.2
API_ERRORS: tuple[type[Exception], ...] = (KubeError, *TRANSPORT_ERRORS)


def _micro(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class Timing:
    """Leader-election timings, named like kube-scheduler's ``--leader-elect-*`` flags.

    ``lease_s``: how long a candidate waits, from when it last saw the lease
    change, before taking it. ``renew_deadline_s``: how long the leader keeps
    acting without a successful renewal. ``retry_s``: time between attempts.
    ``request_timeout_s``: bound on one lease request (default: a quarter of
    the renew deadline).
    """

    # kube-scheduler's 15/10/2 scaled down, so that a standby takes over within
    # about ten seconds of a leader's death.
    lease_s: int = 8
    renew_deadline_s: float = 5.0
    retry_s: float = 1.0
    request_timeout_s: float | None = None

    @property
    def request_timeout(self) -> float:
        """The effective per-request timeout in seconds."""
        if self.request_timeout_s is not None:
            return self.request_timeout_s
        return self.renew_deadline_s / 4

    def validate(self) -> None:
        """Raise ``ValueError`` unless the timings give the guarantees above."""
        if self.lease_s < 1:
            raise ValueError("lease duration must be at least 1 s")
        if not self.lease_s > self.renew_deadline_s:
            raise ValueError(
                f"lease duration ({self.lease_s}s) must exceed the renew deadline "
                f"({self.renew_deadline_s}s)"
            )
        if not self.renew_deadline_s > ACQUIRE_JITTER * self.retry_s > 0:
            raise ValueError(
                f"renew deadline ({self.renew_deadline_s}s) must exceed "
                f"{ACQUIRE_JITTER} x retry period ({self.retry_s}s)"
            )
        if not 0 < self.request_timeout < self.renew_deadline_s:
            raise ValueError(
                f"lease request timeout ({self.request_timeout}s) must be positive and "
                f"shorter than the renew deadline ({self.renew_deadline_s}s)"
            )


DEFAULT_TIMING = Timing()


class _Outcome(enum.Enum):
    HELD = "held"  # we hold the lease after this attempt
    OTHER = "other"  # someone else holds a live lease


class LeaderElector(threading.Thread):
    """Acquire and renew a Lease; call back on gaining and losing it.

    ``term()`` is the write fence: the current leadership term while this
    replica may act, ``None`` otherwise. A term ends for good: after a loss, a
    later win starts a new term, so a write queued in an old term never runs.
    """

    def __init__(
        self,
        kube: Kube,
        *,
        namespace: str,
        name: str,
        identity: str,
        clock: Clock,
        timing: Timing = Timing(),
        on_started: Callable[[], None] = lambda: None,
        on_stopped: Callable[[], None] = lambda: None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(name="leader-elector", daemon=True)
        timing.validate()
        self.kube = kube
        self.path = LEASES.path(name, namespace)
        self.collection = LEASES.path(namespace=namespace)
        self.lease_name = name
        self.identity = identity
        self.clock = clock
        self.timing = timing
        self.on_started = on_started
        self.on_stopped = on_stopped
        self.rng = rng or random.Random()
        self.is_leader = threading.Event()
        self._halt = threading.Event()
        self._state = threading.Lock()
        self._term = 0
        self._valid_until = 0.0  # monotonic end of the current claim
        # Owned by the I/O thread: the last lease object read or written, the
        # record we last saw, and when (our monotonic clock) it last changed.
        self._io = ThreadPoolExecutor(1, thread_name_prefix="lease-io")
        self._lease: dict[str, Any] | None = None
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0

    # -- the fence ---------------------------------------------------------------------------

    def term(self) -> int | None:
        """The leadership term while this replica may act (renewed within the deadline)."""
        with self._state:
            if self.is_leader.is_set() and self.clock.monotonic() < self._valid_until:
                return self._term
        return None

    def leading(self) -> bool:
        """Whether this replica may act now."""
        return self.term() is not None

    # -- the loop ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop competing (a held lease is released by ``release`` or expires)."""
        self._halt.set()

    def run(self) -> None:
        """Acquire, then renew until the deadline passes or the thread is stopped."""
        try:
            while not self._halt.is_set():
                self._attempt()
                now = self.clock.monotonic()
                if self.is_leader.is_set():
                    # Wake no later than the deadline, so that a loss is acted on at once.
                    wait = min(self.timing.retry_s, max(0.0, self._valid_until - now))
                else:
                    wait = self.timing.retry_s * (1 + ACQUIRE_JITTER * self.rng.random())
                self._halt.wait(wait)
        finally:
            self._io.shutdown(wait=False, cancel_futures=True)

    def _attempt(self) -> None:
        leader = self.is_leader.is_set()
        future: Future[tuple[_Outcome, float]] = self._io.submit(self._try, leader)
        wait: float | None = None
        if leader:
            wait = max(0.0, self._valid_until - self.clock.monotonic())
        try:
            outcome, sent = future.result(timeout=wait)
        except FutureTimeout:
            # The request is still hanging: abandon it (it times out on its own).
            self._lose("renew deadline passed while a lease request hung")
            return
        except API_ERRORS as exc:
            log.warning("lease request failed", extra=kv(lease=self.lease_name, error=exc))
            if leader and not self.leading():
                self._lose("renew deadline passed")
            return
        if outcome is _Outcome.HELD:
            self._hold(sent, renewed=leader)
        elif leader:
            self._lose("another replica holds the lease")

    def _hold(self, sent: float, *, renewed: bool) -> None:
        with self._state:
            if renewed:
                if self.clock.monotonic() < self._valid_until:
                    self._valid_until = max(self._valid_until, sent + self.timing.renew_deadline_s)
                    return
                late = True  # the claim already lapsed: a term never resumes
            else:
                late = False
                self._term += 1
                self._valid_until = sent + self.timing.renew_deadline_s
                self.is_leader.set()
                term = self._term
        if late:
            self._lose("renew deadline passed before the renewal returned")
            return
        log.info(
            "became leader", extra=kv(identity=self.identity, lease=self.lease_name, term=term)
        )
        self._call(self.on_started)

    def _lose(self, reason: str) -> None:
        with self._state:
            if not self.is_leader.is_set():
                return
            self.is_leader.clear()
            since = self.clock.monotonic() - (self._valid_until - self.timing.renew_deadline_s)
            term = self._term
        log.warning(
            "lost leadership",
            extra=kv(
                identity=self.identity,
                lease=self.lease_name,
                term=term,
                reason=reason,
                since_renew=f"{since:.2f}",
            ),
        )
        self._call(self.on_stopped)

    def _call(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:
            log.exception("leader-election callback failed")

    # -- lease I/O (on the I/O thread) -----------------------------------------------------

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        return self.kube.request(
            method, path, body=body, timeout=self.timing.request_timeout, retries=False
        )

    def _observe(self, lease: dict[str, Any]) -> None:
        spec = lease.get("spec") or {}
        record = (
            (lease.get("metadata") or {}).get("resourceVersion"),
            spec.get("holderIdentity"),
            spec.get("renewTime"),
            spec.get("acquireTime"),
            spec.get("leaseTransitions"),
            spec.get("leaseDurationSeconds"),
        )
        self._lease = lease
        if record != self._observed:
            self._observed = record
            self._observed_at = self.clock.monotonic()

    def _spec(self, acquired: str | None, transitions: int) -> dict[str, Any]:
        now = _micro(self.clock.now())
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.timing.lease_s,
            "acquireTime": acquired or now,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    def _try(self, leader: bool) -> tuple[_Outcome, float]:
        """One acquire-or-renew; returns the outcome and when the deciding write was sent."""
        lease = self._lease if leader else None
        if lease is not None:
            # Renew optimistically from the object we wrote last (one request).
            done = self._put(lease, renew=True)
            if done is not None:
                return done
        try:
            lease = self._request("GET", self.path)
        except KubeError as exc:
            if not exc.not_found:
                raise
            lease = None
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.lease_name},
                "spec": self._spec(None, 0),
            }
            sent = self.clock.monotonic()
            try:
                self._observe(self._request("POST", self.collection, body))
            except KubeError as exc:
                if exc.conflict:
                    return _Outcome.OTHER, sent
                raise
            return _Outcome.HELD, sent
        self._observe(lease)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        try:
            duration = max(1, int(spec.get("leaseDurationSeconds") or self.timing.lease_s))
        except (TypeError, ValueError):
            duration = self.timing.lease_s
        live = self.clock.monotonic() < self._observed_at + duration
        if holder and holder != self.identity and live:
            return _Outcome.OTHER, 0.0
        return self._put(lease, renew=holder == self.identity) or (_Outcome.OTHER, 0.0)

    def _put(self, lease: dict[str, Any], *, renew: bool) -> tuple[_Outcome, float] | None:
        """PUT our claim guarded by ``lease``'s resourceVersion; None on a conflict."""
        spec = lease.get("spec") or {}
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if renew else 1)
        body = {
            **lease,
            "spec": self._spec(spec.get("acquireTime") if renew else None, transitions),
        }
        sent = self.clock.monotonic()
        try:
            written = self._request("PUT", self.path, body)
        except KubeError as exc:
            if exc.conflict:
                self._lease = None
                return None
            raise
        self._observe(written)
        return _Outcome.HELD, sent

    def release(self) -> None:
        """Give the lease up on a clean shutdown so a standby need not wait for expiry."""
        if not self.is_leader.is_set():
            return
        self._halt.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(self.timing.request_timeout)
        with self._state:
            self.is_leader.clear()  # stop acting before the lease says so
        try:
            lease = self._request("GET", self.path)
            spec = (lease or {}).get("spec") or {}
            if lease and spec.get("holderIdentity") == self.identity:
                # As client-go: no holder and a 1 s duration; the resourceVersion
                # guard makes this a no-op if someone else took over meanwhile.
                lease["spec"] = {**spec, "holderIdentity": "", "leaseDurationSeconds": 1}
                self._request("PUT", self.path, lease)
        except API_ERRORS as exc:
            log.warning("lease release failed", extra=kv(error=exc))
