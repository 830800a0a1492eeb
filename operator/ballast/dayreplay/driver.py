"""Play a :class:`~ballast.dayreplay.workload.DayPlan` against a live API server and record it.

The driver creates each pod at its time, deletes serving replicas when the
trace scales them down, and (playing the node agents' part) writes the
model cache of each node after a bind. A watch on the replay's pods records
what the API server reports: the pod appearing, its ``spec.nodeName``, its
``PodScheduled`` reasons, its completion by kwok, its deletion. A deletion
the driver did not ask for is a preemption. Times are seconds since the
replay started, on this process's monotonic clock, taken when the watch
delivers the change: both schedulers are measured by the same watch.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TextIO

import orjson

from ballast.api import wellknown as wk
from ballast.dayreplay.caches import ModelCaches
from ballast.dayreplay.metrics import PREEMPTED, Timeline
from ballast.dayreplay.workload import REPLAY_LABEL, DayPlan, ReplayPod, pod_body, whole_seconds
from ballast.kube.raw import NODES, PODS, Kube, KubeError

Key = tuple[str, str]
CALL_WORKERS = 16  # API calls in flight at once (creates and deletes)


def _rv(raw: str) -> int:
    """A resourceVersion as a number (etcd's revision; 0 when it is not one)."""
    try:
        return int(raw)
    except ValueError:
        return 0


class Recorder(threading.Thread):
    """Watches the replay's pods and keeps one :class:`Timeline` per pod."""

    def __init__(
        self, kube: Kube, plan: DayPlan, shares: bool, caches: ModelCaches, t0: float
    ) -> None:
        super().__init__(daemon=True, name="replay-recorder")
        self.kube = kube
        self.plan = plan
        self.shares = shares
        self.caches = caches
        self.t0 = t0
        self.index: dict[Key, ReplayPod] = {(p.namespace, p.name): p for p in plan.pods}
        self.timelines: dict[Key, Timeline] = {}
        self.removing: set[Key] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.nodes_to_write: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.errors = 0
        self.synced = threading.Event()
        self.last_rv = 0  # the newest resourceVersion the watch delivered

    def now(self) -> float:
        """Seconds since the replay started."""
        return time.monotonic() - self.t0

    def run(self) -> None:
        """Watch until stopped, listing again when the watch expires."""
        rv = ""
        while not self.stop.is_set():
            try:
                if not rv:
                    rv = self.relist()
                    self.synced.set()
                for kind, obj in self.kube.watch(
                    "/api/v1/pods",
                    resource_version=rv,
                    timeout_seconds=60,
                    labelSelector=REPLAY_LABEL,
                ):
                    if kind == "ERROR":
                        rv = ""  # expired: start again from a fresh list
                        break
                    rv = obj.get("metadata", {}).get("resourceVersion") or rv
                    self.last_rv = _rv(rv)
                    if kind != "BOOKMARK":
                        self.handle(kind, obj)
                    if self.stop.is_set():
                        return
            except Exception:
                if self.stop.is_set():
                    return
                self.errors += 1
                time.sleep(0.5)

    def relist(self) -> str:
        """List the replay's pods and fold them in; returns the list's resourceVersion.

        At the start this is an empty list. After the watch expired (410 Gone)
        it catches up on what the lost events said: binds and completions are
        taken from the pods listed, and a pod no longer listed was deleted.
        """
        items, rv = self.kube.list_all("/api/v1/pods", labelSelector=REPLAY_LABEL)
        listed: set[Key] = set()
        for obj in items:
            meta = obj.get("metadata") or {}
            listed.add((str(meta.get("namespace")), str(meta.get("name"))))
            self.handle("MODIFIED", obj)
        with self.lock:
            gone = [k for k, tl in self.timelines.items() if tl.ended is None and k not in listed]
        for ns, name in gone:
            self.handle("DELETED", {"metadata": {"namespace": ns, "name": name}})
        return rv

    def handle(self, kind: str, obj: Mapping[str, Any]) -> None:
        """Fold one watch event into its pod's timeline."""
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        rp = self.index.get(key)
        if rp is None:
            return
        now = self.now()
        with self.lock:
            tl = self.timelines.get(key)
            if tl is None:
                milli = rp.demand_milli if self.shares or not rp.gpu_milli else 1000
                cls = self.plan.classes.get(rp.cls)
                tl = self.timelines[key] = Timeline(
                    rp.name, rp.namespace, rp.kind, rp.tier, milli, now,
                    work_milli=rp.demand_milli, models=rp.models,
                    # What the class in the API says (workload.class_body).
                    min_runtime_s=whole_seconds(cls.preemption.min_runtime_s) if cls else 0.0,
                )  # fmt: skip
            spec, status = obj.get("spec") or {}, obj.get("status") or {}
            node = spec.get("nodeName")
            if node and tl.bound is None:
                tl.bound, tl.node = now, str(node)
                if rp.models:
                    sizes = {
                        m: self.plan.models[m].bytes for m in rp.models if m in self.plan.models
                    }
                    load_s = {
                        m: self.plan.models[m].load_s for m in rp.models if m in self.plan.models
                    }
                    load = self.caches.bind(str(node), rp.models, sizes, load_s)
                    tl.cache_hit, tl.cold_start_s = load.hit, load.load_s
                    if load.changed:
                        self.nodes_to_write.put(str(node))
            for c in status.get("conditions") or ():
                if c.get("type") == "PodScheduled" and c.get("status") == "False":
                    tl.reasons.add(str(c.get("reason") or "Unschedulable"))
            if tl.ended is not None:
                return
            if status.get("phase") in ("Succeeded", "Failed"):
                tl.ended, tl.end = now, "completed"
            elif kind == "DELETED" or meta.get("deletionTimestamp"):
                tl.ended = now
                tl.end = "removed" if key in self.removing else PREEMPTED

    def snapshot(self) -> list[Timeline]:
        """A copy of every timeline so far."""
        with self.lock:
            return [
                Timeline(**{f: getattr(t, f) for f in Timeline.__dataclass_fields__})
                for t in self.timelines.values()
            ]

    def counts(self) -> dict[str, int]:
        """For the progress line."""
        with self.lock:
            tls = list(self.timelines.values())
        return {
            "created": len(tls),
            "bound": sum(t.bound is not None for t in tls),
            "pending": sum(t.bound is None and t.ended is None for t in tls),
            "preempted": sum(t.end == PREEMPTED for t in tls),
        }


def write_caches(kube: Kube, rec: Recorder) -> None:
    """Write each changed node's cache into its annotation (one thread, changes coalesced)."""
    while not rec.stop.is_set():
        try:
            first = rec.nodes_to_write.get(timeout=0.2)
        except queue.Empty:
            continue
        nodes = {first}
        while not rec.nodes_to_write.empty():
            nodes.add(rec.nodes_to_write.get())
        for node in sorted(nodes):
            with rec.lock:
                doc = orjson.dumps(rec.caches.inventory(node).as_dict()).decode()
            try:
                kube.patch(
                    NODES.path(node), {"metadata": {"annotations": {wk.ANNOTATION_CACHE: doc}}}
                )
            except KubeError:
                rec.errors += 1


@dataclass(frozen=True, slots=True)
class Outcome:
    """One replay: the timelines, how long it ran and the API calls that failed."""

    timelines: list[Timeline]
    end_s: float
    create_errors: int
    watch_errors: int
    # At the end, before the figures are cut at end_s: the replay's pods the API
    # server lists (and how many are bound), and the same counts from the recording.
    api_pods: int = 0
    api_bound: int = 0
    recorded_pods: int = 0
    recorded_bound: int = 0


def progress_printer(label: str, total_s: float, out: TextIO = sys.stdout) -> Callable[..., None]:
    """A function printing the progress line (in place on a terminal, every 10 s otherwise)."""
    tty = out.isatty()
    last = [-1e9]

    def show(t: float, counts: Mapping[str, int], final: bool = False) -> None:
        if not tty and not final and t - last[0] < 10:
            return
        last[0] = t
        done = min(1.0, t / total_s) if total_s else 1.0
        bar = "#" * int(done * 20)
        line = (
            f"   {label:<16} [{bar:<20}] {int(t) // 60}:{int(t) % 60:02d}/"
            f"{int(total_s) // 60}:{int(total_s) % 60:02d}  created {counts['created']:>5}  "
            f"bound {counts['bound']:>5}  pending {counts['pending']:>4}  "
            f"preempted {counts['preempted']:>4}"
        )
        if tty:
            out.write("\r" + line + ("\n" if final else ""))
        else:
            out.write(line + "\n")
        out.flush()

    return show


def drive(
    kube: Kube,
    plan: DayPlan,
    scheduler: str,
    priority_classes: Mapping[str, str],
    shares: bool,
    caches: ModelCaches,
    show: Callable[..., None],
) -> Outcome:
    """Run the replay for ``plan.config.replay_s`` seconds and return what was recorded."""
    total = plan.config.replay_s
    rec = Recorder(kube, plan, shares, caches, time.monotonic())
    rec.start()
    rec.synced.wait(30)
    rec.t0 = time.monotonic()
    writer = threading.Thread(target=write_caches, args=(kube, rec), daemon=True)
    writer.start()
    events: list[tuple[float, int, ReplayPod]] = [(p.at_s, 0, p) for p in plan.pods]
    events += [(p.remove_at_s, 1, p) for p in plan.pods if p.remove_at_s is not None]
    events.sort(key=lambda e: (e[0], e[1], e[2].name))
    errors = [0]

    def create(p: ReplayPod) -> None:
        body = pod_body(p, scheduler, priority_classes.get(p.cls), shares)
        try:
            kube.create(PODS.path(namespace=p.namespace), body)
        except KubeError:
            errors[0] += 1

    def remove(p: ReplayPod) -> None:
        with rec.lock:
            rec.removing.add((p.namespace, p.name))
        try:
            kube.delete(PODS.path(p.name, p.namespace), grace_seconds=0)
        except KubeError:
            errors[0] += 1

    # Calls run on workers so that a slow one never delays the next arrival.
    pool = ThreadPoolExecutor(max_workers=CALL_WORKERS)
    for at, what, p in events:
        if at >= total:
            break
        while (wait := at - rec.now()) > 0:
            show(rec.now(), rec.counts())
            time.sleep(min(wait, 0.5))
        pool.submit(remove if what else create, p)
    while rec.now() < total:
        show(rec.now(), rec.counts())
        time.sleep(min(0.5, max(0.0, total - rec.now())))
    end = total
    pool.shutdown(wait=True, cancel_futures=True)  # calls not started by the end are dropped
    show(total, rec.counts(), final=True)
    listed_doc = kube.list("/api/v1/pods", labelSelector=REPLAY_LABEL)
    listed, list_rv = listed_doc["items"], _rv(listed_doc["metadata"]["resourceVersion"])
    deadline = time.monotonic() + 5
    while rec.last_rv < list_rv and time.monotonic() < deadline:
        time.sleep(0.05)  # the watch has delivered everything the list shows
    rec.stop.set()
    timelines = rec.snapshot()
    present = [t for t in timelines if t.end not in ("removed", PREEMPTED)]
    check = {
        "api_pods": len(listed),
        "api_bound": sum(bool((p.get("spec") or {}).get("nodeName")) for p in listed),
        "recorded_pods": len(present),
        "recorded_bound": sum(t.bound is not None for t in present),
    }
    # What happened after the end does not count (nor pods a late call created then).
    timelines = [t for t in timelines if t.created <= end]
    for t in timelines:
        if t.bound is not None and t.bound > end:
            t.bound, t.node = None, None
        if t.ended is not None and t.ended > end:
            t.ended, t.end = None, ""
    return Outcome(timelines, end, errors[0], rec.errors, **check)
