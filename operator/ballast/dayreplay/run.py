"""One replay per scheduler, each on the same local cluster recreated from nothing.

Ballast's side runs the operator (WorkloadClasses become PriorityClasses,
the BatchWindow opens on time, GPUQuotas are read) and Ballast's scheduler.
kube-scheduler's side gets the same nodes, namespaces and PriorityClasses
(copied from what Ballast's operator made, so both order and preempt by the
same priorities) and kube-scheduler in the chosen configuration
(``kube-gpu-binpack`` by default: NodeResourcesFit MostAllocated on
``nvidia.com/gpu``). kube-scheduler knows no GPUQuota, no batch window and
no GPU share: a share asks it for one whole GPU, and quota and window
figures are Ballast's alone.
"""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ballast.api import wellknown as wk
from ballast.dayreplay import driver as drv
from ballast.dayreplay import workload as wl
from ballast.dayreplay.caches import ModelCaches
from ballast.dayreplay.metrics import summarize
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
from ballast.localcluster.cluster import LocalCluster
from ballast.localcluster.nodes import NodeSpec, openb_nodes
from ballast.localcluster.probe import wait_ok
from ballast.placement.profiles import profile
from ballast.sim.fidelity import scheduler_config

GIB = 1024**3
BASELINES = ("kube-gpu-binpack", "kube-default")


@dataclass(frozen=True, slots=True)
class Options:
    """Everything a replay of both schedulers depends on."""

    traces: wl.TracePaths
    node_list: Path
    nodes: int = 12
    cache_gib: int = 100
    baseline: str = "kube-gpu-binpack"
    cluster: str = "demo-day"
    day: wl.DayConfig = dataclasses.field(default_factory=wl.DayConfig)


@dataclass(slots=True)
class Side:
    """One scheduler's replay."""

    scheduler: str
    outcome: drv.Outcome
    summary: dict[str, Any]


def replay_nodes(node_list: Path, count: int, cache_gib: int) -> list[NodeSpec]:
    """Every k-th node of the list (so each GPU model appears), caches empty."""
    every = openb_nodes(node_list)
    picked = every[:: max(1, len(every) // max(1, count))][:count]
    empty = wk.CacheInventory(cache_gib * GIB)
    return [dataclasses.replace(s, cache=empty) for s in picked]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fresh_cluster(
    opts: Options, specs: list[NodeSpec], plan: wl.DayPlan
) -> tuple[LocalCluster, Path, Kube]:
    cluster = LocalCluster(opts.cluster)
    cluster.down()  # a fresh etcd each time; the last side's logs stay for a look
    kubeconfig = cluster.up()
    kube = Kube.connect(str(kubeconfig), qps_pool=16)
    api = lk.api_client(kubeconfig)
    lk.create_nodes(api, specs)
    lk.wait_nodes_ready(api, [s.name for s in specs], 120)
    for ns in plan.namespaces:
        kube.create(
            NAMESPACES.path(), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
        )
    # Pods are refused in a namespace until its default ServiceAccount exists.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        sas = kube.list("/api/v1/serviceaccounts", fieldSelector="metadata.name=default")
        if set(plan.namespaces) <= {i["metadata"]["namespace"] for i in sas["items"]}:
            break
        time.sleep(0.3)
    return cluster, kubeconfig, kube


def _ballast_policy(kube: Kube, plan: wl.DayPlan, timeout: float = 60) -> dict[str, str]:
    """Create the classes, quotas and window; wait for the classes' PriorityClasses."""
    ensure_crds(kube)
    # The window exists before the class that names it; its opening is set at the start.
    _window(kube, plan, time.time() + 86400, create=True)
    for cls in plan.classes.values():
        kube.create(WORKLOADCLASSES.path(), wl.class_body(cls))
    for q in plan.quotas:
        kube.create(GPUQUOTAS.path(), wl.quota_body(q))
    deadline = time.monotonic() + timeout
    out: dict[str, str] = {}
    while time.monotonic() < deadline and len(out) < len(plan.classes):
        for name in plan.classes:
            st = (kube.get(WORKLOADCLASSES.path(name)) or {}).get("status") or {}
            if st.get("priorityClassName"):
                out[name] = str(st["priorityClassName"])
        time.sleep(0.3)
    if len(out) < len(plan.classes):
        raise RuntimeError(
            f"the operator made no PriorityClass for {sorted(set(plan.classes) - set(out))}"
        )
    return out


def _window(kube: Kube, plan: wl.DayPlan, start_wall: float, create: bool = False) -> None:
    """The BatchWindow with its one opening ``plan.window_open_s`` after ``start_wall``."""
    opens = start_wall + plan.window_open_s
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(opens))
    length = int(plan.config.replay_s - plan.window_open_s) + 3600
    body = wl.window_body(stamp, length)
    if create:
        kube.create(BATCHWINDOWS.path(), body)
    else:
        kube.patch(BATCHWINDOWS.path(wl.WINDOW), {"spec": body["spec"]})


def run_ballast(
    opts: Options, plan: wl.DayPlan, specs: list[NodeSpec]
) -> tuple[Side, list[dict[str, Any]], dict[str, str]]:
    """Ballast's replay; also the PriorityClasses its operator made, and each class's."""
    cluster, kubeconfig, kube = _fresh_cluster(opts, specs, plan)
    root = cluster.layout.root
    operator = BallastProcess(
        "replay-operator", ["--log-level", "WARNING", "operator"], kubeconfig, root
    )
    port = _free_port()
    scheduler = BallastProcess(
        "replay-scheduler",
        ["--log-level", "WARNING", "scheduler", "--metrics-port", str(port)],
        kubeconfig,
        root,
    )
    try:
        operator.start()
        classes = _ballast_policy(kube, plan)
        pcs = [
            pc
            for pc in kube.list(PRIORITY_CLASSES.path())["items"]
            if pc["metadata"]["name"] in set(classes.values())
        ]
        scheduler.start()
        wait_ok(f"http://127.0.0.1:{port}/readyz", 120, alive=scheduler.alive)
        # The window's one opening is on the clock before the first pod exists.
        _window(kube, plan, time.time())
        side = _drive(opts, plan, kube, "ballast", classes, shares=True, label="Ballast")
        if not scheduler.alive():
            raise RuntimeError(f"Ballast's scheduler died:\n{scheduler.log_tail()}")
    finally:
        scheduler.stop()
        operator.stop()
        kube.close()
        cluster.down()
    return side, pcs, classes


def run_kube(
    opts: Options,
    plan: wl.DayPlan,
    specs: list[NodeSpec],
    pcs: list[dict[str, Any]],
    classes: dict[str, str],
) -> Side:
    """kube-scheduler's replay in the ``opts.baseline`` configuration."""
    cluster, _kubeconfig, kube = _fresh_cluster(opts, specs, plan)
    try:
        for pc in pcs:
            body: dict[str, Any] = {k: pc[k] for k in ("apiVersion", "kind", "value") if k in pc}
            body["metadata"] = {"name": pc["metadata"]["name"]}
            if pc.get("preemptionPolicy"):
                body["preemptionPolicy"] = pc["preemptionPolicy"]
            kube.create(PRIORITY_CLASSES.path(), body)
        # Returns once kube-scheduler's /readyz says its informers have listed.
        cluster.start_scheduler(config=scheduler_config(profile(opts.baseline)))
        return _drive(
            opts, plan, kube, "default-scheduler", classes, shares=False, label=opts.baseline
        )
    finally:
        kube.close()
        cluster.down()


def _drive(
    opts: Options,
    plan: wl.DayPlan,
    kube: Kube,
    scheduler: str,
    classes: dict[str, str],
    shares: bool,
    label: str,
) -> Side:
    caches = ModelCaches(opts.cache_gib * GIB)
    show = drv.progress_printer(label, plan.config.replay_s)
    outcome = drv.drive(kube, plan, scheduler, classes, shares, caches, show)
    capacity = sum(n.gpus for n in opts_specs(opts))
    summary = summarize(outcome.timelines, capacity, outcome.end_s,
                        window_open_s=plan.window_open_s)  # fmt: skip
    return Side(scheduler, outcome, summary)


def opts_specs(opts: Options) -> list[NodeSpec]:
    """The replay's nodes for ``opts``."""
    return replay_nodes(opts.node_list, opts.nodes, opts.cache_gib)


def run_both(
    opts: Options, announce: Callable[[str], None] = print
) -> tuple[wl.DayPlan, Side, Side]:
    """Build the plan, replay it with Ballast, then with kube-scheduler."""
    specs = opts_specs(opts)
    plan = wl.load(opts.traces, sum(s.gpus for s in specs), opts.day)
    counts = ", ".join(f"{n} {k}" for k, n in sorted(plan.counts().items()))
    announce(
        f"   {len(specs)} nodes, {sum(s.gpus for s in specs)} GPUs; {len(plan.pods)} pods "
        f"({counts}); {len(plan.quotas)} GPUQuotas; batch window opens at "
        f"{plan.window_open_s:.0f} s"
    )
    announce("==> Ballast: cluster recreated, operator and scheduler running")
    ballast, pcs, classes = run_ballast(opts, plan, specs)
    announce(f"==> kube-scheduler ({opts.baseline}): cluster recreated")
    kube = run_kube(opts, plan, specs, pcs, classes)
    return plan, ballast, kube
