"""Prometheus metrics of the scheduler (served on ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


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
            "Time from pod creation to a successful bind.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
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
        self.leader = Gauge(
            "ballast_scheduler_is_leader", "1 while this replica holds the lease.", registry=r
        )

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """Serve ``/metrics`` on ``addr:port`` from a background thread."""
        start_http_server(port, addr=addr, registry=self.registry)
