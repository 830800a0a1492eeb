"""Benchmark: Ballast's scheduler against kube-scheduler on the same local cluster.

For each scheduler in turn, on a freshly recreated local control plane with
``--nodes`` KWOK nodes of 8 GPUs and the same client QPS and burst
(``--qps``/``--burst``):

1. latency: the scheduler starts and, once its ``/readyz`` answers 200
   (its informers have listed; the seconds until then are reported as
   ``*_start_to_ready_s``), ``--stream`` pods arrive at ``--rate`` per
   second; each is timed from its create call returning to the watch
   showing it bound;
2. throughput: the scheduler stops, ``--pods`` single-GPU pods are created,
   then the scheduler starts again and the time until every pod that fits
   is bound gives pods per second. Measuring a backlog keeps the benchmark
   client's own create rate (it competes for the same two cores) out of
   the figure; the informers' initial list is inside it, for both;
3. for Ballast only: the burst's pods belong to an Offline class (grace
   period 0), so the cluster is now full of Offline pods; ``--interactive``
   Interactive pods then arrive at 10/s and their create-to-bound p99 is
   the latency of placement through preemption.

``--mix`` replaces the uniform pods by a mix: 60% single-GPU pods of which
half name a model cached on some nodes, 20% 2-GPU and 10% 4-GPU pods, and
10% half-GPU shares (``ballast.dev/gpu-milli: 500``; kube-scheduler does not
understand shares, so for it these pods ask for no GPU at all).

Each scheduler's cost comes from its own process accounting, over the
process that drains the backlog (its start, initial lists and every bind):
CPU seconds (``utime + stime`` of ``/proc/<pid>/stat``) per bound pod at the
end of the drain, and peak resident memory (``VmHWM``) at the end of its run.
What that CPU is spent on shows in each scheduler's own count of scheduling
attempts over the drain, by result (``*_attempts``, from
``ballast_scheduler_attempts_total`` and kube-scheduler's
``scheduler_schedule_attempts_total``), and per bound pod: a pod that does
not fit and is tried again costs a whole filtering pass each time.

``--rounds N`` repeats the comparison N times, alternating which scheduler
goes first (ballast, kube-scheduler; kube-scheduler, ballast; ...), and
reports each figure's median over the rounds, so that a neighbour's load
cannot favour one side. The last line is one JSON object, with the machine's
1-minute load average while each side ran (``*_load_avg``: mean, max and
cores, over all its rounds). Goals (not a test): ratio >= 1.0, CPU seconds
per bound pod no more than kube-scheduler's, create-to-bound p99 under 1 s,
Interactive p99 under 5 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson

from ballast.api import wellknown as wk
from ballast.kube.crds import ensure_crds
from ballast.kube.raw import NAMESPACES, PODS, WORKLOADCLASSES, Kube
from ballast.localcluster import kube as lk
from ballast.localcluster.ballast_procs import BallastProcess
from ballast.localcluster.cluster import LocalCluster
from ballast.localcluster.nodes import profile_nodes
from ballast.localcluster.probe import wait_ok
from ballast.localcluster.processes import free_ports
from ballast.placement.profiles import profile
from ballast.sim.fidelity import scheduler_config
from machine import LoadSampler, counter_by_label, cpu_seconds, describe, status_mb

NS = "bench"


def baseline_config(name: str) -> dict[str, Any]:
    """kube-scheduler's configuration: none for kube-default (stock), the profile's otherwise."""
    return {} if name == "kube-default" else scheduler_config(profile(name))


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))]


class BindWatch(threading.Thread):
    """Records when each pod (by name) is first seen bound."""

    def __init__(self, kube: Kube) -> None:
        super().__init__(daemon=True)
        self.kube = kube
        self.bound: dict[str, float] = {}
        self.nominated: dict[str, float] = {}
        self.nominated_to: dict[str, str] = {}
        self.deleted = 0
        self.deleted_from: dict[str, list[float]] = {}  # node -> when pods bound there went
        self.relists = 0
        self.order: list[str] = []  # names in the order they were first seen bound
        self.stop = False

    def run(self) -> None:
        try:
            self._run()
        except Exception:
            if not self.stop:  # the cluster going down at the end is expected
                raise

    def _run(self) -> None:
        rv = self.kube.list(PODS.path(namespace=NS), limit=1)["metadata"]["resourceVersion"]
        while not self.stop:
            for kind, obj in self.kube.watch(
                PODS.path(namespace=NS), resource_version=rv, timeout_seconds=30
            ):
                if kind == "ERROR":  # 410 Gone: the events it fell behind on are lost
                    rv = self._relist()
                    break
                rv = obj["metadata"]["resourceVersion"]
                node = (obj.get("spec") or {}).get("nodeName")
                if kind == "DELETED":
                    self.deleted += 1
                    if node:
                        self.deleted_from.setdefault(node, []).append(time.monotonic())
                elif node:
                    self._bound(obj["metadata"]["name"], time.monotonic())
                elif nominated := (obj.get("status") or {}).get("nominatedNodeName"):
                    name = obj["metadata"]["name"]
                    self.nominated.setdefault(name, time.monotonic())
                    self.nominated_to.setdefault(name, nominated)
                if self.stop:
                    break

    def _bound(self, name: str, at: float) -> None:
        if name not in self.bound:
            self.bound[name] = at
            self.order.append(name)

    def _relist(self) -> str:
        """List every pod; binds the watch missed count from their PodScheduled time.

        A watch that falls too far behind (a loaded API server at 50,000 pods)
        ends with 410 Gone. Resuming from a fresh resourceVersion alone would
        never count the pods bound in between, and a drain would seem to stall.
        """
        self.relists += 1
        offset = time.monotonic() - time.time()
        items, rv = self.kube.list_all(PODS.path(namespace=NS), page_size=5000)
        for obj in items:
            if (obj.get("spec") or {}).get("nodeName"):
                self._bound(obj["metadata"]["name"], scheduled_at(obj, offset))
        return rv


def scheduled_at(pod: dict[str, Any], offset: float) -> float:
    """When a bound pod was bound, on the monotonic clock (``offset`` = monotonic - wall):
    its PodScheduled condition's time (1 s resolution), or now when it has none."""
    now = time.monotonic()
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("status") == "True":
            at = str(c.get("lastTransitionTime") or "")
            try:
                wall = dt.datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
            except ValueError:
                return now
            return min(now, wall + offset)
    return now


def pod_body(
    name: str, scheduler: str, kind: str, models: list[str], rng: random.Random, cls: str | None
) -> dict[str, Any]:
    ann: dict[str, str] = {}
    gpus = 1
    if kind == "multi2":
        gpus = 2
    elif kind == "multi4":
        gpus = 4
    elif kind == "share":
        gpus = 0
        ann[wk.ANNOTATION_GPU_MILLI] = "500"
    elif kind == "model":
        ann[wk.ANNOTATION_MODELS] = rng.choice(models)
    res: dict[str, Any] = {"requests": {"cpu": "10m", "memory": "16Mi"}}
    if gpus:
        res["requests"][wk.GPU_RESOURCE] = str(gpus)
        res["limits"] = {wk.GPU_RESOURCE: str(gpus)}
    labels = {wk.LABEL_CLASS: cls} if cls else {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "annotations": ann, "labels": labels},
        "spec": {
            "schedulerName": scheduler,
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": "registry.local/x:1", "resources": res}],
        },
    }


def kinds_for(n: int, mix: bool, rng: random.Random) -> list[str]:
    if not mix:
        return ["single"] * n
    table = ["single"] * 3 + ["model"] * 3 + ["multi2"] * 2 + ["multi4"] + ["share"]
    return [rng.choice(table) for _ in range(n)]


PROGRESS_S = 30.0  # a progress line on stderr this often during the long phases


def create_pods(kube: Kube, bodies: list[dict[str, Any]], threads: int = 16) -> dict[str, float]:
    created: dict[str, float] = {}
    shown = [time.monotonic()]

    def one(body: dict[str, Any]) -> None:
        kube.create(PODS.path(namespace=NS), body)
        now = time.monotonic()
        created[body["metadata"]["name"]] = now
        if now - shown[0] >= PROGRESS_S:
            shown[0] = now
            print(f"   created {len(created)} of {len(bodies)} pods", file=sys.stderr, flush=True)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, bodies))
    return created


def wait_bound(
    watch: BindWatch, names: list[str], want: int, timeout: float, stall: float = 20.0
) -> None:
    """Until ``want`` of ``names`` are bound, or nothing new binds for ``stall`` seconds.

    The stall clock starts at the first bind: a scheduler that starts on a
    large backlog first lists every node and pod (tens of seconds at 50,000
    pods on 2 cores), and that is part of its drain time, not a stall.
    """
    deadline = time.monotonic() + timeout
    last, changed = -1, time.monotonic()
    shown = time.monotonic()
    # Counted from the binds seen since the last look: a walk of all 50,000 names
    # took 28 ms on the loaded machine, ten times a second, from the schedulers'
    # two cores.
    wanted, seen, n = set(names), 0, 0
    while time.monotonic() < deadline:
        new = watch.order[seen:]
        seen += len(new)
        n += sum(1 for x in new if x in wanted)
        if n >= want:
            return
        if time.monotonic() - shown >= PROGRESS_S:
            shown = time.monotonic()
            print(f"   bound {n} of {want} placeable pods", file=sys.stderr, flush=True)
        if n != last:
            last, changed = n, time.monotonic()
        elif n > 0 and time.monotonic() - changed > stall:
            return
        time.sleep(0.1)


def placeable(kinds: list[str], capacity: float, shares_count: bool) -> int:
    """How many of the pods can ever bind, in order (the burst may exceed the cluster)."""
    demand = {"single": 1.0, "model": 1.0, "multi2": 2.0, "multi4": 4.0, "share": 0.5}
    used, n = 0.0, 0
    for k in kinds:
        d = demand[k] if shares_count or k != "share" else 0.0
        if used + d <= capacity:
            used += d
            n += 1
    return n


def classes(kube: Kube) -> None:
    """An Offline class whose pods may be preempted at once, and an Interactive one."""
    for name, tier, extra in (
        ("bench-offline", "Offline", {"preemption": {"gracePeriodSeconds": 0}}),
        (
            "bench-chat",
            "Interactive",
            {"preemption": {"policy": "LowerTier", "preemptible": False}},
        ),
    ):
        kube.create(
            WORKLOADCLASSES.path(),
            {
                "apiVersion": "ballast.dev/v1alpha1",
                "kind": "WorkloadClass",
                "metadata": {"name": name},
                "spec": {"tier": tier, **extra},
            },
        )


class Runner:
    """Starts and stops the scheduler under test on the bench cluster."""

    def __init__(
        self, which: str, cluster: LocalCluster, kubeconfig: Path, args: argparse.Namespace
    ) -> None:
        self.which = which
        self.cluster = cluster
        self.args = args
        self.proc: BallastProcess | None = None
        self.metrics_port = free_ports(1)[0]
        if which == "ballast":
            self.proc = BallastProcess(
                "bench-scheduler",
                [
                    "--log-level",
                    "WARNING",
                    "scheduler",
                    "--kube-api-qps",
                    str(args.qps),
                    "--kube-api-burst",
                    str(args.burst),
                    "--metrics-port",
                    str(self.metrics_port),
                ],
                kubeconfig,
                cluster.layout.root,
            )

    def attempts(self) -> dict[str, float]:
        """The scheduler's own count of scheduling attempts, by result; {} when unreadable."""
        if self.proc is not None:
            url = f"http://127.0.0.1:{self.metrics_port}/metrics"
            return counter_by_label(url, "ballast_scheduler_attempts", "result")
        state = self.cluster.state
        if state is None:
            return {}
        url = f"https://127.0.0.1:{state.ports['kube-scheduler']}/metrics"
        return counter_by_label(url, "scheduler_schedule_attempts", "result")

    @property
    def scheduler_name(self) -> str:
        return "ballast" if self.which == "ballast" else "default-scheduler"

    @property
    def pid(self) -> int | None:
        """The running scheduler's process id (kube-scheduler's from the cluster's state)."""
        if self.proc is not None:
            return self.proc.pid
        state = self.cluster.state
        comp = state.components.get("kube-scheduler") if state else None
        return comp.pid if comp else None

    def start(self) -> None:
        if self.proc is not None:
            self.proc.start()
        else:
            self.cluster.start_scheduler(
                config={
                    **baseline_config(self.args.baseline),
                    "clientConnection": {"qps": self.args.qps, "burst": self.args.burst},
                }
            )

    def wait_ready(self, timeout: float = 300) -> None:
        """Until the scheduler's /readyz says its informers have listed.

        ``LocalCluster.start_scheduler`` already waits so for kube-scheduler.
        """
        if (proc := self.proc) is not None:
            url = f"http://127.0.0.1:{self.metrics_port}/readyz"
            try:
                wait_ok(url, timeout, alive=proc.alive)
            except RuntimeError as exc:
                raise SystemExit(f"{exc}\n{proc.log_tail()}") from exc

    def stop(self) -> None:
        if self.proc is not None:
            if not self.proc.alive():
                raise SystemExit(f"the Ballast scheduler died:\n{self.proc.log_tail()}")
            self.proc.stop()
        else:
            self.cluster.stop_scheduler()


def run_one(args: argparse.Namespace, which: str) -> dict[str, Any]:
    load = LoadSampler()
    load.start()
    cluster = LocalCluster(args.cluster_name)
    cluster.down(purge=True)
    kubeconfig = cluster.up()
    kube = Kube.connect(str(kubeconfig), qps_pool=32)
    api = lk.api_client(kubeconfig)
    specs = profile_nodes("h100", args.nodes, seed=1, prefix="bench")
    lk.create_nodes(api, specs)
    # 300 s was sometimes too short at 5,000 nodes: 300 s up to 2,500 nodes, then 0.12 s
    # a node. A run on nodes that are not all Ready would measure something else.
    ready_timeout = max(300.0, 0.12 * args.nodes)
    if not lk.wait_nodes_ready(api, [s.name for s in specs], ready_timeout):
        raise SystemExit(f"{args.nodes} nodes were not all Ready after {ready_timeout:.0f} s")
    models = sorted({i.name for s in specs for i in s.cache.items if i.kind == "model"}) or ["none"]
    kube.create(
        NAMESPACES.path(), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
    )
    while not kube.get(f"/api/v1/namespaces/{NS}/serviceaccounts/default"):
        time.sleep(0.2)
    ensure_crds(kube)
    classes(kube)
    runner = Runner(which, cluster, kubeconfig, args)
    rng = random.Random(7)
    watch = BindWatch(kube)
    watch.start()
    result: dict[str, Any] = {}
    # Phase 1, latency: a steady stream of pods onto the empty cluster, once the
    # scheduler says it is ready (its informers have listed): this phase times
    # decisions, not start-up, which is reported on its own.
    t_start = time.monotonic()
    runner.start()
    runner.wait_ready()
    result["start_to_ready_s"] = round(time.monotonic() - t_start, 2)
    stream_kinds = kinds_for(args.stream, args.mix, rng)
    stream = [
        pod_body(f"s-{i}", runner.scheduler_name, k, models, rng, None)
        for i, k in enumerate(stream_kinds)
    ]
    created: dict[str, float] = {}
    for body in stream:
        kube.create(PODS.path(namespace=NS), body)
        created[body["metadata"]["name"]] = time.monotonic()
        time.sleep(1.0 / args.rate)
    wait_bound(watch, list(created), len(created), 120)
    lat = [watch.bound[n] - t for n, t in created.items() if n in watch.bound]
    result["create_to_bound_p50_s"] = round(pct(lat, 50), 3)
    result["create_to_bound_p99_s"] = round(pct(lat, 99), 3)
    print(f"   latency phase: {result}", file=sys.stderr, flush=True)
    runner.stop()
    # Phase 2, throughput: the burst waits with no scheduler running, then it starts.
    kinds = kinds_for(args.pods, args.mix, rng)
    bodies = [
        pod_body(f"p-{i}", runner.scheduler_name, k, models, rng, "bench-offline")
        for i, k in enumerate(kinds)
    ]
    names = [b["metadata"]["name"] for b in bodies]
    create_pods(kube, bodies)
    used = sum(
        {"single": 1, "model": 1, "multi2": 2, "multi4": 4, "share": 0.5}[k] for k in stream_kinds
    )
    want = placeable(kinds, args.nodes * 8 - used, shares_count=which == "ballast")
    t0 = time.monotonic()
    runner.start()
    wait_bound(watch, names, want, args.timeout)
    pid = runner.pid
    cpu = cpu_seconds(pid) if pid else None
    # Attempts per bound pod: what the CPU per pod is spent on (retries of pods that do not fit).
    attempts = runner.attempts()
    bound = [watch.bound[n] for n in names if n in watch.bound]
    drain_s = (max(bound) - t0) if bound else float("nan")
    result.update({"bound": len(bound), "placeable": want, "drain_seconds": round(drain_s, 2)})
    result["watch_relists"] = watch.relists
    if attempts:
        result["attempts"] = {k: int(v) for k, v in sorted(attempts.items())}
        result["attempts_per_bound_pod"] = (
            round(sum(attempts.values()) / len(bound), 2) if bound else None
        )
    result["pods_per_s"] = round(len(bound) / drain_s, 1) if bound else 0.0
    if cpu is not None and bound:
        result["cpu_seconds"] = round(cpu, 2)
        result["cpu_ms_per_pod"] = round(1000 * cpu / len(bound), 3)
    print(f"   throughput phase: {result}", file=sys.stderr, flush=True)
    if which == "ballast" and args.interactive:
        result["interactive_bound_p99_s_under_full_cluster"] = interactive_probe(args, kube, watch)
    if (pid := runner.pid) is not None:
        result["scheduler_rss_mb"] = round(status_mb(pid, "VmRSS") or 0, 1)
        result["scheduler_peak_rss_mb"] = round(status_mb(pid, "VmHWM") or 0, 1)
    runner.stop()
    watch.stop = True
    kube.close()
    cluster.down()  # logs stay for a look (the next run purges them)
    result["load_avg"] = load.summary(stop=True)
    print(f"   {which}: {describe(result['load_avg'])}", file=sys.stderr, flush=True)
    return result


def interactive_probe(args: argparse.Namespace, kube: Kube, watch: BindWatch) -> float:
    """With the cluster full of Offline pods, time Interactive pods through preemption."""
    rng = random.Random(3)
    made = {}
    for i in range(args.interactive):  # a steady trickle, as user-facing replicas arrive
        body = pod_body(f"chat-{i}", "ballast", "single", [], rng, "bench-chat")
        kube.create(PODS.path(namespace=NS), body)
        made[body["metadata"]["name"]] = time.monotonic()
        time.sleep(0.1)
    wait_bound(watch, list(made), len(made), 60, stall=60)
    lat = [watch.bound[n] - t for n, t in made.items() if n in watch.bound]
    to_nominated = [watch.nominated[n] - t for n, t in made.items() if n in watch.nominated]
    nominated_to_bound = [
        watch.bound[n] - watch.nominated[n]
        for n in made
        if n in watch.bound and n in watch.nominated
    ]
    # The victim's side: from the nomination to the first pod seen gone from that node.
    to_gone, gone_to_bound = [], []
    for n, at in watch.nominated.items():
        gone = [t for t in watch.deleted_from.get(watch.nominated_to[n], ()) if t >= at]
        if n in made and gone:
            to_gone.append(min(gone) - at)
            if n in watch.bound:
                gone_to_bound.append(watch.bound[n] - min(gone))
    print(
        f"   interactive: create->nominated p50 {pct(to_nominated, 50):.2f}s p99 {pct(to_nominated, 99):.2f}s; "
        f"nominated->bound p50 {pct(nominated_to_bound, 50):.2f}s p99 {pct(nominated_to_bound, 99):.2f}s "
        f"(nominated->a victim gone p50 {pct(to_gone, 50):.2f}s p99 {pct(to_gone, 99):.2f}s; "
        f"gone->bound p50 {pct(gone_to_bound, 50):.2f}s p99 {pct(gone_to_bound, 99):.2f}s); "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
        file=sys.stderr,
        flush=True,
    )
    lat += [60.0] * (len(made) - len(lat))  # never placed: counted as the 60 s timeout
    return round(pct(lat, 99), 3)


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One side's figures over its rounds: the median of each number, the load over all."""
    out: dict[str, Any] = {}
    for key in runs[0]:
        values = [r[key] for r in runs if isinstance(r.get(key), int | float)]
        if key != "load_avg" and values:
            out[key] = round(statistics.median(values), 3)
    if any("attempts" in r for r in runs):  # by result, one map per round
        out["attempts"] = [r.get("attempts") for r in runs]
    loads = [r["load_avg"] for r in runs]
    n = sum(x["samples"] for x in loads)
    out["load_avg"] = {
        "mean": round(sum(x["mean"] * x["samples"] for x in loads) / n, 2),
        "max": max(x["max"] for x in loads),
        "cores": loads[0]["cores"],
        "samples": n,
    }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--qps", type=float, default=1000.0, help="client QPS for both schedulers")
    parser.add_argument("--burst", type=int, default=2000, help="client burst for both schedulers")
    parser.add_argument("--mix", action="store_true")
    parser.add_argument(
        "--stream", type=int, default=500, help="pods for the create-to-bound latency phase"
    )
    parser.add_argument(
        "--rate", type=float, default=50.0, help="pods per second in the latency phase"
    )
    parser.add_argument(
        "--interactive",
        type=int,
        default=50,
        help="Interactive pods for the full-cluster probe (0: skip)",
    )
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--only", choices=["ballast", "kube-scheduler"])
    parser.add_argument(
        "--baseline",
        choices=["kube-default", "kube-gpu-binpack"],
        default="kube-default",
        help="kube-scheduler's configuration: stock, or MostAllocated on nvidia.com/gpu",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="repeat both sides, alternating which goes first"
    )
    parser.add_argument("--cluster-name", default="bench-throughput")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {"ballast": [], "kube-scheduler": []}
    for r in range(args.rounds):
        order = ["ballast", "kube-scheduler"]
        for which in order if r % 2 == 0 else reversed(order):
            if args.only and which != args.only:
                continue
            print(f"== {which} (round {r + 1} of {args.rounds})", file=sys.stderr)
            runs[which].append(run_one(args, which))
            print(f"   {runs[which][-1]}", file=sys.stderr)
    results = {w: combine(rs) for w, rs in runs.items() if rs}
    b, k = results.get("ballast", {}), results.get("kube-scheduler", {})
    out = {
        "bench": "cluster_throughput",
        "nodes": args.nodes,
        "pods": args.pods,
        "mix": args.mix,
        "qps": args.qps,
        "burst": args.burst,
        "baseline": args.baseline,
        "ballast_pods_per_s": b.get("pods_per_s"),
        "kube_scheduler_pods_per_s": k.get("pods_per_s"),
        "ratio": round(b["pods_per_s"] / k["pods_per_s"], 3) if b and k else None,
        "ballast_bound": b.get("bound"),
        "kube_scheduler_bound": k.get("bound"),
        "ballast_create_to_bound_p50_s": b.get("create_to_bound_p50_s"),
        "ballast_create_to_bound_p99_s": b.get("create_to_bound_p99_s"),
        "kube_scheduler_create_to_bound_p99_s": k.get("create_to_bound_p99_s"),
        "ballast_start_to_ready_s": b.get("start_to_ready_s"),
        "kube_scheduler_start_to_ready_s": k.get("start_to_ready_s"),
        "interactive_bound_p99_s_under_full_cluster": b.get(
            "interactive_bound_p99_s_under_full_cluster"
        ),
        "ballast_drain_seconds": b.get("drain_seconds"),
        "kube_scheduler_drain_seconds": k.get("drain_seconds"),
        # Times the harness's own pod watch fell behind and listed again (410 Gone).
        "ballast_watch_relists": b.get("watch_relists"),
        "kube_scheduler_watch_relists": k.get("watch_relists"),
        # Each scheduler's own count of scheduling attempts, per bound pod and by result.
        "ballast_attempts_per_bound_pod": b.get("attempts_per_bound_pod"),
        "kube_scheduler_attempts_per_bound_pod": k.get("attempts_per_bound_pod"),
        "ballast_attempts": b.get("attempts"),
        "kube_scheduler_attempts": k.get("attempts"),
        "ballast_scheduler_rss_mb": b.get("scheduler_rss_mb"),
        "ballast_scheduler_peak_rss_mb": b.get("scheduler_peak_rss_mb"),
        "kube_scheduler_peak_rss_mb": k.get("scheduler_peak_rss_mb"),
        # Process accounting (/proc/<pid>/stat utime+stime) of the scheduler that drained.
        "ballast_cpu_ms_per_pod": b.get("cpu_ms_per_pod"),
        "kube_scheduler_cpu_ms_per_pod": k.get("cpu_ms_per_pod"),
        "cpu_per_pod_ratio": (
            round(b["cpu_ms_per_pod"] / k["cpu_ms_per_pod"], 3)
            if b.get("cpu_ms_per_pod") and k.get("cpu_ms_per_pod")
            else None
        ),
        "rounds": args.rounds,
        # The machine's 1-minute load average while each side ran (other work shares the cores).
        "ballast_load_avg": b.get("load_avg"),
        "kube_scheduler_load_avg": k.get("load_avg"),
    }
    print(orjson.dumps(out).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
