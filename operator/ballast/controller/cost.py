"""Cost per successful response: GPU-hours times price, over successes. Pure: no I/O.

The GPU-hours come from the scheduler's ``ballast_scheduler_pod_gpus`` (GPUs
each charged pod held, by GPU model), the successes from the class's success
counter, both over the same window (docs/slo.md, "Cost").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ballast.telemetry.slo_reader import Observation


def cost_status(
    prices: Mapping[str, float],
    obs: Observation,
    *,
    window_s: float,
    observed_at: str,
    success_counter: str,
) -> dict[str, Any]:
    """``status.cost`` for a class with ``pricePerGPUHour`` from one observation.

    Figures that cannot be had are left out and ``reason`` says why: NoData
    (the scheduler's series are not in Prometheus), PriceMissing (a GPU model
    the class used has no price), NoRequestCounter (no successes counted, so
    only the cost per hour), NoSuccessfulResponses (counted, none in the window).
    """
    out: dict[str, Any] = {"window": obs.window, "observedAt": observed_at}
    if obs.gpu_hours_by_model is None:
        out["gpuHours"] = 0.0
        out["reason"] = (
            f"NoData: no Ballast scheduler series (ballast_scheduler_is_leader) in Prometheus "
            f"over {obs.window}, so GPU use is unknown"
        )
        return out
    by_model = {m: round(h, 6) for m, h in sorted(obs.gpu_hours_by_model.items())}
    hours = sum(obs.gpu_hours_by_model.values())
    out["gpuHours"] = round(hours, 6)
    out["gpuHoursByModel"] = by_model
    unpriced = [m for m, h in by_model.items() if h > 0 and m not in prices]
    if unpriced:
        out["reason"] = (
            f"PriceMissing: pricePerGPUHour has no price for {', '.join(unpriced)}; "
            "cost is not computed"
        )[:1024]
        return out
    cost = sum(h * prices.get(m, 0.0) for m, h in obs.gpu_hours_by_model.items())
    out["cost"] = round(cost, 6)
    out["costPerHour"] = round(cost / (window_s / 3600.0), 6)
    if obs.successes is None:
        out["reason"] = (
            f"NoRequestCounter: {success_counter} has no series for the class's pods over "
            f"{obs.window}, so only the cost per hour is reported"
        )[:1024]
        return out
    out["successfulResponses"] = round(obs.successes, 3)
    if obs.successes <= 0:
        out["reason"] = f"NoSuccessfulResponses: {success_counter} counted none over {obs.window}"
        return out
    out["costPerSuccessfulResponse"] = cost / obs.successes
    return out
