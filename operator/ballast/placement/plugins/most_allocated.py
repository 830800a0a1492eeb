"""MostAllocated: kube-scheduler's NodeResourcesFit scoring with the ``MostAllocated`` strategy.

Per resource ``min(requested, allocatable) * 100 // allocatable``, then the
weighted mean over the resources the node has, in integers, as
kube-scheduler v1.37 computes it: bin packing. With ``nvidia.com/gpu`` among
the resources it packs GPUs, for pods that request them (plugins/resources.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ballast.placement.framework import MAX_SCORE, CycleState, IntArray, Scores
from ballast.placement.plugins.base import PluginArgs
from ballast.placement.plugins.resources import (
    DEFAULT_RESOURCES,
    ResourceSpec,
    node_columns,
    weighted_integer_mean,
    weights_of,
)

NAME = "MostAllocated"


class Args(PluginArgs):
    """The scoring strategy's resources (kube's default: cpu and memory, weight 1)."""

    resources: tuple[ResourceSpec, ...] = DEFAULT_RESOURCES


class MostAllocated:
    """Score: pack by preferring the most requested node."""

    name = NAME
    role = "packing"

    def __init__(self, args: Args) -> None:
        self.args = args
        self._weights = weights_of(args.resources)

    def score(self, state: CycleState, nodes: IntArray) -> Scores:
        """Weighted integer mean of the requested share after placement, 0..100."""
        requested, _, allocatable = node_columns(state, nodes, self.args.resources, nonzero=True)
        cap = np.maximum(allocatable, 1)
        per = np.where(
            allocatable > 0, np.minimum(requested, allocatable) * int(MAX_SCORE) // cap, 0
        )
        return weighted_integer_mean(per, allocatable, self._weights).astype(np.float64)

    def normalize(self, state: CycleState, raw: Scores) -> Scores:
        """Already on 0..100 (kube-scheduler does not normalise this plugin)."""
        return raw


def factory(args: Mapping[str, Any] | None = None) -> MostAllocated:
    """Build the plugin from raw arguments (validated)."""
    return MostAllocated(Args.model_validate(args or {}))
