"""Spread: keep replicas of one workload apart, then prefer the least loaded GPUs.

For classes in ``spread`` mode (interactive replicas): raw score is minus
``replica_weight`` times the replicas with the pod's ``spread_key`` already on
the node, minus the node's allocated GPU fraction. Shares go to the emptiest GPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import Field

from ballast.placement.framework import CycleState, IntArray, Scores, min_max
from ballast.placement.objects import MILLI
from ballast.placement.plugins.base import PluginArgs, worst_fit

NAME = "Spread"


class Args(PluginArgs):
    """Spread's arguments."""

    replica_weight: float = Field(10.0, ge=0.0)


class Spread:
    """Score (and GPU choice): anti-affinity between replicas plus least-allocated GPUs."""

    name = NAME
    role = "spread"

    def __init__(self, args: Args) -> None:
        self.args = args

    def score(self, state: CycleState, nodes: IntArray) -> Scores:
        """Fewer sibling replicas first, then emptier nodes."""
        snap = state.snapshot
        cap = np.maximum(snap.gpu_count[nodes].astype(np.float64) * MILLI, 1.0)
        raw = -(cap - snap.free_sum[nodes]) / cap
        counts = snap.spread.get(state.pod.spread_key) if state.pod.spread_key else None
        if counts:
            rows = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            vals = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
            pos = np.searchsorted(nodes, rows)
            pos = np.minimum(pos, nodes.shape[0] - 1)
            hit = nodes[pos] == rows
            np.subtract.at(raw, pos[hit], self.args.replica_weight * vals[hit])
        return raw

    def normalize(self, state: CycleState, raw: Scores) -> Scores:
        """Min-max over the feasible nodes."""
        return min_max(raw)

    def choose_gpus(self, state: CycleState, node: int) -> tuple[int, ...]:
        """The emptiest GPU for a share; first fit for whole GPUs."""
        return worst_fit(state, node)


def factory(args: Mapping[str, Any] | None = None) -> Spread:
    """Build the plugin from raw arguments (validated)."""
    return Spread(Args.model_validate(args or {}))
