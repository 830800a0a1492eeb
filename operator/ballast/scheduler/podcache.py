"""The scheduler's pods: one validated record per pod, and the GPUs bound pods hold.

Every pod the informer delivers passes :func:`podspec.slim_pod` first, so a
record holds only the few fields the scheduler reads, each of a checked
type. One :class:`PodRecord` carries everything the scheduler knows about a
pod (where it is in the queue, the last condition written, its backoff), so
nothing has to be kept in step across parallel maps, and deleting a pod is
deleting one record.

Bound pods are charged to the snapshot here. The GPU indices a pod carries
(``ballast.dev/gpu-ids``) are tenant-writable, so they are checked against
the node: an index out of range, repeated, or already held by another pod
is never trusted. The pod is then charged whole free GPUs on that node,
lowest index first (or the freest GPU for a share), and the caller is told
so it can say so in an event. If the node has too little left even for
that, the pod is charged what is free: the snapshot never over-commits.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from ballast.placement.objects import MILLI, Pod, Tier
from ballast.placement.snapshot import PlacementError, Snapshot
from ballast.scheduler import mapping, podspec
from ballast.scheduler.hints import Change, Size

Stage = Literal["new", "active", "parked", "inflight", "placed", "bound", "ignored"]


@dataclass(slots=True, eq=False)
class PodRecord:
    """Everything the scheduler keeps about one pod."""

    uid: str
    obj: dict[str, Any]  # the slim, validated object (see podspec.slim_pod)
    stage: Stage = "new"
    pod: Pod | None = None  # engine view while waiting (rebuilt when policies change)
    view_generation: int = -1  # Policies.generation the engine view was built at
    reason: str = ""  # why it waits
    message: str = ""
    written: tuple[str, str] | None = None  # the condition last written
    written_at: float = -math.inf
    retry_at: float = 0.0  # not tried before this (monotonic)
    retrying: str = ""  # the reason it waited, while given another attempt
    failures: int = 0  # consecutive failed attempts (errors, failed binds)
    parks: int = 0  # consecutive attempts that found no room or no quota (backoff on wake)
    wake: Change = Change.ALL  # while parked: the changes that can help it (see hints.py)
    need: Size | None = None  # while parked for room: its request (room elsewhere cannot help)

    @property
    def namespace(self) -> str:
        """The pod's namespace."""
        return str(self.obj["metadata"]["namespace"])

    @property
    def name(self) -> str:
        """The pod's name."""
        return str(self.obj["metadata"]["name"])

    @property
    def key(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"

    @property
    def node(self) -> str:
        """``spec.nodeName`` ("" while unbound)."""
        return str(self.obj["spec"]["nodeName"])

    @property
    def labels(self) -> dict[str, str]:
        """The pod's labels."""
        labels: dict[str, str] = self.obj["metadata"]["labels"]
        return labels


@dataclass(frozen=True, slots=True)
class Charge:
    """The GPUs a bound pod is charged, and what was wrong with what it claimed."""

    gpus: tuple[int, ...]
    milli_per_gpu: int
    problems: tuple[str, ...] = ()


def choose_charge(snapshot: Snapshot, pod: Pod, node: str, recorded: mapping.Mapped) -> Charge:
    """The GPUs to charge bound ``pod`` on ``node``; pure, never raises.

    ``recorded`` is :func:`podspec.gpu_ids` of the pod: trusted only when it
    names exactly the GPUs the request needs, each on the node and free.
    """
    want = pod.gpus if pod.gpus else (1 if pod.gpu_milli else 0)
    milli = MILLI if pod.gpus else pod.gpu_milli
    if want == 0:
        return Charge((), 0)
    free = snapshot.free_gpus(node)
    problems = list(recorded.problems)
    ids = recorded.value
    if ids:
        bad = ""
        if len(ids) != want:
            bad = f"names {len(ids)} GPU(s) for a request of {want}"
        elif any(g >= len(free) for g in ids):
            bad = f"names a GPU the node does not have (it has {len(free)})"
        elif any(free[g][1] < milli for g in ids):
            bad = "names a GPU another pod already holds"
        if not bad:
            return Charge(tuple(ids), milli)
        problems.append(f"{podspec.GPU_IDS_ANNOTATION} {','.join(map(str, ids))} {bad}")
    if pod.gpus:
        chosen = tuple(g for g, f in free if f >= MILLI)[:want]
        charge = MILLI
    else:
        fits = [g for g, f in free if f >= milli]
        if fits:
            chosen, charge = (fits[0],), milli
        else:
            best = max(free, key=lambda gf: (gf[1], -gf[0]), default=(0, 0))
            chosen, charge = ((best[0],), best[1]) if best[1] > 0 else ((), 0)
    if len(chosen) < want or charge < milli:
        problems.append(
            f"node {node} has too few free GPUs for this pod's request: charged "
            f"{len(chosen)} GPU(s) at {charge} milli of {want} at {milli}"
        )
    if problems and ids is not None:
        problems.append(
            "charged GPU(s) "
            + (",".join(map(str, chosen)) or "none")
            + " instead (lowest free first)"
        )
    return Charge(chosen, charge, tuple(problems))


class PodCache:
    """Pod records by uid, and bound pods whose node the scheduler has not seen yet."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.records: dict[str, PodRecord] = {}
        self.waiting_for_node: dict[str, set[str]] = {}  # node -> uids bound there

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[PodRecord]:
        return iter(list(self.records.values()))

    def get(self, uid: str) -> PodRecord | None:
        """The record of pod ``uid``."""
        return self.records.get(uid)

    def upsert(self, obj: dict[str, Any]) -> PodRecord:
        """Store the latest slim object of a pod; returns its record."""
        uid = obj["metadata"]["uid"]
        rec = self.records.get(uid)
        if rec is None:
            rec = self.records[uid] = PodRecord(uid, obj)
        else:
            rec.obj = obj
        return rec

    def remove(self, uid: str) -> PodRecord | None:
        """Forget a pod entirely (its GPUs are released); returns the record."""
        rec = self.records.pop(uid, None)
        self.snapshot.forget(uid)
        if rec is not None and rec.node:
            waiting = self.waiting_for_node.get(rec.node)
            if waiting is not None:
                waiting.discard(uid)
                if not waiting:
                    del self.waiting_for_node[rec.node]
        return rec

    def assume(self, rec: PodRecord, pod: Pod, node: str, gpus: tuple[int, ...], *,
               start_time: float, tier: Tier, borrowed: bool) -> None:  # fmt: skip
        """Record our own decision before the bind returns (raises PlacementError)."""
        self.snapshot.assume(pod, node, gpus, start_time=start_time, tier=tier, borrowed=borrowed)
        rec.stage = "inflight"

    def forget(self, rec: PodRecord) -> str | None:
        """Undo an assumption (a bind that failed); returns the node it freed room on."""
        placed = self.snapshot.forget(rec.uid)
        return placed.node if placed is not None else None

    def charge_bound(
        self,
        rec: PodRecord,
        pod: Pod,
        tier: Tier,
        start_time: float,
        node_gpus: tuple[int, ...] | None = None,
    ) -> Charge | None:
        """Charge a bound pod's GPUs; None when its node is not known yet (charged on arrival).

        ``node_gpus`` is what the node's kubelet says the pod holds (its agent's
        record): taken over the pod's own ``ballast.dev/gpu-ids`` when it fits.
        """
        node = rec.node
        rec.stage = "bound"
        if rec.uid in self.snapshot.pods:
            return Charge(
                self.snapshot.pods[rec.uid].gpus, self.snapshot.pods[rec.uid].milli_per_gpu
            )
        if node not in self.snapshot:
            self.waiting_for_node.setdefault(node, set()).add(rec.uid)
            return None
        charge = None
        if node_gpus:
            charge = choose_charge(self.snapshot, pod, node, mapping.Mapped(node_gpus))
            if charge.problems:
                charge = None  # the node's word does not fit what is known: the pod's own
        if charge is None:
            charge = choose_charge(self.snapshot, pod, node, podspec.gpu_ids(rec.obj))
        try:
            self.snapshot.account(
                pod, node, charge.gpus, charge.milli_per_gpu, start_time=start_time, tier=tier
            )
        except PlacementError as exc:  # cannot happen for a chosen charge; never fatal
            return Charge((), 0, (*charge.problems, f"not charged: {exc}"))
        return charge

    def follow_node(
        self, rec: PodRecord, pod: Pod, gpus: tuple[int, ...]
    ) -> tuple[int, ...] | None:
        """Move a charged pod onto the GPUs its node says it holds; returns the old GPUs.

        None when nothing changed: the pod is not charged, already holds
        exactly those GPUs, or they do not fit (then its charge stays as it was).
        """
        placed = self.snapshot.pods.get(rec.uid)
        if placed is None or set(placed.gpus) == set(gpus) or len(gpus) != len(placed.gpus):
            return None
        self.snapshot.forget(rec.uid)
        try:
            self.snapshot.account(pod, placed.node, tuple(sorted(gpus)), placed.milli_per_gpu,
                                  start_time=placed.start_time, tier=placed.tier,
                                  borrowed=placed.borrowed)  # fmt: skip
        except PlacementError:
            self.snapshot.account(pod, placed.node, placed.gpus, placed.milli_per_gpu,
                                  start_time=placed.start_time, tier=placed.tier,
                                  borrowed=placed.borrowed)  # fmt: skip
            return None
        return placed.gpus

    def bound_to(self, node: str) -> list[PodRecord]:
        """Records of bound pods that wait for ``node`` to appear (and stop waiting)."""
        uids = self.waiting_for_node.pop(node, set())
        return [r for u in uids if (r := self.records.get(u)) is not None]

    def node_removed(self, node: str) -> None:
        """A node left: its pods' charges go with it, and they wait for it to return."""
        for p in self.snapshot.remove_node(node):
            if p.uid in self.records:
                self.waiting_for_node.setdefault(node, set()).add(p.uid)
