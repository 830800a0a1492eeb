"""FragmentationGradient: place where the expected GPU fragmentation grows least (FGD).

The packing policy of Weng et al. (USENIX ATC '23). The workload mix comes
from the snapshot (``Snapshot.mix``: recent arrivals and any prior); with an
empty mix the pod itself stands for the workload. Raw score: minus the growth
of the node's expected fragmentation; for a share pod the growth on the best
GPU of the node, which is also the GPU the pod is given (ties: the fullest
GPU that fits, then the lowest index).

With ``paper: true`` the score is the FGD authors' own (their simulator's
FGDScore, docs/simulator.md): ``int(100 * sigmoid(-growth / 1000))``, an
integer from 0 to 100 used as it is (no normalisation), so growths closer
than the rounding tie; for a share pod the GPU is the lowest-index one with
the node's best integer score.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ballast.placement.fragmentation import (
    MixArrays,
    PerTypeCache,
    WorkloadMix,
    delta_node,
    delta_share,
)
from ballast.placement.framework import CycleState, IntArray, Scores, min_max
from ballast.placement.plugins.base import PluginArgs, first_fit

NAME = "FragmentationGradient"
_GPU = NAME + ".gpu"


class Args(PluginArgs):
    """FragmentationGradient's arguments (the mix is configured on the snapshot)."""

    #: The FGD authors' integer score and GPU choice instead of the exact gradient.
    paper: bool = False


def paper_score(growth: Scores) -> Scores:
    """The authors' integer score of a growth in milli-GPUs (-1 where it is infinite)."""
    with np.errstate(over="ignore"):
        score = np.trunc(1.0 / (1.0 + np.exp(growth / 1000.0)) * 100.0)
    return np.where(np.isfinite(growth), score, -1.0)


def _mix(state: CycleState) -> MixArrays:
    snap = state.snapshot
    mix = snap.mix.arrays(snap.products)
    if mix is None:
        alone = WorkloadMix(window=1)
        alone.observe(state.pod)
        mix = alone.arrays(snap.products)
    assert mix is not None
    return mix


class FragmentationGradient:
    """Score (and GPU choice): fragmentation gradient descent."""

    name = NAME
    role = "packing"

    def __init__(self, args: Args) -> None:
        self.args = args
        self._per_type = PerTypeCache()

    def _deltas(self, state: CycleState, nodes: IntArray) -> Scores:
        snap, pod = state.snapshot, state.pod
        if not (pod.gpus or pod.gpu_milli) and snap.mix.arrays(snap.products) is None:
            return np.zeros((nodes.shape[0], 1))
        mix = _mix(state)
        args = (
            state.free[nodes],
            snap.cpu_free[nodes],
            snap.mem_free[nodes],
            snap.product[nodes],
            mix,
        )
        pt = self._per_type.get(state.free, nodes, mix)
        if pod.gpu_milli:
            return delta_share(*args, pod.gpu_milli, pod.cpu_milli, pod.memory_mib, pt)
        return delta_node(*args, pod.gpus, pod.cpu_milli, pod.memory_mib, pt)[:, None]

    def score(self, state: CycleState, nodes: IntArray) -> Scores:
        """Minus the growth of expected fragmentation if the pod went to each node."""
        delta = self._deltas(state, nodes)
        if self.args.paper:
            score = paper_score(delta)
            if delta.shape[1] > 1:
                best = score.argmax(axis=1)  # the lowest index among equal scores
                state.scratch[_GPU] = dict(zip(nodes.tolist(), best.tolist(), strict=True))
            return score.max(axis=1)  # type: ignore[no-any-return]
        if delta.shape[1] == 1:
            return -delta[:, 0]
        # Among equally good GPUs prefer the fullest: a tiny bias far below
        # any real difference in fragmentation.
        biased = delta + state.free[nodes] * 1e-9
        best = biased.argmin(axis=1)
        state.scratch[_GPU] = dict(zip(nodes.tolist(), best.tolist(), strict=True))
        return -delta[np.arange(nodes.shape[0]), best]  # type: ignore[no-any-return]

    def normalize(self, state: CycleState, raw: Scores) -> Scores:
        """Min-max over the feasible nodes (the paper's score is used as it is)."""
        return raw if self.args.paper else min_max(raw)

    def choose_gpus(self, state: CycleState, node: int) -> tuple[int, ...]:
        """For a share, the GPU whose use grows fragmentation least; whole GPUs: first fit."""
        if not state.share:
            return first_fit(state, node)
        known: dict[int, int] | None = state.scratch.get(_GPU)
        if known is not None and node in known:
            return (known[node],)
        delta = self._deltas(state, np.array([node], dtype=np.int64))
        if self.args.paper:
            score = paper_score(delta[0])
            g = int(score.argmax())
            return (g,) if score[g] >= 0 else ()
        biased = delta[0] + state.free[node] * 1e-9
        g = int(biased.argmin())
        return (g,) if np.isfinite(delta[0, g]) else ()


def factory(args: Mapping[str, Any] | None = None) -> FragmentationGradient:
    """Build the plugin from raw arguments (validated)."""
    return FragmentationGradient(Args.model_validate(args or {}))
