"""Fragmentation bench: unallocated GPU share as arrived demand fills the cluster (FGD paper).

Pods of an openb trace arrive in creation-time order onto the openb GPU nodes
and never leave; a trace asking for less than 105% of the cluster's GPUs is
extended by seeded draws from itself (the paper's workload inflation). Each
policy (ballast, kube-default, fgd, best-fit) is a configuration of the same
engine.

unallocated_gpu_pct: the share of cluster GPU capacity (milli-GPU exact, GPU
shares counted as fractions) that is not allocated to any pod, averaged over
arrived GPU demand from 90% to 100% of capacity, weighted by demand (the
area under the unallocated-vs-arrived step curve over that range, divided by
10 points). Below 100% arrived, 100 - arrived is the floor: even a perfect
packer leaves 5 points on average; the rest is demand that could not be
placed. ratio_vs_kube_default = ballast / kube-default, ratio_vs_fgd =
ballast / fgd (lower is better; goals 0.70 and 1.05).

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
from ballast.sim.experiments import DEFAULT_NODES, fill_experiment

POLICIES = ("ballast", "kube-default", "fgd", "best-fit")


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--trace", required=True, help="openb pod list CSV")
    ap.add_argument("--nodes", default=str(DEFAULT_NODES), help="openb node list CSV")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--policies", default=",".join(POLICIES))
    args = ap.parse_args()
    logs.setup("INFO")
    logging.getLogger("ballast").setLevel(logging.INFO)
    t0 = time.perf_counter()
    doc = fill_experiment(args.trace, args.nodes, policies=args.policies.split(","), seed=args.seed)
    pct = {p: f["unallocated_gpu_pct"] for p, f in doc["policies"].items()}
    ballast = pct.get("ballast")

    def ratio(other: str) -> float | None:
        base = pct.get(other)
        return round(ballast / base, 3) if ballast is not None and base else None

    out = {
        "bench": "fragmentation",
        "trace": Path(args.trace).name,
        "unallocated_gpu_pct": pct,
        "ratio_vs_kube_default": ratio("kube-default"),
        "ratio_vs_fgd": ratio("fgd"),
        "failed_pods": {p: f["pods_failed"] for p, f in doc["policies"].items()},
        "nodes": doc["nodes"],
        "gpus": doc["gpus"],
        "pods_replayed": doc["pods_replayed"],
        "seed": args.seed,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(orjson.dumps(out).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
