"""Benchmark: from a step in queue depth to new replicas bound, and flapping under noise.

Starts a local cluster of its own (kube-scheduler, Prometheus, KEDA; the
HPA controller at Kubernetes' default 15 s period unless told otherwise),
the real operator, a few kwok nodes and the serving stand-in
(:mod:`ballast.localcluster.serving`), then:

1. **Steps.** A class scales a Deployment on queue depth (target 5 per
   pod). Each step sets the waiting requests so that the HPA wants one
   replica more (then back down), and times, per step:
   ``scrape`` (step to the sample's scrape timestamp in Prometheus),
   ``poll`` (to KEDA's first read of the new value, its
   ``keda_scaler_metrics_value``: by its own polling loop or for the HPA's
   request, whichever came first), ``hpa`` (to the Deployment's new
   ``spec.replicas``), ``schedule`` (to every new pod bound to a node).
   Only scale-up steps count towards step-to-bound.
   **Baseline**, measured in the same run and alternating with the steps:
   the same one-replica change made by hand (``spec.replicas`` patched), to
   every pod bound: what scheduling alone costs; ``vs_manual_scale_p50`` is
   the ratio.
2. **Flapping.** Two more classes scale a Deployment each under the same
   noisy load: a fixed demand of ``--base`` replicas' worth at the target,
   ``base x target x (1 + U(-n, n))`` waiting requests in all, redrawn every
   scrape (the ideal count is ``base``; the noise makes the HPA want one more
   or one fewer). One class keeps the default behaviour (no
   scale-up window, 300 s scale-down window); the baseline class has both
   windows at 0 (both run at the same time). The replica count's direction
   changes are counted (and scaled to 10 minutes when ``--minutes`` is
   shorter).

The machine's load average over the run is printed and in the JSON
(``load_avg``).

The last line is one JSON object. Goals (not a test): step to bound p50
under 45 s with a 15 s scrape and a 15 s poll; at most 2 direction changes
per 10 minutes under +-20% noise.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson

from ballast.kube.crds import ensure_crds
from ballast.kube.raw import NAMESPACES, PODS, WORKLOADCLASSES, Kube, Resource
from ballast.localcluster import kube as lkube
from ballast.localcluster.ballast_procs import BallastProcess
from ballast.localcluster.cluster import LocalCluster
from ballast.localcluster.nodes import profile_nodes
from ballast.localcluster.serving import ServingExporter
from ballast.telemetry.prometheus import Prometheus
from machine import LoadSampler, report

DEPLOYMENTS = Resource("apps", "v1", "deployments", True)
TARGET = 5
NS = "bench-autoscaling"


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def make_class(kube: Kube, name: str, poll_s: int, behavior: dict[str, int] | None) -> None:
    scaling: dict[str, Any] = {
        "minReplicas": 1, "maxReplicas": 10, "targetQueueDepth": TARGET,
        "pollingIntervalSeconds": poll_s,
    }  # fmt: skip
    if behavior is not None:
        scaling["behavior"] = behavior
    kube.create(WORKLOADCLASSES.path(), {
        "apiVersion": "ballast.dev/v1alpha1", "kind": "WorkloadClass", "metadata": {"name": name},
        "spec": {"tier": "Interactive", "scaling": scaling},
    })  # fmt: skip


def make_deployment(kube: Kube, name: str, cls: str) -> None:
    kube.create(DEPLOYMENTS.path(namespace=NS), {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": {
            "metadata": {"labels": {"app": name, "ballast.dev/class": cls}},
            "spec": {"terminationGracePeriodSeconds": 0,
                     "tolerations": [{"operator": "Exists"}],
                     "containers": [{"name": "serve", "image": "registry.local/vllm:1"}]},
        }},
    })  # fmt: skip


def replicas(kube: Kube, name: str) -> int:
    obj = kube.get(DEPLOYMENTS.path(name, NS)) or {}
    return int((obj.get("spec") or {}).get("replicas") or 0)


def bound_pods(kube: Kube, app: str) -> list[str]:
    items = kube.list(PODS.path(namespace=NS), labelSelector=f"app={app}")["items"]
    return sorted(
        p["metadata"]["name"]
        for p in items
        if p["spec"].get("nodeName") and not p["metadata"].get("deletionTimestamp")
    )


def wait(fn: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(interval)
    raise TimeoutError(f"{what} not within {timeout:.0f}s")


def keda_value(metrics_url: str, so_name: str) -> float | None:
    """KEDA's last read of the ScaledObject's trigger (``keda_scaler_metrics_value``)."""
    try:
        text = urllib.request.urlopen(metrics_url, timeout=2).read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("keda_scaler_metrics_value{") and f'scaledObject="{so_name}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def sample_time(prom: Prometheus, app: str, value: float) -> float | None:
    """The scrape timestamp of the sample with ``value`` (None until it is there)."""
    series = f'vllm:num_requests_waiting{{namespace="{NS}",pod=~"{app}-.*"}}'
    got = list(prom.query(f"sum({series})").values.values())
    if not got or abs(got[0] - value) > 1e-9:
        return None
    ts = list(prom.query(f"max(timestamp({series}))").values.values())
    return ts[0] if ts else None


def steps(
    kube: Kube, prom: Prometheus, exporter: ServingExporter, keda_metrics: str,
    app: str, so_name: str, count: int,
) -> list[dict[str, float]]:  # fmt: skip
    """Alternate one replica up and one down; time each phase of the scale-ups."""
    out: list[dict[str, float]] = []
    pod = bound_pods(kube, app)[0]
    for i in range(count * 2):
        have = replicas(kube, app)
        want = have + 1 if i % 2 == 0 else max(1, have - 1)
        total = float(want * TARGET)
        t0 = time.time()
        exporter.set_queue(NS, pod, total)
        scraped = wait(lambda: sample_time(prom, app, total), 120, "the scrape")  # noqa: B023
        read = wait(lambda: keda_value(keda_metrics, so_name) == total and time.time(), 120,  # noqa: B023
                    "KEDA's read")  # fmt: skip
        decided = wait(lambda: replicas(kube, app) == want and time.time(), 180, "the HPA")  # noqa: B023
        done = wait(lambda: len(bound_pods(kube, app)) == want and time.time(), 120, "binding")  # noqa: B023
        if want > have:
            out.append({"scrape": scraped - t0, "poll": max(0.0, read - scraped),
                        "hpa": decided - max(read, scraped), "schedule": done - decided,
                        "total": done - t0})  # fmt: skip
            print(f"step {have}->{want}: {out[-1]['total']:.1f}s", file=sys.stderr)
        time.sleep(2)
    return out


def manual_scale(kube: Kube, app: str) -> float:
    """The baseline: a one-replica change patched by hand, to every pod bound; then back to 1."""
    want = replicas(kube, app) + 1
    t0 = time.time()
    kube.patch(DEPLOYMENTS.path(app, NS), {"spec": {"replicas": want}})
    wait(lambda: len(bound_pods(kube, app)) == want, 120, "binding")
    took = time.time() - t0
    kube.patch(DEPLOYMENTS.path(app, NS), {"spec": {"replicas": 1}})
    wait(lambda: len(bound_pods(kube, app)) == 1, 120, "scale back to 1")
    return took


def noisy(
    kube: Kube, exporter: ServingExporter, apps: list[str], minutes: float, noise: float,
    every_s: float, seed: int, base: int,
) -> dict[str, tuple[int, list[int]]]:  # fmt: skip
    """Drive each app at ``base`` x target x (1 +- noise) waiting requests in all.

    The demand is fixed (``base`` replicas' worth at the target) and the
    noise is redrawn every ``every_s``; returns each app's direction changes
    and replica counts in order.
    """
    rng = random.Random(seed)
    history: dict[str, list[int]] = {a: [replicas(kube, a)] for a in apps}
    pods = {a: bound_pods(kube, a)[0] for a in apps}
    end = time.monotonic() + minutes * 60
    while time.monotonic() < end:
        for a in apps:
            n = replicas(kube, a)
            if n != history[a][-1]:
                history[a].append(n)
            exporter.set_queue(NS, pods[a], base * TARGET * (1 + rng.uniform(-noise, noise)))
        time.sleep(every_s)
    out = {}
    for a, seq in history.items():
        dirs = [1 if b > x else -1 for x, b in itertools.pairwise(seq)]
        out[a] = (sum(1 for x, y in itertools.pairwise(dirs) if x != y), seq)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scrape", type=float, default=15.0, help="Prometheus scrape interval, s")
    parser.add_argument("--poll", type=int, default=15, help="KEDA pollingInterval, s")
    parser.add_argument("--hpa-sync", type=float, default=15.0, help="HPA controller period, s")
    parser.add_argument("--steps", type=int, default=5, help="scale-up steps (each then down)")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the noisy load")
    parser.add_argument("--noise", type=float, default=0.2, help="relative noise of the load")
    parser.add_argument("--base", type=int, default=3, help="replicas' worth of noisy demand")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="leave the bench cluster running")
    args = parser.parse_args()
    load = LoadSampler()
    load.start()

    cluster = LocalCluster("bench-autoscaling", hpa_sync_seconds=args.hpa_sync,
                           scrape_interval_s=args.scrape)  # fmt: skip
    cluster.down()  # its settings apply only when it starts
    kubeconfig = cluster.up(with_scheduler=True, with_prometheus=True, with_keda=True)
    state = cluster.state
    assert state is not None and state.prometheus_url is not None
    keda_metrics = f"http://127.0.0.1:{state.ports['keda-metrics']}/metrics"
    kube = Kube.connect(str(kubeconfig))
    ensure_crds(kube)
    api = lkube.api_client(kubeconfig)
    nodes = profile_nodes("mixed", 4, seed=0, prefix="bench-as")
    lkube.create_nodes(api, nodes)
    lkube.wait_nodes_ready(api, [n.name for n in nodes], 120)
    kube.create(NAMESPACES.path(), {"apiVersion": "v1", "kind": "Namespace",
                                    "metadata": {"name": NS}})  # fmt: skip
    wait(lambda: kube.get(f"/api/v1/namespaces/{NS}/serviceaccounts/default"), 60, "namespace")
    exporter = ServingExporter().start()
    cluster.add_scrape_target("serving", exporter.address, "bench")
    state_dir = Path(cluster.layout.root) / "bench-operator"
    operator = BallastProcess(
        "bench-as-operator", ["operator", "--prometheus-url", state.prometheus_url],
        kubeconfig, state_dir,
    )  # fmt: skip
    operator.start()
    prom = Prometheus(state.prometheus_url)
    tag = uuid.uuid4().hex[:4]
    try:
        step_cls, calm, naive = f"step-{tag}", f"calm-{tag}", f"naive-{tag}"
        make_class(kube, step_cls, args.poll,
                   {"scaleUpStabilizationSeconds": 0, "scaleDownStabilizationSeconds": 0})  # fmt: skip
        make_class(kube, calm, args.poll, None)  # the class defaults: 0 s up, 300 s down
        make_class(kube, naive, args.poll,
                   {"scaleUpStabilizationSeconds": 0, "scaleDownStabilizationSeconds": 0})  # fmt: skip
        apps = {c: f"{c}-app" for c in (step_cls, calm, naive)}
        for c, a in apps.items():
            make_deployment(kube, a, c)
            wait(lambda: bound_pods(kube, a), 120, f"{a} bound")  # noqa: B023
            exporter.set_queue(NS, bound_pods(kube, a)[0], float(TARGET))
        step_app = apps[step_cls]
        wait(lambda: kube.get(f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/"
                              f"keda-hpa-ballast-deploy-{step_app}"), 120, "KEDA's HPA")  # fmt: skip
        # The baseline and the measured steps alternate, so a neighbour's load falls on both.
        manual: list[float] = []
        measured: list[dict[str, float]] = []
        for _ in range(max(3, args.steps)):
            manual.append(manual_scale(kube, apps[calm]))
            if len(measured) < args.steps:
                measured += steps(kube, prom, exporter, keda_metrics, step_app,
                                  f"ballast-deploy-{step_app}", 1)  # fmt: skip
        flaps = noisy(kube, exporter, [apps[calm], apps[naive]], args.minutes, args.noise,
                      args.scrape, args.seed, args.base)  # fmt: skip
    finally:
        operator.stop()
        exporter.close()
        kube.close()
        if not args.keep:
            cluster.down()
    totals = [m["total"] for m in measured]
    per10 = 10.0 / args.minutes
    p50 = statistics.median(totals)
    result = {
        "bench": "autoscaling",
        "scrape_s": args.scrape,
        "poll_s": args.poll,
        "hpa_sync_s": args.hpa_sync,
        "steps": len(measured),
        "step_to_bound_p50_s": round(p50, 2),
        "step_to_bound_p95_s": round(percentile(totals, 95), 2),
        "phases_s": {
            k: round(statistics.median(m[k] for m in measured), 2)
            for k in ("scrape", "poll", "hpa", "schedule")
        },
        "baseline": "the same one-replica change made by hand (spec.replicas), to all pods bound",
        "manual_scale_p50_s": round(statistics.median(manual), 2),
        "vs_manual_scale_p50": round(p50 / max(statistics.median(manual), 1e-3), 1),
        "noise": args.noise,
        "minutes": args.minutes,
        "direction_changes_10min": round(flaps[apps[calm]][0] * per10, 1),
        "direction_changes_10min_without_windows": round(flaps[apps[naive]][0] * per10, 1),
        "replicas_seen": flaps[apps[calm]][1],
        "replicas_seen_without_windows": flaps[apps[naive]][1],
        "load_avg": load.summary(stop=True),
    }
    report(result["load_avg"])
    print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
