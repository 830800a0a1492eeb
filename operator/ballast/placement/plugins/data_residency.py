"""DataResidency: a class with residency regions runs only on nodes in those regions.

The region is the node's ``topology.kubernetes.io/region`` label; a node
without it is outside every region.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ballast.api.wellknown import LABEL_REGION
from ballast.placement.framework import Codes, CycleState, IntArray, Reason
from ballast.placement.plugins.base import PluginArgs

NAME = "DataResidency"


class Args(PluginArgs):
    """DataResidency's arguments."""

    label: str = LABEL_REGION


class DataResidency:
    """Filter: data-residency regions of the class."""

    name: str = NAME
    reasons: tuple[Reason, ...] = (Reason("outside residency regions"),)

    def __init__(self, args: Args) -> None:
        self.args = args

    def filter(self, state: CycleState, nodes: IntArray) -> Codes:
        """Reject nodes whose region is not listed by the class."""
        codes = np.zeros(nodes.shape[0], dtype=np.uint8)
        regions = state.cls.placement.residency_regions
        if not regions:
            return codes
        labels = state.snapshot.labels
        col = labels.column(self.args.label)
        if col is None:
            codes[:] = 1
        else:
            codes[~np.isin(col[nodes], labels.value_ids(self.args.label, regions))] = 1
        return codes


def factory(args: Mapping[str, Any] | None = None) -> DataResidency:
    """Build the plugin from raw arguments (validated)."""
    return DataResidency(Args.model_validate(args or {}))
