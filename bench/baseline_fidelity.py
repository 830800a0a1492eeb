"""Baseline fidelity: the simulator's kube-scheduler imitations against the real kube-scheduler.

One whole-GPU workload (the openb ``default`` pods without GPU shares, in
creation order, until GPU demand reaches ``--stop-pct`` of the cluster;
pods never leave) is replayed on ``--nodes`` openb nodes (every k-th node of
the trace, so all GPU models appear):

- through the real kube-scheduler (the version the local cluster builds) on
  the local cluster, once with its default configuration and once with the
  GPU bin-packing KubeSchedulerConfiguration that ``kube-gpu-binpack``
  stands for (NodeResourcesFit MostAllocated, ``nvidia.com/gpu`` weight 5),
  ``--runs`` times each. Pods are created one at a time, each after the
  previous one is bound or marked unschedulable, so the order is the same
  as the simulator's;
- through the simulator's ``kube-default`` and ``kube-gpu-binpack`` with
  ``--sim-seeds`` seeds.

kube-scheduler breaks ties between equally scored nodes at random, and the
simulator with a seeded random pick: single runs differ, so the figures are
means over runs and seeds (with min and max). The real runs of the two
configurations alternate (default, bin-packing, default, ...). Each real run
is also checked decision by decision: the node kube-scheduler chose must be
one of the nodes the engine scores highest in the same state
(``decisions_matching``). The machine's load average during the run is
printed and in the JSON (``load_avg``).

unallocated pct: GPUs not allocated, in % of the cluster's GPUs, averaged
over arrived demand from 90% to 100% (the fragmentation headline, ``*_pct``)
and after the last pod (``final``). Goal: real and simulated within 1 point.

Prints progress to stderr and one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from ballast.api import wellknown as wk
from ballast.kube.raw import NAMESPACES, PODS, Kube
from ballast.localcluster import kube as lk
from ballast.localcluster.cluster import LocalCluster
from ballast.localcluster.nodes import openb_nodes
from ballast.placement.objects import MILLI, Pod
from ballast.placement.profiles import profile
from ballast.sim import fidelity as fid
from ballast.sim.experiments import DEFAULT_NODES, DEFAULT_PODS
from ballast.sim.traces import load_openb_pods
from machine import LoadSampler, describe, report

NS = "fidelity"
CONFIGS = {"default": "kube-default", "binpack": "kube-gpu-binpack"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Outcomes(threading.Thread):
    """Watches the bench namespace: the node each pod was bound to, or that it is unschedulable."""

    def __init__(self, kube: Kube) -> None:
        super().__init__(daemon=True)
        self.kube = kube
        self.node: dict[str, str] = {}
        self.unschedulable: set[str] = set()
        self.stop = False

    def run(self) -> None:
        try:
            self._run()
        except Exception:
            if not self.stop:
                raise

    def _run(self) -> None:
        rv = self.kube.list(PODS.path(namespace=NS), limit=1)["metadata"]["resourceVersion"]
        while not self.stop:
            for kind, obj in self.kube.watch(
                PODS.path(namespace=NS), resource_version=rv, timeout_seconds=30
            ):
                if kind == "ERROR":  # 410 Gone: list again, so no bind in between is lost
                    items, rv = self.kube.list_all(PODS.path(namespace=NS))
                    for pod in items:
                        if node := (pod.get("spec") or {}).get("nodeName"):
                            self.node[pod["metadata"]["name"]] = node
                    break
                rv = obj["metadata"]["resourceVersion"]
                if kind in ("DELETED", "BOOKMARK"):
                    continue
                name = obj["metadata"]["name"]
                if node := (obj.get("spec") or {}).get("nodeName"):
                    self.node[name] = node
                for c in (obj.get("status") or {}).get("conditions") or ():
                    if c.get("type") == "PodScheduled" and c.get("reason") == "Unschedulable":
                        self.unschedulable.add(name)
                if self.stop:
                    break

    def reset(self) -> None:
        self.node.clear()
        self.unschedulable.clear()


def pod_body(name: str, pod: Pod) -> dict[str, Any]:
    requests = {"cpu": f"{pod.cpu_milli}m", "memory": f"{pod.memory_mib}Mi"}
    limits: dict[str, str] = {}
    if pod.gpus:
        requests[wk.GPU_RESOURCE] = limits[wk.GPU_RESOURCE] = str(pod.gpus)
    spec: dict[str, Any] = {
        "schedulerName": fid.SCHEDULER_NAME,
        "terminationGracePeriodSeconds": 0,
        "containers": [
            {
                "name": "c",
                "image": "registry.local/openb:1",
                "resources": {"requests": requests, **({"limits": limits} if limits else {})},
            }
        ],
    }
    if pod.gpu_products:
        term = {"key": wk.LABEL_GPU_PRODUCT, "operator": "In", "values": list(pod.gpu_products)}
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [term]}]
                }
            }
        }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def real_run(kube: Kube, watch: Outcomes, pods: list[Pod], timeout: float) -> list[str | None]:
    """Create the pods one at a time; each waits for its bind or its unschedulable mark."""
    watch.reset()
    out: list[str | None] = []
    for i, pod in enumerate(pods):
        name = f"p{i:04d}"
        kube.create(PODS.path(namespace=NS), pod_body(name, pod))
        deadline = time.monotonic() + timeout
        while name not in watch.node and name not in watch.unschedulable:
            if time.monotonic() > deadline:
                raise SystemExit(f"{name}: neither bound nor unschedulable after {timeout:.0f}s")
            time.sleep(0.002)
        out.append(watch.node.get(name))
    return out


def clear_pods(kube: Kube) -> None:
    """Delete every pod of the bench namespace at once and wait until they are gone."""
    kube.request(
        "DELETE",
        PODS.path(namespace=NS),
        body={"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0},
    )
    while kube.list(PODS.path(namespace=NS), limit=1)["items"]:
        time.sleep(0.2)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--trace", default=str(DEFAULT_PODS), help="openb pod list CSV")
    ap.add_argument("--node-list", default=str(DEFAULT_NODES), help="openb node list CSV")
    ap.add_argument("--nodes", type=int, default=80, help="nodes (under 100: all are scored)")
    ap.add_argument("--stop-pct", type=float, default=105.0)
    ap.add_argument("--runs", type=int, default=3, help="real runs per configuration")
    ap.add_argument("--sim-seeds", type=int, default=30)
    ap.add_argument("--pod-timeout", type=float, default=30.0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    load = LoadSampler()
    load.start()

    every = openb_nodes(Path(args.node_list))
    specs = every[:: max(1, len(every) // args.nodes)][: args.nodes]
    nodes = fid.node_infos(specs)
    cap = sum(n.gpu_count for n in nodes) * MILLI
    pods = fid.whole_gpu_workload([t.pod for t in load_openb_pods(args.trace)], cap, args.stop_pct)
    log(f"{len(nodes)} nodes, {cap // MILLI} GPUs, {len(pods)} pods")

    result: dict[str, Any] = {}
    for key, policy in CONFIGS.items():
        sims = [fid.simulate(nodes, pods, policy, s) for s in range(args.sim_seeds)]
        figs = [fid.figures(pods, [n is not None for n in r], cap) for r in sims]
        result[key] = {
            "sim": {
                "window_pct": fid.summary([f.window_pct for f in figs]),
                "final_pct": fid.summary([f.final_pct for f in figs]),
                "failed_pods": fid.summary([f.failed for f in figs]),
            },
            "config": fid.scheduler_config(profile(policy)),
        }
        log(f"sim {policy}: {result[key]['sim']['window_pct']}")

    cluster = LocalCluster("bench-fidelity")
    cluster.down(purge=True)
    kubeconfig = cluster.up()
    kube = Kube.connect(str(kubeconfig), qps_pool=8)
    api = lk.api_client(kubeconfig)
    lk.create_nodes(api, specs)
    lk.wait_nodes_ready(api, [s.name for s in specs], 300)
    kube.create(
        NAMESPACES.path(), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
    )
    while not kube.get(f"/api/v1/namespaces/{NS}/serviceaccounts/default"):
        time.sleep(0.2)
    watch = Outcomes(kube)
    watch.start()
    figs: dict[str, list[Any]] = {k: [] for k in CONFIGS}
    checks: dict[str, list[Any]] = {k: [] for k in CONFIGS}
    try:
        # The two configurations alternate run by run, so a neighbour's load falls on both.
        for run in range(args.runs):
            for key, policy in CONFIGS.items():
                cluster.start_scheduler(config=result[key]["config"])  # returns once ready
                started = time.perf_counter()
                real = real_run(kube, watch, pods, args.pod_timeout)
                figs[key].append(fid.figures(pods, [n is not None for n in real], cap))
                checks[key].append(fid.agreement(nodes, pods, real, policy))
                log(
                    f"real {key} run {run}: {figs[key][-1]} {checks[key][-1]} "
                    f"({time.perf_counter() - started:.0f}s, {describe(load.summary())})"
                )
                clear_pods(kube)
                cluster.stop_scheduler()
        for key in CONFIGS:
            f, c = figs[key], checks[key]
            result[key]["real"] = {
                "window_pct": fid.summary([x.window_pct for x in f]),
                "final_pct": fid.summary([x.final_pct for x in f]),
                "failed_pods": fid.summary([x.failed for x in f]),
                "decisions": sum(x.decisions for x in c),
                "decisions_matching": sum(x.matching for x in c),
                "mean_tied_nodes": round(sum(x.mean_ties for x in c) / len(c), 2),
                "first_mismatch": next((x.first_mismatch for x in c if x.first_mismatch), ""),
            }
    finally:
        watch.stop = True
        kube.close()
        cluster.down()

    diffs = [
        abs(result[k]["real"][m]["mean"] - result[k]["sim"][m]["mean"])
        for k in CONFIGS
        for m in ("window_pct", "final_pct")
    ]
    out = {
        "bench": "baseline_fidelity",
        "pods": len(pods),
        "nodes": len(nodes),
        "gpus": cap // MILLI,
        "runs": args.runs,
        "sim_seeds": args.sim_seeds,
        "default_real_pct": result["default"]["real"]["window_pct"]["mean"],
        "default_sim_pct": result["default"]["sim"]["window_pct"]["mean"],
        "binpack_real_pct": result["binpack"]["real"]["window_pct"]["mean"],
        "binpack_sim_pct": result["binpack"]["sim"]["window_pct"]["mean"],
        "detail": {k: {"real": v["real"], "sim": v["sim"]} for k, v in result.items()},
        "load_avg": load.summary(stop=True),
        "seconds": round(time.perf_counter() - t0, 1),
        "max_abs_diff_pts": round(max(diffs), 3),
    }
    report(out["load_avg"])
    print(orjson.dumps(out).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
