"""Benchmark: how fast the operator turns many WorkloadClasses into PriorityClasses.

Starts (or reuses, with --kubeconfig) a local control plane, installs the
CRDs, runs the real operator process, then:

1. creates N WorkloadClasses as fast as the client can and measures the
   time until every one reports Ready for its generation;
2. changes the priority of a sample of them one at a time and measures, per
   change, the time from the API server accepting the change to the
   PriorityClass carrying the new value (seen through a watch);
3. reads the operator's resident memory.

The last line is one JSON object. Goals (not a test): all ready in under
60 s, change p99 under 2 s, RSS under 300 MB.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson

from ballast.api.v1alpha1.workloadclass import priority_value
from ballast.kube.crds import ensure_crds
from ballast.kube.raw import PRIORITY_CLASSES, TRANSPORT_ERRORS, WORKLOADCLASSES, Kube, KubeError
from ballast.localcluster.ballast_procs import BallastProcess
from ballast.localcluster.cluster import LocalCluster


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def count_ready(kube: Kube, prefix: str) -> int:
    n = 0
    for item in kube.list(WORKLOADCLASSES.path())["items"]:
        if not item["metadata"]["name"].startswith(prefix):
            continue
        gen = item["metadata"].get("generation")
        for c in (item.get("status") or {}).get("conditions") or ():
            if (
                c["type"] == "Ready"
                and c["status"] == "True"
                and c.get("observedGeneration") == gen
            ):
                n += 1
    return n


class PriorityWatch(threading.Thread):
    """Records when each PriorityClass was first seen with each value."""

    def __init__(self, kube: Kube) -> None:
        super().__init__(daemon=True)
        self.kube = kube
        self.seen: dict[tuple[str, int], float] = {}
        self.cond = threading.Condition()
        self.stop = False

    def run(self) -> None:
        rv = self.kube.list(PRIORITY_CLASSES.path())["metadata"]["resourceVersion"]
        while not self.stop:
            try:
                rv = self._follow(rv)
            except (KubeError, *TRANSPORT_ERRORS):
                if self.stop:
                    return  # the cluster is going down under us: the run is over
                time.sleep(0.5)
                rv = self.kube.list(PRIORITY_CLASSES.path())["metadata"]["resourceVersion"]

    def _follow(self, rv: str) -> str:
        for kind, obj in self.kube.watch(
            PRIORITY_CLASSES.path(), resource_version=rv, timeout_seconds=60
        ):
            if self.stop:
                break
            if kind == "ERROR":
                return str(self.kube.list(PRIORITY_CLASSES.path())["metadata"]["resourceVersion"])
            rv = obj["metadata"]["resourceVersion"]
            if kind in ("ADDED", "MODIFIED"):
                with self.cond:
                    self.seen.setdefault((obj["metadata"]["name"], obj["value"]), time.monotonic())
                    self.cond.notify_all()
        return rv

    def wait(self, name: str, value: int, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while (name, value) not in self.seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.seen[(name, value)]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--classes", type=int, default=500)
    parser.add_argument("--changes", type=int, default=50, help="priority changes to time")
    parser.add_argument(
        "--kubeconfig", type=Path, help="reuse a running cluster (it must have no operator running)"
    )
    parser.add_argument("--keep", action="store_true", help="leave the bench cluster running")
    args = parser.parse_args()

    cluster = None
    if args.kubeconfig:
        kubeconfig = args.kubeconfig
        state_dir = Path(kubeconfig).parent
    else:
        cluster = LocalCluster("bench-operator")
        kubeconfig = cluster.up()
        state_dir = cluster.layout.root
    kube = Kube.connect(str(kubeconfig), qps_pool=16)
    ensure_crds(kube)
    operator = BallastProcess("bench-operator", ["operator"], kubeconfig, state_dir)
    operator.start()
    prefix = f"bench-{int(time.time())}"
    rss_samples: list[float] = []
    try:
        names = [f"{prefix}-{i}" for i in range(args.classes)]
        tiers = ("Interactive", "Nearline", "Offline")
        started = time.monotonic()

        def create(i: int) -> None:
            kube.create(
                WORKLOADCLASSES.path(),
                {
                    "apiVersion": "ballast.dev/v1alpha1",
                    "kind": "WorkloadClass",
                    "metadata": {"name": names[i]},
                    "spec": {"tier": tiers[i % 3], "priority": i % 1000},
                },
            )

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(args.classes)))
        created_s = time.monotonic() - started
        ready = 0
        while ready < args.classes:
            time.sleep(0.5)
            ready = count_ready(kube, prefix)
            if (rss := operator.rss_mb()) is not None:
                rss_samples.append(rss)
            if time.monotonic() - started > 600:
                print(f"only {ready}/{args.classes} ready after 600 s", file=sys.stderr)
                break
        all_ready_s = time.monotonic() - started

        watch = PriorityWatch(kube)
        watch.start()
        time.sleep(1.0)
        latencies = []
        step = max(1, args.classes // max(1, args.changes))
        for i in range(0, args.classes, step)[: args.changes]:
            new_priority = 5000 + i
            t0 = time.monotonic()
            kube.patch(WORKLOADCLASSES.path(names[i]), {"spec": {"priority": new_priority}})
            seen = watch.wait(f"ballast-{names[i]}", priority_value(tiers[i % 3], new_priority), 30)
            latencies.append((seen - t0) if seen else 30.0)
        watch.stop = True
        if (rss := operator.rss_mb()) is not None:
            rss_samples.append(rss)
        result = {
            "bench": "operator_reconcile",
            "classes": args.classes,
            "create_seconds": round(created_s, 2),
            "seconds_to_all_ready": round(all_ready_s, 2),
            "ready": ready,
            "changes": len(latencies),
            "change_to_priorityclass_p50_s": round(statistics.median(latencies), 3),
            "change_to_priorityclass_p99_s": round(percentile(latencies, 99), 3),
            "operator_rss_mb": round(max(rss_samples), 1) if rss_samples else None,
            "operator_alive": operator.alive(),
        }
    finally:
        operator.stop()
        for n in names:
            kube.delete(WORKLOADCLASSES.path(n))
        kube.close()
        if cluster and not args.keep:
            cluster.down(purge=True)
    print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
