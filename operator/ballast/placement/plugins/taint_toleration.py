"""TaintToleration: every NoSchedule/NoExecute taint of the node must be tolerated.

Taint sets are interned in the snapshot, so each distinct set is judged once
per decision, however many nodes carry it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ballast.placement.framework import Codes, CycleState, IntArray, Reason
from ballast.placement.plugins.base import PluginArgs

NAME = "TaintToleration"


class Args(PluginArgs):
    """TaintToleration has no arguments."""


class TaintToleration:
    """Filter: taints and tolerations."""

    name: str = NAME
    reasons: tuple[Reason, ...] = (Reason("untolerated taint"),)

    def __init__(self, args: Args) -> None:
        self.args = args

    def filter(self, state: CycleState, nodes: IntArray) -> Codes:
        """Reject nodes with a hard taint the pod does not tolerate."""
        sets = state.snapshot.taints.sets
        if len(sets) == 1:
            return np.zeros(nodes.shape[0], dtype=np.uint8)
        tols = state.pod.tolerations
        bad = np.array(
            [not all(any(t.tolerates(taint) for t in tols) for taint in s) for s in sets],
            dtype=np.uint8,
        )
        return bad[state.snapshot.taint_id[nodes]]


def factory(args: Mapping[str, Any] | None = None) -> TaintToleration:
    """Build the plugin from raw arguments (validated)."""
    return TaintToleration(Args.model_validate(args or {}))
