"""BestFit: the node left with the least free GPU capacity after placement (tightest fit).

For GPU pods the raw score is minus the GPU milli left free on the node (CPU
left free breaks ties); for CPU-only pods minus the CPU fraction left free.
Shares go to the fullest GPU that fits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ballast.placement.framework import CycleState, IntArray, Scores, min_max
from ballast.placement.plugins.base import PluginArgs, best_fit

NAME = "BestFit"


class Args(PluginArgs):
    """BestFit has no arguments."""


class BestFit:
    """Score (and GPU choice): most allocated node that fits."""

    name = NAME
    role = "packing"

    def __init__(self, args: Args) -> None:
        self.args = args

    def score(self, state: CycleState, nodes: IntArray) -> Scores:
        """Minus what is left free after placement."""
        snap, pod = state.snapshot, state.pod
        cap = np.maximum(snap.cpu_cap[nodes], 1)
        cpu_left = (snap.cpu_free[nodes] - pod.cpu_milli) / cap
        if not (pod.gpus or pod.gpu_milli):
            return -cpu_left
        free = (
            snap.free_sum[nodes]
            if state.free is snap.free
            else state.free[nodes].sum(axis=1, dtype=np.int64)
        )
        return -(free - pod.demand_milli) - cpu_left

    def normalize(self, state: CycleState, raw: Scores) -> Scores:
        """Min-max over the feasible nodes."""
        return min_max(raw)

    def choose_gpus(self, state: CycleState, node: int) -> tuple[int, ...]:
        """Fullest GPU that fits for a share; first fit for whole GPUs."""
        return best_fit(state, node)


def factory(args: Mapping[str, Any] | None = None) -> BestFit:
    """Build the plugin from raw arguments (validated)."""
    return BestFit(Args.model_validate(args or {}))
