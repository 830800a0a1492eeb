"""PromQL for a class's service levels and GPU use: pure string builders, no I/O.

The operator's SLO reader (:mod:`ballast.telemetry.slo_reader`) and the
burn-rate rules (:mod:`ballast.telemetry.slo_rules`) share these, so status
and alerts measure the same thing. See docs/slo.md for every query.

A class's *serving series* (the latency histogram, the success counter) are
selected either by ``slo.matchLabels`` or, by default, by joining on
``namespace``/``pod`` with the pods the Ballast scheduler charged to the class
at any time in the window (``ballast_scheduler_pod_info{class=...}``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_LATENCY_HISTOGRAM = "vllm:e2e_request_latency_seconds"
DEFAULT_SUCCESS_COUNTER = "vllm:request_success_total"
POD_INFO = "ballast_scheduler_pod_info"
POD_GPUS = "ballast_scheduler_pod_gpus"
QUEUE_WAIT_HISTOGRAM = "ballast_scheduler_pod_scheduling_seconds"
SCHEDULER_PRESENT = "ballast_scheduler_is_leader"

_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d|w)$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(text: str) -> float:
    """Seconds of a one-unit PromQL duration (``90s``, ``5m``, ``1h``); ValueError otherwise."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration such as 90s, 5m or 1h")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def format_duration(seconds: float) -> str:
    """The shortest one-unit PromQL duration equal to ``seconds`` (whole seconds or more)."""
    s = round(seconds)
    if s <= 0:
        raise ValueError(f"a window must be at least 1s, not {seconds}")
    for unit in ("w", "d", "h", "m"):
        if s % _UNIT_S[unit] == 0:
            return f"{s // int(_UNIT_S[unit])}{unit}"
    return f"{s}s"


def quote(value: str) -> str:
    """A PromQL string literal (double quotes, backslash escapes)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def le_regex(seconds: float) -> str:
    """A regex matching the ``le`` label of a bucket bound of ``seconds``, however written.

    Exporters write ``0.5``, ``1`` or ``1.0``; Prometheus 3 rewrites classic
    bucket bounds to its float form. ``1`` matches ``1``, ``1.0``, ``1.00``...
    """
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"no bucket bound for {seconds}")
    text = f"{seconds:.6f}".rstrip("0").rstrip(".")
    whole, _, frac = text.partition(".")
    if frac:
        return f"{whole}\\\\.{frac}0*"
    return f"{whole}(\\\\.0*)?"


@dataclass(frozen=True, slots=True)
class Signals:
    """Which series measure one class: the overrides resolved to names and a selector."""

    class_name: str
    latency_histogram: str = DEFAULT_LATENCY_HISTOGRAM
    success_counter: str = DEFAULT_SUCCESS_COUNTER
    match_labels: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(
        cls,
        class_name: str,
        *,
        latency_histogram: str | None = None,
        success_counter: str | None = None,
        match_labels: Mapping[str, str] | None = None,
    ) -> Signals:
        """Signals with the defaults for whatever is None."""
        return cls(
            class_name,
            latency_histogram or DEFAULT_LATENCY_HISTOGRAM,
            success_counter or DEFAULT_SUCCESS_COUNTER,
            tuple(sorted((match_labels or {}).items())),
        )

    # --------------------------------------------------------------- selection
    def _matchers(self, *extra: str) -> str:
        parts = [*(f"{k}={quote(v)}" for k, v in self.match_labels), *extra]
        return "{" + ", ".join(parts) + "}" if parts else ""

    def class_pods(self, window: str) -> str:
        """One series per (namespace, pod) charged to the class at some time in ``window``."""
        return (
            f"max by (namespace, pod) (max_over_time("
            f"{POD_INFO}{{class={quote(self.class_name)}}}[{window}]))"
        )

    def per_series(self, fn: str, metric: str, window: str, *matchers: str) -> str:
        """``fn(metric{...}[window])`` for the class's serving series only."""
        inner = f"{fn}({metric}{self._matchers(*matchers)}[{window}])"
        if self.match_labels:
            return inner
        return f"({inner} * on (namespace, pod) group_left () {self.class_pods(window)})"

    # ----------------------------------------------------------------- signals
    def latency_quantile(self, q: float, window: str) -> str:
        """The ``q`` quantile of request latency over ``window``, seconds."""
        buckets = self.per_series("rate", f"{self.latency_histogram}_bucket", window)
        return f"histogram_quantile({q:g}, sum by (le) ({buckets}))"

    def requests(self, window: str) -> str:
        """Requests finished in ``window`` (the latency histogram's count)."""
        return f"sum({self.per_series('increase', f'{self.latency_histogram}_count', window)})"

    def successes(self, window: str) -> str:
        """Successful responses in ``window`` (the success counter)."""
        return f"sum({self.per_series('increase', self.success_counter, window)})"

    def slow_requests_ratio(self, objective_s: float, window: str) -> str:
        """Fraction of requests in ``window`` slower than ``objective_s`` (a bucket bound)."""
        fast = self.per_series(
            "rate", f"{self.latency_histogram}_bucket", window, f'le=~"{le_regex(objective_s)}"'
        )
        total = self.per_series("rate", f"{self.latency_histogram}_count", window)
        return f"(1 - (sum({fast}) / sum({total})))"

    def error_ratio(self, window: str) -> str:
        """Fraction of requests in ``window`` that did not succeed (never below 0)."""
        ok = self.per_series("rate", self.success_counter, window)
        total = self.per_series("rate", f"{self.latency_histogram}_count", window)
        return f"clamp_min(1 - (sum({ok}) / sum({total})), 0)"

    def queue_wait_quantile(self, q: float, window: str) -> str:
        """The ``q`` quantile of pod creation to bind for the class, seconds."""
        return (
            f"histogram_quantile({q:g}, sum by (le) (rate("
            f"{QUEUE_WAIT_HISTOGRAM}_bucket{{class={quote(self.class_name)}}}[{window}])))"
        )

    def slow_queue_ratio(self, objective_s: float, window: str) -> str:
        """Fraction of the class's pods bound in ``window`` that waited longer than ``objective_s``."""
        sel = f"class={quote(self.class_name)}"
        le = f'le=~"{le_regex(objective_s)}"'
        return (
            f"(1 - (sum(rate({QUEUE_WAIT_HISTOGRAM}_bucket{{{sel}, {le}}}[{window}])) / "
            f"sum(rate({QUEUE_WAIT_HISTOGRAM}_count{{{sel}}}[{window}]))))"
        )

    def gpu_hours_by_model(self, window: str, step_s: int) -> str:
        """GPU-hours the class's pods held in ``window``, by GPU model (sampled every ``step_s``)."""
        return (
            f"sum by (model) (sum_over_time((sum by (model) "
            f"({POD_GPUS}{{class={quote(self.class_name)}}}))[{window}:{step_s}s])) "
            f"* {step_s} / 3600"
        )


def scheduler_scraped(window: str) -> str:
    """Non-empty when some Ballast scheduler was scraped during ``window``."""
    return f"count(max_over_time({SCHEDULER_PRESENT}[{window}]))"


def gpu_hours_step(window_s: float) -> int:
    """The subquery step for GPU-hours: about 120 samples per window, at least 1 s."""
    return max(1, int(window_s // 120))
