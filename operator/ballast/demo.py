"""``ballast demo``: Ballast doing its job on the embedded local cluster.

Starts (or reuses) the local control plane named ``demo``, creates a fleet of
fake GPU nodes, installs the CRDs, runs the operator and the scheduler in the
background, applies ``examples/``, waits for everything to become Ready and
prints what a platform team would look at, including where each example pod
went and why. The cluster and Ballast's processes keep running afterwards;
``ballast cluster down --name demo`` stops all of them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from ballast.kube.crds import ensure_crds
from ballast.kube.raw import BATCHWINDOWS, GPUQUOTAS, PODS, PRIORITY_CLASSES, WORKLOADCLASSES, Kube
from ballast.localcluster import kube as lk
from ballast.localcluster.ballast_procs import BallastProcess
from ballast.localcluster.binaries import resolve_bin_dir
from ballast.localcluster.cluster import LocalCluster
from ballast.localcluster.nodes import profile_nodes

KINDS = {"WorkloadClass": WORKLOADCLASSES, "GPUQuota": GPUQUOTAS, "BatchWindow": BATCHWINDOWS}


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``ballast demo``'s arguments."""
    parser.add_argument("--name", default="demo", help="local cluster name (default demo)")
    parser.add_argument("--nodes", type=int, default=16, help="fake GPU nodes to create")
    parser.add_argument(
        "--profile", default="mixed", help="node profile (see ballast cluster nodes)"
    )
    parser.add_argument(
        "--examples", type=Path, default=Path("examples"), help="manifests to apply"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for Ready")


def _ready(obj: dict[str, Any]) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return dict(c)
    return {}


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _docs(folder: Path) -> list[dict[str, Any]]:
    return [
        d
        for f in sorted(folder.glob("*.yaml"))
        for d in yaml.safe_load_all(f.read_text())
        if d and d.get("kind") in KINDS
    ]


def run(args: argparse.Namespace) -> int:
    """Bring everything up and print the report."""
    t0 = time.monotonic()
    cluster = LocalCluster(args.name)
    kubeconfig = cluster.up()
    print(f"==> control plane up ({time.monotonic() - t0:.1f}s)")
    api = lk.api_client(kubeconfig)
    specs = profile_nodes(args.profile, args.nodes, seed=0)
    lk.create_nodes(api, specs)
    lk.wait_nodes_ready(api, [s.name for s in specs], 60)
    print(f"==> {len(specs)} fake GPU nodes ({args.profile} profile) Ready")
    kube = Kube.connect(str(kubeconfig))
    ensure_crds(kube)
    print("==> CRDs installed")
    operator = BallastProcess("operator", ["operator"], kubeconfig, cluster.layout.root)
    operator.start()
    print(f"==> operator running (pid {operator.pid}, log {operator.log_path})")
    scheduler = BallastProcess("scheduler", ["scheduler"], kubeconfig, cluster.layout.root)
    scheduler.start()
    print(f"==> scheduler running (pid {scheduler.pid}, log {scheduler.log_path})")
    kubectl = str(resolve_bin_dir() / "kubectl")
    subprocess.run(
        [kubectl, "--kubeconfig", str(kubeconfig), "apply", "-f", str(args.examples)], check=True
    )
    docs = _docs(args.examples)
    deadline = time.monotonic() + args.timeout
    pending = {(d["kind"], d["metadata"]["name"]) for d in docs}
    while pending and time.monotonic() < deadline:
        for kind, name in sorted(pending):
            obj = kube.get(KINDS[kind].path(name)) or {}
            gen = obj.get("metadata", {}).get("generation")
            c = _ready(obj)
            if c and c.get("observedGeneration") == gen and c.get("status") != "Unknown":
                pending.discard((kind, name))
        time.sleep(0.3)
    print()
    _report(kube, docs)
    print()
    _placements(kube, deadline=time.monotonic() + 30)
    print()
    _hostile(kube, scheduler)
    print()
    if pending:
        print(
            f"!! not reconciled within {args.timeout}s: {sorted(pending)}; see {operator.log_path}"
        )
    print(
        f"The cluster, the operator and the scheduler keep running. Try:\n"
        f"  export KUBECONFIG={kubeconfig}\n"
        f"  {kubectl} get workloadclasses,gpuquotas,batchwindows,priorityclasses\n"
        f"  {kubectl} explain workloadclass.spec.preemption\n"
        f"  {kubectl} get pods -A -o wide\n"
        f"  {kubectl} describe pod -n search -l app=chat\n"
        f"Stop everything with: make demo-down   (or: ballast cluster down --name {args.name})"
    )
    kube.close()
    return 1 if pending else 0


def _report(kube: Kube, docs: list[dict[str, Any]]) -> None:
    names = {k: [d["metadata"]["name"] for d in docs if d["kind"] == k] for k in KINDS}
    rows = [["WORKLOADCLASS", "TIER", "PRIORITY", "PRIORITYCLASS", "WINDOW", "READY", "REASON"]]
    for n in names["WorkloadClass"]:
        o = kube.get(WORKLOADCLASSES.path(n)) or {}
        st, c = o.get("status") or {}, _ready(o)
        rows.append(
            [
                n,
                o["spec"]["tier"],
                str(st.get("priorityValue", "")),
                st.get("priorityClassName", ""),
                o["spec"].get("window", "-"),
                c.get("status", "?"),
                c.get("reason", ""),
            ]
        )
    print(_table(rows))
    print()
    rows = [["PRIORITYCLASS", "VALUE", "PREEMPTION", "OWNER"]]
    for pc in sorted(
        kube.list(PRIORITY_CLASSES.path(), labelSelector="app.kubernetes.io/managed-by=ballast")[
            "items"
        ],
        key=lambda p: -p["value"],
    ):
        rows.append(
            [
                pc["metadata"]["name"],
                str(pc["value"]),
                pc.get("preemptionPolicy", ""),
                pc["metadata"]["labels"].get("ballast.dev/owner", ""),
            ]
        )
    print(_table(rows))
    print()
    rows = [
        [
            "BATCHWINDOW",
            "SCHEDULE",
            "TIMEZONE",
            "OPEN",
            "CURRENT END",
            "NEXT OPEN",
            "NEXT CLOSE",
            "READY",
        ]
    ]
    for n in names["BatchWindow"]:
        o = kube.get(BATCHWINDOWS.path(n)) or {}
        st = o.get("status") or {}
        rows.append(
            [
                n,
                o["spec"]["schedule"],
                o["spec"].get("timeZone", "UTC"),
                str(st.get("open")),
                _local(st.get("currentWindowEnd"), o),
                _local(st.get("nextOpen"), o),
                _local(st.get("nextClose"), o),
                _ready(o).get("status", "?"),
            ]
        )
    print(_table(rows))
    print()
    rows = [["GPUQUOTA", "NAMESPACES", "GPUS", "COHORT", "READY", "MESSAGE"]]
    for n in names["GPUQuota"]:
        o = kube.get(GPUQUOTAS.path(n)) or {}
        c = _ready(o)
        rows.append(
            [
                n,
                ",".join(o["spec"]["namespaces"]),
                str(o["spec"]["gpus"]),
                o["spec"].get("cohort", "-"),
                c.get("status", "?"),
                c.get("message", ""),
            ]
        )
    print(_table(rows))


def _placements(kube: Kube, deadline: float) -> None:
    """Where each example pod went and why, or why it waits (from events and conditions)."""
    pods: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        pods = [
            p
            for p in kube.list("/api/v1/pods", labelSelector="ballast.dev/class")["items"]
            if (p.get("spec") or {}).get("schedulerName") == "ballast"
        ]
        settled = [p for p in pods if p["spec"].get("nodeName") or _waiting(p)]
        if pods and len(settled) == len(pods):
            break
        time.sleep(0.5)
    rows = [["POD", "CLASS", "NODE", "WHY"]]
    for p in sorted(pods, key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"])):
        meta = p["metadata"]
        name = f"{meta['namespace']}/{meta['name']}"
        node = p["spec"].get("nodeName") or "(waiting)"
        if p["spec"].get("nodeName"):
            why = _scheduled_note(kube, meta["namespace"], meta["name"])
        else:
            c = _waiting(p) or {}
            why = f"{c.get('reason', '?')}: {c.get('message', '')}"
        rows.append([name, meta["labels"].get("ballast.dev/class", ""), node, why])
    print(_table(rows))


HOSTILE_POD = "claims-gpu-999"


def _hostile(kube: Kube, scheduler: BallastProcess) -> None:
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


def _waiting(pod: dict[str, Any]) -> dict[str, Any] | None:
    for c in (pod.get("status") or {}).get("conditions") or ():
        if c.get("type") == "PodScheduled" and c.get("status") == "False":
            return dict(c)
    return None


def _scheduled_note(kube: Kube, namespace: str, name: str) -> str:
    items = kube.list(
        f"/apis/events.k8s.io/v1/namespaces/{namespace}/events",
        fieldSelector=f"regarding.name={name}",
    )["items"]
    notes = [str(e.get("note", "")) for e in items if e.get("reason") == "Scheduled"]
    if not notes:
        return "bound"
    # "assigned ns/pod to node (GPUs 0,1): score ... " -> keep the reasons part
    return notes[-1].split(": ", 1)[-1]


def _local(ts: str | None, obj: dict[str, Any]) -> str:
    """An RFC 3339 UTC time shown in the window's own zone."""
    if not ts:
        return "-"
    from zoneinfo import ZoneInfo

    t = dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return t.astimezone(ZoneInfo(obj["spec"].get("timeZone", "UTC"))).strftime("%a %d %b %H:%M %Z")
