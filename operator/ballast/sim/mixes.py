"""Workloads derived from an openb pod list: the same cluster's pods, in other proportions.

The fragmentation goal must hold for mixes nobody tuned on. Each mix here is
a selection of a trace's own GPU pods (order kept), so task shapes stay real
and only their proportions change. CPU-only pods are kept in proportion to
the GPU demand kept (a seeded draw), so the CPU-only load per GPU of demand
stays the trace's: keeping them all would let the fill-up's inflation (which
draws from the mix, sim/fill.py) fill a small GPU mix's cluster with CPU-only
pods, and the figure would measure CPU exhaustion, not GPU fragmentation.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ballast.placement.objects import Pod

Select = Callable[[Pod], bool]
Derive = Callable[[Sequence[Pod], int], list[Pod]]


def keep(pods: Sequence[Pod], select: Select, seed: int) -> list[Pod]:
    """The GPU pods ``select`` keeps, with CPU-only pods in proportion to the demand kept."""
    total = sum(p.demand_milli for p in pods)
    kept = sum(p.demand_milli for p in pods if p.demand_milli and select(p))
    share = kept / total if total else 1.0
    rng = random.Random(seed)
    out: list[Pod] = []
    for p in pods:
        if p.demand_milli:
            if select(p):
                out.append(p)
        elif rng.random() < share:
            out.append(p)
    return out


@dataclass(frozen=True, slots=True)
class Mix:
    """A derived workload: the trace variant it starts from and how it is derived."""

    source: str  # the openb variant: default, gpushare40, gpuspec33, multigpu50
    description: str
    derive: Derive


def _select(select: Select) -> Derive:
    return lambda pods, seed: keep(pods, select, seed)


def _few_multi(pods: Sequence[Pod], seed: int) -> list[Pod]:
    rng = random.Random(seed + 1)
    chosen = {p.uid for p in pods if p.gpus >= 2 and rng.random() < 0.1}
    return keep(pods, lambda p: p.gpus < 2 or p.uid in chosen, seed)


def _unconstrained(pods: Sequence[Pod], seed: int) -> list[Pod]:
    return [dataclasses.replace(p, gpu_products=()) if p.gpu_products else p for p in pods]


#: name → mix, run by ``bench/fragmentation.py --all`` as ``<source>/<name>``.
MIXES: dict[str, Mix] = {
    "shares-only": Mix(
        "default", "every GPU pod shares a GPU", _select(lambda p: bool(p.gpu_milli))
    ),
    "whole-only": Mix("default", "no GPU shares", _select(lambda p: bool(p.gpus))),
    "few-multi": Mix("default", "one multi-GPU pod in ten kept", _few_multi),
    "multi-only": Mix("default", "only pods of 2 or more GPUs", _select(lambda p: p.gpus >= 2)),
    "single-only": Mix("default", "only 1-GPU pods and shares", _select(lambda p: p.gpus < 2)),
    "unconstrained": Mix("gpuspec33", "GPU-model constraints dropped", _unconstrained),
}
