"""A stand-in for serving engines' metrics: vLLM's series, with values the caller sets.

Tests, the benchmark and the demo scale a workload on queue depth and latency
without a model server: this exporter serves ``vllm:num_requests_waiting``
and ``vllm:e2e_request_latency_seconds`` labelled with the ``namespace`` and
``pod`` they describe (as a pod monitor would label a real pod's series),
and Prometheus scrapes it in the ``serving`` job
(:func:`ballast.localcluster.prometheus.add_target`).
"""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Gauge, Histogram, start_http_server

QUEUE_METRIC = "vllm:num_requests_waiting"
LATENCY_HISTOGRAM = "vllm:e2e_request_latency_seconds"
# vLLM's own bucket bounds for end-to-end latency (seconds).
LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0)


class ServingExporter:
    """An HTTP /metrics endpoint on loopback whose series the caller controls."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._queue = Gauge(
            QUEUE_METRIC, "Requests waiting to be processed.", ["namespace", "pod"],
            registry=self.registry,
        )  # fmt: skip
        self._latency = Histogram(
            LATENCY_HISTOGRAM, "End-to-end request latency.", ["namespace", "pod"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def start(self, port: int = 0) -> ServingExporter:
        """Serve on 127.0.0.1:``port`` (0: a free one, then in :attr:`port`)."""
        self._server, self._thread = start_http_server(
            port, addr="127.0.0.1", registry=self.registry
        )
        self.port = int(self._server.server_port)
        return self

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``: what Prometheus scrapes."""
        return f"127.0.0.1:{self.port}"

    def set_queue(self, namespace: str, pod: str, waiting: float) -> None:
        """Set the requests waiting in one pod."""
        self._queue.labels(namespace, pod).set(waiting)

    def clear_queue(self, namespace: str, pod: str) -> None:
        """Stop serving one pod's queue series (the pod is gone)."""
        try:
            self._queue.remove(namespace, pod)
        except KeyError:
            return

    def observe(self, namespace: str, pod: str, seconds: float, count: int = 1) -> None:
        """Record ``count`` requests of ``seconds`` end-to-end latency for one pod."""
        child = self._latency.labels(namespace, pod)
        for _ in range(count):
            child.observe(seconds)

    def close(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
