"""GPUStranding: avoid leaving free GPUs without the CPU and memory to use them.

With the workload mix's typical CPU and memory per GPU (``c`` and ``m``), a
node with ``g`` free GPUs, ``cpu`` and ``mem`` free strands
``max(0, g - cpu / c, g - mem / m)`` GPUs. Raw score: minus how many more
GPUs the placement would strand. FGD only notices CPU running out when a
task type stops fitting; this term sees it coming, so CPU-only pods go where
CPU is in surplus instead of eating the CPU next to free GPUs. Ballast uses
it to break ties between nodes FGD finds equally good.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ballast.placement.fragmentation import MixArrays
from ballast.placement.framework import CycleState, IntArray, Scores, min_max
from ballast.placement.objects import MILLI
from ballast.placement.plugins.base import PluginArgs

NAME = "GPUStranding"


class Args(PluginArgs):
    """GPUStranding has no arguments (the typical shape comes from the snapshot's mix)."""


def per_gpu(mix: MixArrays) -> tuple[float, float]:
    """Typical CPU (milli) and memory (MiB) per whole GPU in the mix."""
    gpus = float((mix.pop * mix.k * mix.d).sum()) / MILLI
    if gpus <= 0:
        return 0.0, 0.0
    return float((mix.pop * mix.cpu).sum()) / gpus, float((mix.pop * mix.mem).sum()) / gpus


class GPUStranding:
    """Score: growth of GPUs stranded for lack of CPU or memory."""

    name = NAME
    role = "packing"

    def __init__(self, args: Args) -> None:
        self.args = args

    def score(self, state: CycleState, nodes: IntArray) -> Scores:
        """Minus the GPUs the placement would newly strand."""
        snap, pod = state.snapshot, state.pod
        mix = snap.mix.arrays(snap.products)
        if mix is None:
            return np.zeros(nodes.shape[0])
        c, m = per_gpu(mix)
        if c <= 0 or m <= 0:
            return np.zeros(nodes.shape[0])
        g = state.free[nodes].sum(axis=1, dtype=np.int64) / MILLI
        cpu = snap.cpu_free[nodes].astype(np.float64)
        mem = snap.mem_free[nodes].astype(np.float64)

        def stranded(g: Scores, cpu: Scores, mem: Scores) -> Scores:
            return np.maximum(0.0, np.maximum(g - cpu / c, g - mem / m))

        before = stranded(g, cpu, mem)
        after = stranded(g - pod.demand_milli / MILLI, cpu - pod.cpu_milli, mem - pod.memory_mib)
        return -(after - before)

    def normalize(self, state: CycleState, raw: Scores) -> Scores:
        """Min-max over the feasible nodes."""
        return min_max(raw)


def factory(args: Mapping[str, Any] | None = None) -> GPUStranding:
    """Build the plugin from raw arguments (validated)."""
    return GPUStranding(Args.model_validate(args or {}))
