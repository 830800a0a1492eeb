"""BestFit: the node left with the least free GPU capacity after placement (tightest fit).

For GPU pods the raw score is minus the GPU milli left free on the node (CPU
left free breaks ties); for CPU-only pods minus the CPU fraction left free.
Shares go to the fullest GPU that fits.

With ``paper: true`` it is the FGD authors' BestFitScore (docs/simulator.md):
``int(100 * (1 - (cpu_left / 128 cores + gpu_left / 8 GPUs) / 2))`` for every
pod (CPU-only ones too), normalised onto 0..100 in integers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ballast.placement.framework import CycleState, IntArray, Scores, min_max
from ballast.placement.plugins.base import PluginArgs, best_fit

NAME = "BestFit"


MAX_SPEC_CPU = 128_000  # the authors' normalisers: milli-CPU and milli-GPU of the largest node
MAX_SPEC_GPU = 8_000


class Args(PluginArgs):
    """BestFit's arguments."""

    #: The FGD authors' integer score and normalisation instead of Ballast's.
    paper: bool = False


def paper_normalize(raw: Scores) -> Scores:
    """The authors' integer min-max onto 0..100 (all equal: all 0)."""
    if raw.size == 0:
        return raw
    ints = raw.astype(np.int64)
    lo, hi = int(ints.min()), int(ints.max())
    if hi == lo:
        return np.zeros(raw.shape)
    return ((ints - lo) * 100 // (hi - lo)).astype(np.float64)


class BestFit:
    """Score (and GPU choice): most allocated node that fits."""

    name = NAME
    role = "packing"

    def __init__(self, args: Args) -> None:
        self.args = args

    def score(self, state: CycleState, nodes: IntArray) -> Scores:
        """Minus what is left free after placement."""
        snap, pod = state.snapshot, state.pod
        free = (
            snap.free_sum[nodes]
            if state.free is snap.free
            else state.free[nodes].sum(axis=1, dtype=np.int64)
        )
        if self.args.paper:
            # In the authors' order of operations, for the same rounding.
            left = (snap.cpu_free[nodes] - pod.cpu_milli) / MAX_SPEC_CPU * 0.5
            left = left + (free - pod.demand_milli) / MAX_SPEC_GPU * 0.5
            return np.trunc((1.0 - left) * 100.0)
        cap = np.maximum(snap.cpu_cap[nodes], 1)
        cpu_left = (snap.cpu_free[nodes] - pod.cpu_milli) / cap
        if not (pod.gpus or pod.gpu_milli):
            return -cpu_left
        return -(free - pod.demand_milli) - cpu_left

    def normalize(self, state: CycleState, raw: Scores) -> Scores:
        """Min-max over the feasible nodes (the paper's in integers)."""
        return paper_normalize(raw) if self.args.paper else min_max(raw)

    def choose_gpus(self, state: CycleState, node: int) -> tuple[int, ...]:
        """Fullest GPU that fits for a share; first fit for whole GPUs."""
        return best_fit(state, node)


def factory(args: Mapping[str, Any] | None = None) -> BestFit:
    """Build the plugin from raw arguments (validated)."""
    return BestFit(Args.model_validate(args or {}))
