"""The experiments behind ``ballast simulate`` and the benches, as plain functions.

Each returns a JSON-ready section of the report. All randomness comes from
the seed passed in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ballast import logs
from ballast.placement.objects import MILLI
from ballast.sim.cluster import GIB, TRACES, load_cluster
from ballast.sim.fill import inflate, run_fill
from ballast.sim.genai import GenAIConfig, build_workload
from ballast.sim.mixes import Derive
from ballast.sim.paper import PAPER_SEEDS, RATIO, mean_levels, run_paper
from ballast.sim.replay import replay
from ballast.sim.report import fill_figures, replay_figures
from ballast.sim.traces import (
    load_genai_requests,
    load_latencies_ms,
    load_openb_nodes,
    load_openb_pods,
)

log = logging.getLogger(__name__)

OPENB = TRACES / "openb"
GENAI = TRACES / "genai"
DEFAULT_NODES = OPENB / "openb_node_list_gpu_node.csv"
DEFAULT_PODS = OPENB / "openb_pod_list_default.csv"
DEFAULT_REQUESTS = GENAI / "lora_request_trace_part1.csv"
DEFAULT_LATENCY = GENAI / "basemodel_update_latency_anon.csv"
FILL_POLICIES = ("ballast", "kube-default", "kube-gpu-binpack", "fgd", "best-fit", "random")
GENAI_POLICIES = ("ballast", "kube-default", "ballast-no-locality")
NO_LOCALITY = "ballast-no-locality"


def fill_experiment(
    trace: str | Path = DEFAULT_PODS,
    nodes: str | Path = DEFAULT_NODES,
    *,
    policies: Sequence[str] = FILL_POLICIES,
    seed: int = 0,
    stop_pct: float = 105.0,
    limit: int = 0,
    node_limit: int = 0,
    derive: Derive | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """The openb fill-up experiment for each policy (``limit``/``node_limit`` shrink it).

    ``derive`` turns the trace's pods into another mix (sim/mixes.py) before
    inflation; ``name`` labels the workload in the report (default: the file).
    """
    node_list = load_openb_nodes(nodes)
    if node_limit:
        node_list = node_list[:: max(1, len(node_list) // node_limit)][:node_limit]
    tasks = load_openb_pods(trace)
    cap = sum(n.gpu_count for n in node_list) * MILLI
    pods = [t.pod for t in tasks]
    if derive is not None:
        pods = derive(pods, seed)
    if limit:
        pods = pods[:limit]
    pods = inflate(pods, cap, stop_pct, seed)
    out: dict[str, Any] = {}
    for policy in policies:
        t0 = time.perf_counter()
        r = run_fill(node_list, pods, policy, seed=seed, stop_pct=stop_pct)
        out[policy] = fill_figures(r)
        log.info(
            "fill done",
            extra=logs.kv(
                policy=policy,
                trace=name or Path(trace).name,
                seconds=round(time.perf_counter() - t0, 1),
                unallocated=out[policy]["unallocated_gpu_pct"],
            ),
        )
    return {
        "trace": name or Path(trace).name,
        "nodes": len(node_list),
        "gpus": cap // MILLI,
        "pods_in_trace": len(tasks),
        "pods_replayed": len(pods),
        "stop_pct": stop_pct,
        "seed": seed,
        "definition": "unallocated_gpu_pct: mean share of GPU capacity not allocated, averaged "
        "over arrived GPU demand from 90% to 100% of capacity (demand-weighted)",
        "policies": out,
    }


def genai_experiment(
    cluster: str = "genai-32",
    requests: str | Path = DEFAULT_REQUESTS,
    latency: str | Path = DEFAULT_LATENCY,
    background: str | Path = DEFAULT_PODS,
    *,
    policies: Sequence[str] = GENAI_POLICIES,
    cfg: GenAIConfig | None = None,
    cache_gib: int = 100,
) -> dict[str, Any]:
    """The GenAI serving + batch + background replay for each policy."""
    cfg = cfg or GenAIConfig()
    nodes = load_cluster(cluster, cache_bytes=cache_gib * GIB)
    cap = sum(n.gpu_count for n in nodes) * MILLI
    reqs = load_genai_requests(requests)
    lat = load_latencies_ms(latency)
    bg = load_openb_pods(background)
    out: dict[str, Any] = {}
    notes: dict[str, float] = {}
    for policy in policies:
        engine_policy, weight = ("ballast", 0.0) if policy == NO_LOCALITY else (policy, None)
        work = build_workload(reqs, lat, bg, cap, cfg, locality_weight=weight)
        notes = work.notes
        t0 = time.perf_counter()
        r = replay(nodes, work, engine_policy, seed=cfg.seed, cache_bytes=cache_gib * GIB)
        out[policy] = replay_figures(r)
        log.info(
            "replay done",
            extra=logs.kv(
                policy=policy,
                seconds=round(time.perf_counter() - t0, 1),
                hit_rate=out[policy]["cache_hit_rate"]["serving"],
            ),
        )
    return {
        "cluster": cluster,
        "nodes": len(nodes),
        "gpus": cap // MILLI,
        "cache_gib_per_node": cache_gib,
        "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
        "workload": notes,
        "policies": out,
    }


def paper_experiment(
    trace: str | Path = DEFAULT_PODS,
    nodes: str | Path = DEFAULT_NODES,
    *,
    policies: Sequence[str] = ("fgd", "best-fit"),
    seeds: Sequence[int] = PAPER_SEEDS,
    level: int = 100,
    derive: Derive | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """The FGD authors' setup (sim/paper.py) for each policy, mean over ``seeds``.

    ``unallocated_gpu_pct`` is 100 minus the allocation at ``level`` % of
    capacity arrived (the authors' headline at 100), ``window_90_100_pct``
    the mean of 100 - allocation over the levels 90..100.
    """
    node_list = load_openb_nodes(nodes)
    tasks = load_openb_pods(trace)
    pods = [t.pod for t in tasks]
    if derive is not None:
        pods = derive(pods, seeds[0] if seeds else 0)
    label = name or Path(trace).name
    out: dict[str, Any] = {}
    for policy in policies:
        runs = []
        for seed in seeds:
            t0 = time.perf_counter()
            runs.append(run_paper(node_list, pods, policy, seed, until_pct=level))
            log.info(
                "paper run done",
                extra=logs.kv(
                    policy=policy,
                    trace=label,
                    seed=seed,
                    seconds=round(time.perf_counter() - t0, 1),
                    unallocated=round(runs[-1].unallocated_at(level), 2),
                ),
            )
        curve = mean_levels(runs, level)
        per_seed = [round(r.unallocated_at(level), 2) for r in runs]
        out[policy] = {
            "unallocated_gpu_pct": round(100 - curve[level], 3) if level in curve else None,
            "per_seed": per_seed,
            "window_90_100_pct": round(sum(100 - curve[lv] for lv in range(90, 101)) / 11, 3)
            if all(lv in curve for lv in range(90, 101))
            else None,
            "pods_failed": round(sum(r.failed for r in runs) / len(runs), 1),
            "pods_replayed": round(sum(r.pods for r in runs) / len(runs), 1),
            "curve": [[lv, round(100 - v, 3)] for lv, v in curve.items()],
        }
    return {
        "trace": label,
        "setup": "paper",
        "nodes": len(node_list),
        "gpus": sum(n.gpu_count for n in node_list),
        "pods_in_trace": len(pods),
        "ratio": RATIO,
        "seeds": list(seeds),
        "level": level,
        "definition": f"unallocated_gpu_pct: 100 - mean GPU allocation (%) over the events whose "
        f"arrived GPU request rounds to {level}% of capacity, mean over seeds (FGD authors' setup)",
        "policies": out,
    }
