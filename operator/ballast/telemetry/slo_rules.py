"""Multi-window, multi-burn-rate alerting rules for classes with an ``slo``. Pure.

The method of the Google SRE workbook ("Alerting on SLOs", alert 6): each
objective is an error ratio (the SLI) with an error budget; an alert fires
when the budget burns fast over a long window *and* is still burning over a
short one, so it starts soon and stops soon:

=========  ==============  ===========  =============
severity   long window     short        burn rate
=========  ==============  ===========  =============
page       1h              5m           14.4 (2% of a 30-day budget in 1h)
page       6h              30m          6    (5% in 6h)
ticket     1d              2h           3    (10% in 1d)
ticket     3d              6h           1    (10% in 3d)
=========  ==============  ===========  =============

The SLIs (what can be computed honestly from the series Ballast reads):

* ``latency-p99`` / ``latency-p95``: the fraction of requests slower than
  ``latencyP99Ms`` / ``latencyP95Ms``, from the latency histogram's bucket at
  that bound; budgets 1% / 5%.
* ``queue-wait-p95``: the fraction of the class's pods that waited longer than
  ``queueWaitP95Seconds`` from creation to bind; budget 5%.
* ``availability``: 1 - successes / requests; budget ``1 - successRatio``.

A bound that is not one of the histogram's buckets cannot be measured this
way: ``BallastSLOObjectiveNotABucket`` says so instead of staying silent.
:func:`rules_for` gives one class's rule group; :func:`rules_file` the
``groups:`` document for all classes (the ``spec`` of a PrometheusRule).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from ballast.api.v1alpha1.serving import Slo
from ballast.telemetry.slo_queries import (
    QUEUE_WAIT_HISTOGRAM,
    Signals,
    le_regex,
    quote,
)

RECORD = "ballast:slo_errors:ratio_rate{window}"
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
# (severity, long window, short window, burn-rate factor)
BURN_ALERTS: tuple[tuple[str, str, str, float], ...] = (
    ("page", "1h", "5m", 14.4),
    ("page", "6h", "30m", 6.0),
    ("ticket", "1d", "2h", 3.0),
    ("ticket", "3d", "6h", 1.0),
)
ALERT_NAMES = {"page": "BallastSLOBudgetBurnFast", "ticket": "BallastSLOBudgetBurnSlow"}
SEVERITY = {"page": "critical", "ticket": "warning"}
BUCKET_ALERT = "BallastSLOObjectiveNotABucket"


@dataclass(frozen=True, slots=True)
class Sli:
    """One error-ratio SLI of a class and its budget."""

    name: str  # the `slo` label
    budget: float  # allowed error ratio
    objective: str  # for annotations
    bound_s: float | None  # the bucket bound it needs, if any
    histogram: str | None  # whose buckets


def slis(slo: Slo, signals: Signals) -> list[Sli]:
    """The SLIs ``slo`` defines, in a fixed order."""
    out: list[Sli] = []
    for name, ms, budget in (
        ("latency-p99", slo.latency_p99_ms, 0.01),
        ("latency-p95", slo.latency_p95_ms, 0.05),
    ):
        if ms is not None:
            out.append(Sli(name, budget, f"{ms} ms", ms / 1000.0, signals.latency_histogram))
    if slo.queue_wait_p95_seconds is not None:
        s = float(slo.queue_wait_p95_seconds)
        out.append(Sli("queue-wait-p95", 0.05, f"{s:g} s", s, QUEUE_WAIT_HISTOGRAM))
    if slo.success_ratio is not None:
        out.append(
            Sli(
                "availability",
                round(1 - slo.success_ratio, 9),
                f"{slo.success_ratio:g}",
                None,
                None,
            )
        )
    return out


def _ratio(sli: Sli, signals: Signals, window: str) -> str:
    if sli.name == "availability":
        return signals.error_ratio(window)
    assert sli.bound_s is not None
    if sli.name == "queue-wait-p95":
        return signals.slow_queue_ratio(sli.bound_s, window)
    return signals.slow_requests_ratio(sli.bound_s, window)


def _bucket_missing(sli: Sli, signals: Signals) -> str:
    assert sli.bound_s is not None and sli.histogram is not None
    le = f'le=~"{le_regex(sli.bound_s)}"'
    if sli.histogram == QUEUE_WAIT_HISTOGRAM:
        sel = f"class={quote(signals.class_name)}"
        counted = f"count({QUEUE_WAIT_HISTOGRAM}_count{{{sel}}})"
        bound = f"count({QUEUE_WAIT_HISTOGRAM}_bucket{{{sel}, {le}}})"
    else:
        counted = f"count({signals.per_series('rate', f'{sli.histogram}_count', '1h')})"
        bound = f"count({signals.per_series('rate', f'{sli.histogram}_bucket', '1h', le)})"
    return f"{counted} unless {bound}"


def rules_for(name: str, slo: Slo) -> dict[str, Any] | None:
    """The rule group of class ``name`` (None when ``slo`` defines no SLI)."""
    signals = Signals.of(
        name,
        latency_histogram=slo.latency_histogram,
        success_counter=slo.success_counter,
        match_labels=slo.match_labels,
    )
    found = slis(slo, signals)
    if not found:
        return None
    rules: list[dict[str, Any]] = []
    for sli in found:
        labels = {"class": name, "slo": sli.name}
        for window in WINDOWS:
            rules.append(
                {
                    "record": RECORD.format(window=window),
                    "expr": _ratio(sli, signals, window),
                    "labels": dict(labels),
                }
            )
    for sli in found:
        sel = f"{{class={quote(name)}, slo={quote(sli.name)}}}"
        for severity in ("page", "ticket"):
            terms = [
                f"(\n  {RECORD.format(window=long)}{sel} > ({factor:g} * {sli.budget:g})\n"
                f"  and\n  {RECORD.format(window=short)}{sel} > ({factor:g} * {sli.budget:g})\n)"
                for sev, long, short, factor in BURN_ALERTS
                if sev == severity
            ]
            windows = ", ".join(
                f"{long}/{short} at {factor:g}x"
                for sev, long, short, factor in BURN_ALERTS
                if sev == severity
            )
            rules.append(
                {
                    "alert": ALERT_NAMES[severity],
                    "expr": "\nor\n".join(terms),
                    "labels": {
                        "severity": SEVERITY[severity],
                        "routing": severity,
                        "class": name,
                        "slo": sli.name,
                    },
                    "annotations": {
                        "summary": (
                            f"WorkloadClass {name}: {sli.name} error budget burning "
                            f"{'fast' if severity == 'page' else 'steadily'}"
                        ),
                        "description": (
                            f"The {sli.name} objective ({sli.objective}, error budget "
                            f"{sli.budget:g}) burns at over the rate of {windows} "
                            "(long and short window both). `kubectl get workloadclass "
                            f"{name} -o jsonpath='{{.status.slo}}'` shows the observed values."
                        ),
                    },
                }
            )
        if sli.bound_s is not None:
            rules.append(
                {
                    "alert": BUCKET_ALERT,
                    "expr": _bucket_missing(sli, signals),
                    "for": "10m",
                    "labels": {"severity": "warning", "class": name, "slo": sli.name},
                    "annotations": {
                        "summary": (
                            f"WorkloadClass {name}: {sli.histogram} has no bucket at "
                            f"{sli.bound_s:g}s, so the {sli.name} budget cannot be measured"
                        ),
                        "description": (
                            "The burn-rate rules count requests below the objective from the "
                            "histogram bucket whose bound equals it. Set the objective to a "
                            "bucket bound, or add that bucket to the histogram."
                        ),
                    },
                }
            )
    return {"name": f"ballast-slo-{name}", "rules": rules}


def rules_file(classes: Iterable[tuple[str, Slo]]) -> dict[str, Any]:
    """The ``groups:`` document for ``classes`` (name, slo), sorted by name."""
    groups = [g for n, s in sorted(classes, key=lambda c: c[0]) if (g := rules_for(n, s))]
    return {"groups": groups}


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (alert expressions) as literal blocks, as people write them."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(doc: dict[str, Any]) -> str:
    """YAML text with a header saying where it comes from."""
    header = "# Generated by Ballast from the WorkloadClasses' slo (docs/slo.md); do not edit.\n"
    return header + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=100)
