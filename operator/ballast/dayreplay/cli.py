"""``ballast replay`` (and the last part of ``ballast demo``): the day replay and its report."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from ballast.dayreplay import report
from ballast.dayreplay import run as runner
from ballast.dayreplay import workload as wl
from ballast.sim.experiments import DEFAULT_LATENCY, DEFAULT_NODES, DEFAULT_PODS, DEFAULT_REQUESTS


def options(parser: argparse.ArgumentParser, minutes: float = 3.0) -> None:
    """The replay's arguments (shared by ``ballast demo`` and ``ballast replay``)."""
    g = parser.add_argument_group("day replay")
    g.add_argument(
        "--minutes",
        type=float,
        default=minutes,
        help=f"replay length per scheduler in minutes (default {minutes:g}; 0: no replay)",
    )
    g.add_argument("--hours", type=float, default=8.0, help="trace hours compressed into it")
    g.add_argument("--start-day", type=float, default=5.0, help="trace day the replay starts at")
    g.add_argument("--replay-nodes", type=int, default=12, help="nodes taken from --node-list")
    g.add_argument("--cache-gib", type=int, default=100, help="model cache per node (GiB)")
    g.add_argument(
        "--baseline",
        choices=runner.BASELINES,
        default="kube-gpu-binpack",
        help="kube-scheduler configuration to compare with (default kube-gpu-binpack)",
    )
    g.add_argument("--requests", type=Path, default=DEFAULT_REQUESTS, help="GenAI request trace")
    g.add_argument("--latencies", type=Path, default=DEFAULT_LATENCY, help="model load latencies")
    g.add_argument("--background", type=Path, default=DEFAULT_PODS, help="openb pod list")
    g.add_argument("--node-list", type=Path, default=DEFAULT_NODES, help="openb node list")
    g.add_argument("--report-dir", type=Path, default=Path("reports/demo"), help="report folder")
    g.add_argument("--seed", type=int, default=0)


def configure(parser: argparse.ArgumentParser) -> None:
    """``ballast replay``'s arguments."""
    parser.add_argument("--name", default="replay", help="local cluster name (recreated)")
    options(parser)


def replay(args: argparse.Namespace, cluster: str) -> int:
    """Replay with Ballast, then kube-scheduler; print the table; write the report."""
    if args.minutes <= 0:
        return 0
    day = wl.DayConfig(
        minutes=args.minutes, hours=args.hours, start_day=args.start_day, seed=args.seed
    )
    opts = runner.Options(
        traces=wl.TracePaths(args.requests, args.latencies, args.background),
        node_list=args.node_list,
        nodes=args.replay_nodes,
        cache_gib=args.cache_gib,
        baseline=args.baseline,
        cluster=cluster,
        day=day,
    )
    t0 = time.monotonic()
    print(
        f"==> day replay: {args.hours:g} trace hours from day {args.start_day:g} in "
        f"{args.minutes:g} min per scheduler ({day.speedup:.0f}x), on cluster {cluster!r} "
        f"recreated for each: Ballast, then kube-scheduler ({args.baseline})",
        flush=True,
    )
    plan, ballast, kube = runner.run_both(opts, announce=lambda msg: print(msg, flush=True))
    doc = report.document(
        config={
            **dataclasses.asdict(day),
            "speedup": round(day.speedup, 1),
            "nodes": args.replay_nodes,
            "gpus": ballast.summary["gpu_capacity"],
            "cache_gib_per_node": args.cache_gib,
            "baseline": args.baseline,
            "traces": [str(p) for p in (args.requests, args.latencies, args.background)],
            "node_list": str(args.node_list),
        },
        workload={
            **plan.counts(),
            "quotas": len(plan.quotas),
            "window_opens_s": plan.window_open_s,
        },
        sides={"ballast": ballast.summary, args.baseline: kube.summary},
    )
    doc["api_check"] = {
        name: {
            "api_pods": side.outcome.api_pods,
            "api_bound": side.outcome.api_bound,
            "recorded_pods": side.outcome.recorded_pods,
            "recorded_bound": side.outcome.recorded_bound,
            "create_errors": side.outcome.create_errors,
            "watch_errors": side.outcome.watch_errors,
        }
        for name, side in (("ballast", ballast), (args.baseline, kube))
    }
    print()
    print(report.table(doc))
    js, page = report.write(doc, args.report_dir)
    print(f"\n==> report: {page.resolve()} (figures: {js.resolve()}); "
          f"replay took {time.monotonic() - t0:.0f} s")  # fmt: skip
    return 0


def run(args: argparse.Namespace) -> int:
    """Entry point of ``ballast replay``."""
    return replay(args, args.name)
