"""GPUFit: CPU, memory, whole GPUs and GPU shares must fit in what the node has free.

Shares are tracked per physical GPU: a pod asking for 600 milli needs one GPU
with 600 free, not 600 spread over several GPUs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ballast.placement.framework import Codes, CycleState, IntArray, Reason, reject
from ballast.placement.objects import MILLI
from ballast.placement.plugins.base import PluginArgs

NAME = "GPUFit"


class Args(PluginArgs):
    """GPUFit has no arguments."""


class GPUFit:
    """Filter: the pod's requests fit the node's free resources."""

    name: str = NAME
    reasons: tuple[Reason, ...] = (
        Reason("no GPUs"),
        Reason("insufficient GPUs", resolvable=True),
        Reason("insufficient GPU share", resolvable=True),
        Reason("insufficient cpu", resolvable=True),
        Reason("insufficient memory", resolvable=True),
    )

    def __init__(self, args: Args) -> None:
        self.args = args

    def filter(self, state: CycleState, nodes: IntArray) -> Codes:
        """Reject nodes whose free GPUs, CPU or memory cannot hold the pod."""
        snap, pod = state.snapshot, state.pod
        codes = np.zeros(nodes.shape[0], dtype=np.uint8)
        codes[snap.mem_free[nodes] < pod.memory_mib] = reject(self.reasons, "insufficient memory")
        codes[snap.cpu_free[nodes] < pod.cpu_milli] = reject(self.reasons, "insufficient cpu")
        raw = state.free is snap.free
        if pod.gpus:
            whole = (
                snap.whole_free[nodes]
                if raw
                else np.count_nonzero(state.free[nodes] >= MILLI, axis=1)
            )
            codes[whole < pod.gpus] = reject(self.reasons, "insufficient GPUs")
        elif pod.gpu_milli:
            largest = snap.max_free[nodes] if raw else state.free[nodes].max(axis=1)
            codes[largest < pod.gpu_milli] = reject(self.reasons, "insufficient GPU share")
        if pod.gpus or pod.gpu_milli:
            codes[snap.gpu_count[nodes] == 0] = reject(self.reasons, "no GPUs")
        return codes


def factory(args: Mapping[str, Any] | None = None) -> GPUFit:
    """Build the plugin from raw arguments (validated)."""
    return GPUFit(Args.model_validate(args or {}))
