"""Prometheus metrics of the scheduler (served on ``/metrics``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ballast.placement.snapshot import Snapshot
from ballast.placement.state import Placement

POD_INFO = "ballast_scheduler_pod_info"
POD_INFO_LABELS = ("namespace", "pod", "class", "tier", "node")
POD_GPUS = "ballast_scheduler_pod_gpus"
POD_GPUS_LABELS = (*POD_INFO_LABELS, "model")


class PodInfo(Collector):
    """``ballast_scheduler_pod_info``: 1 per GPU pod the scheduler charges, with its class.

    Rendered from the snapshot at scrape time (no bookkeeping on the hot
    path), under the scheduler's lock. Joined on ``namespace``/``pod`` with the
    agents' DCGM series, it gives GPU utilisation per class and tier (the
    recording rule ``ballast:gpu_utilization:avg_by_class``).
    """

    def __init__(
        self,
        placements: Callable[[], Iterable[Placement]],
        lock: threading.RLock,
        model_of: Callable[[str], str] | None = None,
    ) -> None:
        self.placements = placements
        self.lock = lock
        self.model_of = model_of or (lambda _node: "")

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One sample per charged pod that holds GPUs, in both families."""
        family = GaugeMetricFamily(
            POD_INFO,
            "GPU pods the scheduler charges (bound or being bound), with their class, tier and "
            "node; always 1.",
            labels=POD_INFO_LABELS,
        )
        # GPU-hours per class and GPU model (the operator's cost report, docs/slo.md):
        # a share of a GPU counts as its fraction.
        gpus = GaugeMetricFamily(
            POD_GPUS,
            "GPUs each charged pod holds (fractions for shared GPUs), with the GPU model "
            "(nvidia.com/gpu.product) of its node.",
            labels=POD_GPUS_LABELS,
        )
        with self.lock:
            rows = [
                ((p.namespace, p.name, p.class_name, p.tier, p.node), p.demand_milli / 1000.0)
                for p in list(self.placements())
                if p.gpus
            ]
            models = {node: self.model_of(node) for node in {r[4] for r, _ in rows}}
        for row, held in rows:
            family.add_metric(row, 1.0)
            gpus.add_metric((*row, models[row[4]]), held)
        yield family
        yield gpus

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """No samples at registration time."""
        return iter(())


def node_model(current: Callable[[], Snapshot]) -> Callable[[str], str]:
    """``node -> GPU model`` (its nvidia.com/gpu.product) in ``current()``; "" when unknown."""

    def model(node: str) -> str:
        snapshot = current()
        try:
            pid = int(snapshot.product[snapshot.row(node)])
        except KeyError:
            return ""
        return snapshot.products[pid] if 0 <= pid < len(snapshot.products) else ""

    return model


class SchedulerMetrics:
    """All series in one registry, so tests and several instances do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.attempts = Counter(
            "ballast_scheduler_attempts",
            "Scheduling attempts by result (scheduled, unschedulable, quota, window, preempting, error).",
            ["result"],
            registry=r,
        )
        self.decision_seconds = Histogram(
            "ballast_scheduler_decision_seconds",
            "Time the placement engine took for one decision.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        self.e2e_seconds = Histogram(
            "ballast_scheduler_pod_scheduling_seconds",
            "Time from pod creation to a successful bind, by the pod's WorkloadClass (queue "
            "wait; the bounds are the queueWaitP95Seconds an SLO can alert on).",
            ["class"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800),
            registry=r,
        )
        self.queue_depth = Gauge(
            "ballast_scheduler_pending_pods", "Pods waiting, by tier.", ["tier"], registry=r
        )
        self.preemptions = Counter(
            "ballast_scheduler_preemption_victims", "Pods evicted to make room.", registry=r
        )
        self.binds = Counter("ballast_scheduler_binds", "Successful binds.", registry=r)
        self.bind_errors = Counter(
            "ballast_scheduler_bind_errors", "Binds that failed and were retried.", registry=r
        )
        self.errors = Counter(
            "ballast_scheduler_errors",
            "Unexpected errors by stage (event: handling a watch event; decide: a scheduling "
            "attempt). The object is retried with backoff; the loop goes on.",
            ["stage"],
            registry=r,
        )
        self.invalid_objects = Counter(
            "ballast_scheduler_invalid_objects",
            "Objects read with data the scheduler could not use (reported in an event), by kind.",
            ["kind"],
            registry=r,
        )
        self.cache_placements = Counter(
            "ballast_scheduler_cache_placements",
            "Pods that name models or datasets, by class and where they were bound: hit (every "
            "item cached on the node), partial, or miss.",
            ["class", "result"],
            registry=r,
        )
        self.leader = Gauge(
            "ballast_scheduler_is_leader", "1 while this replica holds the lease.", registry=r
        )

    def watch_pods(
        self,
        placements: Callable[[], Iterable[Placement]],
        lock: threading.RLock,
        model_of: Callable[[str], str] | None = None,
    ) -> None:
        """Export ``ballast_scheduler_pod_info`` and ``_pod_gpus`` from ``placements``.

        Read under ``lock``; ``model_of(node)`` names a node's GPU model ("" unknown).
        """
        self.registry.register(PodInfo(placements, lock, model_of))
