"""The collector with a fake clock over the real pynvml and the compiled fake library."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from prometheus_client import generate_latest

from ballast.agent.collector import Collector
from ballast.agent.events import XidWatcher
from ballast.agent.exporter import build_registry
from ballast.agent.record import Publisher, meaningful_change, to_record
from ballast.api.wellknown import parse_telemetry
from ballast.clock import FakeClock
from ballast.telemetry.nvml import CLOCKS_HW_THERMAL_SLOWDOWN, Nvml, XidEvent, handle_key

T0 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def collector(gpus, fake_nvml_lib: str, clock: FakeClock) -> Collector:
    return Collector(Nvml(fake_nvml_lib), clock, slowdown_sustain_s=30.0, init_backoff_s=(1, 8))


def test_collects_every_gpu(collector: Collector) -> None:
    snap = collector.collect()
    assert snap.nvml_available and snap.driver == "550.54.15"
    assert [g.uuid for g in snap.gpus] == ["GPU-aaaa", "GPU-bbbb"]
    g0 = snap.gpus[0]
    assert (g0.utilization_pct, g0.power_w, g0.temperature_c) == (37, 250.5, 45)
    assert g0.memory is not None and g0.memory.used == 8 << 30
    assert g0.health.healthy
    assert snap.observed_at == T0
    assert collector.problems() == {}


def test_unsupported_call_is_recorded_once_then_skipped(gpus, collector: Collector) -> None:
    gpus.gpu(1, unsupported="power,ecc")
    for _ in range(3):
        snap = collector.collect()
    assert snap.gpus[1].power_w is None and snap.gpus[1].ecc_uncorrected is None
    assert snap.gpus[1].utilization_pct == 0  # the rest is still read
    assert collector.problems() == {
        ("1", "nvmlDeviceGetPowerUsage", 3): 1,
        ("1", "nvmlDeviceGetTotalEccErrors", 3): 1,
    }


def test_lost_and_vanished_gpus(gpus, collector: Collector) -> None:
    gpus.gpu(1, lost=1)
    snap = collector.collect()
    lost = snap.gpus[1]
    assert lost.lost and not lost.health.healthy and lost.health.reasons == ("gpu_lost",)
    assert lost.utilization_pct is None
    gpus.set(count=1)
    snap = collector.collect()
    assert [g.index for g in snap.gpus] == [0]
    assert snap.nvml_available


def test_init_failure_retries_with_backoff(gpus, collector: Collector, clock: FakeClock) -> None:
    gpus.set(init_error=9)
    attempts = []
    for _ in range(16):  # 16 fake seconds, one collection per second
        snap = collector.collect()
        assert not snap.nvml_available and snap.gpus == ()
        attempts.append(sum(collector.problems().values()))
        clock.advance(1.0)
    # Attempts at t=0, 1, 3, 7, 15: backoff 1, 2, 4, 8 (capped at 8).
    assert attempts[-1] == 5
    gpus.set(init_error=0)
    clock.advance(8.0)
    snap = collector.collect()
    assert snap.nvml_available and len(snap.gpus) == 2


def test_sustained_hw_slowdown(gpus, collector: Collector, clock: FakeClock) -> None:
    gpus.gpu(0, clocks=CLOCKS_HW_THERMAL_SLOWDOWN)
    assert collector.collect().gpus[0].health.healthy
    clock.advance(29.0)
    assert collector.collect().gpus[0].health.healthy
    clock.advance(1.0)
    assert collector.collect().gpus[0].health.reasons == ("hw_slowdown",)
    gpus.gpu(0, clocks=0)
    assert collector.collect().gpus[0].health.healthy


def test_xid_updates_health_at_once(collector: Collector) -> None:
    seen = []
    collector.listeners.append(seen.append)
    collector.collect()
    (h1, _, _) = next(e for e in collector.handles() if e[1] == 1)
    collector.on_xid(XidEvent(handle_key(h1), 13))  # application error: counted, still healthy
    collector.on_xid(XidEvent(handle_key(h1), 79))
    g1 = collector.snapshot().gpus[1]
    assert (g1.last_xid, g1.xid_count, g1.health.reasons) == (79, 2, ("xid_79",))
    assert len(seen) == 2 and not seen[-1].gpus[1].health.healthy
    assert not collector.collect().gpus[1].health.healthy  # sticky


def test_xid_watcher_thread_delivers(gpus, collector: Collector) -> None:
    collector.collect()
    watcher = XidWatcher(collector, wait_ms=20)
    watcher.start()
    try:
        time.sleep(0.1)  # registered
        gpus.raise_xid(1, 48)
        deadline = time.monotonic() + 2.0
        while collector.snapshot().gpus[1].health.healthy and time.monotonic() < deadline:
            time.sleep(0.01)
        assert collector.snapshot().gpus[1].health.reasons == ("xid_48",)
    finally:
        watcher.stop()
        watcher.join(2)
    assert not watcher.is_alive()


def test_record_matches_the_annotation_format(collector: Collector) -> None:
    record = to_record(collector.collect())
    parsed = parse_telemetry(__import__("orjson").dumps(record.as_dict()).decode())
    assert parsed.problems == []
    assert parsed.value == record
    assert record.gpus[0].memory_used_mib == 8192 and record.gpus[0].utilization_pct == 37.0


def test_publisher_writes_node_only_on_change_or_heartbeat(
    gpus, collector: Collector, clock: FakeClock, tmp_path
) -> None:
    patches: list[str] = []
    out = tmp_path / "record.json"
    pub = Publisher(clock, record_out=str(out), patch_node=patches.append, heartbeat_s=60)
    for _ in range(10):
        pub.publish(collector.collect())
        clock.advance(5)
    assert len(patches) == 1 and pub.writes["file"] == 10  # steady: first write only
    gpus.gpu(0, util=39)  # below the threshold
    pub.publish(collector.collect())
    assert len(patches) == 1
    gpus.gpu(0, util=80)
    pub.publish(collector.collect())
    assert len(patches) == 2
    clock.advance(60)
    pub.publish(collector.collect())
    assert len(patches) == 3  # heartbeat
    assert parse_telemetry(out.read_text()).value.gpus[0].utilization_pct == 80.0


def test_meaningful_change_on_health() -> None:
    from ballast.api.wellknown import GPUTelemetry, NodeTelemetry

    a = NodeTelemetry(T0, (GPUTelemetry(0, healthy=True),))
    b = NodeTelemetry(T0, (GPUTelemetry(0, healthy=False),))
    assert meaningful_change(a, b) and not meaningful_change(a, a) and meaningful_change(None, a)


def test_exporter_series_follow_the_gpus(gpus, collector: Collector) -> None:
    registry, _ = build_registry(collector, "node-a")
    collector.collect()
    text = generate_latest(registry).decode()
    assert (
        'DCGM_FI_DEV_GPU_UTIL{Hostname="node-a",UUID="GPU-aaaa",container="",device="nvidia0",'
        'gpu="0",modelName="NVIDIA H100 80GB HBM3",namespace="",pod=""} 37.0' in text
    )
    assert 'DCGM_FI_DEV_FB_USED{Hostname="node-a",UUID="GPU-aaaa"' in text
    assert "ballast_agent_nvml_available 1.0" in text
    gpus.set(count=1)
    collector.collect()
    text = generate_latest(registry).decode()
    assert 'gpu="1"' not in text
    assert 'gpu="0"' in text


def test_loop_runs_every_interval_of_the_injected_clock(
    collector: Collector, clock: FakeClock
) -> None:
    import asyncio

    from ballast.agent.cli import loop

    stop = asyncio.Event()
    seen: list[float] = []
    pub = Publisher(clock)

    def observe(seconds: float) -> None:
        seen.append(clock.monotonic())
        if len(seen) == 4:
            stop.set()

    asyncio.run(loop(collector, pub, clock, 10.0, stop, observe))
    assert seen == [0.0, 10.0, 20.0, 30.0]
