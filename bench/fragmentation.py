"""Fragmentation bench: unallocated GPU share as arrived demand fills the cluster (FGD paper).

Pods of an openb trace arrive in creation-time order onto the openb GPU nodes
and never leave; a trace asking for less than 105% of the cluster's GPUs is
extended by seeded draws from itself (the paper's workload inflation). Each
policy (ballast, kube-default, kube-gpu-binpack, fgd, best-fit) is a
configuration of the same engine; the two kube ones are kube-scheduler's
default configuration and its GPU bin-packing one (docs/placement.md).

unallocated_gpu_pct: the share of cluster GPU capacity (milli-GPU exact, GPU
shares counted as fractions) that is not allocated to any pod, averaged over
arrived GPU demand from 90% to 100% of capacity, weighted by demand (the
area under the unallocated-vs-arrived step curve over that range, divided by
10 points). Below 100% arrived, 100 - arrived is the floor: even a perfect
packer leaves 5 points on average; the rest is demand that could not be
placed. ratio_vs_<policy> = ballast / <policy> (lower is better; goals: at
most 0.70 of kube-default, at most 1.05 of fgd).

``--all`` runs every openb pod list in ``--traces-dir`` and the mixes of
sim/mixes.py (the same cluster's pods in other proportions: only shares, no
shares, few or only multi-GPU pods, only 1-GPU pods from ``default``;
``gpuspec33`` without its GPU-model constraints), and reports the worst
ratio of each kind.

Prints progress to stderr and one JSON object as its last line.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from ballast import logs
from ballast.sim.experiments import DEFAULT_NODES, DEFAULT_PODS, fill_experiment
from ballast.sim.mixes import MIXES, Derive

POLICIES = ("ballast", "kube-default", "kube-gpu-binpack", "fgd", "best-fit")
BASELINES = ("kube-default", "kube-gpu-binpack", "fgd")


def ratios(pct: dict[str, float]) -> dict[str, float | None]:
    """``ratio_vs_<baseline>``: ballast over each baseline that ran."""
    ballast = pct.get("ballast")
    out: dict[str, float | None] = {}
    for other in BASELINES:
        base = pct.get(other)
        key = "ratio_vs_" + other.replace("-", "_")
        out[key] = round(ballast / base, 3) if ballast is not None and base else None
    return out


def one(
    trace: Path, nodes: str, policies: list[str], seed: int, derive: Derive | None, name: str
) -> dict[str, Any]:
    """One workload through every policy: percentages, ratios, failed pods."""
    doc = fill_experiment(trace, nodes, policies=policies, seed=seed, derive=derive, name=name)
    pct = {p: f["unallocated_gpu_pct"] for p, f in doc["policies"].items()}
    return {
        "unallocated_gpu_pct": pct,
        **ratios(pct),
        "failed_pods": {p: f["pods_failed"] for p, f in doc["policies"].items()},
        "pods_replayed": doc["pods_replayed"],
        "nodes": doc["nodes"],
        "gpus": doc["gpus"],
    }


def run_all(args: argparse.Namespace, policies: list[str]) -> dict[str, Any]:
    """Every trace variant and derived mix; the worst ratio of each kind."""
    tdir = Path(args.traces_dir)
    work: list[tuple[str, Path, Derive | None]] = [
        (p.stem.removeprefix("openb_pod_list_"), p, None)
        for p in sorted(tdir.glob("openb_pod_list_*.csv"))
    ]
    work += [
        (f"{mix.source}/{name}", tdir / f"openb_pod_list_{mix.source}.csv", mix.derive)
        for name, mix in MIXES.items()
    ]
    traces: dict[str, Any] = {}
    for name, path, mix in work:
        t0 = time.perf_counter()
        traces[name] = one(path, args.nodes, policies, args.seed, mix, name)
        print(
            f"{name}: {traces[name]['unallocated_gpu_pct']} ({time.perf_counter() - t0:.0f}s)",
            file=sys.stderr,
            flush=True,
        )
    out: dict[str, Any] = {"bench": "fragmentation_all", "traces": traces}
    for base in BASELINES:
        key = "ratio_vs_" + base.replace("-", "_")
        values = [(t[key], name) for name, t in traces.items() if t.get(key) is not None]
        worst = max(values) if values else (None, None)
        out["worst_" + key] = worst[0]
        out["worst_" + key + "_trace"] = worst[1]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--trace", default=str(DEFAULT_PODS), help="openb pod list CSV")
    ap.add_argument("--nodes", default=str(DEFAULT_NODES), help="openb node list CSV")
    ap.add_argument("--all", action="store_true", help="every trace variant and derived mix")
    ap.add_argument("--traces-dir", default=str(DEFAULT_PODS.parent), help="for --all")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--policies", default=",".join(POLICIES))
    args = ap.parse_args()
    logs.setup("INFO")
    logging.getLogger("ballast").setLevel(logging.INFO)
    t0 = time.perf_counter()
    policies = args.policies.split(",")
    if args.all:
        out = run_all(args, policies)
    else:
        trace = Path(args.trace)
        out = {"bench": "fragmentation", "trace": trace.name}
        out.update(one(trace, args.nodes, policies, args.seed, None, trace.name))
    out["seed"] = args.seed
    out["seconds"] = round(time.perf_counter() - t0, 1)
    print(orjson.dumps(out).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
