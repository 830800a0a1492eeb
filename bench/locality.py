"""Locality bench: model-cache hits and cold starts of GenAI serving replicas.

Replays two busy days (days 5-6) of the GenAI request trace on the
``genai-32`` profile (32 nodes, 196 GPUs, 100 GiB model cache per node, LRU):
requests become per-model serving replicas (Interactive, 1 GPU, scaled per
10-minute window) and per-tenant batch jobs (Nearline), next to openb
background jobs (Offline) offering 85% of the GPUs. Model sizes and load
times are drawn from the base-model load latencies with a fixed seed.

cache_hit_rate: serving replicas started on a node that already cached their
model, per serving replica started. cold_start_seconds: model load time paid
by serving replicas (misses only). cold_start_ratio_vs_kube_default: ballast /
kube-default (goal <= 0.50); cold_start_ratio_vs_kube_gpu_binpack: ballast /
kube-gpu-binpack (kube-scheduler configured to bin-pack GPUs). gpu_allocation_loss_pct: time-averaged GPU
allocation (% of capacity) of ballast with data locality switched off minus
that of ballast (points given up for locality; goal <= 5).

Every figure is counted in simulated time, so the machine's load cannot
favour one policy (only ``seconds``, the wall time of the whole run, depends
on it); the load average during the run is printed and in the JSON
(``load_avg``) all the same.

Prints progress to stderr and one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from ballast import logs
from ballast.sim.experiments import (
    DEFAULT_LATENCY,
    DEFAULT_PODS,
    NO_LOCALITY,
    genai_experiment,
)
from ballast.sim.genai import GenAIConfig
from machine import LoadSampler, report


def ratio(values: dict[str, float], base: str) -> float | None:
    """ballast / ``base`` (None when the base is 0)."""
    return round(values["ballast"] / values[base], 3) if values[base] else None


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--trace", required=True, help="GenAI request trace CSV")
    ap.add_argument("--latency", default=str(DEFAULT_LATENCY), help="base-model load latency CSV")
    ap.add_argument("--background", default=str(DEFAULT_PODS), help="openb pod list for batch")
    ap.add_argument("--cluster", default="genai-32")
    ap.add_argument("--start-day", type=float, default=5.0)
    ap.add_argument("--days", type=float, default=2.0)
    ap.add_argument("--background-load", type=float, default=0.85)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logs.setup("INFO")
    load = LoadSampler()
    load.start()
    t0 = time.perf_counter()
    cfg = GenAIConfig(
        start_day=args.start_day,
        days=args.days,
        background_load=args.background_load,
        seed=args.seed,
    )
    doc = genai_experiment(
        args.cluster,
        args.trace,
        args.latency,
        args.background,
        policies=("ballast", "kube-default", "kube-gpu-binpack", NO_LOCALITY),
        cfg=cfg,
    )
    pol = doc["policies"]
    kinds = ("ballast", "kube-default", "kube-gpu-binpack")
    hits = {p: pol[p]["cache_hit_rate"]["serving"] for p in kinds}
    cold = {p: pol[p]["cold_start_seconds"]["serving"] for p in kinds}
    alloc = {p: pol[p]["gpu_allocation_pct"] for p in pol}
    out = {
        "bench": "locality",
        "trace": Path(args.trace).name,
        "cache_hit_rate": hits,
        "cold_start_seconds": cold,
        "cold_start_ratio_vs_kube_default": ratio(cold, "kube-default"),
        "cold_start_ratio_vs_kube_gpu_binpack": ratio(cold, "kube-gpu-binpack"),
        "gpu_allocation_loss_pct": round(alloc[NO_LOCALITY] - alloc["ballast"], 3),
        "gpu_allocation_pct": alloc,
        "serving_replicas_started": pol["ballast"]["model_placements"].get("serving", 0),
        "preemption_plans": {p: pol[p]["preemption_plans"] for p in pol},
        "workload": doc["workload"],
        "seed": args.seed,
        "seconds": round(time.perf_counter() - t0, 1),
        "load_avg": load.summary(stop=True),
    }
    report(out["load_avg"])
    print(orjson.dumps(out).decode())
    logging.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
