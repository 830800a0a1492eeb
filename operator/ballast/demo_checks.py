"""The demo's checks after the examples: a reserved pool, windowed Jobs, webhook, hostile input.

Each prints what a platform team would look at (``ballast demo``, :mod:`ballast.demo`).
"""

from __future__ import annotations

import time
from typing import Any

from ballast.kube.raw import PODS, WORKLOADCLASSES, Kube
from ballast.localcluster.ballast_procs import BallastProcess


def table(rows: list[list[str]]) -> str:
    """Rows as left-aligned columns."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


HOSTILE_POD = "claims-gpu-999"
# A reserved pool made by the demo itself (not in examples/, whose classes the
# tests apply on a shared cluster): two L4 nodes that lend idle GPUs.
POOL_CLASS: dict[str, Any] = {
    "apiVersion": "ballast.dev/v1alpha1",
    "kind": "WorkloadClass",
    "metadata": {"name": "vision-serving"},
    "spec": {
        "tier": "Interactive",
        "priority": 10,
        "description": "Image captioning on a reserved L4 pool",
        "preemption": {"policy": "LowerTier", "preemptible": False},
        "nodePool": {"name": "l4-serving", "gpuProducts": ["NVIDIA-L4"], "reservedNodes": 2,
                     "allowBorrowing": True},
    },
}  # fmt: skip


def pool(kube: Kube) -> None:
    """Create the demo's reserved pool class and show its members."""
    name = POOL_CLASS["metadata"]["name"]
    if kube.get(WORKLOADCLASSES.path(name)) is None:
        kube.create(WORKLOADCLASSES.path(), POOL_CLASS)
    deadline = time.monotonic() + 30
    pool: dict[str, Any] = {}
    while time.monotonic() < deadline:
        pool = ((kube.get(WORKLOADCLASSES.path(name)) or {}).get("status") or {}).get("pool") or {}
        if pool.get("members"):
            break
        time.sleep(0.5)
    nodes = kube.list("/api/v1/nodes", labelSelector="ballast.dev/pool=l4-serving")["items"]
    rows = [["POOL NODE", "GPU", "TAINT", "BORROWABLE"]]
    for n in nodes:
        taints = [t for t in n["spec"].get("taints") or () if t.get("key") == "ballast.dev/pool"]
        rows.append([
            n["metadata"]["name"],
            n["metadata"]["labels"].get("nvidia.com/gpu.product", ""),
            ",".join(f"{t['key']}={t.get('value', '')}:{t['effect']}" for t in taints) or "-",
            (n["metadata"].get("annotations") or {}).get("ballast.dev/pool-borrowable", "-"),
        ])  # fmt: skip
    cond: dict[str, Any] = next((c for c in (kube.get(WORKLOADCLASSES.path(name)) or {}).get("status", {}).get("conditions") or ()
                 if c.get("type") == "PoolReady"), {})  # fmt: skip
    print(f"==> WorkloadClass {name}: pool l4-serving, reservedNodes 2, "
          f"PoolReady={cond.get('status', '?')} ({cond.get('reason', '')}: {cond.get('message', '')})")  # fmt: skip
    print(table(rows))


def jobs(kube: Kube) -> None:
    """The example Jobs of windowed classes: held by their window, or running."""
    rows = [["JOB", "CLASS", "WINDOW", "SUSPENDED", "BY BALLAST"]]
    classes = {c["metadata"]["name"]: c for c in kube.list(WORKLOADCLASSES.path())["items"]}
    for job in kube.list("/apis/batch/v1/jobs")["items"]:
        meta = job["metadata"]
        cls = (meta.get("labels") or {}).get("ballast.dev/class", "")
        window = ((classes.get(cls) or {}).get("spec") or {}).get("window", "")
        if not window:
            continue
        rows.append([f"{meta['namespace']}/{meta['name']}", cls, window,
                     str(bool(job["spec"].get("suspend"))).lower(),
                     (meta.get("annotations") or {}).get("ballast.dev/suspended-by-window", "-")])  # fmt: skip
    print(
        "==> Jobs of classes with a batch window (suspended while it is closed, resumed when it opens)"
    )
    print(table(rows))


def mutated(kube: Kube) -> None:
    """What the admission webhook wrote into one example pod that only named its class."""
    pods = kube.list(
        "/api/v1/namespaces/search/pods", labelSelector="ballast.dev/class=rag-answers"
    )["items"]
    if not pods:
        return
    p = pods[0]
    env = {e["name"]: e.get("value") for c in p["spec"]["containers"] for e in c.get("env") or ()
           if e["name"].startswith("BALLAST_")}  # fmt: skip
    print(f"==> admission webhook: {p['metadata']['namespace']}/{p['metadata']['name']} was created with only "
          "the label ballast.dev/class=rag-answers and now has")  # fmt: skip
    print(f"    schedulerName={p['spec'].get('schedulerName')} priorityClassName="
          f"{p['spec'].get('priorityClassName')} priority={p['spec'].get('priority')}")  # fmt: skip
    if env:
        print("    env " + " ".join(f"{k}={v}" for k, v in sorted(env.items())))


def hostile(kube: Kube, scheduler: BallastProcess) -> None:
    """A tenant pod bound straight to a node with a GPU index that does not exist.

    Ballast's scheduler reads it as untrusted input: it charges the pod a
    real free GPU on that node, says so in an event, and keeps scheduling.
    """
    pods = kube.list("/api/v1/pods", labelSelector="ballast.dev/class")["items"]
    bound = [p for p in pods if (p.get("spec") or {}).get("nodeName")]
    if not bound:
        return
    namespace, node = bound[0]["metadata"]["namespace"], bound[0]["spec"]["nodeName"]
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": HOSTILE_POD, "annotations": {"ballast.dev/gpu-ids": "999"}},
        "spec": {
            "nodeName": node,
            "containers": [
                {"name": "main", "image": "registry.local/tenant:1",
                 "resources": {"limits": {"nvidia.com/gpu": "1"}}}
            ],
        },
    }  # fmt: skip
    if kube.get(PODS.path(HOSTILE_POD, namespace)) is None:
        kube.create(PODS.path(namespace=namespace), body)
    print(
        f"==> hostile input: {namespace}/{HOSTILE_POD} bound to {node} with ballast.dev/gpu-ids=999"
    )
    deadline = time.monotonic() + 20
    note = ""
    while time.monotonic() < deadline and not note:
        items = kube.list(
            f"/apis/events.k8s.io/v1/namespaces/{namespace}/events",
            fieldSelector=f"regarding.name={HOSTILE_POD}",
        )["items"]
        note = next(
            (str(e.get("note")) for e in items if e.get("reason") == "InvalidGPUAssignment"), ""
        )
        time.sleep(0.5)
    print(f"    event InvalidGPUAssignment: {note or '(not seen yet)'}")
    alive = "still running" if scheduler.alive() else "NOT RUNNING: see " + str(scheduler.log_path)
    print(f"    scheduler {alive} (pid {scheduler.pid})")
