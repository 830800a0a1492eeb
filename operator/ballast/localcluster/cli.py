"""``ballast cluster build|up|down|status|nodes``: the local control plane from the shell.

Results a script wants (the kubeconfig path, node JSON, status JSON) go to
stdout; progress and errors go to stderr as structured log lines.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import orjson

from ballast.localcluster import binaries, tools
from ballast.localcluster.cluster import LocalCluster
from ballast.localcluster.errors import ClusterError
from ballast.localcluster.nodes import NodeSpec, build_node, openb_nodes, profile_nodes
from ballast.localcluster.profiles import PROFILES
from ballast.localcluster.state import ClusterStatus
from ballast.logs import kv

log = logging.getLogger(__name__)


def _name(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", default="default", help="cluster name (default: default)")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``cluster`` subcommands to ``parser``."""
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="cache folder (default: $BALLAST_CACHE or ~/.cache/ballast)",
    )
    sub = parser.add_subparsers(dest="cluster_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser(
        "build", help="build the control-plane binaries, Prometheus and KEDA (or reuse the cache)"
    )
    p.add_argument("--force", action="store_true", help="rebuild even when cached")

    p = sub.add_parser("up", help="start a local cluster (no-op when running); prints kubeconfig")
    _name(p)
    p.add_argument("--with-scheduler", action="store_true", help="also run kube-scheduler")
    p.add_argument(
        "--scheduler-config", type=Path, help="KubeSchedulerConfiguration YAML (implies scheduler)"
    )
    p.add_argument(
        "--prometheus",
        action="store_true",
        help="also run Prometheus scraping Ballast's processes, with its rules (URL in status)",
    )
    p.add_argument(
        "--keda",
        action="store_true",
        help=(
            "also run KEDA's operator and metrics API server behind the aggregation layer "
            "(needs root for a network namespace; docs/local-cluster.md)"
        ),
    )
    p.add_argument(
        "--hpa-sync-seconds",
        type=float,
        default=5.0,
        help="the HPA controller's period when the cluster starts (Kubernetes' default: 15)",
    )
    p.add_argument(
        "--dra-driver",
        action="store_true",
        help="also run the test DRA driver: ResourceSlices shaped like NVIDIA's for KWOK nodes "
        "labelled dra.ballast.dev/gpus=<n> (docs/scheduler.md)",
    )
    p.add_argument("--port", type=int, help="API server port (default: a free one)")
    p.add_argument(
        "--timeout", type=float, default=120.0, help="seconds each component may take to be ready"
    )

    p = sub.add_parser("dra-driver", help="run the test DRA driver in the foreground")
    _name(p)
    p.add_argument("--kubeconfig", type=Path, help="use this cluster instead of --name")

    p = sub.add_parser("down", help="stop a local cluster and remove its temporary data")
    _name(p)
    p.add_argument("--purge", action="store_true", help="also remove its logs and state folder")

    p = sub.add_parser("status", help="show each component and its readiness")
    _name(p)
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("nodes", help="create (or delete) fake GPU nodes managed by kwok")
    _name(p)
    p.add_argument("--kubeconfig", type=Path, help="use this cluster instead of --name")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--profile", choices=sorted(PROFILES), help="fleet profile")
    what.add_argument("--openb-csv", type=Path, help="openb node list (sn,cpu_milli,...)")
    what.add_argument("--delete", action="store_true", help="delete all fake nodes (type=kwok)")
    p.add_argument("--count", type=int, default=8, help="nodes for --profile (default 8)")
    p.add_argument("--limit", type=int, help="first N rows of --openb-csv")
    p.add_argument("--seed", type=int, default=0, help="seed for caches and telemetry")
    p.add_argument("--prefix", default="gpu", help="node name prefix for --profile")
    p.add_argument("--workers", type=int, default=16, help="parallel API requests")
    p.add_argument("--wait", type=float, default=0.0, help="seconds to wait for Ready nodes")
    p.add_argument("--dry-run", action="store_true", help="print the Node objects as JSON lines")


def _print_status(st: ClusterStatus, as_json: bool) -> None:
    if as_json:
        doc = {
            "name": st.name,
            "running": st.running,
            "server": st.server,
            "kubeconfig": str(st.kubeconfig) if st.kubeconfig else None,
            "prometheus": st.prometheus_url,
            "components": [
                {
                    "name": c.name,
                    "pid": c.pid,
                    "port": c.port,
                    "alive": c.alive,
                    "ready": c.ready,
                    "log": str(c.log),
                }
                for c in st.components
            ],
        }
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if st.kubeconfig is None:
        print(f"cluster {st.name}: not running")
        return
    print(f"cluster {st.name}: {'running' if st.running else 'DEGRADED'}  server {st.server}")
    print(f"kubeconfig: {st.kubeconfig}")
    if st.prometheus_url:
        print(f"prometheus: {st.prometheus_url}")
    print(f"{'COMPONENT':<25} {'PID':>7} {'PORT':>6}  {'ALIVE':<5}  {'READY':<5}  LOG")
    for c in st.components:
        if c.pid is None:
            print(f"{c.name:<25} {'-':>7} {'-':>6}  {'-':<5}  {'-':<5}  (not started)")
            continue
        alive, ready = ("yes" if c.alive else "NO"), ("yes" if c.ready else "NO")
        print(f"{c.name:<25} {c.pid:>7} {c.port:>6}  {alive:<5}  {ready:<5}  {c.log}")


def _specs(args: argparse.Namespace) -> list[NodeSpec]:
    if args.openb_csv:
        return openb_nodes(args.openb_csv, args.limit, args.seed)
    return profile_nodes(args.profile, args.count, args.seed, args.prefix)


def _nodes(args: argparse.Namespace, cluster: LocalCluster) -> int:
    if args.dry_run and not args.delete:
        for spec in _specs(args):
            sys.stdout.write(orjson.dumps(build_node(spec)).decode() + "\n")
        return 0
    from ballast.localcluster import kube  # the kubernetes client is slow to import

    kubeconfig = args.kubeconfig or cluster.kubeconfig
    if not kubeconfig.exists():
        raise ClusterError(f"no kubeconfig at {kubeconfig}: is the cluster up?")
    api = kube.api_client(kubeconfig, pool_size=max(args.workers, 10))
    if args.delete:
        kube.delete_nodes(api, workers=args.workers)
        return 0
    specs = _specs(args)
    kube.create_nodes(api, specs, workers=args.workers)
    if args.wait > 0 and not kube.wait_nodes_ready(api, [s.name for s in specs], args.wait):
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    """Run one ``ballast cluster`` subcommand; returns the exit status."""
    cache = args.cache_dir.expanduser() if args.cache_dir else None
    try:
        if args.cluster_command == "build":
            print(binaries.build(cache, force=args.force))
            for tool in tools.TOOLS:
                print(tools.build(tool, cache, force=args.force))
            return 0
        cluster = LocalCluster(args.name, cache, api_port=getattr(args, "port", None))
        if args.cluster_command == "up":
            cluster.ready_timeout_s = args.timeout
            cluster.hpa_sync_seconds = args.hpa_sync_seconds
            kubeconfig = cluster.up(
                with_scheduler=args.with_scheduler,
                scheduler_config=args.scheduler_config,
                with_prometheus=args.prometheus,
                with_keda=args.keda,
                with_dra_driver=args.dra_driver,
            )
            log.info("use it with", extra=kv(hint=f"export KUBECONFIG={kubeconfig}"))
            state = cluster.state
            if state and state.prometheus_url:
                log.info("prometheus", extra=kv(url=state.prometheus_url))
            print(kubeconfig)
            return 0
        if args.cluster_command == "down":
            cluster.down(purge=args.purge)
            return 0
        if args.cluster_command == "status":
            st = cluster.status()
            _print_status(st, args.json)
            return 0 if st.running else 1
        if args.cluster_command == "nodes":
            return _nodes(args, cluster)
        if args.cluster_command == "dra-driver":
            from ballast.localcluster import dradriver

            target = args.kubeconfig or os.environ.get("KUBECONFIG") or cluster.kubeconfig
            dradriver.run(str(target))
            return 0
    except (ClusterError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    raise AssertionError(f"unhandled subcommand {args.cluster_command}")
