"""Shared arithmetic for kube-scheduler's resource scorers: fractions requested after placement.

Like kube-scheduler, the GPU counts only for pods that request it, and a
resource the node does not have is left out of that node's score.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ballast.placement.framework import CycleState, IntArray
from ballast.placement.objects import MILLI

F64 = npt.NDArray[np.float64]


def requested_fractions(state: CycleState, nodes: IntArray) -> tuple[F64, npt.NDArray[np.bool_]]:
    """``(fractions, present)``: per node and resource (cpu, memory, gpu), requested/capacity."""
    snap, pod = state.snapshot, state.pod
    caps = [snap.cpu_cap[nodes], snap.mem_cap[nodes]]
    used = [
        snap.cpu_cap[nodes] - snap.cpu_free[nodes] + pod.cpu_milli,
        snap.mem_cap[nodes] - snap.mem_free[nodes] + pod.memory_mib,
    ]
    if pod.gpus or pod.gpu_milli:
        gcap = snap.gpu_count[nodes].astype(np.int64) * MILLI
        caps.append(gcap)
        used.append(gcap - snap.free_sum[nodes] + pod.demand_milli)
    cap = np.stack(caps, axis=1).astype(np.float64)
    present = cap > 0
    frac = np.divide(np.stack(used, axis=1), cap, out=np.zeros_like(cap), where=present)
    return np.clip(frac, 0.0, 1.0), present
