"""The demo's autoscaling and SLO walk-through: one class scales on GPU utilisation.

The `chat` class sets ``scaling.targetGPUUtilizationPercent: 70``. The
operator turned it into a KEDA ScaledObject whose trigger reads the node
agents' ``DCGM_FI_DEV_GPU_UTIL`` for the class's pods from Prometheus; KEDA
serves it to the HPA controller in kube-controller-manager. Here the fake
GPUs the chat pods hold turn 100% busy (their fixtures change; the agents
publish it; Prometheus scrapes it), the HPA raises the replica count, and the
Ballast scheduler places the new replicas. Then the GPUs calm down; the
scale-down waits for the class's stabilisation window. Last, the classes'
SLO and cost status, read by the operator from the same Prometheus (request
latency comes from a stand-in for vLLM's series, :mod:`serving`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ballast.kube.raw import WORKLOADCLASSES, Kube
from ballast.localcluster import prometheus
from ballast.localcluster.agents import NodeAgents
from ballast.localcluster.serving import ServingExporter

CLASS = "chat"
NAMESPACE = "search"
DEPLOYMENT = "chat"


def _pods(kube: Kube) -> list[dict[str, Any]]:
    items = kube.list(f"/api/v1/namespaces/{NAMESPACE}/pods",
                      labelSelector=f"ballast.dev/class={CLASS}")["items"]  # fmt: skip
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def _set_util(kube: Kube, agents: NodeAgents, util: int) -> int:
    """Make the GPUs the class's pods hold report ``util`` percent; returns how many."""
    n = 0
    for p in _pods(kube):
        node = (p.get("spec") or {}).get("nodeName")
        ids = (p["metadata"].get("annotations") or {}).get("ballast.dev/gpu-ids", "")
        if node not in agents.agents:
            continue
        fx = agents.fixture(node)
        for part in ids.split(","):
            if part.isdigit() and int(part) in fx.gpus:
                fx.gpu(int(part), util=util)
                n += 1
    return n


def _hpa(kube: Kube) -> dict[str, Any]:
    items = kube.list(f"/apis/autoscaling/v2/namespaces/{NAMESPACE}/horizontalpodautoscalers")
    for h in items["items"]:
        ref = (h.get("spec") or {}).get("scaleTargetRef") or {}
        if ref.get("name") == DEPLOYMENT:
            return dict(h)
    return {}


def _view(kube: Kube) -> str:
    dep = kube.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{DEPLOYMENT}") or {}
    want = (dep.get("spec") or {}).get("replicas")
    pods = _pods(kube)
    bound = sum(1 for p in pods if (p.get("spec") or {}).get("nodeName"))
    hpa = _hpa(kube)
    metrics = ((hpa.get("status") or {}).get("currentMetrics")) or []
    seen = []
    for m in metrics:
        ext = m.get("external") or {}
        cur = ext.get("current") or {}
        value = cur.get("averageValue") or cur.get("value")
        seen.append(f"{(ext.get('metric') or {}).get('name', '?')}={value}")
    desired = (hpa.get("status") or {}).get("desiredReplicas")
    if not desired:
        seen = []  # the HPA has not read its metrics yet
    return (f"replicas {want} ({bound} bound)  HPA desired {desired}  "
            f"{', '.join(seen) or 'no metrics yet'}")  # fmt: skip


def _watch(kube: Kube, until: Callable[[], bool], seconds: float, start: float) -> bool:
    last = ""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = _view(kube)
        if line != last:
            print(f"    t={time.monotonic() - start:5.0f}s  {line}", flush=True)
            last = line
        if until():
            return True
        time.sleep(3)
    return False


def scaling(kube: Kube, agents: NodeAgents, root: Any, timeout: float = 150.0) -> None:
    """GPU utilisation up → more replicas; down → the scale-down waits for its window."""
    cls = kube.get(WORKLOADCLASSES.path(CLASS)) or {}
    ready: dict[str, Any] = next((c for c in (cls.get("status") or {}).get("conditions") or ()
                  if c.get("type") == "ScalingReady"), {})  # fmt: skip
    print(f"==> autoscaling: class {CLASS} targets {cls['spec']['scaling']} "
          f"(ScalingReady={ready.get('status')}: {ready.get('message', '')})")  # fmt: skip
    dep = kube.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{DEPLOYMENT}") or {}
    before = int((dep.get("spec") or {}).get("replicas") or 0)
    start = time.monotonic()
    busy = _set_util(kube, agents, 100)
    print(f"    the {busy} fake GPUs of the chat pods now report 100% busy (target 70%)")

    def grew() -> bool:
        d = kube.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{DEPLOYMENT}") or {}
        return int((d.get("spec") or {}).get("replicas") or 0) > before

    if not _watch(kube, grew, timeout, start):
        print(f"!!  no scale-up within {timeout:.0f}s; see the HPA: kubectl describe hpa -n "
              f"{NAMESPACE}")  # fmt: skip
        return
    _watch(kube, lambda: False, 15, start)  # the new replicas get placed
    _set_util(kube, agents, 20)
    window = ((cls["spec"]["scaling"].get("behavior") or {})
              .get("scaleDownStabilizationSeconds", 300))  # fmt: skip
    print(f"    the GPUs calm down to 20%: the HPA scales back after the class's "
          f"{window}s scale-down window (kubectl get hpa -n {NAMESPACE} -w)")  # fmt: skip


def serving_traffic(cluster_root: Any) -> ServingExporter:
    """A stand-in for the chat pods' vLLM series (latency), scraped by Prometheus."""
    exporter = ServingExporter().start()
    prometheus.add_target(cluster_root, "serving", exporter.address, name="demo-serving")
    return exporter


def observe_latency(kube: Kube, exporter: ServingExporter) -> None:
    """Requests served by each chat pod: mostly fast, a slow tail."""
    for p in _pods(kube):
        name = p["metadata"]["name"]
        exporter.observe(NAMESPACE, name, 0.25, count=95)
        exporter.observe(NAMESPACE, name, 0.9, count=4)
        exporter.observe(NAMESPACE, name, 2.0, count=1)


def slo_report(kube: Kube, feed: Callable[[], None], wait_s: float = 60.0) -> None:
    """Each class's observed SLO against its objective, and its GPU cost.

    ``feed`` serves more requests each round: a rate needs two scrapes that differ.
    """
    deadline = time.monotonic() + wait_s
    rows: list[list[str]] = []
    while time.monotonic() < deadline:
        feed()
        rows = []
        for c in kube.list(WORKLOADCLASSES.path())["items"]:
            st = c.get("status") or {}
            if not (c["spec"].get("slo") or c["spec"].get("pricePerGPUHour")):
                continue
            cond: dict[str, Any] = next(
                (x for x in st.get("conditions") or () if x.get("type") == "SLOMet"), {}
            )
            slo, cost = st.get("slo") or {}, st.get("cost") or {}
            rows.append([
                c["metadata"]["name"], str(cond.get("status", "-")), str(cond.get("reason", "-")),
                _fmt(slo.get("latencyP95Ms")), _fmt(slo.get("latencyP99Ms")),
                _fmt(cost.get("gpuHours")), _fmt(cost.get("costPerHour")),
                str(cost.get("window", "-")),
            ])  # fmt: skip
        if any(r[1] in ("True", "False") for r in rows):
            break  # the operator has read the traffic (it reads every class in one round)
        time.sleep(3)
    print("==> SLO and cost, read by the operator from Prometheus (kubectl get wlc -o yaml)")
    head = ["CLASS", "SLOMET", "REASON", "P95", "P99", "GPU-HOURS", "COST/H", "WINDOW"]
    table = [head, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    for r in table:
        print("    " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, dict):
        obs = v.get("observed")
        goal = v.get("objective")
        return f"{_fmt(obs)}/{_fmt(goal)}" if goal is not None else _fmt(obs)
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)
