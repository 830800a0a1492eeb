"""LeastAllocated: kube-scheduler's NodeResourcesFit scoring with the ``LeastAllocated`` strategy.

Per resource ``(allocatable - requested) * 100 // allocatable`` (0 when the
pod would overcommit it), then the weighted mean over the resources the node
has, in integers, as kube-scheduler v1.37 computes it. The default resources
are kube's: cpu and memory, weight 1 each; ``nvidia.com/gpu`` is scored only
when listed and only for pods that request it (plugins/resources.py).
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

NAME = "LeastAllocated"


class Args(PluginArgs):
    """The scoring strategy's resources (kube's default: cpu and memory, weight 1)."""

    resources: tuple[ResourceSpec, ...] = DEFAULT_RESOURCES


class LeastAllocated:
    """Score: spread load by preferring the least requested node."""

    name = NAME
    role = "balance"

    def __init__(self, args: Args) -> None:
        self.args = args
        self._weights = weights_of(args.resources)

    def score(self, state: CycleState, nodes: IntArray) -> Scores:
        """Weighted integer mean of the free share after placement, 0..100."""
        requested, _, allocatable = node_columns(state, nodes, self.args.resources, nonzero=True)
        cap = np.maximum(allocatable, 1)
        per = np.where(
            (allocatable > 0) & (requested <= allocatable),
            (allocatable - requested) * int(MAX_SCORE) // cap,
            0,
        )
        return weighted_integer_mean(per, allocatable, self._weights).astype(np.float64)

    def normalize(self, state: CycleState, raw: Scores) -> Scores:
        """Already on 0..100 (kube-scheduler does not normalise this plugin)."""
        return raw


def factory(args: Mapping[str, Any] | None = None) -> LeastAllocated:
    """Build the plugin from raw arguments (validated)."""
    return LeastAllocated(Args.model_validate(args or {}))
