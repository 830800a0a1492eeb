"""``ballast image build``: the container image archive, without a Docker daemon.

Prints the archive's path on stdout (progress goes to stderr); ``make image``
runs it. Needs root, mmdebstrap and Go (crane is built from hack/crane).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ballast.image.steps import ImageError
from ballast.localcluster.errors import ClusterError


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``image`` subcommands to ``parser``."""
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="cache folder (default: $BALLAST_CACHE or ~/.cache/ballast)",
    )
    sub = parser.add_subparsers(dest="image_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser(
        "build", help="build the image archive (or reuse the cache); prints its path"
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="rebuild every layer (e.g. for Debian security updates)",
    )


def run(args: argparse.Namespace) -> int:
    """Run one ``ballast image`` subcommand; returns the exit status."""
    from ballast.image import build

    cache = args.cache_dir.expanduser() if args.cache_dir else None
    try:
        print(build.build(cache, force=args.force))
    except (ImageError, ClusterError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
