"""RandomScore: a uniformly random score, from the decision's seed (a baseline policy)."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from ballast.placement.framework import MAX_SCORE, CycleState, IntArray, Scores
from ballast.placement.plugins.base import PluginArgs

NAME = "RandomScore"


class Args(PluginArgs):
    """RandomScore has no arguments."""


class RandomScore:
    """Score: random, reproducible for the same seed, pod and candidate nodes."""

    name = NAME
    role = "other"

    def __init__(self, args: Args) -> None:
        self.args = args

    def score(self, state: CycleState, nodes: IntArray) -> Scores:
        """Uniform in [0, 100) per node."""
        rng = np.random.default_rng([state.seed, zlib.crc32(state.pod.id.encode())])
        return np.asarray(rng.random(nodes.shape[0]) * MAX_SCORE, dtype=np.float64)

    def normalize(self, state: CycleState, raw: Scores) -> Scores:
        """Already on 0..100."""
        return raw


def factory(args: Mapping[str, Any] | None = None) -> RandomScore:
    """Build the plugin from raw arguments (validated)."""
    return RandomScore(Args.model_validate(args or {}))
