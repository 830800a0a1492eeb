"""GPUModel: the node's GPU product must be one the pod and its class allow.

The allowed set is the pod's ``gpu_products`` (the traces' ``gpu_spec``
alternatives) intersected with the class pool's ``gpu_products``; an empty
list allows any product. Matched against ``nvidia.com/gpu.product``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ballast.placement.framework import Codes, CycleState, IntArray, Reason
from ballast.placement.plugins.base import PluginArgs

NAME = "GPUModel"


class Args(PluginArgs):
    """GPUModel has no arguments."""


def allowed_products(pod_products: tuple[str, ...], pool_products: tuple[str, ...]) -> set[str]:
    """The products both allow; an empty side allows everything (empty result: any)."""
    if pod_products and pool_products:
        both = set(pod_products) & set(pool_products)
        return both if both else {""}  # {""} matches no real product
    return set(pod_products or pool_products)


class GPUModel:
    """Filter: GPU product alternatives."""

    name: str = NAME
    reasons: tuple[Reason, ...] = (Reason("GPU model mismatch"),)

    def __init__(self, args: Args) -> None:
        self.args = args

    def filter(self, state: CycleState, nodes: IntArray) -> Codes:
        """Reject GPU pods on nodes whose product is not allowed; CPU-only pods pass."""
        codes = np.zeros(nodes.shape[0], dtype=np.uint8)
        pod = state.pod
        if not (pod.gpus or pod.gpu_milli):
            return codes
        allowed = allowed_products(pod.gpu_products, state.cls.pool.gpu_products)
        if not allowed:
            return codes
        snap = state.snapshot
        ids = [snap.products.index(p) for p in allowed if p in snap.products]
        codes[~np.isin(snap.product[nodes], ids)] = 1
        return codes


def factory(args: Mapping[str, Any] | None = None) -> GPUModel:
    """Build the plugin from raw arguments (validated)."""
    return GPUModel(Args.model_validate(args or {}))
