"""A small typed client for the Prometheus HTTP API (the only user of prometheus-api-client).

Every call returns a result object and never raises on a bad answer: a
connection error, an HTTP error, a PromQL error or a body it cannot read
becomes a ``problem`` string in the result, and the values it could read are
kept. Callers (the scheduler, tests, the demo) decide what a problem means.

    >>> prom = Prometheus("http://127.0.0.1:9090")                 # doctest: +SKIP
    >>> prom.query('sum by (modelName) (DCGM_FI_DEV_GPU_UTIL)').values   # doctest: +SKIP
    {(('modelName', 'NVIDIA H100 80GB HBM3'),): 37.5}
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

LabelSet = tuple[tuple[str, str], ...]  # sorted (name, value) pairs: hashable, stable


def label_set(labels: Mapping[str, str]) -> LabelSet:
    """A metric's labels as a sorted tuple (the key of :attr:`QueryResult.values`)."""
    return tuple(sorted(labels.items()))


@dataclass(frozen=True, slots=True)
class QueryResult:
    """An instant query: one float per label set, and what went wrong, if anything."""

    query: str
    values: dict[LabelSet, float] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when Prometheus answered and every sample was read."""
        return not self.problems

    def scalar(self) -> float | None:
        """The single value of a one-series (or scalar) answer, else None."""
        return next(iter(self.values.values())) if len(self.values) == 1 else None


@dataclass(frozen=True, slots=True)
class RangeResult:
    """A range query: (unix time, value) points per label set."""

    query: str
    series: dict[LabelSet, list[tuple[float, float]]] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when Prometheus answered and every point was read."""
        return not self.problems


@dataclass(frozen=True, slots=True)
class Target:
    """One active scrape target as Prometheus' targets API reports it."""

    job: str
    url: str
    health: str  # "up", "down" or "unknown" (not scraped yet)
    last_error: str
    labels: dict[str, str]


@dataclass(frozen=True, slots=True)
class TargetsResult:
    """The active targets, and what went wrong reading them."""

    targets: tuple[Target, ...] = ()
    problems: tuple[str, ...] = ()

    def down(self) -> list[Target]:
        """The targets whose last scrape did not succeed (down or not scraped yet)."""
        return [t for t in self.targets if t.health != "up"]

    def jobs(self) -> set[str]:
        """The job names that have at least one active target."""
        return {t.job for t in self.targets}


def _float(raw: Any) -> float:
    """A sample value as Prometheus encodes it ("1.5", "NaN", "+Inf")."""
    return float(raw)


class Prometheus:
    """Queries one Prometheus server; ``timeout_s`` bounds every request."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        # No retries: a caller polling for readiness retries itself, with its own deadline.
        self._api = PrometheusConnect(url=self.url, retry=Retry(total=0), timeout=timeout_s)

    def close(self) -> None:
        """Close the HTTP session."""
        self._api.close()

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, str | None]:
        try:
            return fn(*args, **kwargs), None
        except PrometheusApiClientException as exc:
            return None, f"{what}: {exc}"
        except requests.exceptions.JSONDecodeError as exc:  # before RequestException, its base
            return None, f"{what}: unreadable answer: {type(exc).__name__}: {exc}"
        except requests.RequestException as exc:
            return None, f"{what}: cannot reach {self.url}: {type(exc).__name__}: {exc}"
        except (ValueError, KeyError, TypeError) as exc:  # a body that is not the API's JSON
            return None, f"{what}: unreadable answer: {type(exc).__name__}: {exc}"

    def ready(self) -> bool:
        """True when the server answers its readiness endpoint."""
        try:
            return requests.get(f"{self.url}/-/ready", timeout=self.timeout_s).status_code == 200
        except requests.RequestException:
            return False

    def query(self, promql: str, at: dt.datetime | None = None) -> QueryResult:
        """Evaluate ``promql`` at ``at`` (default: now): one float per label set.

        A scalar answer has the empty label set. NaN values are kept (PromQL
        produces them, e.g. ``0/0``); a sample that is not a number is a problem.
        """
        params = {"time": f"{at.timestamp():.3f}"} if at is not None else None
        result, problem = self._call("query", self._api.custom_query, promql, params=params)
        if problem:
            return QueryResult(promql, problems=(problem,))
        values: dict[LabelSet, float] = {}
        problems: list[str] = []
        # custom_query returns `result` only: a list of {metric, value} (vector), or
        # [time, "value"] for a scalar/string answer.
        if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
            result = [{"metric": {}, "value": result}]
        for item in result if isinstance(result, list) else [result]:
            try:
                labels = label_set(item.get("metric") or {})
                if "value" in item:
                    values[labels] = _float(item["value"][1])
                else:  # a range vector selector in an instant query: keep the newest point
                    values[labels] = _float(item["values"][-1][1])
            except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
                problems.append(f"query: unreadable sample {item!r}: {exc}")
        return QueryResult(promql, values, tuple(problems))

    def query_range(
        self, promql: str, start: dt.datetime, end: dt.datetime, step_s: float
    ) -> RangeResult:
        """Evaluate ``promql`` from ``start`` to ``end`` every ``step_s`` seconds."""
        if step_s <= 0 or not math.isfinite(step_s) or end < start:
            return RangeResult(
                promql, problems=(f"query_range: bad range {start}..{end} / {step_s}s",)
            )
        result, problem = self._call(
            "query_range",
            self._api.custom_query_range,
            promql,
            start_time=start,
            end_time=end,
            step=f"{step_s:g}",
        )
        if problem:
            return RangeResult(promql, problems=(problem,))
        series: dict[LabelSet, list[tuple[float, float]]] = {}
        problems: list[str] = []
        for item in result if isinstance(result, list) else []:
            try:
                points = [(float(t), _float(v)) for t, v in item["values"]]
                series[label_set(item.get("metric") or {})] = points
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                problems.append(f"query_range: unreadable series {item!r}: {exc}")
        return RangeResult(promql, series, tuple(problems))

    def targets(self) -> TargetsResult:
        """The active scrape targets with their health (``/api/v1/targets?state=active``)."""
        data, problem = self._call("targets", self._api.get_targets, state="active")
        if problem:
            return TargetsResult(problems=(problem,))
        found: list[Target] = []
        problems: list[str] = []
        for item in (data or {}).get("activeTargets") or []:
            try:
                found.append(
                    Target(
                        job=str(item["labels"].get("job") or item.get("scrapePool", "")),
                        url=str(item["scrapeUrl"]),
                        health=str(item.get("health", "unknown")),
                        last_error=str(item.get("lastError") or ""),
                        labels=dict(item["labels"]),
                    )
                )
            except (AttributeError, KeyError, TypeError) as exc:
                problems.append(f"targets: unreadable target {item!r}: {exc}")
        return TargetsResult(tuple(found), tuple(problems))
