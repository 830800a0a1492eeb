"""``ballast agent``: the node agent (a DaemonSet on GPU nodes).

Every ``--interval`` it reads each GPU through NVML, applies the health table,
serves dcgm-exporter-compatible ``/metrics`` and writes the per-node record
(``--record-out`` file, ``--publish-record`` GPUNodeTelemetry status,
``--publish-node`` annotation). XID events arrive on
their own thread and update health at once. It keeps running when NVML is
missing or failing (``ballast_agent_nvml_available 0``, init retried with
backoff). With ``--cache-root`` it also scans the node's model and dataset
caches every ``--cache-interval`` on a worker thread, into the record's
``status.cache`` and ``ballast_agent_cache_*``. See docs/agent.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable

import orjson
from prometheus_client import start_http_server

from ballast.agent.attribution import DEFAULT_POD_RESOURCES_SOCKET as DEFAULT_SOCKET
from ballast.agent.attributor import MODES, Attributor
from ballast.agent.cache import CacheScanner
from ballast.agent.cache_layout import CacheRoot, parse_root
from ballast.agent.cache_publish import LatestCache, cache_status, register, scan_loop
from ballast.agent.collector import Collector
from ballast.agent.events import XidWatcher
from ballast.agent.exporter import build_registry
from ballast.agent.record import Publisher, RecordWriter, to_record
from ballast.api.wellknown import ANNOTATION_TELEMETRY
from ballast.clock import Clock, SystemClock
from ballast.logs import kv
from ballast.telemetry.nvml import Nvml

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the agent's flags."""
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between collections")
    parser.add_argument("--metrics-port", type=int, default=9400, help="/metrics port (0: off)")
    parser.add_argument("--metrics-addr", default="0.0.0.0", help="/metrics bind address")
    parser.add_argument(
        "--hostname",
        default=os.environ.get("NODE_NAME") or socket.gethostname(),
        help="the Hostname label (default $NODE_NAME, else the host name)",
    )
    parser.add_argument("--record-out", help="write the per-node record (JSON) here each interval")
    parser.add_argument("--publish-node", metavar="NAME", help="patch this Node's annotation")
    parser.add_argument(
        "--publish-record",
        action="store_true",
        help="write the node's GPUNodeTelemetry (ballast.dev) status; never the Node",
    )
    parser.add_argument(
        "--node-name",
        default=os.environ.get("NODE_NAME") or None,
        help="the node (and GPUNodeTelemetry) name for --publish-record (default $NODE_NAME)",
    )
    parser.add_argument(
        "--kubeconfig", help="kubeconfig for --publish-node/--publish-record (default in-cluster)"
    )
    parser.add_argument(
        "--heartbeat", type=float, default=60.0, help="seconds between unchanged Node writes"
    )
    parser.add_argument(
        "--slowdown-seconds",
        type=float,
        default=60.0,
        help="how long a hardware slowdown must last to mark a GPU unhealthy",
    )
    parser.add_argument(
        "--cache-root",
        action="append",
        type=_cache_root,
        default=[],
        metavar="KIND=PATH[:LAYOUT]",
        help="a model or dataset cache to inventory (repeatable): KIND model|dataset, "
        "LAYOUT hf (Hugging Face hub cache) or plain (default), e.g. model=/models:hf",
    )
    parser.add_argument(
        "--cache-interval", type=_positive, default=60.0, help="seconds between cache scans"
    )
    parser.add_argument(
        "--cache-capacity",
        type=int,
        default=0,
        metavar="BYTES",
        help="the cache's capacity (default: the size of the roots' file systems)",
    )
    parser.add_argument(
        "--cache-full-every",
        type=int,
        default=60,
        metavar="N",
        help="re-list and stat everything every N scans (in-place rewrites, access times)",
    )
    parser.add_argument(
        "--nvml-library",
        default=os.environ.get("BALLAST_NVML_LIBRARY") or None,
        help="load NVML from this file instead of libnvidia-ml.so.1 ($BALLAST_NVML_LIBRARY)",
    )
    parser.add_argument("--no-events", action="store_true", help="do not wait for XID events")
    parser.add_argument(
        "--attribution",
        choices=MODES,
        default="auto",
        help="GPU-to-pod attribution: auto (the kubelet's pod-resources, else the pods' "
        "ballast.dev/gpu-ids), pod-resources, ballast, or off",
    )
    parser.add_argument(
        "--pod-resources-socket",
        default=DEFAULT_SOCKET,
        help=f"the kubelet's pod-resources socket (default {DEFAULT_SOCKET})",
    )
    parser.add_argument(
        "--once", action="store_true", help="collect once, print the record and exit"
    )


def _attributor(args: argparse.Namespace, collector: Collector) -> Attributor | None:
    """The attribution thread for ``--attribution``; None when off or nothing to ask."""
    mode = args.attribution
    if mode == "off":
        return None
    pod_resources = None
    if mode in ("auto", "pod-resources"):
        from ballast.agent.podresources import PodResourcesClient  # grpc only when asked

        pod_resources = PodResourcesClient(args.pod_resources_socket)
    pods = None
    if mode in ("auto", "ballast"):
        if not args.node_name:
            (log.error if mode == "ballast" else log.info)(
                "no --node-name ($NODE_NAME): Ballast's GPU assignment is not read"
            )
        else:
            from ballast.agent.nodepods import NodePods
            from ballast.kube.raw import Kube

            try:
                kube = Kube.connect(args.kubeconfig)
            except Exception as exc:  # no kubeconfig, not in a cluster
                (log.error if mode == "ballast" else log.info)(
                    "no API access: Ballast's GPU assignment is not read", extra=kv(error=exc)
                )
            else:
                pods = NodePods(kube, args.node_name)
                pods.start()
    if pod_resources is None and pods is None:
        return None
    return Attributor(collector, args.interval, pod_resources=pod_resources, pods=pods)


def _node_patcher(name: str, kubeconfig: str | None) -> Callable[[str], None]:
    from ballast.kube.raw import Kube  # only when publishing: keeps the client off the hot path

    kube = Kube.connect(kubeconfig)

    def patch(record_json: str) -> None:
        kube.patch(
            f"/api/v1/nodes/{name}",
            {"metadata": {"annotations": {ANNOTATION_TELEMETRY: record_json}}},
            field_manager="ballast-agent",
        )

    return patch


def _cache_root(text: str) -> CacheRoot:
    try:
        return parse_root(text)
    except ValueError as exc:  # argparse shows this message, not "invalid value"
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be more than 0")
    return value


def _cache(args: argparse.Namespace, clock: Clock) -> tuple[CacheScanner | None, LatestCache]:
    """The cache scanner for ``--cache-root`` (None: none given) and where its scans go."""
    if not args.cache_root:
        return None, LatestCache()
    scanner = CacheScanner(
        args.cache_root, clock, capacity_bytes=args.cache_capacity, full_every=args.cache_full_every
    )
    return scanner, LatestCache()


async def loop(
    collector: Collector,
    publisher: Publisher,
    clock: Clock,
    interval: float,
    stop: asyncio.Event,
    observe: Callable[[float], None] = lambda _: None,
) -> None:
    """Collect and publish every ``interval`` seconds of ``clock`` until ``stop`` is set."""
    while not stop.is_set():
        started = clock.monotonic()
        snap = collector.collect()
        observe(snap.collect_seconds)
        publisher.publish(snap)
        await clock.sleep(max(0.0, interval - (clock.monotonic() - started)))


def run(args: argparse.Namespace) -> int:
    """Run the agent until SIGTERM/SIGINT."""
    clock = SystemClock()
    collector = Collector(Nvml(args.nvml_library), clock, slowdown_sustain_s=args.slowdown_seconds)
    scanner, latest = _cache(args, clock)
    patch = _node_patcher(args.publish_node, args.kubeconfig) if args.publish_node else None
    write_record = None
    if args.publish_record:
        if not args.node_name:
            log.error("--publish-record needs --node-name (or $NODE_NAME)")
            return 2
        from ballast.kube.raw import Kube

        write_record = RecordWriter(
            Kube.connect(args.kubeconfig), args.node_name, args.interval, cache=latest,
            heartbeat_s=args.heartbeat,
        )  # fmt: skip
    publisher = Publisher(
        clock, record_out=args.record_out, patch_node=patch, heartbeat_s=args.heartbeat,
        write_record=write_record, cache=latest,
    )  # fmt: skip
    attributor = _attributor(args, collector)
    if args.once and scanner is not None:
        latest.set(scanner.scan())
    if args.once:
        snap = collector.collect()
        if attributor is not None:
            if attributor.pods is not None:
                attributor.pods.wait_synced(5.0)
            attributor.refresh()
            snap = collector.snapshot()
        publisher.publish(snap)
        print(orjson.dumps(to_record(snap).as_dict()).decode())
        scan = latest.get()
        if scan is not None:  # a second line: what the record's status.cache would carry
            print(orjson.dumps({"cache": cache_status(scan), "problems": scan.problems}).decode())
        return 0 if snap.nvml_available else 1
    collector.listeners.append(publisher.publish)
    registry, collect_seconds = build_registry(collector, args.hostname, publisher, attributor)
    scan_seconds = register(registry, latest)
    if args.metrics_port:
        start_http_server(args.metrics_port, addr=args.metrics_addr, registry=registry)
    log.info(
        "agent started",
        extra=kv(interval=args.interval, metrics_port=args.metrics_port, hostname=args.hostname),
    )
    watcher = None if args.no_events else XidWatcher(collector)

    async def main() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        collector.collect()  # first reading before the watcher needs handles
        if watcher is not None:
            watcher.start()
        if attributor is not None:
            attributor.start()
        scans = None
        if scanner is not None:
            scans = asyncio.create_task(
                scan_loop(scanner, latest, clock, args.cache_interval, stop, scan_seconds.observe)
            )
        try:
            await loop(collector, publisher, clock, args.interval, stop, collect_seconds.observe)
        finally:
            if scans is not None:
                scans.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await scans

    try:
        asyncio.run(main())
    finally:
        if watcher is not None:
            watcher.stop()
            watcher.join(timeout=2)
        if attributor is not None:
            attributor.stop()
        collector.close()  # GPM sample buffers, before NVML goes
        collector.nvml.shutdown()
    log.info("agent stopped")
    return 0
