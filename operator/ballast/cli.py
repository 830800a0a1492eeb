"""One command line for every Ballast process: ``ballast <command> ...``.

Each command lives in its own module exposing ``configure(parser)`` and
``run(args) -> int``; only the module of the command being run is imported,
so ``ballast cluster status`` does not pay for kopf or matplotlib.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ballast import __version__, logs

COMMANDS: dict[str, tuple[str, str]] = {
    "operator": ("ballast.controller.cli", "run the kopf operator"),
    "scheduler": ("ballast.scheduler.cli", "run the GPU-aware scheduler (or its extender)"),
    "agent": ("ballast.agent.cli", "run the node agent: NVML telemetry, GPU health, /metrics"),
    "cluster": ("ballast.localcluster.cli", "build, start, stop and populate the local cluster"),
    "demo": ("ballast.demo", "show Ballast working on the local cluster"),
    "simulate": ("ballast.sim.cli", "replay a trace through placement policies"),
    "replay": (
        "ballast.dayreplay.cli",
        "replay a day of mixed GPU work on a local cluster: Ballast, then kube-scheduler",
    ),
    "generate": ("ballast.api.generate", "write the CRDs generated from the API models"),
    "image": ("ballast.image.cli", "build the container image archive without Docker"),
    "slo-rules": (
        "ballast.telemetry.slo_rules_cli",
        "print the burn-rate alerting rules of WorkloadClass manifests",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="ballast", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"ballast {__version__}")
    parser.add_argument("--log-level", default="INFO", help="root log level (default INFO)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in argv if a in COMMANDS), None)
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.configure(p)
            p.set_defaults(_run=module.run)
    args = parser.parse_args(argv)
    logs.setup(args.log_level)
    run = args._run
    try:
        return int(run(args))
    except KeyboardInterrupt:
        return 130
