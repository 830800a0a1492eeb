"""The scheduler's probes, served beside ``/metrics`` on the metrics port.

- ``/readyz``: 200 once every informer has listed once (before that the
  scheduler decides nothing, so a pod created then waits for the lists);
  503 with what is still listing otherwise.
- ``/healthz``: 200 while the scheduling loop has completed a step within
  ``stall_s`` seconds; 503 once it has not (a hung loop: the kubelet's
  liveness probe restarts the container).
- anything else: the Prometheus exposition of ``registry``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

STALL_SECONDS = 120.0  # a step takes milliseconds; minutes without one is a hung loop

Probe = tuple[bool, str]


class Health:
    """Liveness from the loop's heartbeat, readiness from what has not listed yet."""

    def __init__(
        self,
        monotonic: Callable[[], float],
        pending: Callable[[], Iterable[str]],
        stall_s: float = STALL_SECONDS,
    ) -> None:
        self._monotonic = monotonic
        self._pending = pending
        self.stall_s = stall_s
        self._beat = monotonic()

    def beat(self) -> None:
        """The scheduling loop completed a step."""
        self._beat = self._monotonic()

    def live(self) -> Probe:
        """Whether the loop stepped within ``stall_s``, and why not."""
        idle = self._monotonic() - self._beat
        if idle > self.stall_s:
            return False, f"no scheduling step for {idle:.0f}s (limit {self.stall_s:.0f}s)"
        return True, "ok"

    def ready(self) -> Probe:
        """Whether every informer has listed, and which have not."""
        pending = sorted(self._pending())
        if pending:
            return False, "waiting for the first list of: " + ", ".join(pending)
        return True, "ok"


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds: no access log."""


def app(registry: CollectorRegistry, health: Health) -> Callable[..., Iterable[bytes]]:
    """A WSGI app: the two probes, and the metrics for every other path."""
    metrics = make_wsgi_app(registry)
    probes = {"/healthz": health.live, "/readyz": health.ready}

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        probe = probes.get(environ.get("PATH_INFO", ""))
        if probe is None:
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        ok, message = probe()
        start_response(
            "200 OK" if ok else "503 Service Unavailable",
            [("Content-Type", "text/plain; charset=utf-8")],
        )
        return [message.encode() + b"\n"]

    return serve


def serve(
    registry: CollectorRegistry, health: Health, port: int, addr: str = "0.0.0.0"
) -> WSGIServer:
    """Serve on ``addr:port`` from a daemon thread."""
    server = make_server(addr, port, app(registry, health), _Server, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
