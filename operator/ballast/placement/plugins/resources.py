"""Shared arithmetic for kube-scheduler's resource scorers, as kube-scheduler v1.37 computes it.

A scorer names its resources with weights (``cpu``, ``memory``,
``nvidia.com/gpu``; kube's default is cpu and memory, weight 1 each). Per
node and resource it needs what is allocatable, what is allocated before the
pod and what is requested with it. As in kube-scheduler's
``resource_allocation.go``:

- an extended resource (the GPU) the pod does not request is left out of
  the pod's score, and so is a resource the node has none of (allocatable 0);
- ``nonzero`` (NodeResourcesFit's scoring) counts a pod without a CPU or
  memory request as 100m CPU / 200 MiB, BalancedAllocation counts requests
  as they are. The node side always counts what its pods request: the one
  openb pod without a memory request is not inflated on the node.

Memory is in MiB and GPUs in milli-GPUs here (bytes and whole devices in
kube). The integer formulas give identical results: both sides of every
ratio scale by the same factor (whole GPUs are multiples of 1000), and a
power-of-two scale leaves a float division unchanged.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from ballast.placement.framework import CycleState, IntArray
from ballast.placement.objects import MILLI

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

GPU = "nvidia.com/gpu"
ResourceName = Literal["cpu", "memory", "nvidia.com/gpu"]
#: kube-scheduler's defaults for requests a pod leaves out (``schedutil.DefaultMilliCPURequest``
#: and ``DefaultMemoryRequest``, 200 MB = 200 MiB).
DEFAULT_CPU_MILLI = 100
DEFAULT_MEMORY_MIB = 200


class ResourceSpec(BaseModel):
    """One resource a scorer reads, with its weight (kube's ``ResourceSpec``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ResourceName
    weight: int = Field(1, ge=1, le=100)


#: kube-scheduler's ``defaultResourceSpec``: cpu and memory, weight 1 each.
DEFAULT_RESOURCES: tuple[ResourceSpec, ...] = (
    ResourceSpec(name="cpu"),
    ResourceSpec(name="memory"),
)


def pod_request(state: CycleState, name: ResourceName, *, nonzero: bool) -> int:
    """What the pod asks of ``name`` (CPU milli, memory MiB, milli-GPU)."""
    pod = state.pod
    if name == "cpu":
        return pod.cpu_milli or (DEFAULT_CPU_MILLI if nonzero else 0)
    if name == "memory":
        return pod.memory_mib or (DEFAULT_MEMORY_MIB if nonzero else 0)
    return pod.demand_milli


def node_columns(
    state: CycleState, nodes: IntArray, resources: tuple[ResourceSpec, ...], *, nonzero: bool
) -> tuple[I64, I64, I64]:
    """``(requested, allocated, allocatable)`` per node (rows) and resource (columns).

    ``requested`` includes the pod, ``allocated`` is the node before it. A
    column is all zero where the resource is left out (allocatable 0).
    """
    snap = state.snapshot
    n = int(nodes.shape[0])
    requested = np.zeros((n, len(resources)), dtype=np.int64)
    allocated = np.zeros((n, len(resources)), dtype=np.int64)
    allocatable = np.zeros((n, len(resources)), dtype=np.int64)
    for i, spec in enumerate(resources):
        want = pod_request(state, spec.name, nonzero=nonzero)
        if spec.name == "cpu":
            cap = snap.cpu_cap[nodes].astype(np.int64)
            used = cap - snap.cpu_free[nodes]
        elif spec.name == "memory":
            cap = snap.mem_cap[nodes].astype(np.int64)
            used = cap - snap.mem_free[nodes]
        else:
            if not want:  # an extended resource the pod does not request is not scored
                continue
            cap = snap.gpu_count[nodes].astype(np.int64) * MILLI
            used = cap - snap.free_sum[nodes]
        has = cap > 0
        allocatable[:, i] = np.where(has, cap, 0)
        allocated[:, i] = np.where(has, used, 0)
        requested[:, i] = np.where(has, used + want, 0)
    return requested, allocated, allocatable


def weighted_integer_mean(per_resource: I64, allocatable: I64, weights: I64) -> I64:
    """``sum(score * weight) // sum(weight)`` over the resources a node has (0 when none)."""
    present = allocatable > 0
    wsum = (weights[None, :] * present).sum(axis=1)
    total = (per_resource * weights[None, :] * present).sum(axis=1)
    return np.where(wsum > 0, total // np.maximum(wsum, 1), 0)


def weights_of(resources: tuple[ResourceSpec, ...]) -> I64:
    """The weights as an array, in the order of ``resources``."""
    return np.array([r.weight for r in resources], dtype=np.int64)
