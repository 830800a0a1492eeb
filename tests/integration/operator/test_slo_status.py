"""SLO status, cost and burn-rate rules against the real Prometheus, scheduler and operator.

A small exporter in the test process serves vLLM-like series (the latency
histogram and the success counter, labelled with a real pod of the class) that
the session's Prometheus scrapes. The session operator reads them through a
proxy (``--prometheus-url``, 1-minute window, every 2 s): the class's status
shows p95/p99, queue wait, success ratio and cost with SLOMet=True; pushing
latency up turns it False (LatencyP99Exceeded) with an event; cutting the proxy
makes it Unknown (PrometheusUnreachable) with the last values kept. The rules
land in the ConfigMap and, once the PrometheusRule kind is served, in a
PrometheusRule owned by the class that goes away with it.
"""

from __future__ import annotations

import random
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kutil import SLO_RULES_NAMESPACE, events_for, wait_for
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from sutil import L4, delete_nodes, gpu_node, gpu_pod, node_of, wait_ready
from tcpproxy import TcpProxy

from ballast.kube.raw import CRDS, NAMESPACES, WORKLOADCLASSES, Kube
from ballast.localcluster import LocalCluster
from ballast.localcluster.ballast_procs import BallastProcess
from ballast.telemetry.prometheus import Prometheus

PRICE = 0.8  # per L4 GPU-hour
BUCKETS = (0.1, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 5.0, 10.0)
PROMETHEUS_RULE_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "prometheusrules.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "names": {"kind": "PrometheusRule", "plural": "prometheusrules",
                  "singular": "prometheusrule", "listKind": "PrometheusRuleList"},
        "scope": "Namespaced",
        "versions": [{"name": "v1", "served": True, "storage": True,
                      "schema": {"openAPIV3Schema": {
                          "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}],
    },
}  # fmt: skip


class Serving:
    """vLLM-like series of one pod; a thread keeps requests coming at the latency set."""

    def __init__(self, namespace: str, pod: str) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "vllm:e2e_request_latency_seconds", "e2e latency", ["namespace", "pod"],
            buckets=BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.success = Counter(
            "vllm:request_success", "successes", ["namespace", "pod"], registry=self.registry
        )
        self.labels = (namespace, pod)
        self.seconds = 0.2  # every request's latency, with a little jitter
        self._stop = threading.Event()
        self._rng = random.Random(7)
        self.server, self.thread = start_http_server(0, "127.0.0.1", registry=self.registry)
        self.port = self.server.server_address[1]
        self._load = threading.Thread(target=self._run, daemon=True)
        self._load.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            for _ in range(5):  # 50 requests a second
                self.latency.labels(*self.labels).observe(
                    self.seconds * self._rng.uniform(0.9, 1.1)
                )
                self.success.labels(*self.labels).inc()

    def close(self) -> None:
        self._stop.set()
        self.server.shutdown()


@pytest.fixture
def setup(
    prometheus: LocalCluster,
    scheduler: BallastProcess,
    operator: BallastProcess,
    prometheus_proxy: TcpProxy,
    kube: Kube,
    namespace: str,
) -> Iterator[dict[str, Any]]:
    test = f"slo-{uuid.uuid4().hex[:6]}"
    prometheus.add_scrape_target(
        "ballast-scheduler",
        f"127.0.0.1:{scheduler.metrics_port}",
        name="session-scheduler",  # type: ignore[attr-defined]
    )
    if kube.get(NAMESPACES.path(SLO_RULES_NAMESPACE)) is None:
        kube.create(NAMESPACES.path(), {"metadata": {"name": SLO_RULES_NAMESPACE}})
    if kube.get(CRDS.path(PROMETHEUS_RULE_CRD["metadata"]["name"])) is None:  # type: ignore[index]
        kube.create(CRDS.path(), PROMETHEUS_RULE_CRD)
    gpu_node(kube, f"{test}-n1", test=test, gpus=4, gpu=L4)
    wait_ready(kube, test, 1)
    cls = f"{test}-chat"
    kube.create(WORKLOADCLASSES.path(), {
        "apiVersion": "ballast.dev/v1alpha1", "kind": "WorkloadClass",
        "metadata": {"name": cls},
        "spec": {"tier": "Interactive",
                 "slo": {"latencyP95Ms": 500, "latencyP99Ms": 1000, "queueWaitP95Seconds": 30,
                         "successRatio": 0.99},
                 "pricePerGPUHour": {L4[0]: PRICE}},
    })  # fmt: skip
    state = prometheus.state
    assert state is not None and state.prometheus_url
    # A first pod makes the class's queue-wait series exist; rate() counts the binds
    # after Prometheus has seen it (a series that appears at 1 shows no increase).
    warm = f"{test}-warm-0"
    gpu_pod(kube, namespace, warm, test=test, cls=cls, gpus=1)
    wait_for(lambda: node_of(kube, namespace, warm), what="the first pod bound", timeout=60)
    with Prometheus(state.prometheus_url) as prom:
        seen = f'ballast_scheduler_pod_scheduling_seconds_count{{class="{cls}"}}'
        wait_for(lambda: prom.query(seen).values, timeout=30, what="the queue-wait series scraped")
    pod = f"{test}-serve-0"
    gpu_pod(kube, namespace, pod, test=test, cls=cls, gpus=2)
    wait_for(lambda: node_of(kube, namespace, pod), what="the serving pod bound", timeout=60)
    serving = Serving(namespace, pod)
    prometheus.add_scrape_target("ballast-operator", f"127.0.0.1:{serving.port}", name=test)
    yield {"class": cls, "pod": pod, "serving": serving, "prom_url": state.prometheus_url}
    prometheus_proxy.resume()
    prometheus.remove_scrape_target("ballast-operator", test)
    serving.close()
    kube.delete(WORKLOADCLASSES.path(cls))
    delete_nodes(kube, test)


def status_of(kube: Kube, cls: str) -> dict[str, Any]:
    return (kube.get(WORKLOADCLASSES.path(cls)) or {}).get("status") or {}


def slo_met(status: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c["type"] == "SLOMet"), None)


def test_slo_status_violation_unreachable_cost_and_rules(
    setup: dict[str, Any],
    kube: Kube,
    operator: BallastProcess,
    prometheus_proxy: TcpProxy,
) -> None:
    cls, serving = setup["class"], setup["serving"]

    def met() -> dict[str, Any] | None:
        s = status_of(kube, cls)
        c = slo_met(s)
        ok = c and c["status"] == "True" and (s.get("cost") or {}).get("costPerSuccessfulResponse")
        return s if ok and "observed" in s["slo"].get("queueWaitP95Seconds", {}) else None

    status = wait_for(met, timeout=90, interval=1, what="SLOMet=True with cost",
                      explain=lambda: f"{status_of(kube, cls)}\n{operator.log_tail(20)}")  # fmt: skip
    slo = status["slo"]
    assert slo["window"] == "1m"
    # Every request takes 0.18-0.22 s: both quantiles lie in the (0.1, 0.3] bucket.
    for key, objective in (("latencyP95Ms", 500.0), ("latencyP99Ms", 1000.0)):
        assert 100 < slo[key]["observed"] <= 300 and slo[key]["objective"] == objective
    assert slo["successRatio"]["observed"] == pytest.approx(1.0, abs=0.02)
    assert 0 <= slo["queueWaitP95Seconds"]["observed"] <= 30
    assert slo["requests"] > 0 and slo["gpuHours"] > 0
    # The same numbers PromQL gives directly (a sample a few seconds apart: loose).
    with Prometheus(setup["prom_url"]) as prom:
        held = prom.query(f'sum(ballast_scheduler_pod_gpus{{class="{cls}"}})').scalar()
        assert held == 3.0  # the two pods' GPUs (1 + 2), with the node's model
        models = prom.query(f'ballast_scheduler_pod_gpus{{class="{cls}"}}').values
        assert {dict(k)["model"] for k in models} == {L4[0]}
    cost = status["cost"]
    assert cost["window"] == "1m" and set(cost["gpuHoursByModel"]) == {L4[0]}
    assert cost["cost"] == pytest.approx(cost["gpuHours"] * PRICE, rel=1e-3)
    assert cost["costPerHour"] == pytest.approx(cost["cost"] * 60, rel=1e-3)  # a 1m window
    assert cost["costPerHour"] <= 3 * PRICE * 1.01  # three GPUs at most
    assert cost["costPerSuccessfulResponse"] == pytest.approx(
        cost["cost"] / cost["successfulResponses"], rel=1e-3
    )
    assert "reason" not in cost

    # The operator's /metrics carries the same figures per class and window.
    text = (
        urllib.request.urlopen(
            f"http://127.0.0.1:{operator.metrics_port}/metrics",
            timeout=5,  # type: ignore[attr-defined]
        )
        .read()
        .decode()
    )
    assert f'ballast_workloadclass_slo_met{{class="{cls}"}} 1.0' in text
    assert (
        f'ballast_workloadclass_cost_per_successful_response{{class="{cls}",window="1m"}}' in text
    )

    # Rules: in the ConfigMap, and as a PrometheusRule owned by the class.
    cm = wait_for(
        lambda: (c := kube.get(f"/api/v1/namespaces/{SLO_RULES_NAMESPACE}/configmaps/ballast-slo-rules"))
        and f"ballast-slo-{cls}" in c["data"]["ballast-slo.rules.yaml"] and c,
        timeout=30, what="the rules ConfigMap",
    )  # fmt: skip
    groups = yaml.safe_load(cm["data"]["ballast-slo.rules.yaml"])["groups"]
    assert f"ballast-slo-{cls}" in {g["name"] for g in groups}
    rule_path = f"/apis/monitoring.coreos.com/v1/namespaces/{SLO_RULES_NAMESPACE}/prometheusrules/ballast-slo-{cls}"
    rule = wait_for(lambda: kube.get(rule_path), timeout=45, what="the PrometheusRule")
    wlc_uid = kube.get(WORKLOADCLASSES.path(cls))["metadata"]["uid"]  # type: ignore[index]
    assert rule["metadata"]["ownerReferences"][0]["uid"] == wlc_uid
    assert rule["spec"]["groups"][0]["name"] == f"ballast-slo-{cls}"

    # Latency up: 1.2 s per request, above the p99 (and p95) objective.
    serving.seconds = 1.2
    violated = wait_for(
        lambda: (c := slo_met(status_of(kube, cls))) and c["status"] == "False" and c,
        timeout=60, interval=1, what="SLOMet=False",
    )  # fmt: skip
    assert violated["reason"] == "LatencyP99Exceeded"
    assert status_of(kube, cls)["slo"]["latencyP99Ms"]["observed"] > 1000
    wait_for(
        lambda: any(e["reason"] == "SLOViolated" for e in events_for(kube, cls, "WorkloadClass")),
        timeout=20, what="an SLOViolated event",
    )  # fmt: skip

    # Prometheus unreachable for the operator: Unknown, last values kept.
    prometheus_proxy.cut()
    unknown = wait_for(
        lambda: (c := slo_met(status_of(kube, cls))) and c["status"] == "Unknown" and c,
        timeout=30, interval=1, what="SLOMet=Unknown",
    )  # fmt: skip
    assert unknown["reason"] == "PrometheusUnreachable"
    kept = status_of(kube, cls)
    time.sleep(5)  # two more rounds
    later = status_of(kube, cls)
    assert later["slo"] == kept["slo"] and later["slo"]["latencyP99Ms"]["observed"] > 1000
    assert later["cost"] == kept["cost"]
    prometheus_proxy.resume()

    # Deleting the class removes its rules: the PrometheusRule by garbage collection.
    kube.delete(WORKLOADCLASSES.path(cls))
    wait_for(lambda: kube.get(rule_path) is None, timeout=150, what="the PrometheusRule collected")
    wait_for(
        lambda: f"ballast-slo-{cls}" not in (kube.get(
            f"/api/v1/namespaces/{SLO_RULES_NAMESPACE}/configmaps/ballast-slo-rules"
        ) or {"data": {"ballast-slo.rules.yaml": ""}})["data"]["ballast-slo.rules.yaml"],
        timeout=30, what="the class's rules out of the ConfigMap",
    )  # fmt: skip
