"""Cache scans into the record (status.cache, the write rule), /metrics, and the scan loop."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ballast.agent.cache import CacheScan, CacheScanner, ScannedItem
from ballast.agent.cache_layout import CacheRoot
from ballast.agent.cache_publish import LatestCache, cache_status, register, scan_loop
from ballast.agent.cli import configure
from ballast.agent.collector import GPUSample, Snapshot
from ballast.agent.record import Publisher, RecordWriter
from ballast.api.v1alpha1 import GPUNodeTelemetry
from ballast.api.v1alpha1.gpunodetelemetry import to_cache_inventory
from ballast.clock import FakeClock

T0 = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
DAY = 86_400.0


def scan(*items: tuple[str, str, int], when: float = T0.timestamp()) -> CacheScan:
    found = tuple(ScannedItem(k, n, b, when) for k, n, b in items)
    return CacheScan(items=found, capacity_bytes=10**12, problems={"unreadable": 2})


def snapshot() -> Snapshot:
    gpus = (GPUSample(index=0, uuid="GPU-0", name="NVIDIA H100 80GB HBM3", utilization_pct=5),)
    return Snapshot(observed_at=T0, nvml_available=True, gpus=gpus)


def test_status_keeps_the_largest_items_counts_the_rest_and_validates() -> None:
    items = [("model", f"m{i}", (i * 7919) % 1000) for i in range(10)]
    status = cache_status(scan(*items, when=T0.timestamp() - DAY), max_items=4)
    want = sorted(items, key=lambda i: -i[2])[:4]
    assert [(i["kind"], i["name"], i["bytes"]) for i in status["items"]] == want
    assert status["omittedItems"] == 6
    assert {i["lastUsed"] for i in status["items"]} == {"2026-05-31T12:00:00Z"}
    obj = {"metadata": {"name": "n"}, "status": {"nodeName": "n", "cache": status}}
    GPUNodeTelemetry.model_validate({"status": obj["status"]})  # what the CRD accepts
    inventory = to_cache_inventory(obj)
    assert inventory is not None and inventory.capacity_bytes == 10**12
    assert [i.name for i in inventory.items] == [n for _, n, _ in want]


class Writes:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, snap: Snapshot) -> None:
        self.n += 1


def test_a_write_is_due_when_items_come_or_go_not_when_sizes_or_times_move() -> None:
    clock = FakeClock(T0)
    latest, writes = LatestCache(), Writes()
    pub = Publisher(clock, write_record=writes, heartbeat_s=60, cache=latest)
    pub.publish(snapshot())
    assert writes.n == 1  # the first report
    latest.set(scan(("model", "a", 10)))
    pub.publish(snapshot())
    assert writes.n == 2  # the first scan landed
    for size in (20, 30):
        clock.advance(10)
        latest.set(scan(("model", "a", size), when=T0.timestamp() + size))
        pub.publish(snapshot())
    assert writes.n == 2  # growing and being read are not news
    latest.set(scan(("model", "a", 30), ("dataset", "d", 1)))
    pub.publish(snapshot())
    assert writes.n == 3
    latest.set(scan(("dataset", "d", 1)))
    pub.publish(snapshot())
    assert writes.n == 4
    clock.advance(60)
    pub.publish(snapshot())
    assert writes.n == 5  # the heartbeat carries the current sizes


class FakeKube:
    def __init__(self) -> None:
        self.patches: list[dict[str, Any]] = []

    def get(self, path: str) -> dict[str, Any] | None:
        return {"metadata": {"name": "n"}}

    def patch(self, path: str, body: dict[str, Any], **_: Any) -> None:
        self.patches.append(body)


def test_writer_puts_the_latest_scan_in_status_cache() -> None:
    kube, latest = FakeKube(), LatestCache()
    writer = RecordWriter(kube, "n", 10.0, cache=latest)
    writer(snapshot())
    assert "cache" not in kube.patches[-1]["status"]  # no scan yet: the field is left out
    latest.set(scan(("model", "org/m", 5)))
    writer(snapshot())
    cache = kube.patches[-1]["status"]["cache"]
    assert cache == cache_status(scan(("model", "org/m", 5)))
    GPUNodeTelemetry.model_validate({"status": kube.patches[-1]["status"]})


def test_metrics_render_items_bytes_capacity_problems_and_scan_time() -> None:
    registry, latest = CollectorRegistry(), LatestCache()
    histogram = register(registry, latest)
    assert "ballast_agent_cache_items" not in generate_latest(registry).decode()  # no scan yet
    latest.set(scan(("model", "a", 10), ("model", "b", 5), ("dataset", "d", 7)))
    histogram.observe(0.02)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(generate_latest(registry).decode())
        for s in fam.samples
    }
    assert samples[("ballast_agent_cache_items", (("kind", "model"),))] == 2
    assert samples[("ballast_agent_cache_bytes", (("kind", "model"),))] == 15
    assert samples[("ballast_agent_cache_bytes", (("kind", "dataset"),))] == 7
    assert samples[("ballast_agent_cache_capacity_bytes", ())] == 10**12
    assert samples[("ballast_agent_cache_item_bytes", (("kind", "model"), ("name", "b")))] == 5
    assert samples[("ballast_agent_cache_problems", (("reason", "unreadable"),))] == 2
    assert samples[("ballast_agent_cache_scan_seconds_count", ())] == 1


def test_scan_loop_scans_every_interval_until_stopped(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "w").write_bytes(b"x" * 3)
    clock = FakeClock(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    scanner = CacheScanner([CacheRoot("model", str(tmp_path))], clock)
    latest, seen = LatestCache(), []

    async def main() -> None:
        stop = asyncio.Event()

        def observe(seconds: float) -> None:
            seen.append(clock.monotonic())
            if len(seen) == 3:
                stop.set()

        await scan_loop(scanner, latest, clock, 60.0, stop, observe)

    asyncio.run(main())
    assert seen == [0.0, 60.0, 120.0]
    got = latest.get()
    assert got is not None and [(i.name, i.bytes) for i in got.items] == [("m", 3)]


def test_flags_parse_roots_and_refuse_bad_ones(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args(
        ["--cache-root", "model=/hub:hf", "--cache-root", "dataset=/data", "--cache-interval", "5"]
    )
    assert args.cache_root == [CacheRoot("model", "/hub", "hf"), CacheRoot("dataset", "/data")]
    assert (args.cache_interval, args.cache_capacity, args.cache_full_every) == (5.0, 0, 60)
    for bad in (["--cache-root", "weights=/x"], ["--cache-interval", "0"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
    assert "KIND one of model, dataset" in capsys.readouterr().err
