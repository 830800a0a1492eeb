"""GPUMemory: each GPU of the node must have at least the memory the pod or class needs.

The need is the larger of the pod's and the class pool's minimum. A node that
does not say how much memory its GPUs have (0) cannot prove it is enough and
is rejected when a minimum is asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ballast.placement.framework import Codes, CycleState, IntArray, Reason
from ballast.placement.plugins.base import PluginArgs

NAME = "GPUMemory"


class Args(PluginArgs):
    """GPUMemory has no arguments."""


class GPUMemory:
    """Filter: per-GPU memory capacity."""

    name: str = NAME
    reasons: tuple[Reason, ...] = (Reason("insufficient GPU memory"),)

    def __init__(self, args: Args) -> None:
        self.args = args

    def filter(self, state: CycleState, nodes: IntArray) -> Codes:
        """Reject nodes whose GPUs are smaller than the minimum."""
        codes = np.zeros(nodes.shape[0], dtype=np.uint8)
        pod = state.pod
        need = max(pod.min_gpu_memory_mib, state.cls.pool.min_gpu_memory_mib)
        if need and (pod.gpus or pod.gpu_milli):
            codes[state.snapshot.gpu_memory[nodes] < need] = 1
        return codes


def factory(args: Mapping[str, Any] | None = None) -> GPUMemory:
    """Build the plugin from raw arguments (validated)."""
    return GPUMemory(Args.model_validate(args or {}))
