"""NodeHealth: cordoned nodes, unhealthy GPUs, and (for classes that ask) stale telemetry.

A GPU is unhealthy when the node agent's latest report says so (its health
table: fatal XIDs, uncorrected ECC, row-remap failure, sustained hardware
slowdown, a lost GPU). A report that has gone stale still keeps its unhealthy
GPUs out of use; it never makes a node worse than that. A GPU pod is rejected
as ``unhealthy`` when it would fit on the node's GPUs but not on its healthy
ones, so the summary names the real cause rather than a lack of GPUs.

Stale or missing telemetry never blocks a node, except for a class with
``placement.requireFreshTelemetry``: its pods reject such nodes as
``stale telemetry`` (fail closed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ballast.placement.framework import Codes, CycleState, IntArray, Reason
from ballast.placement.objects import MILLI
from ballast.placement.plugins.base import PluginArgs

NAME = "NodeHealth"


class Args(PluginArgs):
    """NodeHealth has no arguments."""


class NodeHealth:
    """Filter: node and GPU health."""

    name: str = NAME
    reasons: tuple[Reason, ...] = (
        Reason("unschedulable"),
        Reason("unhealthy"),
        Reason("stale telemetry"),
    )

    def __init__(self, args: Args) -> None:
        self.args = args

    def filter(self, state: CycleState, nodes: IntArray) -> Codes:
        """Reject cordoned nodes, stale ones (if the class asks), and nodes too sick for the pod."""
        snap, pod = state.snapshot, state.pod
        codes = snap.unschedulable[nodes].astype(np.uint8)
        if state.telemetry and state.cls.placement.require_fresh_telemetry:
            codes[(codes == 0) & ~state.fresh[nodes]] = 3
        if state.free is snap.free or not (pod.gpus or pod.gpu_milli):
            return codes
        for i in np.flatnonzero(np.isin(nodes, state.sick)):
            r = int(nodes[i])
            raw, healthy = snap.free[r], state.free[r]
            if pod.gpus:
                lost = (
                    np.count_nonzero(raw >= MILLI) >= pod.gpus > np.count_nonzero(healthy >= MILLI)
                )
            else:
                lost = raw.max() >= pod.gpu_milli > healthy.max()
            if lost and codes[i] == 0:
                codes[i] = 2
        return codes


def factory(args: Mapping[str, Any] | None = None) -> NodeHealth:
    """Build the plugin from raw arguments (validated)."""
    return NodeHealth(Args.model_validate(args or {}))
