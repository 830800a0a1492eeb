"""DRA claims in the simulator: whole GPUs and MIG devices placed by the engine, no cluster.

The same backlog as ``bench/dra_throughput.py --mode fragmentation`` (claims
for one MIG device, or 1, 2, 4 or 8 whole GPUs) is placed in order on nodes
whose GPUs exist only as DRA devices (the test driver's NVIDIA-shaped slices,
read through the scheduler's own trust boundary), with the same
:class:`~ballast.placement.dra.DeviceTable` and engine as the live
scheduler: the engine chooses among the devices the claim's selectors match,
the table turns the chosen columns into devices, and each device is held as a
claim's placement. A pod that finds no node is dropped (a fill-up, like the
openb experiment). Run: ``python -m ballast.sim.dra [--nodes 16] [--pods N]``.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Sequence
from typing import Any

from ballast.localcluster.dradriver import device_classes, gpu_devices
from ballast.placement.dra import Ask, DeviceTable, Request, hold_pod
from ballast.placement.engine import Engine
from ballast.placement.objects import MILLI, NodeInfo, Pod
from ballast.placement.snapshot import Snapshot
from ballast.scheduler.dra_mapping import resource_slice

KINDS = (("mig", 40), ("gpu1", 30), ("gpu2", 15), ("gpu4", 10), ("gpu8", 5))
PRODUCT = "NVIDIA H100 80GB HBM3"


def workload(n: int, seed: int) -> list[str]:
    """``n`` claim kinds drawn with the bench's weights."""
    rng = random.Random(seed)
    table = [k for k, w in KINDS for _ in range(w)]
    return [rng.choice(table) for _ in range(n)]


def cluster(nodes: int, mig: bool = True) -> tuple[Snapshot, DeviceTable]:
    """DRA-only nodes of 8 H100s (with seven 1g MIG devices per GPU when ``mig``)."""
    table = DeviceTable()
    snap = Snapshot()
    snap.dra = table
    for i in range(nodes):
        name = f"dra-{i:04d}"
        obj = {"spec": {"driver": "gpu.nvidia.com", "nodeName": name, "pool": {"name": name},
                        "devices": gpu_devices(name, 8, PRODUCT, 81559, mig)}}  # fmt: skip
        node, devices = resource_slice(obj).value
        table.set_slice(name, node, devices)
        n, mem, product = table.node_facts(name)
        table.ext[name] = 0
        snap.add_node(NodeInfo(name, n, mem, product, 192_000, 2_097_152))
    return snap, table


def fill(policy: str, nodes: int, kinds: Sequence[str]) -> dict[str, Any]:
    """Place ``kinds`` in order with ``policy``; what was allocated and what is stranded."""
    snap, table = cluster(nodes)
    engine = Engine(policy)
    classes = {dc["metadata"]["name"]: dc["spec"]["selectors"][0]["cel"]["expression"]
               for dc in device_classes()}  # fmt: skip
    placed = 0
    for i, kind in enumerate(kinds):
        uid = f"c{i}"
        mig = kind == "mig"
        count = 1 if mig else int(kind[3:])
        selector = classes["mig.nvidia.com" if mig else "gpu.nvidia.com"]
        req = Request(uid, f"sim/{uid}", "gpu", (selector,), count)
        is_mig, milli, _ = table.shape((req,))
        pod = Pod("sim", uid, uid, gpus=0 if is_mig else count, gpu_milli=milli if is_mig else 0)
        ask = Ask((req,), "", is_mig, milli)
        table.asks[pod.id] = ask
        d = engine.decide(snap, pod, now=0.0)
        del table.asks[pod.id]
        if d.node is None:
            continue
        got = table.allocate(ask, d.node, d.gpus, snap.usable_free(())[snap.row(d.node)])
        if isinstance(got, str):
            continue
        table.hold(uid, [a.device.key for a in got])
        for a in got:
            snap.account(hold_pod(uid, "sim", uid, a, "", ""), d.node, (a.column,), a.milli,
                         start_time=0.0)  # fmt: skip
        placed += 1
    rows = snap.rows()
    free = snap.free[rows, :8]
    return {
        "policy": policy,
        "placed": placed,
        "pods": len(kinds),
        "allocated_milli": snap.allocated_milli(),
        "unallocated_gpus": int((free >= MILLI).sum()),
        "mig_only_gpus": int(((free > 0) & (free < MILLI)).sum()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Print one JSON line per policy, then one with Ballast's ratio over kube-default."""
    p = argparse.ArgumentParser(description="DRA fill-up in the simulator")
    p.add_argument("--nodes", type=int, default=16)
    p.add_argument("--pods", type=int, help="default: about 1.3x the GPUs")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--policies", default="ballast,kube-default,fgd")
    args = p.parse_args(argv)
    kinds = workload(args.pods or round(1.3 * args.nodes * 8 / 1.55), args.seed)
    results = [fill(pol, args.nodes, kinds) for pol in args.policies.split(",")]
    for r in results:
        print(json.dumps(r))
    base = next((r for r in results if r["policy"] == "kube-default"), results[-1])
    ours = next((r for r in results if r["policy"] == "ballast"), results[0])
    ratio = ours["allocated_milli"] / base["allocated_milli"] if base["allocated_milli"] else None
    print(json.dumps({"sim": "dra_fill", "ratio": ratio, "ballast": ours, "baseline": base}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
