"""API writes: fenced by the leadership term, backed off with jitter, 4xx reported once."""

from __future__ import annotations

import queue
import random
import threading
from collections.abc import Callable
from typing import Any

import pytest
import urllib3

from ballast.kube.raw import KubeError
from ballast.scheduler.actions import RESULT, STATUS_BACKOFF, WRITE_BACKOFF, Actions, Timers
from ballast.scheduler.informer import Event
from ballast.scheduler.ratelimit import Backoff, TokenBucket

POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "u-1"}}
STATUS_PATH = "/apis/ballast.dev/v1alpha1/gpuquotas/q/status"


def err(status: int, message: str = "no", **details: Any) -> KubeError:
    body: dict[str, Any] = {"kind": "Status", "message": message, "code": status}
    if details:
        body["details"] = details
    return KubeError(status, "x", body)


class FakeKube:
    """Answers each (method, path-suffix) from a script; records every request."""

    def __init__(self) -> None:
        self.script: dict[str, list[Any]] = {}
        self.sent: list[tuple[str, str, Any, Any, Any]] = []
        self.pod_node: str | None = None

    def answer(self, key: str, *outcomes: Any) -> None:
        self.script.setdefault(key, []).extend(outcomes)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str | None = None,
        timeout: Any = None,
        retries: Any = None,
        **_: Any,
    ) -> Any:
        self.sent.append((method, path, body, timeout, retries))
        if method == "GET":
            return {"metadata": {"uid": "u-1"}, "spec": {"nodeName": self.pod_node}}
        key = path.rsplit("/", 1)[-1] if path.endswith(("binding", "eviction", "status")) else "pod"
        outcomes = self.script.get(key) or [{}]
        outcome = outcomes.pop(0) if len(outcomes) > 1 else outcomes[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def writes(self) -> list[tuple[str, str, Any, Any, Any]]:
        return [s for s in self.sent if s[0] != "GET"]


class GatedBucket(TokenBucket):
    """A rate limiter that holds every write until the test opens it."""

    def __init__(self) -> None:
        super().__init__(0, 1)
        self.open = threading.Event()

    def take(self) -> None:
        self.open.wait(5)


class Harness:
    def __init__(self, bucket: TokenBucket | None = None) -> None:
        self.kube = FakeKube()
        self.out: queue.Queue[Event] = queue.Queue()
        self.term: int | None = 1
        self.delays: list[float] = []
        self.pending: list[Callable[[], None]] = []
        self.actions = Actions(
            self.kube,  # type: ignore[arg-type]
            self.out,
            bucket=bucket or TokenBucket(0, 1),
            workers=1,
            fence=lambda: self.term,
            later=self._later,
            rng=random.Random(3),
        )

    def _later(self, delay: float, fn: Callable[[], None]) -> None:
        self.delays.append(delay)
        self.pending.append(fn)

    def settle(self) -> None:
        """Wait for queued writes (one worker each: a no-op job runs after all of them)."""
        self.actions.pool.submit(lambda: None).result(5)
        self.actions.bulk_pool.submit(lambda: None).result(5)

    def run_retries(self, limit: int = 50) -> None:
        for _ in range(limit):
            self.settle()
            if not self.pending:
                return
            self.pending.pop(0)()
        self.settle()

    def results(self) -> list[Event]:
        out = []
        while True:
            try:
                out.append(self.out.get_nowait())
            except queue.Empty:
                return out


@pytest.fixture
def h() -> Harness:
    return Harness()


# -- the fence ---------------------------------------------------------------------------------


def test_writes_queued_while_leader_are_dropped_and_reported_once_the_lease_is_lost() -> None:
    bucket = GatedBucket()
    h = Harness(bucket)
    h.actions.bind(POD, "n1", {"ballast.dev/gpu-ids": "0"})
    h.actions.evict(POD, "pre")
    h.actions.request_checkpoint(POD, "ballast.dev/checkpoint-requested", "why")
    h.actions.set_condition(POD, "Unschedulable", "0/1 nodes")
    h.actions.patch_status(STATUS_PATH, {"used": 1})
    h.actions.event(POD, "Normal", "Scheduled", "on n1")
    h.term = None  # the lease is lost while they wait for the rate limiter
    bucket.open.set()
    h.settle()
    h.actions.event_pool.submit(lambda: None).result(5)
    assert h.kube.sent == []
    results = {ev.type: ev.obj for ev in h.results()}
    assert set(results) == {"bind", "evict", "checkpoint", "condition", "status"}
    for obj in results.values():
        assert obj["ok"] is False and obj["fenced"] is True and obj["attempts"] == 0
    assert results["bind"]["uid"] == "u-1" and results["bind"]["node"] == "n1"
    assert results["status"]["path"] == STATUS_PATH
    assert h.actions.fenced == 5


def test_a_write_from_an_earlier_term_is_dropped_even_if_this_replica_leads_again() -> None:
    bucket = GatedBucket()
    h = Harness(bucket)
    h.actions.bind(POD, "n1", {})
    h.term = 2  # lost and won again: the bind was decided on a stale view
    bucket.open.set()
    h.settle()
    assert h.kube.sent == []
    [ev] = h.results()
    assert ev.obj["fenced"] is True


def test_a_standby_queues_nothing(h: Harness) -> None:
    h.term = None
    h.actions.bind(POD, "n1", {})
    h.actions.event(POD, "Normal", "Scheduled", "x")
    h.settle()
    assert h.kube.sent == []
    [ev] = h.results()
    assert ev.kind == RESULT and ev.obj["fenced"] is True


def test_a_retry_is_fenced_too(h: Harness) -> None:
    h.kube.answer("binding", err(503), {})
    h.actions.bind(POD, "n1", {})
    h.settle()
    h.term = None
    h.run_retries()
    assert len(h.kube.writes()) == 1
    [ev] = h.results()
    assert ev.obj["fenced"] is True and ev.obj["attempts"] == 1


# -- backoff ---------------------------------------------------------------------------------


def test_transient_failures_are_retried_with_growing_jittered_delays(h: Harness) -> None:
    h.kube.answer(
        "binding",
        err(503, "etcd leader changed"),
        urllib3.exceptions.ReadTimeoutError(None, "/binding", "read timed out"),  # type: ignore[arg-type]
        ConnectionResetError("reset by peer"),
        err(429, "too many requests"),
        {},
    )
    h.actions.bind(POD, "n1", {"ballast.dev/gpu-ids": "0"})
    h.run_retries()
    [ev] = h.results()
    assert ev.type == "bind" and ev.obj["ok"] is True and ev.obj["attempts"] == 5
    assert len(h.delays) == 4
    for i, d in enumerate(h.delays, start=1):
        full = min(WRITE_BACKOFF.cap_s, WRITE_BACKOFF.base_s * WRITE_BACKOFF.factor ** (i - 1))
        assert full * (1 - WRITE_BACKOFF.jitter) <= d <= full
    assert h.delays[-1] > h.delays[0]


def test_transient_failures_give_up_after_bounded_attempts(h: Harness) -> None:
    h.kube.answer("binding", err(500, "internal"))
    h.actions.bind(POD, "n1", {})
    h.run_retries()
    assert len(h.kube.writes()) == WRITE_BACKOFF.attempts
    [ev] = h.results()
    assert ev.obj == {
        "uid": "u-1",
        "ok": False,
        "node": "n1",
        "attempts": WRITE_BACKOFF.attempts,
        "permanent": False,
        "fenced": False,
        "status": 500,
        "error": "internal",
    }


@pytest.mark.parametrize("status", [400, 403, 422])
def test_a_4xx_other_than_conflict_is_permanent_and_reported_once(h: Harness, status: int) -> None:
    h.kube.answer("binding", err(status, "binding rejected: invalid annotation"))
    h.actions.bind(POD, "n1", {})
    h.run_retries()
    assert len(h.kube.writes()) == 1 and h.delays == []
    [ev] = h.results()
    assert ev.obj["permanent"] is True and ev.obj["status"] == status
    assert ev.obj["error"] == "binding rejected: invalid annotation"


def test_a_conflict_is_reported_once_but_not_as_permanent(h: Harness) -> None:
    h.kube.answer("binding", err(409, "pod p is already assigned to node n2"))
    h.actions.bind(POD, "n1", {})
    h.run_retries()
    assert len(h.kube.writes()) == 1
    [ev] = h.results()
    assert ev.obj["ok"] is False and ev.obj["status"] == 409 and ev.obj["permanent"] is False


def test_a_retried_bind_whose_first_try_landed_is_a_success(h: Harness) -> None:
    # The first POST timed out after the server applied it: the retry gets 409.
    h.kube.answer("binding", urllib3.exceptions.ProtocolError("eof"), err(409, "already assigned"))
    h.kube.pod_node = "n1"
    h.actions.bind(POD, "n1", {})
    h.run_retries()
    [ev] = h.results()
    assert ev.obj["ok"] is True and ev.obj["verified"] is True


def test_the_server_asked_delay_is_honoured(h: Harness) -> None:
    h.kube.answer("binding", err(429, "slow down", retryAfterSeconds=7), {})
    h.actions.bind(POD, "n1", {})
    h.run_retries()
    assert h.delays and h.delays[0] >= 7
    [ev] = h.results()
    assert ev.obj["ok"] is True and ev.obj["retry_after"] == 7


def test_an_eviction_refused_by_a_disruption_budget_is_reported_not_retried(h: Harness) -> None:
    h.kube.answer(
        "eviction",
        err(
            429,
            "Cannot evict pod as it would violate the pod's disruption budget.",
            causes=[{"type": "DisruptionBudget", "message": "needs 2 healthy"}],
        ),
    )
    h.actions.evict(POD, "pre")
    h.run_retries()
    assert len(h.kube.writes()) == 1
    [ev] = h.results()
    assert ev.obj["ok"] is False and ev.obj["refused"] is True and ev.obj["preemptor"] == "pre"


def test_an_eviction_of_a_pod_already_gone_is_a_success(h: Harness) -> None:
    h.kube.answer("eviction", err(404, "not found"))
    h.actions.evict(POD, "pre")
    h.run_retries()
    [ev] = h.results()
    assert ev.obj["ok"] is True


def test_a_status_write_is_retried_until_it_lands(h: Harness) -> None:
    h.kube.answer("status", *[err(503, "unavailable")] * 12, {})
    h.actions.patch_status(STATUS_PATH, {"used": 3})
    h.run_retries()
    assert len(h.kube.writes()) == 13
    assert h.results() == []  # landed: nothing to report
    assert max(h.delays) <= STATUS_BACKOFF.cap_s


def test_a_newer_status_replaces_a_pending_retry(h: Harness) -> None:
    h.kube.answer("status", err(503), {})
    h.actions.patch_status(STATUS_PATH, {"used": 1})
    h.settle()
    h.actions.patch_status(STATUS_PATH, {"used": 2})
    h.run_retries()
    bodies = [s[2] for s in h.kube.writes()]
    assert bodies == [{"status": {"used": 1}}, {"status": {"used": 2}}]


def test_a_backlog_of_conditions_never_delays_a_bind_or_a_nomination(h: Harness) -> None:
    release = threading.Event()
    answer = h.kube.request

    def slow_status(method: str, path: str, **kw: Any) -> Any:
        if "/pods/w" in path:
            assert release.wait(5)  # the API server is slow to take these conditions
        return answer(method, path, **kw)

    h.kube.request = slow_status  # type: ignore[method-assign]
    for i in range(20):  # a burst parked at once: twenty condition writes queued first
        parked = {"metadata": {"name": f"w{i}", "namespace": "ns", "uid": f"u-w{i}"}}
        h.actions.set_condition(parked, "Unschedulable", "0/1 nodes")
    h.actions.bind(POD, "n1", {})
    h.actions.set_condition(POD, "Preempting", "making room on n2", nominated="n2")
    h.actions.pool.submit(lambda: None).result(5)
    sent = [(m, p.rsplit("/", 1)[-1]) for m, p, *_ in h.kube.sent]
    assert ("POST", "binding") in sent
    nominations = [b for _, p, b, *_ in h.kube.sent if p.endswith("/p/status")]
    assert nominations and nominations[0]["status"]["nominatedNodeName"] == "n2"
    # All of it while every bulk condition still waited (none has reached the server).
    assert not [p for _, p, *_ in h.kube.sent if "/pods/w" in p]
    release.set()
    h.settle()
    assert len([p for _, p, *_ in h.kube.sent if "/pods/w" in p]) == 20


def test_a_condition_refused_as_invalid_is_reported_once(h: Harness) -> None:
    h.kube.answer("status", err(422, "status.conditions[0].message: too long"))
    h.actions.set_condition(POD, "Unschedulable", "x")
    h.run_retries()
    [ev] = h.results()
    assert ev.type == "condition" and ev.obj["permanent"] is True and ev.obj["uid"] == "u-1"


def test_every_write_has_a_timeout_and_no_transparent_retries(h: Harness) -> None:
    h.actions.bind(POD, "n1", {})
    h.actions.evict(POD, "pre")
    h.actions.set_condition(POD, "Unschedulable", "x")
    h.actions.patch_status(STATUS_PATH, {"used": 1})
    h.run_retries()
    assert len(h.kube.sent) == 4
    for *_, timeout, retries in h.kube.sent:
        assert timeout == h.actions.timeout_s and retries is False


def test_backoff_policy() -> None:
    b = Backoff(base_s=1.0, factor=2.0, cap_s=5.0, jitter=0.0, attempts=3)
    assert [b.delay(n) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert not b.exhausted(2) and b.exhausted(3)
    assert not Backoff(attempts=0).exhausted(10_000)
    jittered = Backoff(base_s=1.0, jitter=0.5)
    draws = [jittered.delay(1, random.Random(i)) for i in range(50)]
    assert min(draws) >= 0.5 and max(draws) <= 1.0 and len(set(draws)) > 40


def test_timers_run_callbacks_in_due_order_and_drop_them_on_close() -> None:
    timers = Timers()
    ran: list[str] = []
    done = threading.Event()
    timers(0.15, lambda: (ran.append("late"), done.set()))
    timers(0.05, lambda: ran.append("early"))
    timers(30, lambda: ran.append("never"))
    assert done.wait(5)
    assert ran == ["early", "late"]
    assert timers.close() == 1
    timers(0, lambda: ran.append("after close"))
    assert ran == ["early", "late"]
