"""BalancedAllocation: kube-scheduler's NodeResourcesBalancedAllocation.

Raw score: ``(1 - std(fractions)) * 100`` over the requested fractions of CPU,
memory and (for GPU pods) GPUs after placement.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ballast.placement.framework import MAX_SCORE, CycleState, IntArray, Scores
from ballast.placement.plugins.base import PluginArgs
from ballast.placement.plugins.resources import requested_fractions

NAME = "BalancedAllocation"


class Args(PluginArgs):
    """BalancedAllocation has no arguments."""


class BalancedAllocation:
    """Score: prefer nodes whose resources stay evenly used."""

    name = NAME
    role = "balance"

    def __init__(self, args: Args) -> None:
        self.args = args

    def score(self, state: CycleState, nodes: IntArray) -> Scores:
        """One minus the standard deviation of the requested fractions, 0..100."""
        frac, present = requested_fractions(state, nodes)
        n = np.maximum(present.sum(axis=1), 1)
        mean = (frac * present).sum(axis=1) / n
        var = (((frac - mean[:, None]) ** 2) * present).sum(axis=1) / n
        return (1.0 - np.sqrt(var)) * MAX_SCORE  # type: ignore[no-any-return]

    def normalize(self, state: CycleState, raw: Scores) -> Scores:
        """Already on 0..100."""
        return raw


def factory(args: Mapping[str, Any] | None = None) -> BalancedAllocation:
    """Build the plugin from raw arguments (validated)."""
    return BalancedAllocation(Args.model_validate(args or {}))
