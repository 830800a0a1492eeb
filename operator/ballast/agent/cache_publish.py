"""Where the cache scans go: the record's ``status.cache``, ``/metrics``, and the scan loop.

The scanner runs on a worker thread every ``--cache-interval`` (less often
than GPU collection); :class:`LatestCache` holds its latest result for the
record writer (GPU collection thread) and the metrics (scrape thread). The
record publisher writes when the *set* of items changes, not when bytes or
last-use times move, so the cache adds at most one write per scan to the
heartbeat's writes; sizes and times are refreshed by the heartbeat write.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector as _PromCollector

from ballast.agent.cache import CacheScan, CacheScanner
from ballast.agent.cache_layout import KINDS
from ballast.api.v1alpha1.gpunodetelemetry import MAX_CACHE_ITEMS
from ballast.clock import Clock


def cache_status(scan: CacheScan, max_items: int = MAX_CACHE_ITEMS) -> dict[str, Any]:
    """The record's ``status.cache`` (wire form): the largest ``max_items`` items, the rest counted.

    Largest first because the data-locality score weighs cached bytes: the
    items a cap would drop are the ones that matter least to placement.
    """
    ranked = sorted(scan.items, key=lambda i: (-i.bytes, i.kind, i.name))
    items = [
        {
            "kind": i.kind,
            "name": i.name,
            "bytes": i.bytes,
            "lastUsed": dt.datetime.fromtimestamp(i.last_used, dt.UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
        }
        for i in ranked[:max_items]
    ]
    return {
        "capacityBytes": scan.capacity_bytes,
        "items": items,
        "omittedItems": max(0, len(ranked) - max_items),
    }


class LatestCache:
    """The latest scan, shared between the scan loop, the record writer and ``/metrics``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scan: CacheScan | None = None

    def set(self, scan: CacheScan) -> None:
        """Replace the latest scan."""
        with self._lock:
            self._scan = scan

    def get(self) -> CacheScan | None:
        """The latest scan (None before the first one ends)."""
        with self._lock:
            return self._scan

    def keys(self) -> frozenset[str] | None:
        """The set of ``kind/name`` items: what a record write is due on when it changes."""
        scan = self.get()
        return None if scan is None else frozenset(i.key for i in scan.items)

    def status(self) -> dict[str, Any] | None:
        """The record's ``status.cache`` for the latest scan."""
        scan = self.get()
        return None if scan is None else cache_status(scan)


class CacheMetrics(_PromCollector):
    """``ballast_agent_cache_*`` from the latest scan, rendered at scrape time."""

    def __init__(self, latest: LatestCache, max_items: int = MAX_CACHE_ITEMS) -> None:
        self.latest = latest
        self.max_items = max_items

    def collect(self) -> Iterator[Metric]:
        """Yield the cache families (nothing before the first scan)."""
        scan = self.latest.get()
        if scan is None:
            return
        count = GaugeMetricFamily(
            "ballast_agent_cache_items", "Models or datasets in the cache roots.", labels=["kind"]
        )
        size = GaugeMetricFamily(
            "ballast_agent_cache_bytes", "Bytes they hold, by kind.", labels=["kind"]
        )
        items: Counter[str] = Counter(i.kind for i in scan.items)
        sizes: Counter[str] = Counter()
        for i in scan.items:
            sizes[i.kind] += i.bytes
        for kind in KINDS:
            count.add_metric([kind], float(items[kind]))
            size.add_metric([kind], float(sizes[kind]))
        yield count
        yield size
        yield GaugeMetricFamily(
            "ballast_agent_cache_capacity_bytes",
            "Size of the cache roots' file systems (or --cache-capacity).",
            value=float(scan.capacity_bytes),
        )
        item_bytes = GaugeMetricFamily(
            "ballast_agent_cache_item_bytes",
            f"Bytes of each cached item (the {self.max_items} largest, as in the record).",
            labels=["kind", "name"],
        )
        for i in sorted(scan.items, key=lambda i: -i.bytes)[: self.max_items]:
            item_bytes.add_metric([i.kind, i.name], float(i.bytes))
        yield item_bytes
        problems = GaugeMetricFamily(
            "ballast_agent_cache_problems",
            "What the last scan skipped, by reason (unreadable, vanished, symlink_loop, "
            "dangling_link, invalid_name, too_deep, root_missing).",
            labels=["reason"],
        )
        for reason, n in sorted(scan.problems.items()):
            problems.add_metric([reason], float(n))
        yield problems


def register(registry: CollectorRegistry, latest: LatestCache) -> Histogram:
    """Add the cache metrics to ``registry``; returns the scan-time histogram to observe."""
    registry.register(CacheMetrics(latest))
    return Histogram(
        "ballast_agent_cache_scan_seconds",
        "Time of one cache scan (full or incremental).",
        buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0),
        registry=registry,
    )


async def scan_loop(
    scanner: CacheScanner,
    latest: LatestCache,
    clock: Clock,
    interval: float,
    stop: asyncio.Event,
    observe: Callable[[float], None] = lambda _: None,
) -> None:
    """Scan on a worker thread every ``interval`` seconds of ``clock`` until ``stop`` is set."""
    while not stop.is_set():
        started = clock.monotonic()
        scan = await asyncio.to_thread(scanner.scan)
        latest.set(scan)
        observe(scan.seconds)
        await clock.sleep(max(0.0, interval - (clock.monotonic() - started)))
