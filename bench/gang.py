"""Gang scheduling: Ballast against kube-scheduler's own gang support, on the same cluster.

    .venv/bin/python bench/gang.py [--nodes 4] [--jobs 24] [--repeat 1]

One local cluster with the Workload API on (``BALLAST_FEATURE_GATES=
GenericWorkload=true,WorkloadWithJob=true``): the Job controller gives every
Job a Workload and a PodGroup (gang, ``minCount`` = parallelism) and its pods
``spec.schedulingGroup``; kube-scheduler v1.37 runs its GangScheduling plugin.
Both schedulers get the same seeded stream of Indexed Jobs (gangs of 2-4
workers with 4 or 8 GPUs each) and single GPU pods, arriving over time on the
same KWOK GPU nodes, one side after the other (the order alternates when
repeated). A job "runs" for its duration once every pod is bound, then is
deleted.

Measured per side, from a watch of the pods: GPU-hours held by bound
members of groups that have not all started (idle: a worker cannot train
alone), the time from a group's creation to its last member bound (p50/p95;
a group that never started counts its wait until the side ended),
and deadlocks (groups with members bound that never start within
``--settle`` seconds after the stream ends). The simulator's figures for the
same stream (``ballast.sim.gangs``: all or nothing against pod by pod) come
with them. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from typing import Any

from ballast.api import wellknown as wk
from ballast.kube.crds import ensure_crds
from ballast.kube.raw import NAMESPACES, PODS, Kube, Resource
from ballast.localcluster import kube as lk
from ballast.localcluster.ballast_procs import BallastProcess
from ballast.localcluster.cluster import LocalCluster
from ballast.localcluster.components import FEATURE_GATES_ENV
from ballast.localcluster.kwokstages import RUN_FOR_ANNOTATION
from ballast.localcluster.nodes import profile_nodes
from ballast.localcluster.probe import wait_ok
from ballast.localcluster.processes import free_ports
from ballast.sim import gangs as simgangs
from machine import LoadSampler

JOBS = Resource("batch", "v1", "jobs", True)
GATES = "GenericWorkload=true,WorkloadWithJob=true"


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return 0.0
    s = sorted(xs)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


class Watch(threading.Thread):
    """Bound pods by job, from one pod watch: what the measures are computed from."""

    def __init__(self, kube: Kube, ns: str) -> None:
        super().__init__(daemon=True)
        self.kube, self.ns = kube, ns
        self.bound: dict[str, set[str]] = {}  # job -> bound pod names
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            items = self.kube.list(PODS.path(namespace=self.ns))["items"]
            with self.lock:
                self.bound = {}
                for p in items:
                    job = (p["metadata"].get("labels") or {}).get("bench.ballast.dev/job")
                    if (
                        job
                        and p["spec"].get("nodeName")
                        and not p["metadata"].get("deletionTimestamp")
                    ):
                        self.bound.setdefault(job, set()).add(p["metadata"]["name"])
            time.sleep(0.25)

    def count(self, job: str) -> int:
        with self.lock:
            return len(self.bound.get(job, ()))


def job_body(
    job: simgangs.GangJob, scheduler: str, side: str, speed: float
) -> tuple[Resource, dict[str, Any]]:
    res = {wk.GPU_RESOURCE: str(job.gpus), "cpu": "100m", "memory": "128Mi"}
    spec = {
        "schedulerName": scheduler,
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "w", "image": "registry.local/train:1",
                        "resources": {"limits": {wk.GPU_RESOURCE: str(job.gpus)}, "requests": res}}],
    }  # fmt: skip
    name = f"{side}-{job.name}"
    labels = {"bench.ballast.dev/job": name}
    # kwok completes the pod this long after it starts (operator/ballast/localcluster/kwokstages.py).
    ann = {RUN_FOR_ANNOTATION: f"{job.duration_s / speed:.1f}s"}
    if job.members == 1:
        return PODS, {"apiVersion": "v1", "kind": "Pod",
                      "metadata": {"name": name, "labels": labels, "annotations": ann},
                      "spec": spec}  # fmt: skip
    body = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"completionMode": "Indexed", "completions": job.members,
                     "parallelism": job.members, "backoffLimit": 0,
                     "scheduling": {"schedulingPolicy": {"gang": {}}},
                     "template": {"metadata": {"labels": labels, "annotations": ann},
                                  "spec": spec}}}  # fmt: skip
    return JOBS, body


def run_side(kube: Kube, side: str, scheduler: str, jobs: list[simgangs.GangJob],
             speed: float, settle: float) -> dict[str, Any]:  # fmt: skip
    ns = f"gang-{side}"
    kube.create(NAMESPACES.path(), {"apiVersion": "v1", "kind": "Namespace",
                                    "metadata": {"name": ns}})  # fmt: skip
    while not kube.get(f"/api/v1/namespaces/{ns}/serviceaccounts/default"):
        time.sleep(0.2)
    watch = Watch(kube, ns)
    watch.start()
    t0 = time.monotonic()
    created: dict[str, float] = {}
    started: dict[str, float] = {}
    idle_gpu_s = 0.0
    pending = sorted(jobs, key=lambda j: j.arrival_s)
    by_name = {f"{side}-{j.name}": j for j in jobs}
    last = time.monotonic()
    deadline_after_stream: float | None = None
    while True:
        now = time.monotonic()
        el = (now - t0) * speed  # stream time
        while pending and pending[0].arrival_s <= el:
            j = pending.pop(0)
            res, body = job_body(j, scheduler, side, speed)
            kube.create(res.path(namespace=ns), body)
            created[body["metadata"]["name"]] = now
        dt = now - last
        last = now
        for name in created:
            j = by_name[name]
            n = watch.count(name)
            if name not in started and n >= j.members:
                started[name] = now
            elif name not in started and j.members > 1:
                idle_gpu_s += n * j.gpus * dt * speed  # in stream seconds, like the simulator
        if not pending:
            if deadline_after_stream is None:
                deadline_after_stream = now + settle
            if len(started) == len(created) or now >= deadline_after_stream:
                break
        time.sleep(0.2)
    watch.stop.set()
    groups = [n for n in created if by_name[n].members > 1]
    # A group that never started counts its wait until the side ended (a lower
    # bound), so a side cannot improve its percentiles by leaving groups unstarted.
    end = time.monotonic()
    waits = [(started.get(n, end) - created[n]) * speed for n in groups]
    deadlocks = sum(1 for n in groups if n not in started and watch.count(n) > 0)
    kube.request("DELETE", NAMESPACES.path(ns))
    return {
        "groups": len(groups),
        "started": sum(1 for n in groups if n in started),
        "idle_gpu_hours_partial": round(idle_gpu_s / 3600, 3),
        "start_p50_s": round(pct(waits, 50), 1),
        "start_p95_s": round(pct(waits, 95), 1),
        "deadlocks": deadlocks,
        "not_started": sum(1 for n in groups if n not in started),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--jobs", type=int, default=24)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--gang-share", type=float, default=0.5)
    ap.add_argument("--gap", type=float, default=60.0, help="mean stream seconds between jobs")
    ap.add_argument("--speed", type=float, default=60.0, help="stream seconds per wall second")
    # Long enough for every group of the default stream to start on either side (at 60
    # s, six of nine had not, on both: the percentiles then measured the cut-off).
    ap.add_argument("--settle", type=float, default=240.0)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--cluster-name", default="bench-gang")
    args = ap.parse_args()
    jobs = simgangs.stream(args.seed, args.jobs, gang_share=args.gang_share,
                           mean_gap_s=args.gap, mean_duration_s=1200)  # fmt: skip
    sim = {m: simgangs.replay(jobs, simgangs.nodes(args.nodes), m) for m in simgangs.MODES}
    load = LoadSampler()
    load.start()
    os.environ[FEATURE_GATES_ENV] = GATES
    cluster = LocalCluster(args.cluster_name)
    cluster.down(purge=True)
    kubeconfig = cluster.up(with_scheduler=True)
    try:
        kube = Kube.connect(str(kubeconfig), qps_pool=16)
        served = kube.get("/apis/scheduling.k8s.io/v1beta1") or {}
        has_gangs = any(r.get("name") == "podgroups" for r in served.get("resources") or ())
        api = lk.api_client(kubeconfig)
        specs = profile_nodes("h100", args.nodes, seed=1, prefix="gang")
        lk.create_nodes(api, specs)
        lk.wait_nodes_ready(api, [s.name for s in specs], 120)
        ensure_crds(kube)
        port = free_ports(1)[0]
        proc = BallastProcess("bench-gang-scheduler", ["--log-level", "WARNING", "scheduler",
                              "--kube-api-qps", "0", "--metrics-port", str(port)],
                              kubeconfig, cluster.layout.root)  # fmt: skip
        proc.start()
        wait_ok(f"http://127.0.0.1:{port}/readyz", 120, alive=proc.alive)
        sides: dict[str, list[dict[str, Any]]] = {"ballast": [], "kube": []}
        order = ["ballast", "kube"]
        for r in range(args.repeat):
            for side in order if r % 2 == 0 else order[::-1]:
                sched = "ballast" if side == "ballast" else "default-scheduler"
                out = run_side(kube, f"{side}{r}", sched, jobs, args.speed, args.settle)
                print(f"  {side} run {r}: {out}", file=sys.stderr, flush=True)
                sides[side].append(out)
        if not proc.alive():
            raise SystemExit(f"the Ballast scheduler died:\n{proc.log_tail()}")
        proc.stop()
    finally:
        cluster.down(purge=True)

    def mean(side: str, key: str) -> float:
        xs = [float(o[key]) for o in sides[side]]
        return round(sum(xs) / len(xs), 3)

    result = {
        "bench": "gang",
        "groups": sides["ballast"][0]["groups"],
        "kube_gang_support": has_gangs,
        "idle_gpu_hours_partial_ballast": mean("ballast", "idle_gpu_hours_partial"),
        "idle_gpu_hours_partial_kube": mean("kube", "idle_gpu_hours_partial"),
        "start_p50_s_ballast": mean("ballast", "start_p50_s"),
        "start_p50_s_kube": mean("kube", "start_p50_s"),
        "start_p95_s_ballast": mean("ballast", "start_p95_s"),
        "start_p95_s_kube": mean("kube", "start_p95_s"),
        "start_p95_ratio": round(mean("ballast", "start_p95_s") / max(mean("kube", "start_p95_s"), 1e-9), 3),
        "deadlocks": sum(int(o["deadlocks"]) for o in sides["ballast"]),
        "deadlocks_kube": sum(int(o["deadlocks"]) for o in sides["kube"]),
        "not_started_ballast": sum(int(o["not_started"]) for o in sides["ballast"]),
        "not_started_kube": sum(int(o["not_started"]) for o in sides["kube"]),
        "sim": {m: {"idle_gpu_hours_partial": round(r.idle_gpu_hours_partial, 3),
                    "start_p95_s": round(r.start_pct(95), 1), "deadlocks": r.deadlocked}
                for m, r in sim.items()},
        "nodes": args.nodes,
        "jobs": args.jobs,
        "speed": args.speed,
        "load": load.summary(stop=True),
    }  # fmt: skip
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
