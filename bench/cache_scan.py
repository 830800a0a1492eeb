"""Benchmark: the agent's cache scan, first (full) scan against a steady-state rescan.

Builds ``--files`` regular files in a temporary directory: half as Hugging
Face hub models (100 blobs each, every blob also linked from a snapshot),
half as plain-layout datasets (10 directories of 10 files each), with the
directories' mtimes set a minute back (out of the scanner's racy window, as
a cache at rest is). Then, ``--rounds`` times over, a fresh scanner times its
first scan and ``--rescans`` rescans with nothing changed (the page cache is
warm for both: the tree was just written). The two sides alternate round by
round, so a neighbour's load falls on both; the figures are medians.

The last line is one JSON object, with the machine's load average during
the run (``load_avg``). Goal (not a test): a steady-state rescan costs under
a tenth of the first scan.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ballast.agent.cache import CacheScanner
from ballast.agent.cache_layout import CacheRoot
from ballast.clock import SystemClock
from machine import LoadSampler, report


def build(root: Path, files: int) -> None:
    """Half the files as hub models, half as plain datasets."""
    for m in range(files // 2 // 100):
        item = root / "hub" / f"models--org--model-{m}"
        (item / "blobs").mkdir(parents=True)
        (item / "snapshots" / "rev").mkdir(parents=True)
        for b in range(100):
            (item / "blobs" / f"sha{b}").write_bytes(b"w" * 64)
            (item / "snapshots" / "rev" / f"shard-{b}").symlink_to(f"../../blobs/sha{b}")
    for d in range(files // 2 // 100):
        for part in range(10):
            directory = root / "data" / f"dataset-{d}" / f"part-{part}"
            directory.mkdir(parents=True)
            for f in range(10):
                (directory / f"{f}.parquet").write_bytes(b"d" * 64)
    old = time.time() - 60
    for dirpath, _, _ in os.walk(root):
        os.utime(dirpath, (old, old))


def main() -> None:
    """Build, scan once, rescan, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--rescans", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5, help="first scan + rescans, repeated")
    args = parser.parse_args()
    load = LoadSampler()
    load.start()
    firsts: list[float] = []
    times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build(root, args.files)
        roots = [CacheRoot("model", str(root / "hub"), "hf"),
                 CacheRoot("dataset", str(root / "data"))]  # fmt: skip
        for _ in range(args.rounds):
            scanner = CacheScanner(roots, SystemClock(), full_every=10**9)
            t = time.perf_counter()
            first = scanner.scan()
            firsts.append(time.perf_counter() - t)
            for _ in range(args.rescans):
                t = time.perf_counter()
                again = scanner.scan()
                times.append(time.perf_counter() - t)
            assert again.items == first.items
    first_s = statistics.median(firsts)
    rescan_s = statistics.median(times)
    print(f"first scan: {first.stats}, median {first_s * 1000:.1f} ms of {len(firsts)}")
    print(f"rescan:     {again.stats}, median {rescan_s * 1000:.1f} ms of {len(times)}")
    machine = load.summary(stop=True)
    report(machine, sys.stdout)
    print(json.dumps({
        "bench": "cache_scan",
        "files": args.files,
        "dirs": first.stats.dirs_listed,
        "items": len(first.items),
        "first_scan_ms": round(first_s * 1000, 1),
        "rescan_p50_ms": round(rescan_s * 1000, 1),
        "rescan_ratio": round(rescan_s / first_s, 3),
        "rounds": args.rounds,
        "load_avg": machine,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
