"""``ballast slo-rules``: the burn-rate rules of WorkloadClass manifests, without a cluster.

For GitOps repositories and Prometheus setups that load rule files: the
output is the same ``groups:`` file the operator writes into the
``ballast-slo-rules`` ConfigMap (docs/slo.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ballast.api.v1alpha1.common import format_validation_error
from ballast.api.v1alpha1.workloadclass import WorkloadClassSpec
from ballast.telemetry.slo_rules import dump, rules_file


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``ballast slo-rules``' arguments."""
    parser.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="YAML files with WorkloadClass documents ('-': standard input); others are skipped",
    )
    parser.add_argument("-o", "--output", help="write here instead of standard output")


def _documents(name: str) -> list[Any]:
    text = sys.stdin.read() if name == "-" else Path(name).read_text()
    return [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]


def run(args: argparse.Namespace) -> int:
    """Print (or write) the rules; exit 2 naming the class when a spec is invalid."""
    classes = []
    for name in args.files:
        try:
            docs = _documents(name)
        except (OSError, yaml.YAMLError) as exc:
            print(f"error: {name}: {exc}", file=sys.stderr)
            return 2
        for doc in docs:
            if doc.get("kind") != "WorkloadClass":
                continue
            cls = str((doc.get("metadata") or {}).get("name") or "")
            try:
                spec = WorkloadClassSpec.model_validate(doc.get("spec") or {})
            except ValidationError as exc:
                print(f"error: {name}: WorkloadClass {cls}: {format_validation_error(exc)}",
                      file=sys.stderr)  # fmt: skip
                return 2
            if spec.slo is not None and cls:
                classes.append((cls, spec.slo))
    text = dump(rules_file(classes))
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0
