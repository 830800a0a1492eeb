"""Leader election: client-go's renew deadline, expiry by the observer's clock, bounded requests."""

from __future__ import annotations

import copy
import datetime as dt
import random
import threading
import time
from typing import Any

import pytest

from ballast.clock import FakeClock, SystemClock
from ballast.kube.raw import KubeError
from ballast.scheduler.leader import LeaderElector, Timing

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
TIMING = Timing(lease_s=15, renew_deadline_s=10.0, retry_s=2.0)


class LeaseServer:
    """One Lease with resourceVersion guards, as the API server keeps it; can hang or fail."""

    def __init__(self) -> None:
        self.obj: dict[str, Any] | None = None
        self.rv = 0
        self.calls: list[tuple[str, Any, Any]] = []
        self.gate: threading.Event | None = None  # set: requests wait on it (a hung server)
        self.error: Exception | None = None

    def hold(self, holder: str, renew: str = "2000-01-01T00:00:00.000000Z", dur: int = 15) -> None:
        """Write the lease as another replica would."""
        self.rv += 1
        self.obj = {
            "metadata": {"name": "l", "namespace": "ns", "resourceVersion": str(self.rv)},
            "spec": {
                "holderIdentity": holder,
                "leaseDurationSeconds": dur,
                "renewTime": renew,
                "acquireTime": renew,
                "leaseTransitions": 0,
            },
        }

    def holder(self) -> str | None:
        return None if self.obj is None else self.obj["spec"].get("holderIdentity")

    def request(
        self, method: str, path: str, *, body: Any = None, timeout: Any = None, retries: Any = None
    ) -> Any:
        self.calls.append((method, timeout, retries))
        if self.gate is not None:
            self.gate.wait()
        if self.error is not None:
            raise self.error
        if method == "GET":
            if self.obj is None:
                raise KubeError(404, "NotFound", {"message": "not found"})
            return copy.deepcopy(self.obj)
        if method == "POST":
            if self.obj is not None:
                raise KubeError(409, "AlreadyExists", {"message": "exists"})
        elif method == "PUT":
            assert self.obj is not None
            if body["metadata"].get("resourceVersion") != self.obj["metadata"]["resourceVersion"]:
                raise KubeError(409, "Conflict", {"message": "the object has been modified"})
        self.rv += 1
        self.obj = copy.deepcopy(body)
        self.obj["metadata"]["resourceVersion"] = str(self.rv)
        return copy.deepcopy(self.obj)


class Calls:
    def __init__(self) -> None:
        self.started = 0
        self.stopped = 0


def elector(
    server: LeaseServer, identity: str, clock: Any, timing: Timing = TIMING
) -> tuple[LeaderElector, Calls]:
    calls = Calls()

    def started() -> None:
        calls.started += 1

    def stopped() -> None:
        calls.stopped += 1

    e = LeaderElector(
        server,  # type: ignore[arg-type]
        namespace="ns",
        name="l",
        identity=identity,
        clock=clock,
        timing=timing,
        on_started=started,
        on_stopped=stopped,
        rng=random.Random(0),
    )
    return e, calls


def test_candidate_waits_a_full_lease_from_when_it_saw_the_record_not_from_renew_time() -> None:
    # The holder's renewTime is decades old (its clock is wrong, or ours is): a
    # candidate that compared timestamps would take the lease at once.
    server = LeaseServer()
    server.hold("other", renew="2000-01-01T00:00:00.000000Z")
    clock = FakeClock(T0)
    e, calls = elector(server, "me", clock)
    e._attempt()
    assert not e.leading() and server.holder() == "other"
    clock.advance(TIMING.lease_s - 0.5)
    e._attempt()
    assert not e.leading() and server.holder() == "other"
    clock.advance(1.0)
    e._attempt()
    assert e.leading() and server.holder() == "me" and calls.started == 1
    assert server.obj is not None and server.obj["spec"]["leaseTransitions"] == 1


def test_a_holder_whose_clock_runs_ahead_is_still_taken_over_after_it_stops_renewing() -> None:
    server = LeaseServer()
    server.hold("other", renew="2999-01-01T00:00:00.000000Z")
    clock = FakeClock(T0)
    e, _ = elector(server, "me", clock)
    e._attempt()
    clock.advance(TIMING.lease_s + 0.1)
    e._attempt()
    assert e.leading()


def test_every_change_of_the_record_restarts_the_candidates_wait() -> None:
    server = LeaseServer()
    server.hold("other")
    clock = FakeClock(T0)
    e, _ = elector(server, "me", clock)
    e._attempt()
    clock.advance(TIMING.lease_s - 1)
    server.hold("other", renew="2000-01-01T00:00:01.000000Z")  # a renewal
    e._attempt()
    clock.advance(2)  # past the first observation + lease, not past the second
    e._attempt()
    assert not e.leading()
    clock.advance(TIMING.lease_s - 2 + 0.1)
    e._attempt()
    assert e.leading()


def test_leader_stops_acting_at_the_renew_deadline_even_without_running() -> None:
    server = LeaseServer()
    clock = FakeClock(T0)
    e, _ = elector(server, "me", clock)
    e._attempt()
    term = e.term()
    assert term == 1
    clock.advance(TIMING.renew_deadline_s - 0.01)
    assert e.term() == 1
    # No attempt ran (the elector thread is starved): the fence closes on time anyway.
    clock.advance(0.02)
    assert e.term() is None and not e.leading()


def test_a_renewal_moves_the_deadline_from_when_it_was_sent() -> None:
    server = LeaseServer()
    clock = FakeClock(T0)
    e, _ = elector(server, "me", clock)
    e._attempt()
    clock.advance(TIMING.retry_s)
    e._attempt()  # renewed at T0 + retry
    clock.advance(TIMING.renew_deadline_s - 0.01)
    assert e.leading()
    clock.advance(0.02)
    assert not e.leading()


def test_failed_renewals_end_leadership_at_the_deadline_and_call_back_once() -> None:
    server = LeaseServer()
    clock = FakeClock(T0)
    e, calls = elector(server, "me", clock)
    e._attempt()
    server.error = KubeError(500, "InternalError", {"message": "etcd unavailable"})
    for _ in range(4):
        clock.advance(TIMING.retry_s)
        e._attempt()
        assert e.is_leader.is_set()  # 8 s: still inside the 10 s deadline
    clock.advance(TIMING.retry_s)
    e._attempt()
    assert not e.is_leader.is_set() and calls.stopped == 1
    e._attempt()
    assert calls.stopped == 1


def test_leader_that_finds_another_holder_stops_at_once() -> None:
    server = LeaseServer()
    clock = FakeClock(T0)
    e, calls = elector(server, "me", clock)
    e._attempt()
    server.hold("usurper")  # e.g. it was partitioned and the lease expired elsewhere
    clock.advance(TIMING.retry_s)
    e._attempt()
    assert not e.leading() and calls.stopped == 1 and server.holder() == "usurper"


def test_a_new_win_after_a_loss_is_a_new_term() -> None:
    server = LeaseServer()
    clock = FakeClock(T0)
    e, calls = elector(server, "me", clock)
    e._attempt()
    assert e.term() == 1
    clock.advance(TIMING.renew_deadline_s + 1)
    e._attempt()  # the late renewal lands, but the claim had lapsed: lost
    assert e.term() is None and calls.stopped == 1
    e._attempt()  # the lease still names us: a new term, never the old one
    assert e.term() == 2 and calls.started == 2


def test_lease_requests_time_out_well_inside_the_deadline_and_are_not_retried_by_urllib3() -> None:
    server = LeaseServer()
    clock = FakeClock(T0)
    e, _ = elector(server, "me", clock)
    for _ in range(3):
        e._attempt()
        clock.advance(TIMING.retry_s)
    assert server.calls
    for _, timeout, retries in server.calls:
        assert timeout == TIMING.request_timeout < TIMING.renew_deadline_s / 2
        assert retries is False
    # While leading, a renewal is one request (the object written last carries the rv).
    assert [c[0] for c in server.calls[-2:]] == ["PUT", "PUT"]


def test_two_replicas_never_lead_at_once() -> None:
    rng = random.Random(7)
    server = LeaseServer()
    clock = FakeClock(T0)
    a, _ = elector(server, "a", clock)
    b, _ = elector(server, "b", clock)
    leaders_seen = set()
    for _ in range(400):
        who = rng.choice([a, b])
        if rng.random() < 0.15:
            # This replica is cut off for a while: its attempts fail.
            server.error = OSError("connection reset")
            who._attempt()
            server.error = None
        else:
            who._attempt()
        clock.advance(rng.uniform(0.1, 4.0))
        assert not (a.leading() and b.leading())
        leaders_seen |= {e.identity for e in (a, b) if e.leading()}
    assert leaders_seen == {"a", "b"}


def test_release_lets_a_standby_take_over_without_waiting() -> None:
    server = LeaseServer()
    clock = FakeClock(T0)
    a, _ = elector(server, "a", clock)
    b, _ = elector(server, "b", clock)
    a._attempt()
    b._attempt()
    assert a.leading() and not b.leading()
    a.release()
    assert not a.leading() and server.holder() == ""
    b._attempt()
    assert b.leading()


@pytest.mark.parametrize(
    ("timing", "message"),
    [
        (Timing(lease_s=10, renew_deadline_s=10, retry_s=2), "must exceed the renew deadline"),
        (Timing(lease_s=15, renew_deadline_s=2, retry_s=2), "retry period"),
        (
            Timing(lease_s=15, renew_deadline_s=10, retry_s=2, request_timeout_s=10),
            "shorter than the renew deadline",
        ),
        (Timing(lease_s=0, renew_deadline_s=0.5, retry_s=0.1), "at least 1 s"),
    ],
)
def test_invalid_timings_are_refused(timing: Timing, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        timing.validate()


def test_running_leader_whose_request_hangs_stops_within_the_deadline() -> None:
    # Real threads and time: the lease request hangs (ignoring its timeout, the
    # worst case) and the elector still gives up leadership at the deadline.
    timing = Timing(lease_s=2, renew_deadline_s=0.8, retry_s=0.1, request_timeout_s=0.2)
    server = LeaseServer()
    stopped = threading.Event()
    e = LeaderElector(
        server,  # type: ignore[arg-type]
        namespace="ns",
        name="l",
        identity="me",
        clock=SystemClock(),
        timing=timing,
        on_stopped=stopped.set,
    )
    e.start()
    try:
        deadline = time.monotonic() + 5
        while not e.leading() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert e.leading()
        server.gate = threading.Event()  # from now on every request hangs
        hung_at = time.monotonic()
        assert stopped.wait(5)
        took = time.monotonic() - hung_at
        assert not e.leading() and not e.is_leader.is_set()
        # The last good renewal was at most one retry period before the hang.
        assert took <= timing.renew_deadline_s + 0.3, took
    finally:
        e.stop()
        if server.gate is not None:
            server.gate.set()
        e.join(5)
