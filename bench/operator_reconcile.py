"""Benchmark: how fast the operator turns many WorkloadClasses into PriorityClasses.

Starts (or reuses, with --kubeconfig) a local control plane, installs the
CRDs, runs the real operator process, then:

1. creates N WorkloadClasses as fast as the client can and measures the
   time until every one reports Ready for its generation;
2. changes the priority of a sample of them one at a time and measures, per
   change, the time from the API server accepting the change to the
   PriorityClass carrying the new value (seen through a watch);
3. reads the operator's resident memory (peak, ``VmHWM``) and CPU seconds
   (``utime + stime``) from its own process accounting.

Baseline, interleaved change by change with step 2: the benchmark client
itself replaces a PriorityClass of its own the way the operator must for a
new value (delete, then create) and times it to the same watch, so
``change_vs_direct_p50`` is what the operator adds over the API server's
own round trips at the same moment. The machine's load average over the run
is printed and in the JSON (``load_avg``).

The last line is one JSON object. Goals (not a test): all ready in under
60 s at 500 classes, change p99 under 2 s and RSS under 500 MB at 5,000.
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
from machine import LoadSampler, cpu_seconds, report, status_mb


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
        try:
            rv = self.kube.list(PRIORITY_CLASSES.path())["metadata"]["resourceVersion"]
            while not self.stop:
                try:
                    rv = self._follow(rv)
                except (KubeError, *TRANSPORT_ERRORS):
                    if self.stop:
                        return
                    time.sleep(0.5)
                    rv = self.kube.list(PRIORITY_CLASSES.path())["metadata"]["resourceVersion"]
        except Exception:
            # Teardown closes the client and stops the API server under a blocked
            # read; whatever that raises ends the thread quietly. Earlier, it is news.
            if not self.stop:
                raise

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


def priority_class(name: str, value: int) -> dict[str, object]:
    return {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": name},
        "value": value,
        "preemptionPolicy": "PreemptLowerPriority",
    }


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
    parser.add_argument("--cluster-name", default="bench-operator")
    parser.add_argument(
        "--ready-timeout", type=float, default=600, help="seconds to wait for every class Ready"
    )
    args = parser.parse_args()
    load = LoadSampler()
    load.start()

    cluster = None
    if args.kubeconfig:
        kubeconfig = args.kubeconfig
        state_dir = Path(kubeconfig).parent
    else:
        cluster = LocalCluster(args.cluster_name)
        kubeconfig = cluster.up()
        state_dir = cluster.layout.root
    kube = Kube.connect(str(kubeconfig), qps_pool=16)
    ensure_crds(kube)
    operator = BallastProcess("bench-operator", ["operator"], kubeconfig, state_dir)
    operator.start()
    prefix = f"bench-{int(time.time())}"
    rss_samples: list[float] = []
    names: list[str] = []
    watch: PriorityWatch | None = None
    try:
        names = [f"{prefix}-{i}" for i in range(args.classes)]
        tiers = ("Interactive", "Nearline", "Offline")
        # One class first, timed on its own: the operator is up and has listed
        # everything it indexes once that class is Ready (until then kopf holds
        # every new object back, and releasing thousands at once costs it
        # time quadratic in their number).
        warm = time.monotonic()
        kube.create(
            WORKLOADCLASSES.path(),
            {
                "apiVersion": "ballast.dev/v1alpha1",
                "kind": "WorkloadClass",
                "metadata": {"name": f"warmup-{prefix}"},
                "spec": {"tier": "Offline"},
            },
        )
        while count_ready(kube, f"warmup-{prefix}") < 1 and time.monotonic() - warm < 300:
            time.sleep(0.2)
        warmup_s = time.monotonic() - warm
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
        poll = max(0.5, args.classes / 2500)  # a list of every class is not free either
        while ready < args.classes:
            time.sleep(poll)
            ready = count_ready(kube, prefix)
            if (rss := operator.rss_mb()) is not None:
                rss_samples.append(rss)
            if time.monotonic() - started > args.ready_timeout:
                print(
                    f"only {ready}/{args.classes} ready after {args.ready_timeout:g} s",
                    file=sys.stderr,
                )
                break
        all_ready_s = time.monotonic() - started

        watch = PriorityWatch(kube)
        watch.start()
        time.sleep(1.0)
        latencies = []
        direct: list[float] = []
        direct_name = f"{prefix}-direct"
        kube.create(PRIORITY_CLASSES.path(), priority_class(direct_name, 1))
        step = max(1, args.classes // max(1, args.changes))
        for k, i in enumerate(range(0, args.classes, step)[: args.changes]):
            new_priority = 5000 + i

            def through_operator() -> None:
                t0 = time.monotonic()
                kube.patch(WORKLOADCLASSES.path(names[i]), {"spec": {"priority": new_priority}})  # noqa: B023
                value = priority_value(tiers[i % 3], new_priority)  # noqa: B023
                seen = watch.wait(f"ballast-{names[i]}", value, 30)  # noqa: B023
                latencies.append((seen - t0) if seen else 30.0)

            def by_hand() -> None:
                t0 = time.monotonic()
                kube.delete(PRIORITY_CLASSES.path(direct_name))
                kube.create(PRIORITY_CLASSES.path(), priority_class(direct_name, new_priority))  # noqa: B023
                seen = watch.wait(direct_name, new_priority, 30)  # noqa: B023
                direct.append((seen - t0) if seen else 30.0)

            for side in (through_operator, by_hand) if k % 2 == 0 else (by_hand, through_operator):
                side()
        kube.delete(PRIORITY_CLASSES.path(direct_name))
        if (rss := operator.rss_mb()) is not None:
            rss_samples.append(rss)
        pid = operator.pid
        peak = status_mb(pid) if pid else None
        cpu = cpu_seconds(pid) if pid else None
        result = {
            "bench": "operator_reconcile",
            "classes": args.classes,
            "operator_start_to_first_ready_s": round(warmup_s, 2),
            "create_seconds": round(created_s, 2),
            "seconds_to_all_ready": round(all_ready_s, 2),
            "ready": ready,
            "changes": len(latencies),
            "change_to_priorityclass_p50_s": round(statistics.median(latencies), 3),
            "change_to_priorityclass_p99_s": round(percentile(latencies, 99), 3),
            "direct_replace_p50_s": round(statistics.median(direct), 3),
            "direct_replace_p99_s": round(percentile(direct, 99), 3),
            "change_vs_direct_p50": round(
                statistics.median(latencies) / max(statistics.median(direct), 1e-3), 2
            ),
            "operator_rss_mb": round(max(rss_samples), 1) if rss_samples else None,
            "operator_peak_rss_mb": round(peak, 1) if peak else None,
            "operator_cpu_seconds": round(cpu, 1) if cpu is not None else None,
            "operator_alive": operator.alive(),
        }
    finally:
        if watch is not None:
            watch.stop = True
        operator.stop()
        if args.kubeconfig or args.keep:
            for n in [*names, f"warmup-{prefix}"]:
                kube.delete(WORKLOADCLASSES.path(n))
        kube.close()
        if cluster and not args.keep:
            cluster.down(purge=True)
        if watch is not None:
            watch.join(5)
    result["load_avg"] = load.summary(stop=True)
    report(result["load_avg"])
    print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
