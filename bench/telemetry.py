"""Benchmark: what the node agent costs, and how fast a sick GPU is avoided.

On a local cluster (kube-apiserver, kwok) with the real Ballast scheduler,
two kwok nodes with 8 fake GPUs each get a real ``ballast agent`` over the
fake NVML library, both inventorying the same cache root of
``--cache-files`` files:

- **ours**: the agent as shipped (incremental cache scans, a record write
  only on a meaningful change or a heartbeat);
- **naive** (the baseline, run at the same time on the same machine): the
  same agent made to do what a simple exporter does, a full re-walk of the
  cache on every scan (``--cache-full-every 1``) and a record write on every
  collection (``--heartbeat`` = the interval).

Measured over ``--duration`` seconds of steady state (after a warm-up):
each agent's CPU (percent of one core, from /proc) and RSS, and its API
writes per minute (a watch on the GPUNodeTelemetry objects counts every
write). Collection time is timed in-process: ``--samples`` collections of 8
GPUs through pynvml over the same fake. Last, ``health_to_avoid_s``: with
GPUs 1-7 of our node held by a pod, an XID 79 on GPU 0, then one-GPU probe
pods until the scheduler refuses one as ``unhealthy`` instead of binding it
(each probe that binds is deleted): the time from the XID to that refusal.

The two agents run side by side over the same seconds, so a neighbour's
load falls on both. The machine's load average during the steady state is
printed and in the JSON (``load_avg``).

The last line is one JSON object. Goals (benchmark, not test): under 1% of
a core, under 60 MB RSS, at most one write per node per minute at steady
state, health to avoidance under two report intervals.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from ballast.agent.collector import Collector
from ballast.api import wellknown as wk
from ballast.clock import SystemClock
from ballast.kube.crds import ensure_crds
from ballast.kube.raw import GPUNODETELEMETRIES, NAMESPACES, PODS, TRANSPORT_ERRORS, Kube, KubeError
from ballast.localcluster import kube as lk
from ballast.localcluster.agents import NodeAgents
from ballast.localcluster.ballast_procs import BallastProcess
from ballast.localcluster.cluster import LocalCluster
from ballast.localcluster.fakegpu import ENV_FIXTURE, GPUFixture, build_fake_nvml
from ballast.localcluster.nodes import profile_nodes
from ballast.telemetry.nvml import Nvml
from machine import LoadSampler, report

NS = "bench-telemetry"
GPUS = 8
TICK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"== {msg}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def make_cache(root: Path, files: int) -> None:
    """A Hugging Face hub cache and a plain cache holding ``files`` files in all."""
    hub, plain = root / "hub", root / "plain"
    per_model = 50
    n = 0
    m = 0
    while n < files // 2:
        snap = hub / f"models--org--model-{m}" / "snapshots" / "rev0"
        blobs = hub / f"models--org--model-{m}" / "blobs"
        snap.mkdir(parents=True, exist_ok=True)
        blobs.mkdir(parents=True, exist_ok=True)
        for i in range(min(per_model, files // 2 - n)):
            blob = blobs / f"b{i}"
            blob.write_bytes(b"x" * 64)
            (snap / f"shard-{i}.safetensors").symlink_to(blob)
            n += 1
        m += 1
    d = 0
    while n < files:
        folder = plain / f"dataset-{d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(min(100, files - n)):
            (folder / f"part-{i}").write_bytes(b"y" * 64)
            n += 1
        d += 1


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class WriteCounter(threading.Thread):
    """Counts GPUNodeTelemetry writes per object (every ADDED/MODIFIED a watch sees)."""

    def __init__(self, kube: Kube) -> None:
        super().__init__(daemon=True)
        self.kube = kube
        self.writes: dict[str, int] = {}
        self.counting = False
        self.stop = False
        self.lock = threading.Lock()

    def run(self) -> None:
        rv = self.kube.list(GPUNODETELEMETRIES.path())["metadata"]["resourceVersion"]
        while not self.stop:
            try:
                for kind, obj in self.kube.watch(
                    GPUNODETELEMETRIES.path(), resource_version=rv, timeout_seconds=30
                ):
                    if kind == "ERROR":
                        rv = self.kube.list(GPUNODETELEMETRIES.path())["metadata"][
                            "resourceVersion"
                        ]
                        break
                    rv = obj["metadata"]["resourceVersion"]
                    if kind in ("ADDED", "MODIFIED") and self.counting:
                        with self.lock:
                            name = obj["metadata"]["name"]
                            self.writes[name] = self.writes.get(name, 0) + 1
            except (KubeError, *TRANSPORT_ERRORS):
                if self.stop:
                    return
                time.sleep(0.5)


def collect_times(library: Path, fixture: Path, samples: int) -> list[float]:
    """Wall time of ``samples`` collections of 8 GPUs through pynvml over the fake."""
    os.environ[ENV_FIXTURE] = str(fixture)
    collector = Collector(Nvml(str(library)), SystemClock())
    out = []
    for _ in range(samples):
        t = time.perf_counter()
        collector.collect()
        out.append(time.perf_counter() - t)
    return out


def bound_or_refused(kube: Kube, name: str, timeout: float = 20.0) -> tuple[str, str]:
    """("bound", node) or ("refused", message) for probe pod ``name``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = kube.get(PODS.path(name, NS)) or {}
        if (p.get("spec") or {}).get("nodeName"):
            return "bound", str(p["spec"]["nodeName"])
        for c in (p.get("status") or {}).get("conditions") or ():
            if c.get("type") == "PodScheduled" and c.get("reason") == "Unschedulable":
                return "refused", str(c.get("message") or "")
        time.sleep(0.05)
    return "timeout", ""


def probe(name: str, node: str, gpus: int, ids: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "schedulerName": "ballast",
        "nodeSelector": {"kubernetes.io/hostname": node},
        "tolerations": [{"operator": "Exists"}],
        "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "c", "image": "registry.local/x:1", "resources": {
            "limits": {wk.GPU_RESOURCE: str(gpus)}}}],
    }  # fmt: skip
    meta: dict[str, Any] = {"name": name, "namespace": NS}
    if ids is not None:
        spec.pop("schedulerName")
        spec["nodeName"] = node
        meta["annotations"] = {"ballast.dev/gpu-ids": ids}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def health_to_avoid(kube: Kube, agents: NodeAgents, node: str, interval: float) -> float | None:
    kube.create(PODS.path(namespace=NS), probe("holder", node, 7, ids="1,2,3,4,5,6,7"))
    time.sleep(2 * interval)  # the scheduler sees the holder; the record is current
    raised = time.monotonic()
    agents.fixture(node).raise_xid(0, 79)
    k = 0
    while time.monotonic() - raised < 60:
        name = f"probe-{k}"
        k += 1
        kube.create(PODS.path(namespace=NS), probe(name, node, 1))
        what, detail = bound_or_refused(kube, name)
        if what == "refused" and "unhealthy" in detail:
            return time.monotonic() - raised
        kube.delete(PODS.path(name, NS), grace_seconds=0)
        if what == "bound":
            while kube.get(PODS.path(name, NS)):
                time.sleep(0.05)
    return None


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--interval", type=float, default=10.0, help="agent report interval (its default, s)"
    )
    parser.add_argument("--cache-files", type=int, default=10_000)
    parser.add_argument(
        "--cache-interval", type=float, default=60.0, help="agent cache scan interval (its default)"
    )
    parser.add_argument("--duration", type=float, default=120.0, help="steady-state seconds")
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--samples", type=int, default=300, help="in-process collections timed")
    parser.add_argument("--keep", action="store_true", help="leave the bench cluster running")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ballast-bench-telemetry-"))
    log(f"building a cache root of {args.cache_files} files in {work}")
    make_cache(work / "cache", args.cache_files)
    library = build_fake_nvml()
    fx = GPUFixture.for_node(work / "inproc.gpus", "inproc", "NVIDIA-H100-80GB-HBM3", GPUS, 81559)
    log(f"timing {args.samples} in-process collections of {GPUS} GPUs")
    times = collect_times(library, fx.path, args.samples)

    cluster = LocalCluster("bench-telemetry")
    cluster.down(purge=True)
    kubeconfig = cluster.up()
    kube = Kube.connect(str(kubeconfig))
    ensure_crds(kube)
    kube.create(NAMESPACES.path(), {"apiVersion": "v1", "kind": "Namespace",
                                    "metadata": {"name": NS}})  # fmt: skip
    api = lk.api_client(kubeconfig)
    specs = profile_nodes("h100", 2, seed=3, prefix="tele")
    lk.create_nodes(api, specs)
    lk.wait_nodes_ready(api, [s.name for s in specs], 120)
    ours, naive = specs[0].name, specs[1].name
    scheduler = BallastProcess("scheduler", ["scheduler", "--metrics-port", "0"], kubeconfig,
                               cluster.layout.root)  # fmt: skip
    scheduler.start()
    counter = WriteCounter(kube)
    counter.start()
    roots = ["--cache-root", f"model={work / 'cache' / 'hub'}:hf",
             "--cache-root", f"dataset={work / 'cache' / 'plain'}",
             "--cache-interval", f"{args.cache_interval:g}"]  # fmt: skip
    fleet = NodeAgents(kubeconfig, cluster.layout.root, interval_s=args.interval,
                       heartbeat_s=60.0, extra_args=roots)  # fmt: skip
    baseline = NodeAgents(kubeconfig, cluster.layout.root, interval_s=args.interval,
                          heartbeat_s=args.interval,
                          extra_args=[*roots, "--cache-full-every", "1"])  # fmt: skip
    try:
        a = fleet.start_node(ours, specs[0].product, GPUS, specs[0].gpu_memory_mib)
        b = baseline.start_node(naive, specs[1].product, GPUS, specs[1].gpu_memory_mib)
        log(f"agents started; warming up {args.warmup:g}s")
        time.sleep(args.warmup)
        pids = {"ours": a.process.pid, "naive": b.process.pid}
        cpu0 = {k: cpu_seconds(p) for k, p in pids.items() if p}
        load = LoadSampler()
        load.start()
        counter.counting = True
        t0 = time.monotonic()
        rss: dict[str, list[float]] = {k: [] for k in pids}
        while time.monotonic() - t0 < args.duration:
            time.sleep(min(5.0, args.duration))
            for k, p in pids.items():
                if p:
                    rss[k].append(rss_mb(p))
            log(f"steady state {time.monotonic() - t0:.0f}/{args.duration:g}s")
        elapsed = time.monotonic() - t0
        counter.counting = False
        machine = load.summary(stop=True)
        cpu = {k: 100 * (cpu_seconds(p) - cpu0[k]) / elapsed for k, p in pids.items() if p}
        with counter.lock:
            writes = {k: counter.writes.get(n, 0) * 60 / elapsed
                      for k, n in (("ours", ours), ("naive", naive))}  # fmt: skip
        log("health to avoidance: XID 79 on GPU 0 of our node")
        avoid = health_to_avoid(kube, fleet, ours, args.interval)
    finally:
        counter.stop = True
        fleet.stop_all()
        baseline.stop_all()
        scheduler.stop()
        if not args.keep:
            cluster.down(purge=True)

    result = {
        "bench": "telemetry",
        "gpus": GPUS,
        "cache_files": args.cache_files,
        "report_interval_s": args.interval,
        "agent_cpu_core_pct": round(cpu["ours"], 3),
        "agent_rss_mb": round(max(rss["ours"]), 1),
        "collect_p50_ms": round(1000 * statistics.median(times), 3),
        "collect_p99_ms": round(1000 * percentile(times, 99), 3),
        "api_writes_per_node_per_min": round(writes["ours"], 2),
        "health_to_avoid_s": None if avoid is None else round(avoid, 2),
        "baseline": "same agent, full cache re-walk every scan and a write every collection",
        "baseline_cpu_core_pct": round(cpu["naive"], 3),
        "baseline_rss_mb": round(max(rss["naive"]), 1),
        "baseline_api_writes_per_node_per_min": round(writes["naive"], 2),
        "cpu_ratio": round(cpu["ours"] / cpu["naive"], 3) if cpu["naive"] else None,
        "writes_ratio": round(writes["ours"] / writes["naive"], 3) if writes["naive"] else None,
        "duration_s": round(elapsed, 1),
        "load_avg": machine,
    }
    report(machine)
    print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
