"""DataResidency: a class with residency regions (zones) runs only on nodes in them.

The region is the node's ``topology.kubernetes.io/region`` label and the
zone its ``topology.kubernetes.io/zone`` label; a node without the label is
outside every region (zone). Regions and zones both apply when both are set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ballast.api.wellknown import LABEL_REGION, LABEL_ZONE
from ballast.placement.framework import Codes, CycleState, IntArray, Reason
from ballast.placement.plugins.base import PluginArgs

NAME = "DataResidency"


class Args(PluginArgs):
    """DataResidency's arguments."""

    label: str = LABEL_REGION
    zone_label: str = LABEL_ZONE


class DataResidency:
    """Filter: data-residency regions of the class."""

    name: str = NAME
    reasons: tuple[Reason, ...] = (
        Reason("outside residency regions"),
        Reason("outside residency zones"),
    )

    def __init__(self, args: Args) -> None:
        self.args = args

    def filter(self, state: CycleState, nodes: IntArray) -> Codes:
        """Reject nodes whose region (zone) is not listed by the class."""
        codes = np.zeros(nodes.shape[0], dtype=np.uint8)
        labels = state.snapshot.labels
        # Zones first, so a node outside both is reported by its region.
        for code, label, allowed in (
            (2, self.args.zone_label, state.cls.placement.residency_zones),
            (1, self.args.label, state.cls.placement.residency_regions),
        ):
            if not allowed:
                continue
            col = labels.column(label)
            if col is None:
                codes[:] = code
            else:
                codes[~np.isin(col[nodes], labels.value_ids(label, allowed))] = code
        return codes


def factory(args: Mapping[str, Any] | None = None) -> DataResidency:
    """Build the plugin from raw arguments (validated)."""
    return DataResidency(Args.model_validate(args or {}))
