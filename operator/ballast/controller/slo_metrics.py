"""The operator's per-class SLO and cost series (on its ``--metrics-port`` /metrics).

Every series carries ``class``; the cost series also ``window`` (the range
they were read over). A value that cannot be had is removed, never left
stale or set to a made-up number.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Gauge


class SloMetrics:
    """Gauges per class, set from the status the SLO reader writes."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, str] = {}
        self.slo_met = Gauge(
            "ballast_workloadclass_slo_met",
            "1 when the class's SLOMet condition is True, 0 when False; absent when Unknown.",
            ["class"],
            registry=registry,
        )
        # In the base unit (Prometheus naming): GPU-seconds; status.cost says GPU-hours.
        self.gpu_hours = Gauge(
            "ballast_workloadclass_gpu_seconds",
            "GPU-seconds the class's pods held over the window (status.cost.gpuHours x 3600).",
            ["class", "window"],
            registry=registry,
        )
        self.cost_per_hour = Gauge(
            "ballast_workloadclass_gpu_cost_per_hour",
            "GPU cost of the class over the window (pricePerGPUHour) divided by its hours.",
            ["class", "window"],
            registry=registry,
        )
        self.cost_per_response = Gauge(
            "ballast_workloadclass_cost_per_successful_response",
            "GPU cost of the class over the window divided by its successful responses.",
            ["class", "window"],
            registry=registry,
        )

    @staticmethod
    def _drop(gauge: Gauge, *labels: str) -> None:
        with contextlib.suppress(KeyError):  # not set: nothing to remove
            gauge.remove(*labels)

    def update(self, name: str, slo_met: bool | None, cost: Mapping[str, Any] | None) -> None:
        """Set (or remove) the class's series from its judgement and ``status.cost``."""
        with self._lock:
            if slo_met is None:
                self._drop(self.slo_met, name)
            else:
                self.slo_met.labels(name).set(1.0 if slo_met else 0.0)
            old = self._windows.pop(name, None)
            window = str(cost["window"]) if cost else None
            for gauge, key, scale in (
                (self.gpu_hours, "gpuHours", 3600.0),
                (self.cost_per_hour, "costPerHour", 1.0),
                (self.cost_per_response, "costPerSuccessfulResponse", 1.0),
            ):
                if old is not None and old != window:
                    self._drop(gauge, name, old)
                value = cost.get(key) if cost else None
                if window is None or value is None:
                    if window is not None:
                        self._drop(gauge, name, window)
                    continue
                gauge.labels(name, window).set(float(value) * scale)
            if window is not None:
                self._windows[name] = window

    def forget(self, name: str) -> None:
        """Remove every series of class ``name`` (it was deleted)."""
        with self._lock:
            self._drop(self.slo_met, name)
            window = self._windows.pop(name, None)
            if window is not None:
                for gauge in (self.gpu_hours, self.cost_per_hour, self.cost_per_response):
                    self._drop(gauge, name, window)
