"""XID events from an NVML event set, on a thread blocked in ``nvmlEventSetWait``.

The watcher registers every GPU the collector has seen for critical XID
events and re-registers when that set changes (``Collector.generation``). An
event goes straight to ``Collector.on_xid``, so an unhealthy GPU is reported
as soon as NVML raises it. A driver without event support is recorded once
as a problem and the thread ends; health then comes from polling alone.
"""

from __future__ import annotations

import logging
import threading

from ballast.agent.collector import NODE, Collector
from ballast.logs import kv
from ballast.telemetry.nvml import EventSet, Problem

log = logging.getLogger(__name__)


class XidWatcher(threading.Thread):
    """Daemon thread delivering XID events to a collector until ``stop()``."""

    # One second per wait: an event still arrives the moment the driver posts it
    # (the wait returns at once); the bound only sets how soon stop() is seen,
    # and a shorter one costs a Python wake-up ten times a second for nothing.
    def __init__(self, collector: Collector, *, wait_ms: int = 1000) -> None:
        super().__init__(name="ballast-xid", daemon=True)
        self.collector = collector
        self.nvml = collector.nvml
        self.wait_ms = wait_ms
        self._halt = threading.Event()
        self._registered: set[str] = set()

    def stop(self) -> None:
        """Ask the thread to end (it does within ``wait_ms``)."""
        self._halt.set()

    def run(self) -> None:
        """Register, wait, deliver; re-register when the GPUs change."""
        es: EventSet | None = None
        generation = -1
        try:
            while not self._halt.is_set():
                if generation != self.collector.generation or es is None:
                    if es is not None:
                        self.nvml.event_set_free(es)
                        es = None
                    generation = self.collector.generation
                    created = self._register()
                    if created is None:
                        return
                    if isinstance(created, Problem):
                        self._halt.wait(1.0)
                        continue
                    es = created
                event = self.nvml.wait_xid(es, self.wait_ms)
                if isinstance(event, Problem):
                    self.collector.record_problem(NODE, event)
                    self.nvml.event_set_free(es)
                    es = None
                    self._halt.wait(1.0)
                elif event is not None:
                    self.collector.on_xid(event)
        finally:
            if es is not None:
                self.nvml.event_set_free(es)

    def _register(self) -> EventSet | Problem | None:
        """A fresh event set with every GPU registered; None: events unsupported here."""
        handles = self.collector.handles()
        if not handles:
            return Problem("nvmlEventSetCreate", 0, "no GPUs yet")
        es = self.nvml.event_set_create()
        if isinstance(es, Problem):
            self.collector.record_problem(NODE, es)
            if es.unsupported:
                log.warning("xid events not supported; health from polling only")
                return None
            return es
        for h, index, uuid in handles:
            problem = self.nvml.register_xid_events(h, es)
            if problem is not None and uuid not in self._registered:
                self.collector.record_problem(str(index), problem)
            elif problem is None:
                self._registered.add(uuid)
        log.debug("xid events registered", extra=kv(gpus=len(handles)))
        return es
