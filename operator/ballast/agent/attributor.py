"""The attribution step of the running agent: ask the sources, merge, hand the result over.

Every interval, on a thread of its own (a slow kubelet never delays an NVML
collection): ``List`` on the kubelet's pod-resources socket (when enabled
and present), the node's pods from the list+watch view (when enabled), then
:func:`ballast.agent.attribution.merge` and ``Collector.set_pods``, which
updates ``/metrics`` and, when an owner changed, publishes the record at once.
A conflict is logged and counted when it first appears, not every interval.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from ballast.agent.attribution import GPU, Allocation, Attribution, BallastPod, Conflict, merge
from ballast.agent.collector import Collector
from ballast.logs import kv

log = logging.getLogger(__name__)

MODES = ("auto", "pod-resources", "ballast", "off")
MAX_REMEMBERED = 1024  # problems already logged (bounded: pod names churn)


class PodResourcesSource(Protocol):
    """What the attributor needs of :class:`ballast.agent.podresources.PodResourcesClient`."""

    def list(self) -> list[Allocation] | None:
        """Every device allocation on the node, or None when not available."""
        ...

    def available(self) -> bool:
        """Whether the last call answered."""
        ...


class PodsSource(Protocol):
    """What the attributor needs of :class:`ballast.agent.nodepods.NodePods`."""

    def current(self) -> list[BallastPod] | None:
        """The node's pods with an assignment, or None before the first list."""
        ...

    def request_counts(self) -> dict[str, int]:
        """API requests sent so far, by verb."""
        ...

    def wait_synced(self, timeout_s: float) -> bool:
        """Block until the first full list arrived (or ``timeout_s``)."""
        ...


class Attributor(threading.Thread):
    """Daemon thread: refresh the collector's GPU owners every ``interval_s`` until ``stop()``."""

    def __init__(
        self,
        collector: Collector,
        interval_s: float,
        *,
        pod_resources: PodResourcesSource | None = None,
        pods: PodsSource | None = None,
    ) -> None:
        super().__init__(name="ballast-attribution", daemon=True)
        self.collector = collector
        self.interval_s = interval_s
        self.pod_resources = pod_resources
        self.pods = pods
        self.conflicts_total = 0
        self.latest = Attribution({})
        self._conflicts: set[Conflict] = set()
        self._logged: set[str] = set()
        self._halt = threading.Event()

    def stop(self) -> None:
        """Ask the thread to end (it does within one interval, or one kubelet timeout)."""
        self._halt.set()

    def run(self) -> None:
        """Refresh, wait, repeat."""
        while not self._halt.is_set():
            try:
                self.refresh()
            except Exception as exc:  # never let attribution take the agent down
                log.exception("attribution failed", extra=kv(error=exc))
            self._halt.wait(self.interval_s)

    def pod_resources_available(self) -> bool | None:
        """Whether the kubelet answered last time (None: that source is off)."""
        return None if self.pod_resources is None else self.pod_resources.available()

    def refresh(self) -> Attribution:
        """One round: read both sources, merge, apply to the collector."""
        snap = self.collector.snapshot()
        gpus = [GPU(g.index, g.uuid) for g in snap.gpus]
        allocations = None if self.pod_resources is None else self.pod_resources.list()
        pods = None if self.pods is None else self.pods.current()
        result = merge(allocations, pods, gpus)
        current = set(result.conflicts)
        for c in sorted(current - self._conflicts, key=lambda c: (c.namespace, c.pod)):
            self.conflicts_total += 1
            log.warning(
                "gpu attribution conflict: the kubelet's allocation wins",
                extra=kv(
                    namespace=c.namespace,
                    pod=c.pod,
                    kubelet=list(c.kubelet),
                    ballast=list(c.ballast),
                    held_by=list(c.held_by),
                    detail=c.describe(),
                ),
            )
        self._conflicts = current
        for problem in result.problems:
            if problem not in self._logged:
                if len(self._logged) >= MAX_REMEMBERED:
                    self._logged.clear()
                self._logged.add(problem)
                log.info("gpu attribution input ignored", extra=kv(problem=problem))
        self.latest = result
        self.collector.set_pods(result.by_uuid(gpus))
        return result
