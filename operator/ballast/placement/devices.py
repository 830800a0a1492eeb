"""The plain values of DRA placement: devices, their slots on a node, requests, allocations.

See :mod:`ballast.placement.dra` for how they are used.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ballast.placement.cel import AttrValue, Version
from ballast.placement.objects import MILLI, Pod

NVIDIA_DRIVER = "gpu.nvidia.com"
HOLD_PREFIX = "claim/"
MIG_SLICES = 8  # memory slices of an A100/H100/H200 GPU
_NUM = re.compile(r"(\d+)")


@dataclass(frozen=True, slots=True)
class Device:
    """One published device; attribute and capacity names are qualified (``domain/name``)."""

    driver: str
    pool: str
    name: str
    node: str
    attributes: Mapping[str, AttrValue | Version] = field(default_factory=dict)
    capacity: Mapping[str, int] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """``driver/pool/name``: unique in the cluster."""
        return f"{self.driver}/{self.pool}/{self.name}"

    def attr(self, name: str) -> AttrValue | Version | None:
        """An attribute in the driver's own domain."""
        return self.attributes.get(f"{self.driver}/{name}")

    @property
    def kind(self) -> str:
        """``gpu``, ``mig`` or ``other`` (from the ``type`` attribute)."""
        t = self.attr("type")
        return t if isinstance(t, str) and t in ("gpu", "mig") else "other"

    @property
    def memory_slices(self) -> frozenset[str]:
        """The ``memorySlice<i>`` capacities of a MIG device."""
        return frozenset(k.rpartition("/")[2] for k in self.capacity if "/memorySlice" in k)


def natural(name: str) -> tuple[object, ...]:
    """Sort key that orders ``gpu-2`` before ``gpu-10``."""
    return tuple(int(p) if p.isdigit() else p for p in _NUM.split(name))


@dataclass(frozen=True, slots=True)
class Slot:
    """Where a device sits on its node: column and the milli-GPUs it takes there."""

    device: Device
    column: int
    milli: int


@dataclass(frozen=True, slots=True)
class Request:
    """One request of one unallocated claim: ``count`` devices matching every selector."""

    claim_uid: str
    claim: str  # namespace/name
    name: str
    selectors: tuple[str, ...]
    count: int = 1


@dataclass(frozen=True, slots=True)
class Ask:
    """What a pod's claims still need: requests of unallocated claims, and a pinned node.

    ``node`` is set when one of the pod's claims is already allocated: the pod
    must run where its devices are.
    """

    requests: tuple[Request, ...] = ()
    node: str = ""
    mig: bool = False  # one MIG device (a share of a GPU) instead of whole GPUs
    milli: int = 0  # the share asked for when ``mig``


@dataclass(frozen=True, slots=True)
class Allocated:
    """One allocation result: which device serves which request."""

    request: str
    device: Device
    milli: int
    column: int
    claim_uid: str = ""


def mig_milli(mig: Device, parent: Device) -> int:
    """A MIG device's share of its GPU: its memory over the GPU's, else slices out of 8."""
    mem = mig.capacity.get(f"{mig.driver}/memory", 0)
    total = parent.capacity.get(f"{parent.driver}/memory", 0)
    share = round(MILLI * mem / total) if mem and total else 0
    if not share:
        share = round(MILLI * len(mig.memory_slices) / MIG_SLICES)
    return min(MILLI - 1, max(1, share))


def hold_pod(claim_uid: str, namespace: str, claim: str, a: Allocated, class_name: str,
             tenant: str) -> Pod:  # fmt: skip
    """The stand-in pod that charges one allocated device to the snapshot."""
    whole = a.milli >= MILLI
    return Pod(namespace, f"{claim}:{a.device.name}", f"{HOLD_PREFIX}{claim_uid}/{a.device.key}",
               class_name=class_name, gpus=1 if whole else 0, gpu_milli=0 if whole else a.milli,
               tenant=tenant)  # fmt: skip
