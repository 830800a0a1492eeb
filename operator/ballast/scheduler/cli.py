"""``ballast scheduler``: run the scheduler (or its kube-scheduler extender)."""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import queue
import signal
import socket
import sys
import threading

from ballast.api.wellknown import API_VERSION
from ballast.clock import SystemClock
from ballast.kube import compat
from ballast.kube.raw import (
    BATCHWINDOWS,
    GPUNODETELEMETRIES,
    GPUQUOTAS,
    NAMESPACES,
    NODES,
    PDBS,
    PODS,
    WORKLOADCLASSES,
    Kube,
)
from ballast.logs import kv
from ballast.scheduler import podspec
from ballast.scheduler.actions import Actions
from ballast.scheduler.core import Config, Scheduler
from ballast.scheduler.dra_writes import dra_informers
from ballast.scheduler.group_informers import group_informers
from ballast.scheduler.health import Health
from ballast.scheduler.health import serve as serve_probes
from ballast.scheduler.informer import Event, Informer
from ballast.scheduler.leader import DEFAULT_TIMING, LeaderElector, Timing
from ballast.scheduler.metrics import SchedulerMetrics, node_model
from ballast.scheduler.ratelimit import TokenBucket
from ballast.scheduler.sources import AnnotationSource, RecordSource

log = logging.getLogger(__name__)


EVENT_QUEUE_SIZE = 20000


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``ballast scheduler``'s arguments."""
    parser.add_argument("--kubeconfig", help="kubeconfig path (default: $KUBECONFIG, in-cluster)")
    parser.add_argument("--scheduler-name", default="ballast", help="spec.schedulerName to serve")
    parser.add_argument(
        "--profile",
        default="ballast",
        help="placement policy (ballast, kube-default, fgd, best-fit)",
    )
    parser.add_argument(
        "--pod-initial-backoff-seconds",
        type=float,
        default=1.0,
        help="a pod that found no room waits this long before its next attempt, doubling "
        "with each attempt in a row (kube-scheduler's podInitialBackoffSeconds; 0: none)",
    )
    parser.add_argument(
        "--pod-max-backoff-seconds",
        type=float,
        default=10.0,
        help="the most that backoff grows to (kube-scheduler's podMaxBackoffSeconds)",
    )
    parser.add_argument(
        "--kube-api-qps", type=float, default=50.0, help="client QPS (<= 0: unlimited)"
    )
    parser.add_argument("--kube-api-burst", type=int, default=100, help="client burst")
    parser.add_argument(
        "--workers",
        type=int,
        default=64,
        help="threads for API writes (binds run concurrently, like kube-scheduler's per-pod binding goroutines)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="serve /metrics, and the probes /healthz and /readyz, on this port (0: off)",
    )
    parser.add_argument(
        "--leader-elect", action="store_true", help="hold a Lease; only the holder schedules"
    )
    parser.add_argument("--lease-namespace", default="default")
    parser.add_argument("--lease-name", default="ballast-scheduler")
    parser.add_argument("--identity", default=f"{socket.gethostname()}-{os.getpid()}")
    # Named like kube-scheduler's flags; see docs/scheduler.md "Two replicas".
    parser.add_argument(
        "--leader-elect-lease-duration",
        type=int,
        default=DEFAULT_TIMING.lease_s,
        help="seconds a standby waits, from when it last saw the lease change, before taking it",
    )
    parser.add_argument(
        "--leader-elect-renew-deadline",
        type=float,
        default=DEFAULT_TIMING.renew_deadline_s,
        help="seconds the leader keeps acting without a successful renewal (< lease duration)",
    )
    parser.add_argument(
        "--leader-elect-retry-period",
        type=float,
        default=DEFAULT_TIMING.retry_s,
        help="seconds between lease attempts",
    )
    parser.add_argument(
        "--leader-elect-request-timeout",
        type=float,
        default=None,
        help="timeout of one lease request (default: a quarter of the renew deadline)",
    )
    parser.add_argument(
        "--api-write-timeout",
        type=float,
        default=2.5,
        help="timeout of one bind/eviction/status request (failures are retried with backoff); "
        "keep it below lease duration - renew deadline",
    )
    parser.add_argument(
        "--extender",
        action="store_true",
        help="serve kube-scheduler's extender API instead of binding",
    )
    parser.add_argument("--extender-port", type=int, default=8888)
    parser.add_argument("--extender-address", default="127.0.0.1")
    parser.add_argument(
        "--telemetry-source",
        choices=("annotations", "records"),
        default=None,
        help="where GPU telemetry comes from: the agents' GPUNodeTelemetry records or Node "
        "annotations (default: records when the server serves GPUNodeTelemetry, else annotations)",
    )
    parser.add_argument(
        "--telemetry-max-age",
        type=float,
        default=None,
        help="seconds a GPUNodeTelemetry record stays fresh; older scores neutral "
        "(default: 3 x the record's reportIntervalSeconds)",
    )


def build(args: argparse.Namespace) -> tuple[Scheduler, list[Informer], Kube]:
    """Wire the client, the informers, the writers and the scheduler together."""
    kube = Kube.connect(args.kubeconfig, qps_pool=max(32, args.workers * 2))
    # Bounded: when the scheduling thread falls behind, informers and writers
    # wait (backpressure) instead of the queue growing without limit.
    events: queue.Queue[Event] = queue.Queue(maxsize=EVENT_QUEUE_SIZE)
    clock = SystemClock()
    metrics = SchedulerMetrics()
    bucket = TokenBucket(args.kube_api_qps, args.kube_api_burst)
    actions = Actions(
        kube,
        events,
        bucket=bucket,
        workers=args.workers,
        scheduler_name=args.scheduler_name,
        now=clock.now,
        timeout_s=args.api_write_timeout,
    )
    records = telemetry_source(args, kube) == "records"
    source = RecordSource(args.telemetry_max_age) if records else AnnotationSource()
    sched = Scheduler(
        actions,
        events,
        clock,
        Config(
            scheduler_name=args.scheduler_name,
            profile=args.profile,
            pod_initial_backoff_s=args.pod_initial_backoff_seconds,
            pod_max_backoff_s=args.pod_max_backoff_seconds,
        ),
        metrics,
        source,
    )
    metrics.watch_pods(
        lambda: sched.snapshot.pods.values(), sched.lock, node_model(lambda: sched.snapshot)
    )
    resources = [NODES, NAMESPACES, WORKLOADCLASSES, GPUQUOTAS, BATCHWINDOWS, PDBS, PODS]
    if records:
        # Started first, so records usually arrive before their nodes; either order converges
        # (a node reads its record through the source, a record updates a known node).
        resources.insert(0, GPUNODETELEMETRIES)
        sched.required.add(GPUNODETELEMETRIES.plural)
    # Pods are slimmed before they are queued (podspec.slim_pod; the scheduling thread's
    # second call passes a SlimPod on), so a backlog of pod events costs a third of the memory.
    informers = [
        Informer(kube, res, events, transform=podspec.slim_pod if res is PODS else None)
        for res in resources
    ]
    # PodGroups (scheduler-plugins' CRD, the Workload API) where the server serves them.
    informers += group_informers(kube, events, sched.required)
    # ResourceSlices, DeviceClasses, ResourceClaims where the server serves resource.k8s.io/v1.
    informers += dra_informers(kube, events, sched.required)
    return sched, informers, kube


def telemetry_source(args: argparse.Namespace, kube: Kube) -> str:
    """``--telemetry-source``, or records when the server serves GPUNodeTelemetry."""
    if args.telemetry_source:
        return str(args.telemetry_source)
    served = compat.serves(kube.get, API_VERSION, GPUNODETELEMETRIES.plural)
    return "records" if served else "annotations"


def run(args: argparse.Namespace) -> int:
    """Run until SIGTERM/SIGINT."""
    sched, informers, kube = build(args)
    try:
        compat.require(kube.get, compat.SCHEDULER_APIS, "the scheduler")
    except compat.IncompatibleServer as exc:
        log.error("incompatible API server", extra=kv(error=exc))
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.telemetry_source == "records" and not compat.serves(
        kube.get, API_VERSION, GPUNODETELEMETRIES.plural
    ):
        print("error: --telemetry-source records: the API server does not serve "
              "gpunodetelemetries.ballast.dev (install crds/)", file=sys.stderr)  # fmt: skip
        return 2
    stop = threading.Event()
    lost = threading.Event()  # set when the lease is lost
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # SIGUSR1 logs the scheduler's view of every node (what it thinks is free and why).
    signal.signal(signal.SIGUSR1, lambda *_: sched.request_dump())
    health = Health(sched.clock.monotonic, sched.pending_lists)
    if args.metrics_port:
        serve_probes(sched.metrics.registry, health, args.metrics_port)
    for inf in informers:
        inf.start()
    if args.extender:
        from ballast.scheduler.extender import serve_extender

        sched.leader = False  # the extender never binds; kube-scheduler does
        server = serve_extender(sched, args.extender_address, args.extender_port)
        log.info(
            "extender serving", extra=kv(address=args.extender_address, port=args.extender_port)
        )
        while not stop.is_set():
            sched.step(0.1)
            health.beat()
        server.shutdown()
        return 0
    elector = None
    if args.leader_elect:
        sched.leader = False
        timing = Timing(args.leader_elect_lease_duration, args.leader_elect_renew_deadline,
                        args.leader_elect_retry_period, args.leader_elect_request_timeout)  # fmt: skip
        try:
            timing.validate()
        except ValueError as exc:
            log.error("invalid leader-election timings", extra=kv(error=exc))
            return 2
        if args.api_write_timeout >= timing.lease_s - timing.renew_deadline_s:
            log.warning("API write timeout is not below lease duration - renew deadline: a write "
                        "the old leader still waits for may land after a standby took over",
                        extra=kv(write_timeout=args.api_write_timeout))  # fmt: skip
        elector = LeaderElector(
            kube, namespace=args.lease_namespace, name=args.lease_name, identity=args.identity, clock=sched.clock,
            timing=timing, on_started=lambda: sched.metrics.leader.set(1), on_stopped=lost.set,
        )  # fmt: skip
        # Every queued write checks the term it was queued in right before it is sent.
        sched.actions.fence = elector.term
        elector.start()
    log.info(
        "scheduler started",
        extra=kv(
            name=args.scheduler_name,
            profile=args.profile,
            leader_elect=args.leader_elect,
            telemetry_source=type(sched.source).__name__,
        ),
    )
    # BALLAST_PROFILE=path writes a cProfile of the scheduling thread at exit (benchmarks).
    profiler = cProfile.Profile() if os.environ.get("BALLAST_PROFILE") else None
    if profiler is not None:
        profiler.enable()
    while not (stop.is_set() or lost.is_set()):
        if elector is not None:
            sched.leader = elector.leading()
        sched.step(0.05)
        health.beat()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(os.environ["BALLAST_PROFILE"])
    log.info("scheduler stopping")
    if elector is not None:
        elector.stop()
        elector.release()
    for inf in informers:
        inf.stop()
    sched.actions.shutdown()
    kube.close()
    # A lost lease ends the process with a failure, so a supervisor restarts it
    # as a fresh candidate (as kube-scheduler does); a signal is a clean stop.
    return 1 if lost.is_set() else 0
