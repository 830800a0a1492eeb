"""``ballast simulate``: replay traces through placement policies and write a report.

Runs the openb fill-up experiment (fragmentation) and the GenAI replay
(cache hits, queue wait per tier, preemptions) unless told to run only one,
then writes ``report.json`` (every figure) and ``report.png`` into ``--out``.
The fill-up replays pods in creation-time order (``--setup replay``) or in
the FGD authors' setup (``--setup paper``: sim/paper.py, mean over
``--seeds``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ballast import logs
from ballast.sim import experiments as ex
from ballast.sim.genai import GenAIConfig
from ballast.sim.report import write_json

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments."""
    parser.add_argument("--only", choices=("fragmentation", "genai"), help="run one experiment")
    parser.add_argument(
        "--nodes", default=str(ex.DEFAULT_NODES), help="openb node CSV for the fill"
    )
    parser.add_argument("--trace", default=str(ex.DEFAULT_PODS), help="openb pod CSV for the fill")
    parser.add_argument(
        "--policies", default=",".join(ex.FILL_POLICIES), help="policies for the fill (comma list)"
    )
    parser.add_argument(
        "--setup",
        choices=("replay", "paper"),
        default="replay",
        help="fill-up in creation-time order, or the FGD authors' setup (docs/simulator.md)",
    )
    parser.add_argument(
        "--seeds", default="42,43,44,45,46,47,48,49,50,51", help="seeds of --setup paper"
    )
    parser.add_argument("--stop-pct", type=float, default=105.0, help="fill until this demand %%")
    parser.add_argument("--limit", type=int, default=0, help="replay at most N trace pods (0: all)")
    parser.add_argument("--node-limit", type=int, default=0, help="use N nodes of the CSV (0: all)")
    parser.add_argument("--cluster", default="genai-32", help="profile name or node CSV for GenAI")
    parser.add_argument("--requests", default=str(ex.DEFAULT_REQUESTS), help="GenAI request CSV")
    parser.add_argument("--latency", default=str(ex.DEFAULT_LATENCY), help="model load latency CSV")
    parser.add_argument(
        "--genai-policies", default=",".join(ex.GENAI_POLICIES), help="policies for GenAI"
    )
    parser.add_argument("--start-day", type=float, default=5.0, help="GenAI trace day to start at")
    parser.add_argument("--days", type=float, default=2.0, help="days of GenAI trace to replay")
    parser.add_argument(
        "--background-load",
        type=float,
        default=1.0,
        help="offered Offline GPU load (1.0 = capacity)",
    )
    parser.add_argument("--cache-gib", type=int, default=100, help="model cache per node (GiB)")
    parser.add_argument("--seed", type=int, default=0, help="seed for every random choice")
    parser.add_argument("--out", default="reports/simulate", help="output directory")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")


def run(args: argparse.Namespace) -> int:
    """Run the experiments and write the report; returns the exit status."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc: dict[str, object] = {"seed": args.seed}
    if args.only in (None, "fragmentation") and args.setup == "paper":
        doc["fragmentation"] = ex.paper_experiment(
            args.trace,
            args.nodes,
            policies=args.policies.split(","),
            seeds=[int(x) for x in args.seeds.split(",") if x],
        )
    elif args.only in (None, "fragmentation"):
        doc["fragmentation"] = ex.fill_experiment(
            args.trace,
            args.nodes,
            policies=args.policies.split(","),
            seed=args.seed,
            stop_pct=args.stop_pct,
            limit=args.limit,
            node_limit=args.node_limit,
        )
    if args.only in (None, "genai"):
        cfg = GenAIConfig(
            start_day=args.start_day,
            days=args.days,
            background_load=args.background_load,
            seed=args.seed,
        )
        doc["genai"] = ex.genai_experiment(
            args.cluster,
            args.requests,
            args.latency,
            args.trace,
            policies=args.genai_policies.split(","),
            cfg=cfg,
            cache_gib=args.cache_gib,
        )
    write_json(out / "report.json", doc)
    if not args.no_plot:
        from ballast.sim.plot import plot_report

        plot_report(doc, out / "report.png")
    log.info("report written", extra=logs.kv(dir=str(out)))
    print(summary(doc))
    return 0


def summary(doc: dict[str, object]) -> str:
    """A short table of the headline figures."""
    lines: list[str] = []
    frag = doc.get("fragmentation")
    if isinstance(frag, dict) and frag.get("setup") == "paper":
        lines.append(
            f"fragmentation ({frag['trace']}, FGD authors' setup): unallocated GPU % at "
            f"{frag['level']}% arrived, mean of {len(frag['seeds'])} seeds"
        )
        for p, f in frag["policies"].items():
            pct = f["unallocated_gpu_pct"]
            lines.append(f"  {p:<22}{'n/a' if pct is None else pct:>8}")
    elif isinstance(frag, dict):
        lines.append(f"fragmentation ({frag['trace']}): unallocated GPU %, demand 90-100%")
        for p, f in frag["policies"].items():
            lines.append(f"  {p:<22}{f['unallocated_gpu_pct']:>8}")
    genai = doc.get("genai")
    if isinstance(genai, dict):
        lines.append(
            "genai: serving cache hits, cold start s, GPU allocation %, p95 wait s (I/N/O)"
        )
        for p, f in genai["policies"].items():
            w = f["queue_wait"]
            p95 = "/".join(str(w[t]["p95_s"]) for t in ("Interactive", "Nearline", "Offline"))
            lines.append(
                f"  {p:<22}{f['cache_hit_rate']['serving']:>8}"
                f"{f['cold_start_seconds']['serving']:>10}{f['gpu_allocation_pct']:>8}  {p95}"
            )
    return "\n".join(lines)
