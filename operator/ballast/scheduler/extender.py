"""kube-scheduler extender mode: Ballast's filters and scores over HTTP.

kube-scheduler (configured with an ``extenders`` entry pointing here) sends
``POST /filter`` and ``POST /prioritize`` with ``ExtenderArgs`` (the pod and
the candidate nodes, by name when ``nodeCacheCapable``). Ballast answers from
the same engine and the same watch-fed snapshot the scheduler uses. Scores
are the engine's weighted 0-100 totals rescaled to the extender range 0-10
here, at the boundary, and nowhere else.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import numpy as np

from ballast.logs import kv

if TYPE_CHECKING:
    from ballast.scheduler.core import Scheduler

log = logging.getLogger(__name__)
MAX_EXTENDER_PRIORITY = 10  # k8s.io/kube-scheduler/extender/v1
MAX_SCORE = 100


def _names(args: dict[str, Any]) -> list[str]:
    if args.get("NodeNames") is not None:
        return list(args["NodeNames"])
    items = (args.get("Nodes") or {}).get("items") or []
    return [n["metadata"]["name"] for n in items]


def filter_nodes(s: Scheduler, args: dict[str, Any]) -> dict[str, Any]:
    """``ExtenderFilterResult`` for ``args``."""
    names = _names(args)
    pod = args.get("Pod") or {}
    mapped = s._engine_pod(pod)
    if mapped.value is None:
        return {"NodeNames": [], "FailedNodes": {}, "Error": "; ".join(mapped.problems)}
    with s.lock:
        state = s.engine.cycle(s.snapshot, mapped.value, s.clock.now().timestamp(), s.config.seed)
        f = s.engine.filter(state)
        feasible = {s.snapshot.names[int(r)] for r in f.feasible}
    summary = ", ".join(f"{n} {t}" for t, n in sorted(f.rejections.items(), key=lambda kv: -kv[1]))
    ok = [n for n in names if n in feasible]
    failed = {n: f"rejected by Ballast ({summary})" for n in names if n not in feasible}
    return {"NodeNames": ok, "FailedNodes": failed, "FailedAndUnresolvableNodes": {}, "Error": ""}


def prioritize(s: Scheduler, args: dict[str, Any]) -> list[dict[str, Any]]:
    """``HostPriorityList`` for ``args``: the engine's weighted total, rescaled to 0-10."""
    names = _names(args)
    mapped = s._engine_pod(args.get("Pod") or {})
    if mapped.value is None or not names:
        return [{"Host": n, "Score": 0} for n in names]
    with s.lock:
        known = [n for n in names if n in s.snapshot]
        rows = np.array([s.snapshot.row(n) for n in known], dtype=np.int64)
        state = s.engine.cycle(s.snapshot, mapped.value, s.clock.now().timestamp(), s.config.seed)
        weighted = s.engine.weights(state.cls)
        total = np.zeros(rows.shape[0])
        weight_sum = sum(w for _, w in weighted) or 1.0
        if rows.shape[0]:
            for plugin, w in weighted:
                total += w * plugin.normalize(state, plugin.score(state, rows))
    scores = dict(
        zip(known, (total / weight_sum / MAX_SCORE * MAX_EXTENDER_PRIORITY).tolist(), strict=True)
    )
    return [{"Host": n, "Score": round(scores.get(n, 0.0))} for n in names]


class _Handler(BaseHTTPRequestHandler):
    scheduler: Scheduler

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            args = json.loads(self.rfile.read(length) or b"{}")
            if self.path.rstrip("/").endswith("/filter"):
                body: Any = filter_nodes(self.scheduler, args)
            elif self.path.rstrip("/").endswith("/prioritize"):
                body = prioritize(self.scheduler, args)
            else:
                self.send_error(404, "unknown verb")
                return
        except Exception as exc:  # answer the error instead of dropping the connection
            log.exception("extender request failed", extra=kv(path=self.path))
            body = {"Error": f"ballast extender: {exc}"}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("extender http", extra=kv(request=format % args))


def serve_extender(s: Scheduler, address: str, port: int) -> ThreadingHTTPServer:
    """Start the HTTP server in a background thread and return it."""
    handler = type("Handler", (_Handler,), {"scheduler": s})
    server = ThreadingHTTPServer((address, port), handler)
    threading.Thread(target=server.serve_forever, name="extender", daemon=True).start()
    return server
