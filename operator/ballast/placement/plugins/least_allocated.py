"""LeastAllocated: kube-scheduler's NodeResourcesFit with the LeastAllocated strategy.

Raw score: the mean over CPU, memory and (for GPU pods) GPUs of the share left
free after placement, times 100, resources weighted equally.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ballast.placement.framework import MAX_SCORE, CycleState, IntArray, Scores
from ballast.placement.plugins.base import PluginArgs
from ballast.placement.plugins.resources import requested_fractions

NAME = "LeastAllocated"


class Args(PluginArgs):
    """LeastAllocated has no arguments (equal resource weights, as kube's defaults)."""


class LeastAllocated:
    """Score: spread load by preferring the least requested node."""

    name = NAME
    role = "balance"

    def __init__(self, args: Args) -> None:
        self.args = args

    def score(self, state: CycleState, nodes: IntArray) -> Scores:
        """Mean free fraction after placement, 0..100."""
        frac, present = requested_fractions(state, nodes)
        n = np.maximum(present.sum(axis=1), 1)
        return ((1.0 - frac) * present).sum(axis=1) / n * MAX_SCORE  # type: ignore[no-any-return]

    def normalize(self, state: CycleState, raw: Scores) -> Scores:
        """Already on 0..100 (kube-scheduler does not normalise this plugin)."""
        return raw


def factory(args: Mapping[str, Any] | None = None) -> LeastAllocated:
    """Build the plugin from raw arguments (validated)."""
    return LeastAllocated(Args.model_validate(args or {}))
