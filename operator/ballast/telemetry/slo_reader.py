"""Reading one class's service levels and GPU use from Prometheus (docs/slo.md).

The queries come from :mod:`ballast.telemetry.slo_queries`; this module only
asks and sorts the answers into an :class:`Observation`. "No data" (an empty
answer, NaN) is kept apart from "could not ask" (``unreachable``) and from a
rejected query (``problems``), so the caller never reports more than is true.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from ballast.telemetry.prometheus import Prometheus, QueryResult
from ballast.telemetry.slo_queries import Signals, gpu_hours_step, scheduler_scraped


@dataclass(frozen=True, slots=True)
class Observation:
    """What Prometheus showed for one class over ``window``.

    A value is None when Prometheus had no data for it; a latency of +inf
    means the quantile lies above the histogram's largest finite bucket.
    ``gpu_hours_by_model`` is None when the scheduler's series are absent
    (nothing to say), {} when they are present and no pod of the class held
    a GPU. ``successes`` is None when the success counter has no series for
    the class.
    """

    window: str
    latency_p95_s: float | None = None
    latency_p99_s: float | None = None
    queue_wait_p95_s: float | None = None
    requests: float | None = None
    successes: float | None = None
    gpu_hours_by_model: dict[str, float] | None = None
    unreachable: str | None = None
    problems: tuple[str, ...] = field(default=())


def _unreachable(result: QueryResult) -> str | None:
    """The client's "cannot reach <url>: <error type>", without the error's text.

    The text names object addresses and ports that differ on every try; a
    condition message must stay the same while the cause does.
    """
    for p in result.problems:
        if "cannot reach" in p:
            return ": ".join(p.split(": ")[:3])
    return None


def _scalar(result: QueryResult) -> float | None:
    value = result.scalar()
    if value is None or math.isnan(value):
        return None
    return value


def read(
    prom: Prometheus,
    signals: Signals,
    *,
    window: str,
    window_s: float,
    at: dt.datetime,
    latency: bool = True,
    queue_wait: bool = True,
) -> Observation:
    """Ask ``prom`` for every signal of ``signals`` over ``window`` ending at ``at``.

    Stops at the first answer that shows Prometheus cannot be reached.
    ``latency``/``queue_wait`` False skip those quantiles (no objective asks).
    """
    asks: dict[str, str] = {}
    if latency:
        asks["latency_p95_s"] = signals.latency_quantile(0.95, window)
        asks["latency_p99_s"] = signals.latency_quantile(0.99, window)
    if queue_wait:
        asks["queue_wait_p95_s"] = signals.queue_wait_quantile(0.95, window)
    asks["requests"] = signals.requests(window)
    asks["successes"] = signals.successes(window)
    values: dict[str, float | None] = {}
    problems: list[str] = []
    for key, promql in asks.items():
        result = prom.query(promql, at=at)
        down = _unreachable(result)
        if down:
            return Observation(window, unreachable=down)
        problems.extend(result.problems)
        values[key] = _scalar(result)

    gpu_hours: dict[str, float] | None = None
    present = prom.query(scheduler_scraped(window), at=at)
    down = _unreachable(present)
    if down:
        return Observation(window, unreachable=down)
    problems.extend(present.problems)
    if present.values:
        hours = prom.query(signals.gpu_hours_by_model(window, gpu_hours_step(window_s)), at=at)
        problems.extend(hours.problems)
        if hours.ok:
            gpu_hours = {
                dict(labels).get("model") or "unknown": v
                for labels, v in hours.values.items()
                if math.isfinite(v)
            }
    return Observation(
        window,
        latency_p95_s=values.get("latency_p95_s"),
        latency_p99_s=values.get("latency_p99_s"),
        queue_wait_p95_s=values.get("queue_wait_p95_s"),
        requests=values.get("requests"),
        successes=values.get("successes"),
        gpu_hours_by_model=gpu_hours,
        problems=tuple(problems),
    )


class Breaker:
    """Stops asking an unreachable Prometheus for ``hold_s`` after it failed.

    The SLO loop reads several classes at once; when the server black-holes
    requests each reading would hold a worker thread for the query timeout.
    After one reading finds it unreachable, the others within ``hold_s``
    report the same without asking.
    """

    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self._lock = threading.Lock()
        self._until = -math.inf
        self._why = ""

    def read(self, now_s: float, ask: Callable[[], Observation], window: str) -> Observation:
        """``ask()`` unless the server failed less than ``hold_s`` before ``now_s`` (monotonic)."""
        with self._lock:
            if now_s < self._until:
                return Observation(window, unreachable=self._why)
        obs = ask()
        if obs.unreachable:
            with self._lock:
                self._until, self._why = now_s + self.hold_s, obs.unreachable
        return obs
