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

from ballast import demo_checks, demo_scaling
from ballast.dayreplay import cli as dayreplay
from ballast.demo_checks import table as _table
from ballast.demo_telemetry import UTIL_BY_CLASS, start_agents, synthetic_load
from ballast.kube.crds import ensure_crds
from ballast.kube.raw import (
    BATCHWINDOWS,
    GPUQUOTAS,
    NAMESPACES,
    PRIORITY_CLASSES,
    WORKLOADCLASSES,
    Kube,
)
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
    parser.add_argument(
        "--prometheus",
        action="store_true",
        help="also run Prometheus scraping the operator and the scheduler (make demo asks)",
    )
    parser.add_argument(
        "--keda",
        action="store_true",
        help="also run KEDA and show a class scaling on GPU utilisation (needs --prometheus)",
    )
    parser.add_argument(
        "--no-agents",
        dest="agents",
        action="store_false",
        help="do not run a node agent (over the fake NVML) per fake node",
    )
    dayreplay.options(parser)


def _ready(obj: dict[str, Any]) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return dict(c)
    return {}


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
    keda = args.keda and args.prometheus
    kubeconfig = cluster.up(with_prometheus=args.prometheus, with_keda=keda)
    print(f"==> control plane up ({time.monotonic() - t0:.1f}s)")
    state = cluster.state
    prometheus_url = state.prometheus_url if state else None
    if prometheus_url:
        print(f"==> Prometheus on {prometheus_url}")
    api = lk.api_client(kubeconfig)
    specs = profile_nodes(args.profile, args.nodes, seed=0)
    lk.create_nodes(api, specs)
    lk.wait_nodes_ready(api, [s.name for s in specs], 60)
    print(f"==> {len(specs)} fake GPU nodes ({args.profile} profile) Ready")
    kube = Kube.connect(str(kubeconfig))
    ensure_crds(kube)
    print("==> CRDs installed")
    agents = start_agents(kubeconfig, cluster, specs) if args.agents else None
    kube.apply(NAMESPACES.path(WEBHOOK_NAMESPACE), {"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": WEBHOOK_NAMESPACE}}, field_manager="ballast-demo")  # fmt: skip
    port, operator_metrics, scheduler_metrics = _free_port(), _free_port(), _free_port()
    operator = BallastProcess(
        "operator",
        ["operator", "--metrics-port", str(operator_metrics), "--metrics-addr", "127.0.0.1",
         "--webhook-port", str(port), "--webhook-host", "127.0.0.1",
         "--webhook-url", f"https://127.0.0.1:{port}", "--webhook-namespace", WEBHOOK_NAMESPACE,
         *(["--prometheus-url", prometheus_url, "--slo-interval", "10"] if prometheus_url else [])],
        kubeconfig, cluster.layout.root,
        # A short dwell so the demo's pool settles while you watch (default 300 s).
        env={"BALLAST_POOL_DWELL_SECONDS": "30"},
    )  # fmt: skip
    operator.start()
    print(
        f"==> operator running (pid {operator.pid}, webhook on 127.0.0.1:{port}, log {operator.log_path})"
    )
    _wait_webhook(kube)
    scheduler = BallastProcess(
        "scheduler",
        ["scheduler", "--metrics-port", str(scheduler_metrics)],
        kubeconfig,
        cluster.layout.root,
    )
    scheduler.start()
    cluster.add_scrape_target("ballast-operator", f"127.0.0.1:{operator_metrics}", "operator")
    cluster.add_scrape_target("ballast-scheduler", f"127.0.0.1:{scheduler_metrics}", "scheduler")
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
    demo_checks.pool(kube)
    print()
    demo_checks.jobs(kube)
    print()
    demo_checks.mutated(kube)
    print()
    demo_checks.hostile(kube, scheduler)
    print()
    if agents is not None:
        synthetic_load(kube, agents)
        print()
    if keda and agents is not None and prometheus_url:
        exporter = demo_scaling.serving_traffic(cluster.layout.root)
        demo_scaling.observe_latency(kube, exporter)
        demo_scaling.scaling(kube, agents, cluster.layout.root)
        print()
        demo_scaling.slo_report(kube, lambda: demo_scaling.observe_latency(kube, exporter))
        print()
        exporter.close()
    # Last: the day replay on a cluster of its own, recreated for each scheduler.
    replayed = dayreplay.replay(args, f"{args.name}-day")
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
        + (
            f"Prometheus: {prometheus_url}  (targets: {prometheus_url}/targets). Pending pods per tier:\n"
            f"  curl -s {prometheus_url}/api/v1/query "
            f"--data-urlencode 'query=ballast:scheduler_pending_pods:sum_by_tier'\n"
            f"GPU utilisation per class (the agents' DCGM series joined with the scheduler's pods):\n"
            f"  curl -s {prometheus_url}/api/v1/query --data-urlencode 'query={UTIL_BY_CLASS}'\n"
            if prometheus_url
            else ""
        )
        + f"Stop everything with: make demo-down   (or: ballast cluster down --name {args.name})"
    )
    kube.close()
    return 1 if pending or replayed else 0


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


WEBHOOK_NAMESPACE = "ballast-system"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_webhook(kube: Kube, timeout: float = 30.0) -> None:
    """Until the operator has registered its webhooks (pods applied before would miss them)."""
    deadline = time.monotonic() + timeout
    path = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
    while time.monotonic() < deadline:
        items = kube.list(path, labelSelector="app.kubernetes.io/managed-by=ballast")["items"]
        if items and all(
            w.get("clientConfig", {}).get("caBundle")
            for i in items
            for w in i.get("webhooks") or ()
        ):
            print("==> admission webhook registered")
            return
        time.sleep(0.5)
    print("!! the admission webhook did not register in time; pods are admitted unchanged")


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
