"""What a WorkloadClass asks of its serving: autoscaling targets, the
micro-batching contract and service-level objectives.

Parts of :class:`ballast.api.v1alpha1.workloadclass.WorkloadClassSpec`
(``scaling``, ``batching``, ``slo``); the operator turns ``scaling`` into
KEDA ScaledObjects, ``batching`` into serving pods' environment and ``slo``
into Prometheus recording rules and the class's ``status.slo``.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field

from ballast.api.v1alpha1.common import ApiModel


class ScalingBehavior(ApiModel):
    """Stabilisation windows of the generated HorizontalPodAutoscalers."""

    scale_up_stabilization_seconds: int = Field(
        default=0, ge=0, le=3600, description="Look-back window before scaling up."
    )
    scale_down_stabilization_seconds: int = Field(
        default=300, ge=0, le=3600, description="Look-back window before scaling down."
    )


class Scaling(ApiModel):
    """Autoscaling targets for the class's Deployments and StatefulSets."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.minReplicas <= self.maxReplicas",
                    "message": "minReplicas must not exceed maxReplicas",
                    "fieldPath": ".minReplicas",
                    "reason": "FieldValueInvalid",
                },
                {
                    "rule": "has(self.targetGPUUtilizationPercent) || has(self.targetQueueDepth) "
                    "|| has(self.targetLatencyP95Ms)",
                    "message": "set at least one target: targetGPUUtilizationPercent, "
                    "targetQueueDepth or targetLatencyP95Ms",
                    "reason": "FieldValueRequired",
                },
                {
                    "rule": "!has(self.fallbackReplicas) || self.fallbackReplicas <= "
                    "self.maxReplicas",
                    "message": "fallbackReplicas must not exceed maxReplicas",
                    "fieldPath": ".fallbackReplicas",
                    "reason": "FieldValueInvalid",
                },
            ]
        }
    )

    min_replicas: int = Field(default=1, ge=0, le=10_000, description="Fewest replicas.")
    max_replicas: int = Field(ge=1, le=10_000, description="Most replicas.")
    target_gpu_utilization_percent: int | None = Field(
        default=None,
        ge=1,
        le=100,
        alias="targetGPUUtilizationPercent",
        description="Average GPU utilisation to hold, from the node agent's NVML metrics.",
    )
    target_queue_depth: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Requests waiting per replica to hold."
    )
    target_latency_p95_ms: int | None = Field(
        default=None, ge=1, le=3_600_000, description="p95 request latency to hold, in ms."
    )
    behavior: ScalingBehavior = Field(
        default_factory=ScalingBehavior, description="Scaling stabilisation windows."
    )
    queue_depth_metric: MetricName | None = Field(
        default=None,
        description=(
            "Gauge of the requests waiting in one pod, with namespace and pod labels; summed "
            "over the workload's pods for targetQueueDepth. Default: vLLM's "
            "vllm:num_requests_waiting."
        ),
    )
    latency_histogram: MetricName | None = Field(
        default=None,
        description=(
            "Base name of the request latency histogram in seconds (its _bucket series, with "
            "namespace and pod labels) for targetLatencyP95Ms. Default: vLLM's "
            "vllm:e2e_request_latency_seconds."
        ),
    )
    polling_interval_seconds: int = Field(
        default=15,
        ge=1,
        le=3600,
        description=(
            "How often KEDA reads the triggers (the ScaledObject's pollingInterval): the pace of "
            "scaling from and to zero replicas. The HorizontalPodAutoscaler reads them on its "
            "own period (15 s by default) otherwise."
        ),
    )
    fallback_replicas: int | None = Field(
        default=None,
        ge=0,
        le=10_000,
        description=(
            "While Prometheus cannot be read (3 failed reads in a row), hold at least this "
            "many replicas and never fewer than the workload runs then. Default: minReplicas."
        ),
    )


class Batching(ApiModel):
    """Micro-batching contract, given to serving pods as environment variables."""

    max_batch_size: int = Field(
        ge=1, le=4096, description="Most requests in one batch (BALLAST_MAX_BATCH_SIZE)."
    )
    max_queue_delay_ms: int = Field(
        default=10,
        ge=0,
        le=60_000,
        description="Longest a request waits for its batch to fill (BALLAST_MAX_QUEUE_DELAY_MS).",
    )


# Prometheus metric and label names (the data model's syntax; recording-rule
# colons allowed in metric names).
METRIC_NAME_PATTERN = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"
PROM_LABEL_NAME_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
MetricName = Annotated[str, Field(max_length=200, pattern=METRIC_NAME_PATTERN)]
_PROM_LABEL_NAME_RE = re.compile(PROM_LABEL_NAME_PATTERN)


def _check_prom_label_names(labels: dict[str, str]) -> dict[str, str]:
    for key in labels:
        if len(key) > 100 or not _PROM_LABEL_NAME_RE.match(key):
            raise ValueError(f"{key!r} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)")
    return labels


# Keys checked by the validator here and by CEL in the CRD (a structural schema
# cannot constrain property names).
PromMatchLabels = Annotated[
    dict[str, Annotated[str, Field(max_length=253)]],
    Field(max_length=16),
    AfterValidator(_check_prom_label_names),
]


class Slo(ApiModel):
    """Service-level objectives, reported against in status."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.latencyP95Ms) || !has(self.latencyP99Ms) "
                    "|| self.latencyP95Ms <= self.latencyP99Ms",
                    "message": "latencyP95Ms must not exceed latencyP99Ms",
                    "fieldPath": ".latencyP95Ms",
                    "reason": "FieldValueInvalid",
                }
            ]
        }
    )

    latency_p95_ms: int | None = Field(
        default=None,
        ge=1,
        le=3_600_000,
        description=(
            "p95 request latency objective, ms: 95% of requests finish within it. Observed from "
            "latencyHistogram (status.slo.latencyP95Ms) and alerted on as a 5% error budget "
            "(docs/slo.md)."
        ),
    )
    latency_p99_ms: int | None = Field(
        default=None,
        ge=1,
        le=3_600_000,
        description="p99 request latency objective, ms (a 1% error budget); as latencyP95Ms.",
    )
    queue_wait_p95_seconds: int | None = Field(
        default=None,
        ge=1,
        le=86_400,
        description=(
            "p95 queue wait objective, seconds: pod creation to bind by the Ballast scheduler "
            "(its ballast_scheduler_pod_scheduling_seconds histogram for the class)."
        ),
    )
    success_ratio: float | None = Field(
        default=None,
        ge=0,
        le=0.999999,  # below 1: a 100% objective leaves no error budget to burn
        description=(
            "Objective for the fraction of requests that succeed, e.g. 0.999: successes "
            "(successCounter) over requests (the latency histogram's _count). Judged in "
            "SLOMet and alerted on with burn-rate rules; unset, the ratio is only reported."
        ),
    )
    latency_histogram: MetricName | None = Field(
        default=None,
        description=(
            "Base name of the Prometheus histogram of request latency in seconds (its _bucket "
            "and _count series are read). Default: vLLM's vllm:e2e_request_latency_seconds."
        ),
    )
    success_counter: MetricName | None = Field(
        default=None,
        description=(
            "Counter of successful responses. Default: vLLM's vllm:request_success_total."
        ),
    )
    match_labels: PromMatchLabels | None = Field(
        default=None,
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.all(k, k.matches('^[a-zA-Z_][a-zA-Z0-9_]*$'))",
                    "message": "label names are Prometheus label names ([a-zA-Z_][a-zA-Z0-9_]*)",
                    "reason": "FieldValueInvalid",
                }
            ]
        },
        description=(
            "Select the class's serving series by these Prometheus labels (exact match), e.g. "
            "{service: chat}. Default: the series whose namespace and pod labels name a pod of "
            "the class (ballast_scheduler_pod_info{class=<name>}) during the window."
        ),
    )
