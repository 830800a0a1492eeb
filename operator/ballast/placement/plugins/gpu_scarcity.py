"""GPUScarcity: leave scarce GPU models to the pods that can run nowhere else.

From the workload mix, each task type with allowed products ``A`` puts
pressure ``popularity * GPUs per task / free capacity of A`` on every product
in ``A``; a product's pressure is the sum over the types that may use it.
Types that run anywhere press on every product alike, so on a workload
without GPU-model constraints this score is flat and changes nothing. Raw
score: minus the pressure on the node's product, so a pod that may run on
several models takes the one the rest of the workload needs least. FGD alone
cannot see this: its fragmentation is measured node by node, not against
how scarce a model is cluster-wide.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ballast.placement.framework import CycleState, IntArray, Scores, min_max
from ballast.placement.objects import MILLI
from ballast.placement.plugins.base import PluginArgs

NAME = "GPUScarcity"


class Args(PluginArgs):
    """GPUScarcity has no arguments (pressure comes from the snapshot's mix)."""


class GPUScarcity:
    """Score: prefer GPU models under the least pressure from constrained demand."""

    name = NAME
    role = "packing"

    def __init__(self, args: Args) -> None:
        self.args = args

    def score(self, state: CycleState, nodes: IntArray) -> Scores:
        """Minus the pressure on each node's GPU product (0 for CPU-only pods)."""
        snap, pod = state.snapshot, state.pod
        mix = snap.mix.arrays(snap.products)
        if mix is None or not (pod.gpus or pod.gpu_milli) or not snap.products:
            return np.zeros(nodes.shape[0])
        rows = snap.rows()
        prod = snap.product[rows]
        has = prod >= 0
        nprod = len(snap.products)
        free = np.bincount(prod[has], weights=snap.free_sum[rows][has], minlength=nprod)
        compat = mix.compat[:, :nprod]
        reach = compat @ free  # free capacity each type can use
        size = mix.pop * mix.k * mix.d / MILLI
        per_type = np.divide(size, reach, out=np.zeros_like(size), where=reach > 0)
        pressure = np.append(per_type @ compat, 0.0)  # index -1: no product
        return -pressure[snap.product[nodes]]

    def normalize(self, state: CycleState, raw: Scores) -> Scores:
        """Min-max over the feasible nodes."""
        return min_max(raw)


def factory(args: Mapping[str, Any] | None = None) -> GPUScarcity:
    """Build the plugin from raw arguments (validated)."""
    return GPUScarcity(Args.model_validate(args or {}))
