"""WorkloadClass status parts the SLO reader writes: observed signals and cost (docs/slo.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ballast.api.v1alpha1.common import ApiModel


class SloValue(ApiModel):
    """One signal: what Prometheus showed over the window, beside the objective."""

    observed: float | None = Field(
        default=None,
        description="The value over the window; absent when Prometheus had no data for it.",
    )
    objective: float | None = Field(
        default=None, description="The spec's objective for it; absent when none is set."
    )


class SloStatus(ApiModel):
    """The class's service levels as last read from Prometheus."""

    window: str = Field(max_length=32, description="The window read, e.g. 1h (PromQL range).")
    observed_at: str = Field(max_length=64, description="When these values were read (RFC 3339).")
    latency_p95_ms: SloValue | None = Field(
        default=None, description="p95 request latency, ms (latencyHistogram)."
    )
    latency_p99_ms: SloValue | None = Field(
        default=None, description="p99 request latency, ms (latencyHistogram)."
    )
    queue_wait_p95_seconds: SloValue | None = Field(
        default=None, description="p95 pod creation to bind, seconds (the Ballast scheduler's)."
    )
    success_ratio: SloValue | None = Field(
        default=None, description="Successful responses over requests in the window."
    )
    requests: float | None = Field(
        default=None, ge=0, description="Requests finished in the window (the histogram's count)."
    )
    gpu_hours: float | None = Field(
        default=None, ge=0, alias="gpuHours", description="GPU-hours the class's pods held."
    )


PriceMap = dict[str, Annotated[float, Field(ge=0)]]


class CostStatus(ApiModel):
    """What the class's GPUs cost over the window, and per successful response."""

    window: str = Field(max_length=32, description="The window read, e.g. 1h.")
    observed_at: str = Field(max_length=64, description="When it was read (RFC 3339).")
    gpu_hours: float = Field(
        ge=0, alias="gpuHours", description="GPU-hours the class's pods held in the window."
    )
    gpu_hours_by_model: PriceMap = Field(
        default_factory=dict,
        alias="gpuHoursByModel",
        max_length=64,
        description="The same by GPU model (nvidia.com/gpu.product of the pods' nodes).",
    )
    cost: float | None = Field(
        default=None, ge=0, description="GPU-hours times pricePerGPUHour, in the window."
    )
    cost_per_hour: float | None = Field(
        default=None, ge=0, description="cost divided by the window's length in hours."
    )
    successful_responses: float | None = Field(
        default=None, ge=0, description="Successful responses in the window (successCounter)."
    )
    cost_per_successful_response: float | None = Field(
        default=None, ge=0, description="cost divided by successfulResponses."
    )
    reason: str | None = Field(
        default=None,
        max_length=1024,
        description=(
            "Why a figure is missing: NoRequestCounter (no successful responses counted, so "
            "only the cost per hour), PriceMissing (a GPU model without a price), NoData."
        ),
    )
