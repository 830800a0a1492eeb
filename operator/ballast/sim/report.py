"""The simulator's report: every figure as JSON, plus summaries for people and benches."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from ballast.sim.fill import FillResult
from ballast.sim.paper import level_means
from ballast.sim.replay import ReplayResult

TIERS = ("Interactive", "Nearline", "Offline")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation; NaN when empty."""
    if not values:
        return math.nan
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _r(x: float, nd: int = 3) -> float | None:
    return None if math.isnan(x) else round(x, nd)


def curve(xs: Sequence[float], ys: Sequence[float], step: float = 0.5) -> list[list[float]]:
    """The step curve resampled every ``step`` points of x (keeps the JSON small)."""
    out: list[list[float]] = []
    nxt = 0.0
    for x, y in zip(xs, ys, strict=True):
        if x >= nxt:
            out.append([round(x, 3), round(y, 3)])
            nxt = math.floor(x / step) * step + step
    if xs and (not out or out[-1][0] != round(xs[-1], 3)):
        out.append([round(xs[-1], 3), round(ys[-1], 3)])
    return out


def fill_figures(r: FillResult, lo: float = 90.0, hi: float = 100.0) -> dict[str, Any]:
    """Figures of one fill run."""
    at = level_means(
        [round(a * r.capacity_milli / 100) for a in r.arrived_pct],
        [round((100 - u) * r.capacity_milli / 100) for u in r.unallocated_pct],
        r.capacity_milli,
        100,
    )
    return {
        "unallocated_gpu_pct": _r(r.average_unallocated(lo, hi)),
        "window_pct": [lo, hi],
        "unallocated_at_100_pct": _r(100 - at[100]) if 100 in at else None,
        "pods_placed": r.placed,
        "pods_failed": r.failed,
        "failed_gpu": round(r.failed_gpu_milli / 1000, 3),
        "arrived_pct_max": _r(r.arrived_pct[-1] if r.arrived_pct else math.nan),
        "decision_ms": {
            "p50": _r(percentile(r.decision_ms, 50)),
            "p99": _r(percentile(r.decision_ms, 99)),
        },
        "curve": curve(r.arrived_pct, r.unallocated_pct),
        "fragmentation_curve": [[round(a, 3), round(f, 3)] for a, f in r.frag_pct],
    }


def replay_figures(r: ReplayResult) -> dict[str, Any]:
    """Figures of one mixed-workload replay."""
    waits = {}
    for tier in TIERS:
        w = r.waits.get(tier, [])
        waits[tier] = {
            "placed": len(w),
            "pending_at_end": r.pending_at_end.get(tier, 0),
            "mean_s": _r(sum(w) / len(w) if w else math.nan, 1),
            "p50_s": _r(percentile(w, 50), 1),
            "p95_s": _r(percentile(w, 95), 1),
            "p99_s": _r(percentile(w, 99), 1),
        }
    return {
        "gpu_allocation_pct": _r(r.allocation_pct()),
        "cache_hit_rate": {k: _r(r.hit_rate(k)) for k in ("serving", "batch")},
        "model_placements": dict(r.placements),
        "cold_start_seconds": {k: _r(r.cold_start_s.get(k, 0.0), 1) for k in ("serving", "batch")},
        "queue_wait": waits,
        "preemption_plans": r.preemptions,
        "preempted_by_tier": dict(r.preempted),
        "held_pods": dict(r.holds),
        "cache_evictions": r.evictions,
        "decisions": len(r.decision_ms),
        "decision_ms": {
            "p50": _r(percentile(r.decision_ms, 50)),
            "p99": _r(percentile(r.decision_ms, 99)),
        },
        "allocation_series": [
            [round(t, 1), round(a, 2)] for t, a in r.alloc[:: max(1, len(r.alloc) // 500)]
        ],
    }


def write_json(path: str | Path, doc: Mapping[str, Any]) -> None:
    """Write ``doc`` as indented JSON."""
    Path(path).write_bytes(
        orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    )
