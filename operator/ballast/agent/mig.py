"""MIG (Multi-Instance GPU) mode and devices of one GPU, read through NVML.

The collector asks ``nvmlDeviceGetMigMode`` every collection (a GPU without
MIG answers NOT_SUPPORTED once and is not asked again); when MIG is on, it
enumerates the GPU's MIG device slots (``nvmlDeviceGetMaxMigDeviceCount``,
``nvmlDeviceGetMigDeviceHandleByIndex``) and reads each device's UUID,
memory, GPU/compute instance ids and slices. MIG devices are created and
destroyed while the agent runs: an empty slot is normal, and a device that
vanishes between enumeration and reading is skipped (its failed call is
returned as a problem for the collector to count), never an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ballast.telemetry.nvml import ERROR_NOT_FOUND, Handle, Memory, MigMode, Nvml, Problem

MAX_SLOTS = 32  # more than any GPU has (7 on A100/H100/H200/B200); bounds a confused driver


@dataclass(frozen=True, slots=True)
class MigDevice:
    """One MIG device (a GPU instance's compute instance) of a GPU."""

    slot: int  # its index under the parent GPU (nvmlDeviceGetMigDeviceHandleByIndex)
    uuid: str  # MIG-...
    gpu_instance: int  # GPU_I_ID
    compute_instance: int
    slices: int  # GPU instance slices (the "1" of 1g.10gb)
    compute_slices: int
    memory_mib: int  # the instance's memory size (nvmlDeviceGetAttributes)
    memory: Memory | None = None  # framebuffer total/used/free in bytes

    @property
    def profile(self) -> str:
        """The GPU instance profile, ``<slices>g.<GiB, rounded up>gb`` (e.g. ``1g.10gb``)."""
        return f"{self.slices}g.{math.ceil(self.memory_mib / 1024)}gb"


@dataclass(frozen=True, slots=True)
class MigState:
    """MIG mode of a GPU and, when on, its MIG devices by slot."""

    enabled: bool
    pending: bool
    devices: tuple[MigDevice, ...] = ()


def read_devices(nvml: Nvml, h: Handle) -> tuple[tuple[MigDevice, ...], list[Problem]]:
    """Every MIG device of GPU ``h`` (MIG on), and the problems met on the way."""
    problems: list[Problem] = []
    slots = nvml.max_mig_devices(h)
    if isinstance(slots, Problem):
        return (), [slots]
    devices: list[MigDevice] = []
    for slot in range(min(slots, MAX_SLOTS)):
        m = nvml.mig_device(h, slot)
        if isinstance(m, Problem):
            if m.code != ERROR_NOT_FOUND:  # NOT_FOUND: nothing in this slot
                problems.append(m)
            continue
        device = _read_device(nvml, slot, m)
        if isinstance(device, Problem):
            problems.append(device)
        else:
            devices.append(device)
    return tuple(devices), problems


def _read_device(nvml: Nvml, slot: int, m: Handle) -> MigDevice | Problem:
    uuid = nvml.uuid(m)
    if isinstance(uuid, Problem):
        return uuid
    ids = nvml.mig_ids(m)
    if isinstance(ids, Problem):
        return ids
    attrs = nvml.attributes(m)
    if isinstance(attrs, Problem):
        return attrs
    memory = nvml.memory(m)
    if isinstance(memory, Problem):
        return memory
    return MigDevice(
        slot=slot,
        uuid=uuid,
        gpu_instance=ids.gpu_instance,
        compute_instance=ids.compute_instance,
        slices=attrs.gpu_instance_slices,
        compute_slices=attrs.compute_instance_slices,
        memory_mib=attrs.memory_mib,
        memory=memory,
    )


def read(nvml: Nvml, h: Handle) -> tuple[MigState, list[Problem]] | Problem:
    """MIG mode of GPU ``h`` and its devices; a Problem if the mode cannot be read."""
    mode = nvml.mig_mode(h)
    if isinstance(mode, Problem):
        return mode
    return _state(nvml, h, mode)


def _state(nvml: Nvml, h: Handle, mode: MigMode) -> tuple[MigState, list[Problem]]:
    if not mode.current:
        return MigState(False, mode.pending), []
    devices, problems = read_devices(nvml, h)
    return MigState(True, mode.pending, devices), problems
