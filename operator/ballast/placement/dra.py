"""GPUs published through Dynamic Resource Allocation, as the engine sees them.

A DRA driver publishes a node's devices in ResourceSlices. Ballast maps the
GPU devices of a node onto the snapshot's per-GPU columns, so that every
per-GPU rule of the engine (fit, fragmentation, telemetry, health) applies to
a device exactly as to an ``nvidia.com/gpu`` GPU:

- a device whose ``type`` attribute is ``gpu`` is one whole column; a node's
  GPU devices take columns ``0..n-1`` in the natural order of their names
  (``gpu-0``, ``gpu-1``, ... ``gpu-10``: the minor number, as NVIDIA's driver
  names them, which is also the NVML index the node agent reports);
- a device whose ``type`` is ``mig`` is a partition of the GPU whose ``uuid``
  is its ``parentUUID``: it takes that column's share of its memory (or of its
  ``memorySlice<i>`` capacities, out of 8), and two MIG devices on one GPU
  conflict when their memory slices overlap.

A pod's claims become an :class:`Ask`. While the engine decides for that pod,
:meth:`DeviceTable.restrict` hides every column that holds no free device
matching the claims (CEL selectors of the request and of its DeviceClass), so
the filters, scores and GPU chooser pick among matching devices only; then
:meth:`DeviceTable.allocate` turns the chosen columns into concrete devices.
A pod without claims never takes a column that exists only as a DRA device.

Allocated devices are held by their claim, not by a pod: each device is
charged to the snapshot as a placement ``claim/<claim uid>/<device>``, so
claims allocated by kube-scheduler, and claims shared by several pods, are
counted once, on their devices.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import numpy.typing as npt

from ballast.placement import cel
from ballast.placement.devices import (
    HOLD_PREFIX,
    NVIDIA_DRIVER,
    Allocated,
    Ask,
    Device,
    Request,
    Slot,
    hold_pod,
    mig_milli,
    natural,
)
from ballast.placement.objects import MILLI, Pod

__all__ = [
    "HOLD_PREFIX",
    "MILLI",
    "NVIDIA_DRIVER",
    "Allocated",
    "Ask",
    "Device",
    "DeviceTable",
    "Request",
    "Slot",
    "hold_pod",
    "mig_milli",
    "natural",
]


class DeviceTable:
    """Published devices by node, which are held by which claim, and each pod's ask."""

    def __init__(self) -> None:
        self.slices: dict[str, tuple[str, tuple[Device, ...]]] = {}  # slice name → node, devices
        self.slots: dict[str, dict[str, Slot]] = {}  # node → device key → slot
        self.columns: dict[str, int] = {}  # node → number of GPU devices
        self.ext: dict[str, int] = {}  # node → nvidia.com/gpu extended resource count
        self.held: dict[str, str] = {}  # device key → claim uid
        self.claims: dict[str, list[str]] = {}  # claim uid → placement uids in the snapshot
        self.asks: dict[str, Ask] = {}  # pod id → ask
        self._match: dict[tuple[str, str], tuple[bool, str]] = {}
        self._where: dict[str, str] = {}  # device key → node
        self.version = 0

    # ---------------------------------------------------------------- slices
    def set_slice(self, name: str, node: str, devices: Iterable[Device]) -> set[str]:
        """Replace one slice's devices; returns the nodes whose devices changed."""
        old = self.slices.pop(name, None)
        devs = tuple(devices)
        if devs or node:
            self.slices[name] = (node, devs)
        touched = {n for n in (node, old[0] if old else "") if n}
        for n in touched:
            self._layout(n)
        self.version += 1
        return touched

    def remove_slice(self, name: str) -> set[str]:
        """Forget a slice; returns the nodes whose devices changed."""
        old = self.slices.pop(name, None)
        if old is None:
            return set()
        self._layout(old[0])
        self.version += 1
        return {old[0]} if old[0] else set()

    def _layout(self, node: str) -> None:
        devs = [d for n, ds in self.slices.values() if n == node for d in ds]
        gpus = sorted((d for d in devs if d.kind == "gpu"), key=lambda d: natural(d.name))
        slots: dict[str, Slot] = {}
        by_uuid: dict[str, Slot] = {}
        for i, d in enumerate(gpus):
            slots[d.key] = s = Slot(d, i, MILLI)
            uuid = d.attr("uuid")
            if isinstance(uuid, str):
                by_uuid[uuid] = s
        for d in devs:
            parent_uuid = d.attr("parentUUID")
            if d.kind != "mig" or not isinstance(parent_uuid, str) or parent_uuid not in by_uuid:
                continue
            parent = by_uuid[parent_uuid]
            slots[d.key] = Slot(d, parent.column, mig_milli(d, parent.device))
        for key in [k for k, n in self._where.items() if n == node and k not in slots]:
            del self._where[key]
        self._where.update(dict.fromkeys(slots, node))
        if slots:
            self.slots[node] = slots
            self.columns[node] = len(gpus)
        else:
            self.slots.pop(node, None)
            self.columns.pop(node, None)
        for mkey in [k for k in self._match if k[1].startswith(f"{node}\0")]:
            del self._match[mkey]

    def devices(self, node: str) -> list[Slot]:
        """Slots of ``node`` (GPUs first by column, then MIG devices)."""
        return sorted(self.slots.get(node, {}).values(), key=lambda s: (s.milli < MILLI, s.column))

    def node_facts(self, node: str) -> tuple[int, int, str]:
        """``(GPU devices, memory MiB of one, productName)`` of a node's DRA GPUs."""
        gpus = [s.device for s in self.devices(node) if s.milli == MILLI]
        if not gpus:
            return 0, 0, ""
        mem = gpus[0].capacity.get(f"{gpus[0].driver}/memory", 0) // 2**20
        product = gpus[0].attr("productName")
        return len(gpus), mem, product if isinstance(product, str) else ""

    def find(self, key: str) -> tuple[str, Slot] | None:
        """The node and slot of device ``key`` (``driver/pool/name``)."""
        node = self._where.get(key)
        slot = self.slots.get(node, {}).get(key) if node is not None else None
        return (node, slot) if node is not None and slot is not None else None

    # -------------------------------------------------------------- matching
    def matches(self, node: str, slot: Slot, selectors: tuple[str, ...]) -> tuple[bool, str]:
        """Whether the device satisfies every selector (results cached per device)."""
        d = slot.device
        for expr in selectors:
            key = (expr, f"{node}\0{d.key}")
            hit = self._match.get(key)
            if hit is None:
                act = cel.activation(d.driver, d.attributes, d.capacity)
                hit = self._match[key] = cel.evaluate(expr, act)
            if not hit[0]:
                return hit
        return True, ""

    def available(self, node: str, slot: Slot, claim_uid: str = "") -> bool:
        """Not held by another claim, and (for MIG) not overlapping a held partition or GPU."""
        holder = self.held.get(slot.device.key)
        if holder is not None and holder != claim_uid:
            return False
        if slot.milli == MILLI:
            return True
        used: set[str] = set()
        for s in self.slots.get(node, {}).values():
            if s.column != slot.column or s is slot:
                continue
            h = self.held.get(s.device.key)
            if h is None or h == claim_uid:
                continue
            if s.milli == MILLI:
                return False
            used |= s.device.memory_slices
        return not (used & slot.device.memory_slices)

    def candidates(self, node: str, req: Request, mig: bool) -> list[Slot]:
        """Available devices of ``node`` matching ``req`` (GPUs, or MIG devices when ``mig``)."""
        out = []
        for s in self.devices(node):
            if (s.milli < MILLI) != mig:
                continue
            if self.matches(node, s, req.selectors)[0] and self.available(node, s, req.claim_uid):
                out.append(s)
        return out

    def shape(self, requests: tuple[Request, ...]) -> tuple[bool, int, str]:
        """``(mig, milli, problem)``: whether the requests ask for one MIG device or whole GPUs.

        Whole GPUs when any published GPU matches every request; one MIG
        device (its share: the smallest matching) when only MIG devices match.
        """
        gpu_ok, mig_milli = True, 0
        for req in requests:
            whole = any(self.matches(n, s, req.selectors)[0]
                        for n, slots in self.slots.items()
                        for s in slots.values() if s.milli == MILLI)  # fmt: skip
            if whole:
                continue
            gpu_ok = False
            shares = [s.milli for n, slots in self.slots.items() for s in slots.values()
                      if s.milli < MILLI and self.matches(n, s, req.selectors)[0]]  # fmt: skip
            if shares:
                mig_milli = min(shares)
        if gpu_ok:
            return False, 0, ""
        if mig_milli and len(requests) == 1 and requests[0].count == 1:
            return True, mig_milli, ""
        if mig_milli:
            return True, mig_milli, "Ballast allocates one MIG device per pod, or whole GPUs"
        return False, 0, ""

    def explain(self, requests: tuple[Request, ...]) -> str:
        """Why no node can serve ``requests``: per request, matching and free device counts."""
        parts = []
        for req in requests:
            n_match = n_free = 0
            error = ""
            for node, slots in self.slots.items():
                for s in slots.values():
                    ok, err = self.matches(node, s, req.selectors)
                    error = error or err
                    if ok:
                        n_match += 1
                        n_free += self.available(node, s, req.claim_uid)
            text = (f"claim {req.claim} request {req.name}: {n_match} device(s) match, "
                    f"{n_free} free, {req.count} needed")  # fmt: skip
            if error and not n_match:
                text += f" (selector error: {error})"
            parts.append(text)
        return "; ".join(parts)

    # ------------------------------------------------------------ the engine
    def restrict(
        self, pod: Pod, free: npt.NDArray[np.int32], rows: Callable[[str], int | None]
    ) -> npt.NDArray[np.int32]:
        """``free`` as ``pod`` may use it (see the module docstring); ``rows``: node → row."""
        ask = self.asks.get(pod.id)
        if ask is None:
            if not (pod.gpus or pod.gpu_milli) or not self.columns:
                return free
            out = free.copy()
            for node, n in self.columns.items():
                r = rows(node)
                if r is not None and n > self.ext.get(node, 0):
                    out[r, self.ext.get(node, 0) :] = 0
            return out
        out = np.zeros_like(free)
        for node in self.slots if not ask.node else [ask.node]:
            r = rows(node)
            if r is None:
                continue
            for req in ask.requests:
                for s in self.candidates(node, req, ask.mig):
                    if free[r, s.column] >= s.milli:
                        out[r, s.column] = free[r, s.column]
        return out

    def allocate(
        self, ask: Ask, node: str, chosen: tuple[int, ...], free: npt.NDArray[np.int32]
    ) -> list[Allocated] | str:
        """Concrete devices on ``node`` for every request (chosen columns first), or why not.

        ``free`` is the node's row of usable free milli-GPUs.
        """
        if ask.mig:
            req = ask.requests[0]
            cands = [s for s in self.candidates(node, req, True) if free[s.column] >= s.milli]
            if not cands:
                return f"no free MIG device on {node} matches claim {req.claim}"
            cands.sort(key=lambda s: (s.column not in chosen, s.milli, natural(s.device.name)))
            s = cands[0]
            return [Allocated(req.name, s.device, s.milli, s.column, req.claim_uid)]
        slots: list[tuple[Request, int]] = [(r, i) for r in ask.requests for i in range(r.count)]
        options = []
        for req, _ in slots:
            cands = [s for s in self.candidates(node, req, False) if free[s.column] >= MILLI]
            cands.sort(key=lambda s: (s.column not in chosen, s.column))
            options.append(cands)
        match = _bipartite(options)
        if match is None:
            return f"the free devices on {node} cannot serve every request at once"
        return [Allocated(req.name, s.device, MILLI, s.column, req.claim_uid)
                for (req, _), s in zip(slots, match, strict=True)]  # fmt: skip

    # ----------------------------------------------------------------- holds
    def hold(self, claim_uid: str, keys: Iterable[str]) -> list[str]:
        """Mark devices as held by ``claim_uid``; returns the keys another claim held."""
        clash = []
        for k in keys:
            holder = self.held.get(k)
            if holder is not None and holder != claim_uid:
                clash.append(k)
            self.held[k] = claim_uid
        self.version += 1
        return clash

    def release(self, claim_uid: str) -> None:
        """Forget what ``claim_uid`` holds."""
        for k in [k for k, h in self.held.items() if h == claim_uid]:
            del self.held[k]
        self.version += 1


def _bipartite(options: list[list[Slot]]) -> list[Slot] | None:
    """A distinct device for each slot (augmenting paths; options in preference order)."""
    owner: dict[str, int] = {}
    chosen: list[Slot | None] = [None] * len(options)

    def place(i: int, seen: set[str]) -> bool:
        for s in options[i]:
            k = s.device.key
            if k in seen:
                continue
            seen.add(k)
            if k not in owner or place(owner[k], seen):
                owner[k] = i
                chosen[i] = s
                return True
        return False

    for i in range(len(options)):
        if not place(i, set()):
            return None
    return [c for c in chosen if c is not None]
