"""DataLocality: prefer nodes that already cache the pod's models and datasets.

Raw score: the bytes of the pod's items cached on the node, plus
``zone_factor`` of the bytes of items only cached elsewhere in the node's zone
(a peer copy is faster than the origin). Each item's bytes are damped by how
narrowly it is spread, as kube-scheduler's ImageLocality does, so that one
warm node does not attract every replica: an item on ``n`` nodes counts
``spread_floor + (1 - spread_floor) * min(1, n / spread_saturation)`` of its
size. Normalised on a fixed scale: 100 means every byte is local and
undamped, so a pod without cached items gives every node 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import Field

from ballast.api.wellknown import LABEL_ZONE
from ballast.placement.framework import CycleState, IntArray, Scores, clip_scale
from ballast.placement.plugins.base import PluginArgs

NAME = "DataLocality"


class Args(PluginArgs):
    """DataLocality's arguments."""

    zone_factor: float = Field(0.25, ge=0.0, le=1.0)
    spread_floor: float = Field(0.6, ge=0.0, le=1.0)
    spread_saturation: int = Field(4, ge=1)
    zone_label: str = LABEL_ZONE


class DataLocality:
    """Score: cached bytes of the pod's models and datasets."""

    name = NAME
    role = "locality"

    def __init__(self, args: Args) -> None:
        self.args = args

    def score(self, state: CycleState, nodes: IntArray) -> Scores:
        """Damped local bytes plus a zone share of bytes cached on zone peers."""
        raw = np.zeros(nodes.shape[0])
        snap, a = state.snapshot, self.args
        total = 0.0
        zones = snap.labels.column(a.zone_label)
        for key in state.pod.item_keys:
            holders = snap.caches.holders(key)
            if not holders.size:
                continue
            size = float(snap.caches.size_of(key))
            total += size
            damp = a.spread_floor + (1 - a.spread_floor) * min(
                1.0, holders.size / a.spread_saturation
            )
            local = np.isin(nodes, holders, assume_unique=True)
            if zones is not None and a.zone_factor > 0:
                warm_zones = np.unique(zones[holders])
                warm_zones = warm_zones[warm_zones >= 0]
                peer = np.isin(zones[nodes], warm_zones) & ~local
                raw[peer] += size * damp * a.zone_factor
            raw[local] += size * damp
        state.scratch[NAME + ".total"] = total
        return raw

    def normalize(self, state: CycleState, raw: Scores) -> Scores:
        """Fixed scale: 0 = nothing cached nearby, 100 = all bytes local and undamped."""
        total = float(state.scratch.get(NAME + ".total", 0.0))
        if total <= 0:
            return np.zeros(raw.shape)
        return clip_scale(raw, 0.0, total)


def factory(args: Mapping[str, Any] | None = None) -> DataLocality:
    """Build the plugin from raw arguments (validated)."""
    return DataLocality(Args.model_validate(args or {}))
