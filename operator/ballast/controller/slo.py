"""SLO judgement: observed values against a class's objectives. Pure: no I/O, no clock.

:func:`judge` turns an :class:`~ballast.telemetry.slo_reader.Observation` (or
the lack of one) into the ``status.slo`` to write and the ``SLOMet``
condition; :func:`flip_event` says which event a change of that condition
deserves. Reasons, in the order a False condition picks them:
``LatencyP99Exceeded``, ``LatencyP95Exceeded``, ``QueueWaitExceeded``,
``SuccessRatioBelowObjective``; True: ``Met``; Unknown: ``NoData``,
``PrometheusNotConfigured``, ``PrometheusUnreachable``, ``QueryFailed``,
``NoObjectives``. See docs/slo.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ballast.api.v1alpha1.serving import Slo
from ballast.controller.conditions import Cond
from ballast.telemetry.slo_reader import Observation

CONDITION = "SLOMet"


@dataclass(frozen=True, slots=True)
class Judgement:
    """What to write: ``status`` None means keep the old ``status.slo`` as it is."""

    condition: Cond
    status: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class _Check:
    key: str  # status.slo field
    reason: str  # when exceeded
    label: str  # in messages
    unit: str
    observed: float | None  # in the objective's unit; +inf: above the largest bucket
    objective: float | None
    higher_is_worse: bool = True


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def _ratio(obs: Observation) -> float | None:
    if obs.requests is None or obs.successes is None or obs.requests <= 0:
        return None
    return min(1.0, obs.successes / obs.requests)


def _checks(slo: Slo, obs: Observation) -> list[_Check]:
    return [
        _Check("latencyP99Ms", "LatencyP99Exceeded", "p99 latency", "ms",
               _ms(obs.latency_p99_s), slo.latency_p99_ms),
        _Check("latencyP95Ms", "LatencyP95Exceeded", "p95 latency", "ms",
               _ms(obs.latency_p95_s), slo.latency_p95_ms),
        _Check("queueWaitP95Seconds", "QueueWaitExceeded", "p95 queue wait", "s",
               obs.queue_wait_p95_s, slo.queue_wait_p95_seconds),
        _Check("successRatio", "SuccessRatioBelowObjective", "success ratio", "",
               _ratio(obs), slo.success_ratio, higher_is_worse=False),
    ]  # fmt: skip


def _fmt(value: float, unit: str) -> str:
    if math.isinf(value):
        return "above the histogram's largest bucket"
    if unit == "":
        return f"{value:.4g}"
    return f"{value:.4g}{unit}"


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def slo_status(
    slo: Slo, obs: Observation, observed_at: str, gpu_hours: float | None
) -> dict[str, Any]:
    """``status.slo``: every signal with an objective or a value, beside its objective."""
    out: dict[str, Any] = {"window": obs.window, "observedAt": observed_at}
    for c in _checks(slo, obs):
        observed = _round(_finite(c.observed))
        if observed is None and c.objective is None:
            continue
        entry: dict[str, Any] = {}
        if observed is not None:
            entry["observed"] = observed
        if c.objective is not None:
            entry["objective"] = float(c.objective)
        out[c.key] = entry
    if obs.requests is not None:
        out["requests"] = _round(obs.requests, 3)
    if gpu_hours is not None:
        out["gpuHours"] = _round(gpu_hours)
    return out


def judge(
    slo: Slo,
    obs: Observation | None,
    *,
    observed_at: str,
    configured: bool = True,
) -> Judgement:
    """Judge ``obs`` against ``slo``; ``configured`` False: no Prometheus to ask."""
    if not configured:
        return Judgement(
            Cond(CONDITION, None, "PrometheusNotConfigured",
                 "the operator runs without --prometheus-url, so SLOs are not read"),
            None,
        )  # fmt: skip
    if obs is None or obs.unreachable:
        why = obs.unreachable if obs is not None else "no answer"
        return Judgement(
            Cond(CONDITION, None, "PrometheusUnreachable",
                 f"{why}; status.slo keeps the last values read, with their observedAt"[:1024]),
            None,
        )  # fmt: skip
    hours = None if obs.gpu_hours_by_model is None else sum(obs.gpu_hours_by_model.values())
    status = slo_status(slo, obs, observed_at, hours)
    checks = [c for c in _checks(slo, obs) if c.objective is not None]
    if not checks:
        return Judgement(Cond(CONDITION, None, "NoObjectives", "slo sets no objective"), status)
    exceeded: list[_Check] = []
    missing: list[_Check] = []
    for c in checks:
        assert c.objective is not None
        if c.observed is None or (isinstance(c.observed, float) and math.isnan(c.observed)):
            missing.append(c)
        elif (c.observed > c.objective) if c.higher_is_worse else (c.observed < c.objective):
            exceeded.append(c)
    if obs.problems and len(missing) == len(checks):
        return Judgement(
            Cond(CONDITION, None, "QueryFailed", "; ".join(obs.problems)[:1024]), status
        )
    nodata = ", ".join(c.label for c in missing)
    if exceeded:
        parts = [
            f"{c.label} {_fmt(c.observed, c.unit)} "  # type: ignore[arg-type]
            f"{'above' if c.higher_is_worse else 'below'} the objective "
            f"{_fmt(float(c.objective), c.unit)}"  # type: ignore[arg-type]
            for c in exceeded
        ]
        if nodata:
            parts.append(f"no data for {nodata}")
        message = f"over {obs.window}: " + "; ".join(parts)
        return Judgement(Cond(CONDITION, False, exceeded[0].reason, message[:1024]), status)
    if len(missing) == len(checks):
        return Judgement(
            Cond(CONDITION, None, "NoData",
                 f"no data over {obs.window} for {nodata} (no requests, or series not scraped)"),
            status,
        )  # fmt: skip
    met = ", ".join(
        f"{c.label} {_fmt(c.observed, c.unit)} within {_fmt(float(c.objective), c.unit)}"  # type: ignore[arg-type]
        for c in checks
        if c not in missing
    )
    message = f"over {obs.window}: {met}" + (f"; no data for {nodata}" if nodata else "")
    return Judgement(Cond(CONDITION, True, "Met", message[:1024]), status)


def previous(conditions: Any) -> Mapping[str, Any] | None:
    """The ``SLOMet`` condition in a status's ``conditions`` list, if any."""
    for c in conditions or ():
        if isinstance(c, Mapping) and c.get("type") == CONDITION:
            return c
    return None


def flip_event(old: Mapping[str, Any] | None, new: Cond) -> tuple[str, str, str] | None:
    """The event to post when ``SLOMet`` changes status or reason (None: no change).

    Normal ``SLOMet`` when it becomes True, Warning ``SLOViolated`` when False,
    Warning ``SLOUnknown`` when it can no longer be judged. A first judgement
    that the SLO is met is not news.
    """
    if old is not None and old.get("status") == new.status_text and old.get("reason") == new.reason:
        return None
    if new.status is True:
        if old is None:
            return None
        return ("Normal", "SLOMet", new.message)
    if new.status is False:
        return ("Warning", "SLOViolated", f"{new.reason}: {new.message}")
    if old is None or new.reason == "PrometheusNotConfigured":
        return None
    return ("Warning", "SLOUnknown", f"{new.reason}: {new.message}")
