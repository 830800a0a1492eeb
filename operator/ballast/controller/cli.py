"""``ballast operator``: run the kopf operator against the current kubeconfig."""

from __future__ import annotations

import argparse
import asyncio
import os

import kopf


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``ballast operator``'s arguments."""
    parser.add_argument("--kubeconfig", help="kubeconfig path (default: $KUBECONFIG, in-cluster)")
    parser.add_argument(
        "--liveness",
        default=None,
        help="serve kopf's liveness probe here, e.g. http://0.0.0.0:8080/healthz",
    )


def run(args: argparse.Namespace) -> int:
    """Register the handlers and run until interrupted."""
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig
    import ballast.controller.handlers
    import ballast.controller.settings  # noqa: F401  (registers the startup handler)

    asyncio.run(kopf.operator(clusterwide=True, standalone=True, liveness_endpoint=args.liveness))
    return 0
