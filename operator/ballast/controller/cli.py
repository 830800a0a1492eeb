"""``ballast operator``: run the kopf operator against the current kubeconfig."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import sys
import time
from typing import TYPE_CHECKING, Literal

import kopf

from ballast.controller import slo_options
from ballast.logs import quiet_kopf_successes
from ballast.webhook import options as webhook_options

if TYPE_CHECKING:
    from ballast.webhook.service import WebhookService


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``ballast operator``'s arguments."""
    parser.add_argument("--kubeconfig", help="kubeconfig path (default: $KUBECONFIG, in-cluster)")
    parser.add_argument(
        "--liveness",
        default=None,
        help="serve kopf's liveness probe here, e.g. http://0.0.0.0:8080/healthz",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--peering",
        metavar="NAME",
        default=os.environ.get("BALLAST_PEERING") or None,
        help=(
            "run as one of several replicas coordinated through the ClusterKopfPeering NAME "
            "(created if missing; its CRD is in crds/): only the live replica with the highest "
            "priority acts, the others pause until its keep-alive expires "
            "(default: $BALLAST_PEERING, else standalone)"
        ),
    )
    mode.add_argument(
        "--standalone",
        dest="peering",
        action="store_const",
        const=None,
        help="run as the only replica, without peering (the default)",
    )
    parser.add_argument(
        "--peering-priority",
        type=int,
        default=None,
        help=(
            "this replica's peering priority; replicas must differ (kopf pauses all of a tie). "
            "Default: the start time in ms plus a random tiebreak, so the newest replica leads "
            "(a rolling update hands over to the new pod)"
        ),
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help=(
            "serve Prometheus /metrics (the process's CPU, memory, GC; per-class SLO and cost "
            "series, docs/slo.md) on this port (0: off)"
        ),
    )
    parser.add_argument("--metrics-addr", default="0.0.0.0", help="address for --metrics-port")
    slo_options.configure(parser)
    webhook_options.configure(parser)


def default_priority(now_ns: int | None = None, tiebreak: int | None = None) -> int:
    """A priority unique in practice and increasing with start time (below 2**53, JSON-safe)."""
    ms = (time.time_ns() if now_ns is None else now_ns) // 1_000_000
    return ms * 1000 + (random.randrange(1000) if tiebreak is None else tiebreak)


def run(args: argparse.Namespace) -> int:
    """Register the handlers and run until interrupted."""
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig
    slo_options.export(args)  # before the handlers register their timers
    import ballast.controller.handlers
    import ballast.controller.settings  # noqa: F401  (registers the startup handler)
    from ballast.kube import compat
    from ballast.kube.raw import Kube

    kube = Kube.connect(args.kubeconfig or os.environ.get("KUBECONFIG") or None)
    try:
        compat.require(kube.get, compat.OPERATOR_APIS, "the operator")
    except compat.IncompatibleServer as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        kube.close()

    webhook = _start_webhook(args)
    if webhook is False:
        return 2
    if args.metrics_port:
        from prometheus_client import REGISTRY, start_http_server

        # The default registry: process_* and python_* series, scraped as job ballast-operator.
        start_http_server(args.metrics_port, addr=args.metrics_addr, registry=REGISTRY)
    quiet_kopf_successes()  # kopf's "Handler 'x' succeeded." lines: --log-level DEBUG
    peering = args.peering
    priority = None
    if peering:
        priority = (
            args.peering_priority if args.peering_priority is not None else default_priority()
        )
    try:
        asyncio.run(
            kopf.operator(
                clusterwide=True,
                standalone=not peering,
                peering_name=peering or None,
                priority=priority,
                liveness_endpoint=args.liveness,
                # A class's change handlers (PriorityClass, PDBs, ScaledObjects)
                # are independent: run them in one cycle, so a change costs one
                # progress patch (and one watch event back) instead of one per
                # handler. A handler that fails is retried alone with its backoff.
                lifecycle=kopf.lifecycles.all_at_once,
            )
        )
    finally:
        if webhook is not None:
            webhook.stop()
    return 0


def _start_webhook(args: argparse.Namespace) -> WebhookService | Literal[False] | None:
    """Start the admission webhook when ``--webhook-port`` asks for it (False: it failed).

    It runs in threads beside kopf, not as a kopf handler: every replica
    serves, whatever kopf's peering pauses (docs/webhook.md).
    """
    from ballast.clock import SystemClock
    from ballast.controller.settings import ENV_CLOCK_OFFSET
    from ballast.kube.raw import Kube
    from ballast.webhook.service import WebhookError, WebhookService

    opts = webhook_options.from_args(args)
    if opts is None:
        return None
    offset = float(os.environ.get(ENV_CLOCK_OFFSET, "0") or 0)
    service = WebhookService(
        Kube.connect(args.kubeconfig or os.environ.get("KUBECONFIG") or None),
        opts,
        SystemClock(dt.timedelta(seconds=offset)),
    )
    try:
        service.start()
    except WebhookError as exc:
        service.stop()
        print(f"error: webhook: {exc}", file=sys.stderr)
        return False
    return service
