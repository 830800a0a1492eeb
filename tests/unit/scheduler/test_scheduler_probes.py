"""The scheduler's /healthz and /readyz, served beside /metrics."""

from __future__ import annotations

import datetime as dt
import queue
import urllib.error
import urllib.request

from sched_builders import RecordingActions

from ballast.clock import FakeClock
from ballast.scheduler.core import Config, Scheduler
from ballast.scheduler.health import Health, serve
from ballast.scheduler.informer import Event
from ballast.scheduler.metrics import SchedulerMetrics


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_ready_only_once_every_informer_has_listed() -> None:
    q: queue.Queue[Event] = queue.Queue()
    clock = FakeClock(dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
    s = Scheduler(RecordingActions(), q, clock, Config())  # type: ignore[arg-type]
    health = Health(clock.monotonic, s.pending_lists)
    ok, message = health.ready()
    assert not ok and "nodes" in message and "pods" in message
    kinds = sorted(s.required)
    for kind in kinds[:-1]:
        q.put(Event(kind, "SYNCED", {}))
    s.step(0)
    ok, message = health.ready()
    assert not ok and message.endswith(kinds[-1])
    q.put(Event(kinds[-1], "SYNCED", {}))
    s.step(0)
    assert health.ready() == (True, "ok") and s.ready


def test_live_until_the_loop_stalls() -> None:
    clock = FakeClock(dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
    health = Health(clock.monotonic, set, stall_s=30)
    clock.advance(29)
    assert health.live()[0]
    clock.advance(2)
    ok, message = health.live()
    assert not ok and "31s" in message
    health.beat()
    assert health.live() == (True, "ok")


def test_served_beside_the_metrics() -> None:
    clock = FakeClock(dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
    pending = {"nodes"}
    metrics = SchedulerMetrics()
    metrics.binds.inc()
    server = serve(metrics.registry, Health(clock.monotonic, lambda: pending), 0, "127.0.0.1")
    try:
        port = server.server_port
        assert _get(port, "/readyz") == (503, "waiting for the first list of: nodes\n")
        pending.clear()
        assert _get(port, "/readyz") == (200, "ok\n")
        assert _get(port, "/healthz") == (200, "ok\n")
        clock.advance(500)
        assert _get(port, "/healthz")[0] == 503
        status, body = _get(port, "/metrics")
        assert status == 200 and "ballast_scheduler_binds_total 1.0" in body
    finally:
        server.shutdown()
        server.server_close()
