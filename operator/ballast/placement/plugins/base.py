"""What every plugin module shares: the base of typed arguments and GPU choice helpers."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from ballast.placement.framework import CycleState
from ballast.placement.objects import MILLI


class PluginArgs(BaseModel):
    """Base of plugin arguments: unknown fields are an error, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def first_fit(state: CycleState, node: int) -> tuple[int, ...]:
    """Lowest-index GPUs that fit (what a device plugin does without advice)."""
    row = state.free[node]
    if state.whole:
        return tuple(int(g) for g in (row >= MILLI).nonzero()[0][: state.whole])
    if state.share:
        fit = (row >= state.share).nonzero()[0]
        return (int(fit[0]),) if fit.size else ()
    return ()


def best_fit(state: CycleState, node: int) -> tuple[int, ...]:
    """For a share, the GPU with the least free capacity that still fits; else first fit."""
    if not state.share:
        return first_fit(state, node)
    row = state.free[node]
    fit = (row >= state.share).nonzero()[0]
    if not fit.size:
        return ()
    return (int(fit[row[fit].argmin()]),)


def worst_fit(state: CycleState, node: int) -> tuple[int, ...]:
    """For a share, the GPU with the most free capacity (spreads load); else first fit."""
    if not state.share:
        return first_fit(state, node)
    row = state.free[node]
    best = int(row.argmax())
    return (best,) if row[best] >= state.share else ()
