"""Gangs in the simulator: a stream of gang and single-pod work replayed without a cluster.

Two ways of scheduling the same stream on the same nodes, with the same engine:

- ``ballast``: a group is placed all or nothing (:func:`ballast.placement.gang.place_group`),
  so no member holds a GPU before every member has one;
- ``pod-by-pod``: every pod is placed on its own as soon as it fits (what a
  scheduler without gang support does); a group's members hold their GPUs
  from their own placement until the last member is placed and the group
  starts. Those GPU-hours are held idle by partially placed groups, and two
  partial groups waiting for each other's GPUs never start: a deadlock.

Time moves between events (arrivals, completions). Work is FIFO by arrival;
a job runs for its duration once all its pods are placed. Pure and seeded.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

from ballast.placement.engine import Engine
from ballast.placement.gang import place_group
from ballast.placement.objects import NodeInfo, Pod
from ballast.placement.snapshot import Snapshot

MODES = ("ballast", "pod-by-pod")


@dataclass(frozen=True, slots=True)
class GangJob:
    """One unit of work: ``members`` pods of ``gpus`` GPUs each (1 member: a single pod)."""

    name: str
    arrival_s: float
    members: int
    gpus: int
    duration_s: float

    @property
    def gang(self) -> bool:
        """Whether its pods must start together."""
        return self.members > 1


@dataclass(slots=True)
class GangResult:
    """What one mode produced on one stream."""

    mode: str
    groups: int = 0
    started: int = 0
    start_waits_s: list[float] = field(default_factory=list)
    idle_gpu_s_partial: float = 0.0  # GPU-seconds held by members of groups not yet started
    deadlocked: int = 0  # groups partially placed that could never start

    @property
    def idle_gpu_hours_partial(self) -> float:
        """GPU-hours held idle by partially placed groups."""
        return self.idle_gpu_s_partial / 3600.0

    def start_pct(self, q: float) -> float:
        """Percentile ``q`` (0-100) of group start waits (0 when none started)."""
        xs = sorted(self.start_waits_s)
        if not xs:
            return 0.0
        return xs[min(len(xs) - 1, round(q / 100 * (len(xs) - 1)))]


def stream(seed: int, jobs: int, *, gang_share: float = 0.4, mean_gap_s: float = 60.0,
           mean_duration_s: float = 1800.0) -> list[GangJob]:  # fmt: skip
    """A seeded stream: gangs of 2-4 workers with 4 or 8 GPUs each, singles of 1-8 GPUs."""
    rng = random.Random(seed)
    out, t = [], 0.0
    for i in range(jobs):
        t += rng.expovariate(1 / mean_gap_s)
        duration = rng.expovariate(1 / mean_duration_s) + 60.0
        if rng.random() < gang_share:
            out.append(GangJob(f"g{i}", t, rng.choice((2, 3, 4)), rng.choice((4, 8)), duration))
        else:
            out.append(GangJob(f"s{i}", t, 1, rng.choice((1, 1, 2, 4, 8)), duration))
    return out


def nodes(count: int, gpus: int = 8) -> list[NodeInfo]:
    """``count`` identical GPU nodes."""
    return [
        NodeInfo(f"n{i}", gpus, 81920, "H100", gpus * 16000, gpus * 131072) for i in range(count)
    ]


def _pods(job: GangJob) -> list[Pod]:
    return [
        Pod("sim", f"{job.name}-{k}", f"{job.name}-{k}", gpus=job.gpus, creation_time=job.arrival_s)
        for k in range(job.members)
    ]


def replay(jobs: list[GangJob], fleet: list[NodeInfo], mode: str, *,
           profile: str | None = None) -> GangResult:  # fmt: skip
    """Replay ``jobs`` on ``fleet`` in ``mode`` (see the module docstring)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    engine = Engine(profile or ("ballast" if mode == "ballast" else "kube-default"))
    snap = Snapshot()
    for n in fleet:
        snap.add_node(n)
    res = GangResult(mode, groups=sum(1 for j in jobs if j.gang))
    pending: list[GangJob] = []
    placed: dict[str, list[Pod]] = {}  # pod-by-pod: members placed so far
    since: dict[str, float] = {}  # pod-by-pod: members of unstarted groups holding GPUs
    events: list[tuple[float, int, str]] = []  # (time, order, job name) completions
    by_name = {j.name: j for j in jobs}
    arrivals = sorted(jobs, key=lambda j: j.arrival_s)
    i, now, seq = 0, 0.0, 0

    def start(job: GangJob) -> None:
        nonlocal seq
        if job.gang:
            res.started += 1
            res.start_waits_s.append(now - job.arrival_s)
        seq += 1
        heapq.heappush(events, (now + job.duration_s, seq, job.name))

    while i < len(arrivals) or events:
        t_next = min(arrivals[i].arrival_s if i < len(arrivals) else float("inf"),
                     events[0][0] if events else float("inf"))  # fmt: skip
        # Members of groups not started yet hold their GPUs, idle, until the next event.
        held = sum(by_name[uid.rsplit("-", 1)[0]].gpus for uid in since)
        res.idle_gpu_s_partial += held * (t_next - now)
        now = t_next
        while events and events[0][0] <= now:
            _, _, name = heapq.heappop(events)
            for p in _pods(by_name[name]):
                snap.forget(p.id)
        while i < len(arrivals) and arrivals[i].arrival_s <= now:
            pending.append(arrivals[i])
            i += 1
        if mode == "ballast":
            still: list[GangJob] = []
            for job in pending:
                plan = place_group(engine, snap, _pods(job), now=now)
                if not plan.complete:
                    still.append(job)
                    continue
                for m in plan.placed:
                    snap.assume(m.pod, m.node, m.gpus, start_time=now)
                start(job)
            pending = still
            continue
        # Pod by pod, one pod of each waiting job per round (the pods of jobs created
        # together reach a scheduler interleaved), until a round places nothing.
        progress = True
        while progress:
            progress = False
            for job in pending:
                done = placed.setdefault(job.name, [])
                if len(done) == job.members:
                    continue
                p = _pods(job)[len(done)]
                d = engine.decide(snap, p, now=now)
                if d.node is None:
                    continue
                snap.assume(p, d.node, d.gpus, start_time=now)
                done.append(p)
                progress = True
                if job.gang:
                    since[p.id] = now
                if len(done) == job.members:
                    for q in done:
                        since.pop(q.id, None)
                    start(job)
            for job in pending:
                if len(placed.get(job.name, ())) == job.members:
                    del placed[job.name]
            pending = [j for j in pending if j.name in placed]
    # Nothing left to arrive or finish: groups still partially placed can never start.
    res.deadlocked = sum(1 for name, pods in placed.items() if pods and by_name[name].gang)
    return res
