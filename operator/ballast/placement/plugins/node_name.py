"""NodeName: the lexicographically smallest node name wins (a deterministic tie-breaker).

The FGD authors' simulator breaks ties between equally scored nodes this
way, with every node's name prefixed by its place in a seeded permutation
(sim/paper.py does the renaming), so ties go to one fixed random order of
the nodes for the whole run rather than to a fresh draw per decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ballast.placement.framework import CycleState, IntArray, Scores, min_max
from ballast.placement.plugins.base import PluginArgs

NAME = "NodeName"


class Args(PluginArgs):
    """NodeName has no arguments."""


class NodeName:
    """Score: minus the rank of the node's name among the snapshot's names."""

    name = NAME
    role = "other"

    def __init__(self, args: Args) -> None:
        self.args = args
        self._names: tuple[str, ...] = ()
        self._rank: IntArray = np.zeros(0, dtype=np.int64)

    def _ranks(self, names: list[str]) -> IntArray:
        if tuple(names) != self._names:
            self._names = tuple(names)
            order = np.argsort(np.array(names, dtype=object), kind="stable")
            rank = np.empty(len(names), dtype=np.int64)
            rank[order] = np.arange(len(names))
            self._rank = rank
        return self._rank

    def score(self, state: CycleState, nodes: IntArray) -> Scores:
        """Minus the name's rank: the smallest name scores highest."""
        rank = self._ranks(state.snapshot.names)
        return -rank[nodes].astype(np.float64)

    def normalize(self, state: CycleState, raw: Scores) -> Scores:
        """Min-max over the feasible nodes."""
        return min_max(raw)


def factory(args: Mapping[str, Any] | None = None) -> NodeName:
    """Build the plugin from raw arguments (validated)."""
    return NodeName(Args.model_validate(args or {}))
