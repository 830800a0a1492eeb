"""SLO judgement and cost: observed values against objectives (ballast.controller.slo, .cost)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from ballast.api.v1alpha1.serving import Slo
from ballast.controller.cost import cost_status
from ballast.controller.slo import flip_event, judge
from ballast.telemetry.slo_reader import Observation

AT = "2026-12-01T06:00:00Z"
SLO = Slo.model_validate(
    {"latencyP95Ms": 500, "latencyP99Ms": 1000, "queueWaitP95Seconds": 30, "successRatio": 0.99}
)


def obs(**values: Any) -> Observation:
    base: dict[str, Any] = {
        "latency_p95_s": 0.3,
        "latency_p99_s": 0.8,
        "queue_wait_p95_s": 4.0,
        "requests": 1000.0,
        "successes": 995.0,
        "gpu_hours_by_model": {"NVIDIA-H100-80GB-HBM3": 2.0},
    }
    return Observation("1h", **{**base, **values})


CASES: dict[str, dict[str, Any]] = {
    "all within": {"obs": obs(), "want": ("True", "Met")},
    "p99 over": {"obs": obs(latency_p99_s=1.2), "want": ("False", "LatencyP99Exceeded")},
    "p95 over only": {"obs": obs(latency_p95_s=0.7), "want": ("False", "LatencyP95Exceeded")},
    "p95 and p99 over: p99 named first": {
        "obs": obs(latency_p95_s=0.9, latency_p99_s=3.0),
        "want": ("False", "LatencyP99Exceeded"),
    },
    "queue wait over": {"obs": obs(queue_wait_p95_s=45.0), "want": ("False", "QueueWaitExceeded")},
    "success ratio below": {
        "obs": obs(successes=900.0),
        "want": ("False", "SuccessRatioBelowObjective"),
    },
    "p99 above the largest bucket": {
        "obs": obs(latency_p99_s=math.inf),
        "want": ("False", "LatencyP99Exceeded"),
    },
    "no data at all": {
        "obs": obs(
            latency_p95_s=None,
            latency_p99_s=None,
            queue_wait_p95_s=None,
            requests=None,
            successes=None,
        ),
        "want": ("Unknown", "NoData"),
    },
    "some data, within: met, and says what is missing": {
        "obs": obs(queue_wait_p95_s=None),
        "want": ("True", "Met"),
    },
    "unreachable": {
        "obs": Observation("1h", unreachable="query: cannot reach http://x"),
        "want": ("Unknown", "PrometheusUnreachable"),
    },
    "rejected queries and nothing read": {
        "obs": obs(
            latency_p95_s=None,
            latency_p99_s=None,
            queue_wait_p95_s=None,
            requests=None,
            successes=None,
            problems=("query: bad_data: parse error",),
        ),
        "want": ("Unknown", "QueryFailed"),
    },
}


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_judge(case: dict[str, Any]) -> None:
    got = judge(SLO, case["obs"], observed_at=AT)
    assert (got.condition.status_text, got.condition.reason) == case["want"]


def test_status_holds_observed_values_beside_objectives() -> None:
    got = judge(SLO, obs(latency_p99_s=1.2), observed_at=AT)
    assert got.status is not None
    assert got.status["window"] == "1h" and got.status["observedAt"] == AT
    assert got.status["latencyP99Ms"] == {"observed": 1200.0, "objective": 1000.0}
    assert got.status["latencyP95Ms"] == {"observed": 300.0, "objective": 500.0}
    assert got.status["queueWaitP95Seconds"] == {"observed": 4.0, "objective": 30.0}
    assert got.status["successRatio"] == {"observed": 0.995, "objective": 0.99}
    assert got.status["gpuHours"] == 2.0
    assert "1200ms above the objective 1000ms" in got.condition.message


def test_status_never_invents_a_value() -> None:
    got = judge(SLO, obs(queue_wait_p95_s=None, latency_p99_s=math.inf), observed_at=AT)
    assert got.status is not None
    assert got.status["queueWaitP95Seconds"] == {"objective": 30.0}
    assert got.status["latencyP99Ms"] == {"objective": 1000.0}  # +inf is not a number to show
    assert "above the histogram's largest bucket" in got.condition.message
    assert "no data for p95 queue wait" in got.condition.message


def test_unreachable_and_unconfigured_keep_the_old_status() -> None:
    assert judge(SLO, Observation("1h", unreachable="down"), observed_at=AT).status is None
    off = judge(SLO, None, observed_at=AT, configured=False)
    assert (off.condition.status_text, off.condition.reason, off.status) == (
        "Unknown",
        "PrometheusNotConfigured",
        None,
    )


def test_signals_without_objectives_are_reported_not_judged() -> None:
    slo = Slo.model_validate({"latencyP99Ms": 1000})
    got = judge(slo, obs(latency_p95_s=5.0, successes=1.0), observed_at=AT)
    assert got.condition.reason == "Met"
    assert got.status is not None
    assert got.status["latencyP95Ms"] == {"observed": 5000.0}
    assert got.status["successRatio"] == {"observed": 0.001}


def cond(status: str, reason: str) -> dict[str, str]:
    return {"type": "SLOMet", "status": status, "reason": reason}


FLIPS: dict[str, tuple[dict[str, str] | None, Any, str | None]] = {
    "first judgement met: not news": (None, judge(SLO, obs(), observed_at=AT), None),
    "first judgement violated": (None, judge(SLO, obs(latency_p99_s=2.0), observed_at=AT), "SLOViolated"),
    "met to violated": (cond("True", "Met"), judge(SLO, obs(latency_p99_s=2.0), observed_at=AT), "SLOViolated"),
    "violated to met": (cond("False", "LatencyP99Exceeded"), judge(SLO, obs(), observed_at=AT), "SLOMet"),
    "same violation again": (cond("False", "LatencyP99Exceeded"), judge(SLO, obs(latency_p99_s=2.0), observed_at=AT), None),
    "violation changes kind": (cond("False", "LatencyP95Exceeded"), judge(SLO, obs(latency_p99_s=2.0), observed_at=AT), "SLOViolated"),
    "met to unreachable": (cond("True", "Met"), judge(SLO, Observation("1h", unreachable="x"), observed_at=AT), "SLOUnknown"),
    "unreachable to met": (cond("Unknown", "PrometheusUnreachable"), judge(SLO, obs(), observed_at=AT), "SLOMet"),
}  # fmt: skip


@pytest.mark.parametrize("case", FLIPS.values(), ids=list(FLIPS))
def test_flip_events(case: tuple[Any, Any, str | None]) -> None:
    old, new, want = case
    event = flip_event(old, new.condition)
    assert (event[1] if event else None) == want


PRICES = {"NVIDIA-H100-80GB-HBM3": 4.0, "NVIDIA-L4": 0.8}


def cost(o: Observation, window_s: float = 3600.0) -> dict[str, Any]:
    return cost_status(
        PRICES, o, window_s=window_s, observed_at=AT, success_counter="vllm:request_success_total"
    )


def test_cost_per_successful_response() -> None:
    got = cost(obs(gpu_hours_by_model={"NVIDIA-H100-80GB-HBM3": 2.0, "NVIDIA-L4": 1.0}))
    assert got["gpuHours"] == 3.0
    assert got["cost"] == pytest.approx(2 * 4.0 + 1 * 0.8)
    assert got["costPerHour"] == pytest.approx(8.8)  # a 1h window
    assert got["successfulResponses"] == 995.0
    assert got["costPerSuccessfulResponse"] == pytest.approx(8.8 / 995)
    assert "reason" not in got


def test_cost_per_hour_scales_with_the_window() -> None:
    got = cost(obs(), window_s=900.0)  # 2 GPU-hours in 15 minutes: 8 GPUs busy
    assert got["costPerHour"] == pytest.approx(8.0 * 4)


def test_without_a_request_counter_only_the_cost_per_hour_and_why() -> None:
    got = cost(obs(successes=None))
    assert got["costPerHour"] == pytest.approx(8.0)
    assert "costPerSuccessfulResponse" not in got and "successfulResponses" not in got
    assert got["reason"].startswith("NoRequestCounter: vllm:request_success_total")


def test_no_successes_in_the_window() -> None:
    got = cost(obs(successes=0.0))
    assert "costPerSuccessfulResponse" not in got
    assert got["reason"].startswith("NoSuccessfulResponses")


def test_a_model_without_a_price_means_no_cost() -> None:
    got = cost(obs(gpu_hours_by_model={"NVIDIA-A10G": 1.5}))
    assert got["gpuHours"] == 1.5 and "cost" not in got
    assert got["reason"].startswith("PriceMissing") and "NVIDIA-A10G" in got["reason"]


def test_no_scheduler_series_means_no_data() -> None:
    got = cost(obs(gpu_hours_by_model=None))
    assert got["reason"].startswith("NoData") and "cost" not in got


def test_no_gpu_held_costs_nothing() -> None:
    got = cost(obs(gpu_hours_by_model={}))
    assert (got["gpuHours"], got["cost"], got["costPerHour"]) == (0, 0, 0)
