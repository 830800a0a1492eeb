"""BalancedAllocation: kube-scheduler's NodeResourcesBalancedAllocation, as in v1.37.

For a node, ``balance(x) = int((1 - std(fractions)) * 100)`` over the
requested fractions of its resources (capped at 1; with two resources the
std is ``|f1 - f2| / 2``). v1.37 scores the change the pod makes:
``50 + (50 + balance(with pod) - balance(without)) // 2``, so a pod that
evens a node out scores towards 100 and one that unbalances it towards 50.
Requests count as they are (no defaults for missing ones), and a pod that
requests none of the resources is not scored (every node gets 0). The
default resources are kube's: cpu and memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ballast.placement.framework import MAX_SCORE, CycleState, IntArray, Scores
from ballast.placement.plugins.base import PluginArgs
from ballast.placement.plugins.resources import (
    DEFAULT_RESOURCES,
    F64,
    I64,
    ResourceSpec,
    node_columns,
    pod_request,
)

NAME = "BalancedAllocation"


class Args(PluginArgs):
    """The resources balanced (kube's default: cpu and memory)."""

    resources: tuple[ResourceSpec, ...] = DEFAULT_RESOURCES


def balance(used: I64, allocatable: I64) -> I64:
    """``int((1 - std) * 100)`` per node over the resources it has (kube's float arithmetic)."""
    present = allocatable > 0
    frac = np.minimum(
        np.divide(
            used.astype(np.float64),
            allocatable.astype(np.float64),
            out=np.zeros(used.shape),
            where=present,
        ),
        1.0,
    )
    n = present.sum(axis=1)
    std: F64 = np.zeros(used.shape[0])
    two = n == 2
    if two.any():
        f = frac[two][present[two]].reshape(-1, 2)
        std[two] = np.abs((f[:, 0] - f[:, 1]) / 2)
    more = n > 2
    if more.any():
        p, fr = present[more], frac[more]
        mean = (fr * p).sum(axis=1) / n[more]
        std[more] = np.sqrt((((fr - mean[:, None]) ** 2) * p).sum(axis=1) / n[more])
    return ((1.0 - std) * MAX_SCORE).astype(np.int64)  # truncation, as Go's int64()


class BalancedAllocation:
    """Score: prefer nodes the pod leaves more evenly used."""

    name = NAME
    role = "balance"

    def __init__(self, args: Args) -> None:
        self.args = args

    def score(self, state: CycleState, nodes: IntArray) -> Scores:
        """kube's improvement score, 50..100 (0 everywhere for a pod requesting nothing)."""
        if not any(pod_request(state, r.name, nonzero=False) for r in self.args.resources):
            return np.zeros(nodes.shape[0])
        requested, allocated, allocatable = node_columns(
            state, nodes, self.args.resources, nonzero=False
        )
        half = int(MAX_SCORE) // 2
        delta = balance(requested, allocatable) - balance(allocated, allocatable)
        return (half + (half + delta) // 2).astype(np.float64)

    def normalize(self, state: CycleState, raw: Scores) -> Scores:
        """Already on 0..100 (kube-scheduler does not normalise this plugin)."""
        return raw


def factory(args: Mapping[str, Any] | None = None) -> BalancedAllocation:
    """Build the plugin from raw arguments (validated)."""
    return BalancedAllocation(Args.model_validate(args or {}))
