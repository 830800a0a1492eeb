"""GPUTelemetry: prefer nodes whose GPUs have free memory, low utilisation and no throttling.

Raw score, from the node's mean over its GPUs:
``memory_weight * free_memory_fraction + utilization_weight * (1 - utilization)
- throttle_weight * throttled_fraction``. GPUs allocated since the report
(pods bound after it) count as fully used and their memory as taken, so a
burst of decisions between two reports spreads instead of piling onto the
node that looked idle. Nodes with stale or missing telemetry get the middle
of the range: neutral, neither rewarded nor punished.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import Field

from ballast import logs
from ballast.placement.framework import CycleState, IntArray, Scores, clip_scale
from ballast.placement.plugins.base import PluginArgs

NAME = "GPUTelemetry"
log = logging.getLogger(__name__)


class Args(PluginArgs):
    """GPUTelemetry's arguments."""

    memory_weight: float = Field(1.0, ge=0.0)
    utilization_weight: float = Field(1.0, ge=0.0)
    throttle_weight: float = Field(2.0, ge=0.0)


class GPUTelemetry:
    """Score: live GPU state from the node agent."""

    name = NAME
    role = "telemetry"

    def __init__(self, args: Args) -> None:
        self.args = args
        self.lo = -args.throttle_weight
        self.hi = args.memory_weight + args.utilization_weight

    def score(self, state: CycleState, nodes: IntArray) -> Scores:
        """Weighted telemetry; neutral for nodes whose telemetry is stale or missing."""
        snap, a = state.snapshot, self.args
        since = snap.load_since_report(nodes)
        raw = (
            a.memory_weight * np.clip(snap.tele_mem_free[nodes] - since, 0.0, 1.0)
            + a.utilization_weight * (1.0 - np.clip(snap.tele_util[nodes] + since, 0.0, 1.0))
            - a.throttle_weight * snap.tele_throttled[nodes]
        )
        fresh = state.fresh[nodes]
        if not fresh.all():
            raw = np.where(fresh, raw, (self.lo + self.hi) / 2)
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "stale or missing telemetry scored neutral",
                    extra=logs.kv(pod=state.pod.key, nodes=int((~fresh).sum())),
                )
        return raw

    def normalize(self, state: CycleState, raw: Scores) -> Scores:
        """Fixed scale from the worst to the best possible raw value."""
        return clip_scale(raw, self.lo, self.hi)


def factory(args: Mapping[str, Any] | None = None) -> GPUTelemetry:
    """Build the plugin from raw arguments (validated)."""
    return GPUTelemetry(Args.model_validate(args or {}))
