"""NodeAffinity: the pod's node selector and required node affinity must match the labels.

Kubernetes semantics: selector entries all match; affinity terms are ORed and
the expressions inside a term ANDed; ``NotIn`` and ``DoesNotExist`` match a
node without the label; an empty term matches nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from ballast.placement.columns import LabelColumns
from ballast.placement.framework import Codes, CycleState, IntArray, Reason
from ballast.placement.objects import NodeSelectorRequirement, NodeSelectorTerm
from ballast.placement.plugins.base import PluginArgs

NAME = "NodeAffinity"
Mask = npt.NDArray[np.bool_]


class Args(PluginArgs):
    """NodeAffinity has no arguments."""


def requirement_mask(labels: LabelColumns, req: NodeSelectorRequirement, nodes: IntArray) -> Mask:
    """Which ``nodes`` satisfy one requirement."""
    col = labels.column(req.key)
    if col is None:
        return np.full(nodes.shape[0], req.operator in ("NotIn", "DoesNotExist"))
    vals = col[nodes]
    if req.operator == "Exists":
        return vals >= 0
    if req.operator == "DoesNotExist":
        return vals < 0
    hit = np.isin(vals, labels.value_ids(req.key, req.values))
    return hit if req.operator == "In" else ~hit


def term_mask(labels: LabelColumns, term: NodeSelectorTerm, nodes: IntArray) -> Mask:
    """Which ``nodes`` satisfy every requirement of a term (none for an empty term)."""
    if not term.match_expressions:
        return np.zeros(nodes.shape[0], dtype=bool)
    mask = np.ones(nodes.shape[0], dtype=bool)
    for req in term.match_expressions:
        mask &= requirement_mask(labels, req, nodes)
    return mask


class NodeAffinity:
    """Filter: node selector and required node affinity."""

    name: str = NAME
    reasons: tuple[Reason, ...] = (Reason("node affinity mismatch"),)

    def __init__(self, args: Args) -> None:
        self.args = args

    def filter(self, state: CycleState, nodes: IntArray) -> Codes:
        """Reject nodes the selector or the required affinity excludes."""
        pod, labels = state.pod, state.snapshot.labels
        ok = np.ones(nodes.shape[0], dtype=bool)
        for key, value in pod.node_selector.items():
            col = labels.column(key)
            ok &= False if col is None else col[nodes] == labels.value_id(key, value)
        if pod.affinity:
            anyterm = np.zeros(nodes.shape[0], dtype=bool)
            for term in pod.affinity:
                anyterm |= term_mask(labels, term, nodes)
            ok &= anyterm
        return (~ok).astype(np.uint8)


def factory(args: Mapping[str, Any] | None = None) -> NodeAffinity:
    """Build the plugin from raw arguments (validated)."""
    return NodeAffinity(Args.model_validate(args or {}))
