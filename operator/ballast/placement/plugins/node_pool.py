"""NodePool: a class bound to a pool runs only on nodes labelled ``ballast.dev/pool=<pool>``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ballast.api.wellknown import LABEL_POOL
from ballast.placement.framework import Codes, CycleState, IntArray, Reason
from ballast.placement.plugins.base import PluginArgs

NAME = "NodePool"


class Args(PluginArgs):
    """NodePool's arguments."""

    label: str = LABEL_POOL


class NodePool:
    """Filter: pool membership from the node label."""

    name: str = NAME
    reasons: tuple[Reason, ...] = (Reason("pool mismatch"),)

    def __init__(self, args: Args) -> None:
        self.args = args

    def filter(self, state: CycleState, nodes: IntArray) -> Codes:
        """Reject nodes outside the class's pool (classes without a pool pass everywhere)."""
        codes = np.zeros(nodes.shape[0], dtype=np.uint8)
        pool = state.cls.pool.name
        if not pool:
            return codes
        col = state.snapshot.labels.column(self.args.label)
        if col is None:
            codes[:] = 1
        else:
            codes[col[nodes] != state.snapshot.labels.value_id(self.args.label, pool)] = 1
        return codes


def factory(args: Mapping[str, Any] | None = None) -> NodePool:
    """Build the plugin from raw arguments (validated)."""
    return NodePool(Args.model_validate(args or {}))
