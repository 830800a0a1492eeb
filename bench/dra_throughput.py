"""Benchmark: GPUs through DRA, Ballast against kube-scheduler's DynamicResources on the same slices.

One local cluster with ``--nodes`` KWOK nodes of 8 H100s that exist only as
DRA devices (no ``nvidia.com/gpu``): the test driver
(``ballast.localcluster.dradriver``) publishes NVIDIA-shaped ResourceSlices
for them. Each side runs alone (the other scheduler is stopped), in a fresh
namespace that is deleted afterwards (its claims with it, so the devices are
free again); ``--rounds`` alternates which side goes first.

``--mode throughput``: ``--pods`` pods, each with its own ResourceClaim for
one GPU (class ``gpu.nvidia.com``), wait with no scheduler running; the
scheduler starts and the time until every pod is bound gives pods per second
(claim allocation, reservation and bind included). ratio = Ballast's pods/s
over kube-scheduler's.

``--mode fragmentation``: the nodes also publish seven 1g MIG devices per GPU
(with shared counters, so neither scheduler can give out a GPU and one of its
partitions together). The same seeded backlog of claims, 40% one MIG device,
30% one GPU, 15% two, 10% four, 5% eight (1.5 times the cluster's GPUs by
default), is placed by each scheduler until nothing more binds. A one-shot fill of an
empty cluster fragments nothing (both sides fill it), so then comes churn:
the pods still waiting go, a seeded half of the first wave's names finish
(pod and claim deleted: the same names on both sides, wherever each side put
them), and a second seeded wave of the mix's multi-GPU claims (2, 4 and 8
GPUs in its proportions; the cluster's GPUs in demand) arrives into the
holes: what the first wave's placement left whole is what they can use. Reported per side after the second wave: GPU
capacity allocated (milli-GPUs; a 1g device is 125), whole GPUs with nothing
allocated while pods wait (``unallocated_gpus``), GPUs holding only MIG
devices, pods left waiting and the whole GPUs they ask for, and the same
after the first wave (``first_*``). ratio = Ballast's allocated GPU capacity
over kube-scheduler's after the churn (higher: less left stranded).

The last line is one JSON object with the ratio, the counts behind it and the
machine's load average while each side ran.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from ballast.api import wellknown as wk
from ballast.kube.crds import ensure_crds
from ballast.kube.raw import NAMESPACES, NODES, PODS, Kube
from ballast.localcluster import dradriver
from ballast.localcluster import kube as lk
from ballast.localcluster.ballast_procs import BallastProcess
from ballast.localcluster.cluster import LocalCluster
from ballast.localcluster.nodes import profile_nodes
from ballast.scheduler.dra_writes import RESOURCECLAIMS
from machine import LoadSampler, describe

KINDS = (("mig", 40), ("gpu1", 30), ("gpu2", 15), ("gpu4", 10), ("gpu8", 5))
MILLI = {"mig": 125, "gpu1": 1000, "gpu2": 2000, "gpu4": 4000, "gpu8": 8000}


def claim_body(ns: str, name: str, kind: str) -> dict[str, Any]:
    cls = "mig.nvidia.com" if kind == "mig" else "gpu.nvidia.com"
    count = 1 if kind == "mig" else int(kind[3:])
    req = {"name": "gpu", "exactly": {"deviceClassName": cls, "count": count}}
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"devices": {"requests": [req]}}}  # fmt: skip


def pod_body(ns: str, name: str, scheduler: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "schedulerName": scheduler,
            "terminationGracePeriodSeconds": 0,
            "resourceClaims": [{"name": "gpu", "resourceClaimName": name}],
            "containers": [{"name": "c", "image": "registry.local/x:1", "resources": {
                "requests": {"cpu": "10m", "memory": "16Mi"}, "claims": [{"name": "gpu"}]}}],
        },
    }  # fmt: skip


def workload(n: int, mode: str, seed: int) -> list[str]:
    if mode == "throughput":
        return ["gpu1"] * n
    rng = random.Random(seed)
    table = [k for k, w in KINDS for _ in range(w)]
    return [rng.choice(table) for _ in range(n)]


def setup(args: argparse.Namespace) -> tuple[LocalCluster, Kube]:
    cluster = LocalCluster(args.cluster_name)
    cluster.down(purge=True)
    kubeconfig = cluster.up()
    kube = Kube.connect(str(kubeconfig), qps_pool=32)
    api = lk.api_client(kubeconfig)
    specs = profile_nodes("h100", args.nodes, seed=1, prefix="dra")
    lk.create_nodes(api, specs)
    lk.wait_nodes_ready(api, [s.name for s in specs], 300)
    labels = {dradriver.LABEL_GPUS: "8"}
    if args.mode == "fragmentation":
        labels[dradriver.LABEL_MIG] = "true"
    zero = {wk.GPU_RESOURCE: "0"}
    for s in specs:  # DRA only: no extended resource
        kube.patch(NODES.path(s.name), {"metadata": {"labels": labels}})
        kube.patch(NODES.path(s.name, sub="status"),
                   {"status": {"capacity": zero, "allocatable": zero}})  # fmt: skip
    dradriver.sync(kube)
    ensure_crds(kube)
    return cluster, kube


def namespace(kube: Kube, ns: str) -> None:
    kube.create(NAMESPACES.path(), {"metadata": {"name": ns}})
    while not kube.get(f"/api/v1/namespaces/{ns}/serviceaccounts/default"):
        time.sleep(0.2)


def bound_count(kube: Kube, ns: str) -> int:
    pods = kube.list(PODS.path(namespace=ns))["items"]
    return sum(1 for p in pods if (p.get("spec") or {}).get("nodeName"))


def run_side(args: argparse.Namespace, cluster: LocalCluster, kube: Kube, side: str,
             kinds: list[str], tag: str, load: LoadSampler) -> dict[str, Any]:  # fmt: skip
    ns = f"dra-{side[:4]}-{tag}"
    namespace(kube, ns)
    scheduler = "ballast" if side == "ballast" else "default-scheduler"
    names = [f"p-{i}" for i in range(len(kinds))]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda a: kube.create(RESOURCECLAIMS.path(namespace=ns),
                                            claim_body(ns, *a)), zip(names, kinds, strict=True)))  # fmt: skip
    for n in names:  # one by one: creation order is the queue order for both
        kube.create(PODS.path(namespace=ns), pod_body(ns, n, scheduler))
    mark = load.mark()
    proc = None
    t0 = time.monotonic()
    if side == "ballast":
        proc = BallastProcess("bench-dra-scheduler", ["--log-level", "WARNING", "scheduler",
                              "--kube-api-qps", str(args.qps), "--kube-api-burst",
                              str(args.burst)], cluster.kubeconfig, cluster.layout.root)  # fmt: skip
        proc.start()
    else:
        cluster.start_scheduler(config={"clientConnection": {"qps": args.qps,
                                                             "burst": args.burst}})  # fmt: skip
    want = len(names) if args.mode == "throughput" else None
    last, last_bind = settle(args, kube, ns, t0, want)
    out: dict[str, Any] = {"bound": last, "pods": len(names)}
    out["seconds"] = round(last_bind - t0, 2)
    out["pods_per_s"] = round(last / (last_bind - t0), 1) if last > 0 else 0.0
    if args.mode == "fragmentation":
        kind_of = {n: k for n, k in zip(names, kinds, strict=True)}
        first = fragmentation(kube, ns, kind_of, args.nodes)
        out.update({f"first_{k}": v for k, v in first.items()})
        kind_of.update(churn(args, kube, ns, names, scheduler))
        settle(args, kube, ns, time.monotonic(), None)
        out.update(fragmentation(kube, ns, kind_of, args.nodes))
    out["load_avg"] = load.summary(since=mark)
    if proc is not None:
        alive = proc.alive()
        proc.stop()
        if not alive:
            raise SystemExit(f"the Ballast scheduler died:\n{proc.log_tail()}")
    else:
        cluster.stop_scheduler()
    kube.delete(NAMESPACES.path(ns))
    while kube.list(RESOURCECLAIMS.path(namespace=ns))["items"]:
        time.sleep(0.5)
    print(f"   {side} {tag}: {out} ({describe(out['load_avg'])})", file=sys.stderr, flush=True)
    return out


def settle(args: argparse.Namespace, kube: Kube, ns: str, t0: float,
           want: int | None) -> tuple[int, float]:  # fmt: skip
    """Wait until ``want`` pods are bound, or no bind came for ``--stall`` seconds."""
    last, changed, last_bind = -1, time.monotonic(), t0
    while time.monotonic() - t0 < args.timeout:
        n = bound_count(kube, ns)
        if n != last:
            last, changed = n, time.monotonic()
            last_bind = changed
        if (want is not None and n >= want) or (n > 0 and time.monotonic() - changed > args.stall):
            break
        time.sleep(0.25)
    return last, last_bind


def _remove(kube: Kube, ns: str, names: list[str]) -> None:
    """Delete pods and their claims, and wait until the claims are gone (devices free)."""
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda n: kube.delete(PODS.path(n, namespace=ns)), names))
        list(pool.map(lambda n: kube.delete(RESOURCECLAIMS.path(n, namespace=ns)), names))
    gone = set(names)
    while any(c["metadata"]["name"] in gone
              for c in kube.list(RESOURCECLAIMS.path(namespace=ns))["items"]):  # fmt: skip
        time.sleep(0.25)


def churn(args: argparse.Namespace, kube: Kube, ns: str, names: list[str],
          scheduler: str) -> dict[str, str]:  # fmt: skip
    """Waiting pods go, a seeded half of the first wave ends, a second wave arrives."""
    pods = kube.list(PODS.path(namespace=ns))["items"]
    waiting = [p["metadata"]["name"] for p in pods if not p["spec"].get("nodeName")]
    rng = random.Random(args.seed * 1009 + 1)
    ending = sorted(rng.sample(names, len(names) // 2))
    _remove(kube, ns, sorted(set(waiting) | set(ending)))
    big = [(k, w) for k, w in KINDS if MILLI[k] >= 2000]
    rng2 = random.Random(args.seed * 1009 + 2)
    table = [k for k, w in big for _ in range(w)]
    mean = sum(w * MILLI[k] for k, w in big) / sum(w for _, w in big) / 1000
    second = [rng2.choice(table) for _ in range(round(args.nodes * 8 / mean))]
    fresh = [f"q-{i}" for i in range(len(second))]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda a: kube.create(RESOURCECLAIMS.path(namespace=ns),
                                            claim_body(ns, *a)), zip(fresh, second, strict=True)))  # fmt: skip
    for n in fresh:
        kube.create(PODS.path(namespace=ns), pod_body(ns, n, scheduler))
    return dict(zip(fresh, second, strict=True))


def fragmentation(kube: Kube, ns: str, kind_of: dict[str, str], nodes: int) -> dict[str, Any]:
    claims = {c["metadata"]["name"]: c for c in
              kube.list(RESOURCECLAIMS.path(namespace=ns))["items"]}  # fmt: skip
    used: dict[tuple[str, str], int] = {}  # (pool, gpu) → milli
    for c in claims.values():
        for r in (
            ((c.get("status") or {}).get("allocation") or {}).get("devices", {}).get("results", [])
        ):
            gpu = "-".join(r["device"].split("-")[:2])
            used[(r["pool"], gpu)] = used.get((r["pool"], gpu), 0) + (
                125 if "-mig-" in r["device"] else 1000
            )
    pods = kube.list(PODS.path(namespace=ns))["items"]
    waiting = [p["metadata"]["name"] for p in pods if not p["spec"].get("nodeName")]
    total = nodes * 8
    return {
        "allocated_milli": sum(used.values()),
        "unallocated_gpus": total - len(used) if waiting else 0,
        "mig_only_gpus": sum(1 for v in used.values() if v < 1000),
        "waiting": len(waiting),
        "waiting_whole_gpus": sum(MILLI[kind_of[w]] for w in waiting if kind_of[w] != "mig")
        // 1000,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=["throughput", "fragmentation"], default="throughput")
    p.add_argument("--nodes", type=int, default=16)
    p.add_argument("--pods", type=int, help="pods (default: 100, or 1.3x capacity)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--qps", type=float, default=200)
    p.add_argument("--burst", type=int, default=400)
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--stall", type=float, default=15, help="seconds without a bind that end a side")
    p.add_argument("--cluster-name", default="bench-dra")
    args = p.parse_args()
    if args.pods is None:
        mean = sum(w * MILLI[k] for k, w in KINDS) / sum(w for _, w in KINDS) / 1000
        args.pods = 100 if args.mode == "throughput" else round(1.5 * args.nodes * 8 / mean)
    load = LoadSampler()
    load.start()
    runs: dict[str, list[dict[str, Any]]] = {"ballast": [], "kube-scheduler": []}
    cluster = LocalCluster(args.cluster_name)
    try:
        cluster, kube = setup(args)
        for r in range(args.rounds):
            order = ["ballast", "kube-scheduler"] if r % 2 == 0 else ["kube-scheduler", "ballast"]
            kinds = workload(args.pods, args.mode, args.seed + r)
            for side in order:
                runs[side].append(run_side(args, cluster, kube, side, kinds, f"r{r}", load))
    finally:
        cluster.down()
    key = "pods_per_s" if args.mode == "throughput" else "allocated_milli"

    def med(side: str, k: str) -> float:
        return float(statistics.median(x[k] for x in runs[side]))

    b, k = med("ballast", key), med("kube-scheduler", key)
    result: dict[str, Any] = {"bench": f"dra_{args.mode}", "nodes": args.nodes,
                              "gpus": args.nodes * 8, "pods": args.pods, "rounds": args.rounds,
                              "ratio": round(b / k, 3) if k else None}  # fmt: skip
    fields = ["bound", "pods_per_s", "seconds"]
    if args.mode == "fragmentation":
        fields += [f"{pre}{f}" for pre in ("first_", "") for f in (
            "allocated_milli", "unallocated_gpus", "mig_only_gpus", "waiting",
            "waiting_whole_gpus")]  # fmt: skip
    for side, short in (("ballast", "ballast"), ("kube-scheduler", "kube")):
        for f in fields:
            result[f"{f}_{short}"] = med(side, f)
        result[f"load_avg_{short}"] = {
            "mean": round(statistics.mean(x["load_avg"]["mean"] for x in runs[side]), 2),
            "max": max(x["load_avg"]["max"] for x in runs[side]),
            "cores": runs[side][0]["load_avg"]["cores"],
        }
    print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
