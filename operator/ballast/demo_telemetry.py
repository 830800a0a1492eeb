"""The demo's telemetry: a node agent per fake node, and synthetic load on held GPUs.

Kept apart from :mod:`ballast.demo` (the walk-through) because it changes
for a different reason: how the fake nodes get their telemetry.
"""

from __future__ import annotations

import time
from pathlib import Path

from ballast.kube.raw import GPUNODETELEMETRIES, Kube
from ballast.localcluster.agents import NodeAgents
from ballast.localcluster.cluster import LocalCluster
from ballast.localcluster.nodes import NodeSpec

UTIL_BY_CLASS = (
    "avg by (class) (DCGM_FI_DEV_GPU_UTIL * on (namespace, pod) group_left (class) "
    "ballast_scheduler_pod_info)"
)


def start_agents(kubeconfig: Path, cluster: LocalCluster, specs: list[NodeSpec]) -> NodeAgents:
    """One real `ballast agent` per fake node, over the fake NVML, publishing its record."""
    agents = NodeAgents(kubeconfig, cluster.layout.root, interval_s=5.0)
    readings = {
        s.name: {
            g.index: {"util": int(g.utilization_pct), "mem_used": g.memory_used_mib << 20,
                      "temp": int(g.temperature_c), "power_mw": int(g.power_w * 1000)}
            for g in s.telemetry.gpus
        }
        for s in specs
    }  # fmt: skip
    agents.start(specs, readings)
    deadline = time.monotonic() + 60
    kube = Kube.connect(str(kubeconfig))
    names = {s.name for s in specs}
    have: set[str] = set()
    while time.monotonic() < deadline and have != names:
        items = kube.list(GPUNODETELEMETRIES.path())["items"]
        have = {i["metadata"]["name"] for i in items if (i.get("status") or {}).get("gpus")}
        time.sleep(0.5)
    kube.close()
    print(f"==> {len(have)}/{len(names)} node agents publishing GPUNodeTelemetry "
          f"(fake NVML {agents.library}; kubectl get gnt)")  # fmt: skip
    return agents


def synthetic_load(kube: Kube, agents: NodeAgents) -> None:
    """Synthetic load: the fake GPUs that pods hold report busy, so per-class use shows."""
    busy = 0
    for p in kube.list("/api/v1/pods")["items"]:
        node = (p.get("spec") or {}).get("nodeName")
        ids = ((p.get("metadata") or {}).get("annotations") or {}).get("ballast.dev/gpu-ids")
        if not node or not ids or node not in agents.agents:
            continue
        fx = agents.fixture(node)
        for part in ids.split(","):
            if part.isdigit() and int(part) in fx.gpus:
                fx.gpu(int(part), util=70, mem_used=int(str(fx.gpus[int(part)]["mem_total"])) // 2)
                busy += 1
    print(f"==> synthetic load: {busy} fake GPUs held by pods now report 70% busy, half memory "
          "used (the agents publish it within one interval)")  # fmt: skip
