"""Autoscaling for classes with ``scaling``: pure builders of KEDA ScaledObjects.

For each Deployment or StatefulSet whose pod template carries
``ballast.dev/class=<name>`` (in a namespace the class admits), a class
with ``scaling`` gets one ScaledObject (``keda.sh/v1alpha1``) in the
workload's namespace. KEDA turns it into a HorizontalPodAutoscaler and
serves the external metrics that the HPA controller reads; the HPA takes the
largest replica count that any trigger asks for, so several targets mean
"scale out when any signal is above its target".

The signals are PromQL over the workload's pods, selected by their
``namespace`` and ``pod`` labels (a Deployment's pods are
``<name>-<hash>-<suffix>``, a StatefulSet's ``<name>-<ordinal>``):

- GPU utilisation: the node agent's dcgm-compatible ``DCGM_FI_DEV_GPU_UTIL``,
  averaged per pod then summed; ``AverageValue`` (the HPA divides by the
  replica count) against ``targetGPUUtilizationPercent``.
- queue depth: ``sum(<queueDepthMetric>)``, default vLLM's
  ``vllm:num_requests_waiting``; ``AverageValue`` against ``targetQueueDepth``.
- latency p95: ``histogram_quantile(0.95, ...)`` over ``<latencyHistogram>_bucket``
  (default vLLM's ``vllm:e2e_request_latency_seconds``) in ms; ``Value``
  (the HPA scales by value / target) against ``targetLatencyP95Ms``.

An empty or NaN answer counts as 0 (KEDA's ``ignoreNullValues``); a failed
read counts towards the fallback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ballast.api.v1alpha1.serving import Scaling
from ballast.api.wellknown import LABEL_CLASS, LABEL_OWNER
from ballast.controller.builders import (
    DNS_SUBDOMAIN_MAX,
    bounded,
    owner_label_value,
    owner_labels,
    owner_reference,
)

KEDA_GROUP = "keda.sh"
KEDA_VERSION = "v1alpha1"
KEDA_API_VERSION = f"{KEDA_GROUP}/{KEDA_VERSION}"
SCALED_OBJECTS = "scaledobjects"
LABEL_WORKLOAD = "ballast.dev/workload"  # "<kind>.<name>" of the scaled workload

DEFAULT_GPU_METRIC = "DCGM_FI_DEV_GPU_UTIL"
DEFAULT_QUEUE_METRIC = "vllm:num_requests_waiting"
DEFAULT_LATENCY_HISTOGRAM = "vllm:e2e_request_latency_seconds"
# The rate window of the latency quantile: four scrapes at a 30 s interval.
LATENCY_RATE_WINDOW = "2m"
# Reads in a row that must fail before the fallback replica count applies.
FALLBACK_FAILURE_THRESHOLD = 3

WorkloadKind = Literal["Deployment", "StatefulSet"]
KIND_SHORT: dict[str, str] = {"Deployment": "deploy", "StatefulSet": "sts"}


@dataclass(frozen=True, slots=True, order=True)
class Workload:
    """A Deployment or StatefulSet whose pods belong to a class."""

    kind: WorkloadKind
    namespace: str
    name: str

    @property
    def label(self) -> str:
        """The ``ballast.dev/workload`` value: ``deploy.<name>`` or ``sts.<name>`` (bounded)."""
        return bounded(f"{KIND_SHORT[self.kind]}.{self.name}", 63)


def scaled_object_name(workload: Workload) -> str:
    """``ballast-deploy-<name>`` or ``ballast-sts-<name>`` (hashed when too long)."""
    return bounded(f"ballast-{KIND_SHORT[workload.kind]}-{workload.name}", DNS_SUBDOMAIN_MAX)


def _regex_literal(text: str) -> str:
    """``text`` as an RE2 literal inside a PromQL double-quoted string."""
    out = []
    for ch in text:
        out.append("\\\\." if ch == "." else ch)  # names are [a-z0-9.-]; only '.' is special
    return "".join(out)


def pod_selector(workload: Workload) -> str:
    """The label matchers of the workload's pods: ``namespace="..",pod=~".."``."""
    name = _regex_literal(workload.name)
    pattern = f"{name}-[0-9]+" if workload.kind == "StatefulSet" else f"{name}-[a-z0-9]+-[a-z0-9]+"
    return f'namespace="{workload.namespace}",pod=~"{pattern}"'


def gpu_query(workload: Workload) -> str:
    """Sum over the workload's pods of each pod's mean GPU utilisation (percent)."""
    sel = pod_selector(workload)
    return f"sum(avg by (namespace, pod) ({DEFAULT_GPU_METRIC}{{{sel}}}))"


def queue_query(workload: Workload, metric: str | None = None) -> str:
    """Requests waiting in all of the workload's pods."""
    return f"sum({metric or DEFAULT_QUEUE_METRIC}{{{pod_selector(workload)}}})"


def latency_query(workload: Workload, histogram: str | None = None) -> str:
    """p95 request latency of the workload's pods in ms, over :data:`LATENCY_RATE_WINDOW`."""
    bucket = f"{histogram or DEFAULT_LATENCY_HISTOGRAM}_bucket"
    rate = f"rate({bucket}{{{pod_selector(workload)}}}[{LATENCY_RATE_WINDOW}])"
    return f"histogram_quantile(0.95, sum by (le) ({rate})) * 1000"


def _trigger(
    name: str, metric_type: str, server: str, query: str, threshold: int
) -> dict[str, Any]:
    return {
        "type": "prometheus",
        "name": name,
        "metricType": metric_type,
        "metadata": {
            "serverAddress": server,
            "query": query,
            "threshold": str(threshold),
            "ignoreNullValues": "true",
        },
    }


def triggers(scaling: Scaling, workload: Workload, server: str) -> list[dict[str, Any]]:
    """One Prometheus trigger per target the class sets (GPU, queue, latency; in that order)."""
    out: list[dict[str, Any]] = []
    if scaling.target_gpu_utilization_percent is not None:
        out.append(_trigger("gpu-utilization", "AverageValue", server,
                            gpu_query(workload), scaling.target_gpu_utilization_percent))  # fmt: skip
    if scaling.target_queue_depth is not None:
        query = queue_query(workload, scaling.queue_depth_metric)
        out.append(_trigger("queue-depth", "AverageValue", server, query,
                            scaling.target_queue_depth))  # fmt: skip
    if scaling.target_latency_p95_ms is not None:
        query = latency_query(workload, scaling.latency_histogram)
        out.append(_trigger("latency-p95", "Value", server, query,
                            scaling.target_latency_p95_ms))  # fmt: skip
    return out


def behavior(scaling: Scaling) -> dict[str, Any]:
    """The HPA's ``behavior``: the class's stabilisation windows, default policies."""
    b = scaling.behavior
    return {
        "scaleUp": {"stabilizationWindowSeconds": b.scale_up_stabilization_seconds},
        "scaleDown": {"stabilizationWindowSeconds": b.scale_down_stabilization_seconds},
    }


def fallback(scaling: Scaling) -> dict[str, Any]:
    """While reads fail: at least ``fallbackReplicas`` (default minReplicas), never fewer than now.

    ``currentReplicasIfHigher``: an outage of Prometheus never scales a
    serving workload down, nor up past what it runs.
    """
    replicas = scaling.fallback_replicas
    return {
        "failureThreshold": FALLBACK_FAILURE_THRESHOLD,
        "replicas": scaling.min_replicas if replicas is None else replicas,
        "behavior": "currentReplicasIfHigher",
    }


def build_scaled_object(
    class_name: str, uid: str, scaling: Scaling, workload: Workload, server: str
) -> dict[str, Any]:
    """The ScaledObject that scales ``workload`` for class ``class_name``."""
    return {
        "apiVersion": KEDA_API_VERSION,
        "kind": "ScaledObject",
        "metadata": {
            "name": scaled_object_name(workload),
            "namespace": workload.namespace,
            "labels": {
                **owner_labels("WorkloadClass", class_name),
                LABEL_CLASS: class_name,
                LABEL_WORKLOAD: workload.label,
            },
            "ownerReferences": [owner_reference("WorkloadClass", class_name, uid)],
        },
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": workload.kind,
                "name": workload.name,
            },
            "minReplicaCount": scaling.min_replicas,
            "maxReplicaCount": scaling.max_replicas,
            "pollingInterval": scaling.polling_interval_seconds,
            # Only scaling to zero waits for it; the HPA's own window governs the rest.
            "cooldownPeriod": scaling.behavior.scale_down_stabilization_seconds,
            "fallback": fallback(scaling),
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": behavior(scaling)}},
            "triggers": triggers(scaling, workload, server),
        },
    }


def owner_selector(class_name: str) -> str:
    """Label selector of every ScaledObject Ballast made for the class."""
    return f"{LABEL_OWNER}={owner_label_value('WorkloadClass', class_name)}"


def _contains(actual: Any, desired: Any) -> bool:
    """Whether ``actual`` holds everything in ``desired`` (fields others add are ignored)."""
    if isinstance(desired, Mapping):
        return isinstance(actual, Mapping) and all(
            _contains(actual.get(k), v) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(desired)
            and all(_contains(a, d) for a, d in zip(actual, desired, strict=True))
        )
    return bool(actual == desired)


def drift(desired: Mapping[str, Any], actual: Mapping[str, Any] | None) -> str | None:
    """Why ``actual`` differs from ``desired`` ("missing", "spec", "metadata"), or None.

    KEDA adds defaults, a finalizer and status; only what Ballast sets is compared.
    """
    if actual is None:
        return "missing"
    if not _contains(actual.get("spec"), desired["spec"]):
        return "spec"
    meta = actual.get("metadata") or {}
    if not _contains(meta.get("labels") or {}, desired["metadata"]["labels"]):
        return "metadata"
    uid = desired["metadata"]["ownerReferences"][0]["uid"]
    if not any(o.get("uid") == uid for o in meta.get("ownerReferences") or ()):
        return "metadata"
    return None


def key_of(obj: Mapping[str, Any]) -> tuple[str, str]:
    """(namespace, name) of an object."""
    meta = obj["metadata"]
    return str(meta.get("namespace") or ""), str(meta["name"])


@dataclass
class Plan:
    """The ScaledObjects to apply, keep and delete, keyed (namespace, name)."""

    apply: list[dict[str, Any]] = field(default_factory=list)
    keep: list[tuple[str, str]] = field(default_factory=list)
    delete: list[tuple[str, str]] = field(default_factory=list)


def plan(
    class_name: str,
    uid: str,
    scaling: Scaling | None,
    workloads: Iterable[Workload],
    actual: Mapping[tuple[str, str], Mapping[str, Any]],
    server: str,
) -> Plan:
    """What to write so the class has exactly the ScaledObjects it should.

    ``scaling`` None (the class is gone or no longer scales) deletes them
    all; ``actual`` maps (namespace, name) to the ScaledObjects Ballast made
    for the class, as last seen. Unchanged ones are not rewritten.
    """
    out = Plan()
    wanted: set[tuple[str, str]] = set()
    for w in sorted(set(workloads)) if scaling is not None else []:
        assert scaling is not None
        desired = build_scaled_object(class_name, uid, scaling, w, server)
        key = key_of(desired)
        wanted.add(key)
        if drift(desired, actual.get(key)) is None:
            out.keep.append(key)
        else:
            out.apply.append(desired)
    out.delete = sorted(set(actual) - wanted)
    return out


def workload_of(kind: str, namespace: str | None, name: str) -> Workload | None:
    """A :class:`Workload` for a watched Deployment or StatefulSet (None for anything else)."""
    if not namespace:
        return None
    if kind == "Deployment":
        return Workload("Deployment", namespace, name)
    if kind == "StatefulSet":
        return Workload("StatefulSet", namespace, name)
    return None


def template_class(spec: Mapping[str, Any]) -> str | None:
    """The ``ballast.dev/class`` label of a workload's pod template, if any."""
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    value = labels.get(LABEL_CLASS)
    return value if isinstance(value, str) and value else None
