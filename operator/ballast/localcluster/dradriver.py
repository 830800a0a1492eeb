"""A test DRA driver: ResourceSlices for KWOK nodes, shaped like NVIDIA's GPU driver's.

NVIDIA's k8s-dra-driver-gpu publishes, per node, one pool named after the
node with driver ``gpu.nvidia.com``: a device ``gpu-<minor>`` per GPU with
the attributes ``type`` (``gpu``), ``uuid``, ``productName``, ``brand``,
``architecture``, ``cudaComputeCapability``, ``driverVersion`` and
``cudaDriverVersion`` (versions), ``pcieBusID``, and the capacity
``memory``; MIG devices ``gpu-<minor>-mig-<profile id>-<start>-<size>`` with
``type`` ``mig``, ``uuid``, ``parentUUID``, ``profile`` and the parent's
product attributes, and the capacities ``memory``, ``multiprocessors`` and
``memorySlice<i>`` for each memory slice it covers. Its Helm chart installs
the DeviceClasses ``gpu.nvidia.com`` and ``mig.nvidia.com``.

This driver does the same for KWOK nodes that carry the label
``dra.ballast.dev/gpus=<n>``: product and memory come from the node's
``nvidia.com/gpu.product`` and ``nvidia.com/gpu.memory`` labels; with
``dra.ballast.dev/mig=true`` every GPU (at most 8) also publishes seven
``1g`` MIG placements. Like the driver's partitionable-devices mode, a MIG
node's pool then has two slices: one with a counter set per GPU (its eight
memory slices, ``sharedCounters``) and one with the devices, each consuming
the memory slices it covers (the whole GPU all eight), so that kube-scheduler
never allocates a GPU and one of its partitions together (Ballast reads the
same from the ``memorySlice<i>`` capacities). Nothing runs on the devices:
KWOK pods never start containers.

``ballast cluster up --dra-driver`` runs :func:`run` beside the cluster; tests
call :func:`sync` directly.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from ballast.api import wellknown as wk
from ballast.kube.raw import NODES, Kube, KubeError, Resource
from ballast.logs import kv

log = logging.getLogger(__name__)

DRIVER = "gpu.nvidia.com"
LABEL_GPUS = "dra.ballast.dev/gpus"
LABEL_MIG = "dra.ballast.dev/mig"
MANAGED = "dra.ballast.dev/test-driver"
SLICES = Resource("resource.k8s.io", "v1", "resourceslices", False)
CLASSES = Resource("resource.k8s.io", "v1", "deviceclasses", False)

# Architecture and compute capability by product family (as NVML reports them).
_ARCH = (("H100", "Hopper", "9.0"), ("H200", "Hopper", "9.0"), ("A100", "Ampere", "8.0"),
         ("L4", "Ada Lovelace", "8.9"), ("L40", "Ada Lovelace", "8.9"),
         ("B200", "Blackwell", "10.0"))  # fmt: skip
MIG_1G = (19, 7)  # the 1g profile's GPU instance profile id, and how many fit on a GPU


def device_classes() -> list[dict[str, Any]]:
    """The DeviceClasses NVIDIA's chart installs (whole GPUs, MIG devices)."""
    out = []
    for name, kind in (("gpu.nvidia.com", "gpu"), ("mig.nvidia.com", "mig")):
        expr = f"device.driver == '{DRIVER}' && device.attributes['{DRIVER}'].type == '{kind}'"
        out.append({"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass",
                    "metadata": {"name": name, "labels": {MANAGED: "true"}},
                    "spec": {"selectors": [{"cel": {"expression": expr}}]}})  # fmt: skip
    return out


def _uuid(node: str, what: str) -> str:
    h = hashlib.sha256(f"{node}/{what}".encode()).hexdigest()
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def gpu_devices(node: str, gpus: int, product: str, memory_mib: int, mig: bool = False) -> (
    list[dict[str, Any]]
):  # fmt: skip
    """NVIDIA-shaped devices for one node."""
    arch, cc = next(((a, c) for key, a, c in _ARCH if key in product), ("Unknown", "8.0"))
    common = {
        "productName": {"string": product},
        "brand": {"string": "Nvidia"},
        "architecture": {"string": arch},
        "cudaComputeCapability": {"version": f"{cc}.0"},
        "driverVersion": {"version": "580.82.7"},
        "cudaDriverVersion": {"version": "13.0.0"},
    }
    out: list[dict[str, Any]] = []
    for minor in range(gpus):
        uuid = _uuid(node, f"gpu-{minor}")
        out.append({
            "name": f"gpu-{minor}",
            "attributes": {"type": {"string": "gpu"}, "uuid": {"string": uuid}, **common,
                           "pcieBusID": {"string": f"0000:{0x18 + minor:02x}:00.0"}},
            "capacity": {"memory": {"value": f"{memory_mib}Mi"}},
        })  # fmt: skip
        if not mig:
            continue
        out[-1]["consumesCounters"] = [_consumes(minor, range(8))]
        profile_id, n = MIG_1G
        mem = memory_mib // 8
        for start in range(n):
            out.append({
                "name": f"gpu-{minor}-mig-{profile_id}-{start}-1",
                "attributes": {"type": {"string": "mig"},
                               "uuid": {"string": _uuid(node, f"mig-{minor}-{start}")},
                               "parentUUID": {"string": uuid},
                               "profile": {"string": f"1g.{round(mem / 1024)}gb"}, **common},
                "capacity": {"memory": {"value": f"{mem}Mi"},
                             "multiprocessors": {"value": "16"},
                             f"memorySlice{start}": {"value": "1"}},
                "consumesCounters": [_consumes(minor, [start])],
            })  # fmt: skip
    return out


def _consumes(minor: int, slices: Any) -> dict[str, Any]:
    return {"counterSet": f"gpu-{minor}-counters",
            "counters": {f"memory-slice-{i}": {"value": "1"} for i in slices}}  # fmt: skip


def counter_sets(gpus: int) -> list[dict[str, Any]]:
    """One counter set per GPU: its eight memory slices."""
    return [{"name": f"gpu-{minor}-counters",
             "counters": {f"memory-slice-{i}": {"value": "1"} for i in range(8)}}
            for minor in range(gpus)]  # fmt: skip


def slices_for(node: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ResourceSlices for a Node object (none without ``dra.ballast.dev/gpus``)."""
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    try:
        gpus = int(labels.get(LABEL_GPUS, ""))
        memory = int(labels.get(wk.LABEL_GPU_MEMORY_MIB, "") or 81559)
    except ValueError:
        return []
    name = meta["name"]
    mig = labels.get(LABEL_MIG) == "true"
    gpus = max(0, min(gpus, 8 if mig else 16))
    devices = gpu_devices(name, gpus, labels.get(wk.LABEL_GPU_PRODUCT, "NVIDIA"), memory, mig)
    parts: list[tuple[str, dict[str, Any]]] = [("", {"devices": devices})]
    if mig:  # the API wants counters and devices in separate slices of the pool
        parts.append(("-counters", {"sharedCounters": counter_sets(gpus)}))
    pool = {"name": name, "generation": 1, "resourceSliceCount": len(parts)}
    # Owned by the node, as the kubelet plugin library sets it: gone with the node.
    uid = meta.get("uid")
    owner = {"ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}]}
    owner = owner if uid else {}
    return [{
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {"name": f"{name}-{DRIVER}{suffix}", "labels": {MANAGED: "true"},
                     **owner},
        "spec": {"driver": DRIVER, "nodeName": name, "pool": pool, **body},
    } for suffix, body in parts]  # fmt: skip


def sync(kube: Kube) -> int:
    """Make the published slices match the labelled nodes once; returns slices written."""
    for dc in device_classes():
        if kube.get(CLASSES.path(dc["metadata"]["name"])) is None:
            try:
                kube.create(CLASSES.path(), dc)
            except KubeError as exc:
                if exc.status != 409:
                    raise
    nodes = kube.list(NODES.path(), labelSelector=LABEL_GPUS)["items"]
    want = {s["metadata"]["name"]: s for n in nodes for s in slices_for(n)}
    have = {s["metadata"]["name"]: s for s in
            kube.list(SLICES.path(), labelSelector=MANAGED)["items"]}  # fmt: skip
    written = 0
    for name, s in want.items():
        old = have.get(name)
        if old is not None and all(old["spec"].get(k) == v for k, v in s["spec"].items()):
            continue
        if old is not None:
            kube.delete(SLICES.path(name))
        kube.create(SLICES.path(), s)
        written += 1
    for name in have.keys() - want.keys():
        kube.delete(SLICES.path(name))
    return written


def run(kubeconfig: str, period_s: float = 1.0) -> None:
    """Publish slices for labelled nodes every ``period_s`` until killed."""
    kube = Kube.connect(kubeconfig)
    while True:
        try:
            n = sync(kube)
            if n:
                log.info("published ResourceSlices", extra=kv(slices=n))
        except Exception as exc:  # the API server restarting, a node racing away
            log.warning("sync failed", extra=kv(error=exc))
        time.sleep(period_s)
