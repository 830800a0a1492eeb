"""Time one placement decision with every plugin on, on a synthetic cluster of N nodes.

The cluster repeats the ``mixed-128`` profile's node shapes (8-, 4- and 2-GPU
nodes of four models in four zones), fills it to about 65% of its GPUs with
openb-shaped pods, gives nodes fresh telemetry (a few stale, a few with an
unhealthy GPU), caches of 20 models, taints on a reserved pool, and a workload
mix window of 1,000 arrivals. Then it times ``Engine.decide`` for a stream of
pods: whole GPUs, GPU shares, CPU-only, with models, product alternatives,
node selectors and a spread-mode class, with the ``ballast`` profile.

Baseline, in the same run: the same engine with the ``kube-default``
profile (kube-scheduler's default scoring) decides each of the same pods on
the same snapshot. The two are interleaved pod by pod, in alternating order,
so a neighbour's load falls on both; ``ratio_p50`` is ballast / kube-default.

Prints progress to stderr and one JSON object as the last line:
{"bench": "decision_latency", "nodes": N, "p50_ms": ..., "p99_ms": ...,
"kube_default_p50_ms": ..., "ratio_p50": ..., "load_avg": {...}}
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from ballast.api.wellknown import LABEL_POOL, CacheInventory, CacheItem, GPUTelemetry, NodeTelemetry
from ballast.placement.engine import Engine
from ballast.placement.fragmentation import WorkloadMix
from ballast.placement.objects import (
    ClassPolicy,
    NodeInfo,
    Pod,
    PoolPolicy,
    ScoringPolicy,
    Taint,
    Toleration,
)
from ballast.placement.snapshot import Snapshot
from ballast.sim.cluster import PROFILES, profile_nodes
from machine import LoadSampler, report

NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
SHARES = (810, 470, 320, 650, 230, 460, 590, 160, 550, 220)


def build(n: int, seed: int) -> tuple[Snapshot, list[str]]:
    rng = random.Random(seed)
    base = profile_nodes("mixed-128")
    products = sorted({s.product for s in PROFILES["mixed-128"]})
    models = [f"model-{i:02d}" for i in range(20)]
    snap = Snapshot(mix=WorkloadMix(window=1000))
    for i in range(n):
        b = base[i % len(base)]
        labels = dict(b.labels)
        labels["kubernetes.io/hostname"] = f"node-{i:05d}"
        taints: tuple[Taint, ...] = ()
        if i % 10 == 0:
            labels[LABEL_POOL] = "serving"
            taints = (Taint(LABEL_POOL, "serving"),)
        age = 600 if i % 17 == 0 else rng.randint(0, 30)
        gpus = tuple(
            GPUTelemetry(
                g,
                rng.randint(0, b.gpu_memory_mib),
                b.gpu_memory_mib,
                rng.uniform(0, 100),
                throttled=rng.random() < 0.03,
                healthy=not (i % 53 == 0 and g == 0),
            )
            for g in range(b.gpu_count)
        )
        items = tuple(
            CacheItem("model", m, rng.randint(2, 16) * 10**9) for m in rng.sample(models, 4)
        )
        snap.add_node(
            NodeInfo(
                f"node-{i:05d}",
                b.gpu_count,
                b.gpu_memory_mib,
                b.gpu_product,
                b.cpu_milli,
                b.memory_mib,
                labels,
                taints,
                cache=CacheInventory(100 * 10**9, items),
                telemetry=NodeTelemetry(NOW - dt.timedelta(seconds=age), gpus),
            )
        )
    # Fill about 65% of the GPUs with openb-shaped pods, placed at random where they fit.
    cap = snap.capacity_milli()
    k = 0
    while snap.allocated_milli() < 0.65 * cap:
        k += 1
        pod = _pod(rng, k, products, models, train=True)
        snap.mix.observe(pod)
        for _ in range(8):
            r = rng.randrange(n)
            name = snap.names[r]
            gpus = _fit(snap, r, pod)
            if gpus is not None:
                snap.assume(pod, name, gpus, start_time=0.0, tier="Offline")
                break
    return snap, products


def _fit(snap: Snapshot, r: int, pod: Pod) -> tuple[int, ...] | None:
    free = snap.free[r]
    if pod.cpu_milli > snap.cpu_free[r] or pod.memory_mib > snap.mem_free[r]:
        return None
    if pod.gpus:
        idx = [g for g in range(int(snap.gpu_count[r])) if free[g] >= 1000][: pod.gpus]
        return tuple(idx) if len(idx) == pod.gpus else None
    if pod.gpu_milli:
        idx = [g for g in range(int(snap.gpu_count[r])) if free[g] >= pod.gpu_milli]
        return (idx[0],) if idx else None
    return ()


def _pod(rng: random.Random, k: int, products: list[str], models: list[str], train: bool) -> Pod:
    roll = rng.random()
    kw: dict[str, object] = {}
    if roll < 0.45:
        kw["gpu_milli"] = rng.choice(SHARES)
    elif roll < 0.9:
        kw["gpus"] = rng.choice((1, 1, 1, 1, 2, 4, 8))
    if not train:
        if rng.random() < 0.5:
            kw["models"] = (rng.choice(models),)
        if rng.random() < 0.3:
            kw["gpu_products"] = tuple(rng.sample(products, 2))
        if rng.random() < 0.2:
            kw["node_selector"] = {"topology.kubernetes.io/zone": f"zone-{rng.randrange(4)}"}
        kw["class_name"] = rng.choice(("batch", "batch", "chat", "pool"))
        kw["spread_key"] = "chat-app" if kw["class_name"] == "chat" else ""
        kw["tolerations"] = (
            (Toleration(LABEL_POOL, "Exists"),) if kw["class_name"] == "pool" else ()
        )
    return Pod(
        "bench",
        f"p{k}",
        cpu_milli=rng.choice((2000, 4000, 8000, 12000)),
        memory_mib=rng.choice((8192, 16384, 32768)),
        **kw,  # type: ignore[arg-type]
    )


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--decisions", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    load = LoadSampler()
    load.start()
    t0 = time.perf_counter()
    snap, products = build(args.nodes, args.seed)
    classes = {
        "batch": ClassPolicy("batch", "Offline"),
        "chat": ClassPolicy("chat", "Interactive", placement=ScoringPolicy(mode="spread")),
        "pool": ClassPolicy(
            "pool", "Nearline", pool=PoolPolicy("serving", min_gpu_memory_mib=40000)
        ),
    }
    engines = {
        "ballast": Engine("ballast", classes),
        "kube-default": Engine("kube-default", classes),
    }
    print(f"built {args.nodes} nodes in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    rng = random.Random(args.seed + 1)
    models = [f"model-{i:02d}" for i in range(20)]
    now = NOW.timestamp()
    times: dict[str, list[float]] = {k: [] for k in engines}
    order = list(engines)
    for k in range(args.decisions + 20):
        pod = _pod(rng, 10**6 + k, products, models, train=False)
        snap.mix.observe(pod)
        for name in order if k % 2 == 0 else reversed(order):
            t = time.perf_counter()
            engines[name].decide(snap, pod, now=now, seed=k)
            if k >= 20:  # warm-up
                times[name].append((time.perf_counter() - t) * 1000)

    def pct(values: list[float], q: float) -> float:
        s = sorted(values)
        return s[min(len(s) - 1, int(len(s) * q))]

    b, d = times["ballast"], times["kube-default"]
    machine = load.summary(stop=True)
    print(
        f"ballast p50 {pct(b, 0.5):.2f} ms p99 {pct(b, 0.99):.2f} ms; "
        f"kube-default p50 {pct(d, 0.5):.2f} ms p99 {pct(d, 0.99):.2f} ms",
        file=sys.stderr,
    )
    report(machine)
    print(
        orjson.dumps(
            {
                "bench": "decision_latency",
                "nodes": args.nodes,
                "decisions": len(b),
                "p50_ms": round(pct(b, 0.5), 3),
                "p99_ms": round(pct(b, 0.99), 3),
                "kube_default_p50_ms": round(pct(d, 0.5), 3),
                "kube_default_p99_ms": round(pct(d, 0.99), 3),
                "ratio_p50": round(pct(b, 0.5) / pct(d, 0.5), 3),
                "load_avg": machine,
            }
        ).decode()
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
