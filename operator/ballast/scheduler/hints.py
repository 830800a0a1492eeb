"""Queueing hints: which parked pods a cluster change can help; pure (no I/O, no clock).

Like kube-scheduler's queueing hints, a pod parked because it cannot be
placed remembers *why* (its reason and, for ``Unschedulable``, the filter
reasons that rejected the nodes), turned into the set of :class:`Change`
kinds that could make it placeable. A change re-activates only the parked
pods that wait for its kind; a pod waiting for room is re-activated by room
freed on a node only when its request fits what that node now has free.

What wakes what:

======================================  ==========================================
parked for                              re-activated by
======================================  ==========================================
insufficient GPUs / share / cpu /       ``ROOM``: a pod left a node, an assumption
memory                                  was undone, a node grew (only pods whose
                                        request fits the node's free room)
pool, model, affinity, taint,           ``NODE``: a node was added, or its labels,
residency, cordon, GPU memory, no GPUs  taints, cordon or capacity changed
unhealthy                               ``HEALTH``: a node's unhealthy GPUs changed
stale telemetry                         ``TELEMETRY``: a node reported
``QuotaExceeded``                       ``ROOM`` (any node: usage fell)
``WindowClosed`` / ``InvalidSchedule``  ``WINDOW``: an edge passed, a window changed
unschedulable, and its class preempts   also ``VICTIMS``: a PDB changed, a plan
                                        ended, a pod was bound (a new victim), a
                                        victim's minimum runtime passed (a timer)
``Preempting``                          ``ROOM`` or ``NODE`` (room elsewhere)
``BindRefused``, unknown reasons        every change
any                                     ``POLICY``: a class, quota or namespace
                                        changed (every view is rebuilt)
======================================  ==========================================

Anything a hint misses is still caught by the periodic flush
(``Config.flush_s``), which re-activates every parked pod.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ballast.placement.snapshot import Snapshot

# Room freed on more nodes than this in one step is checked against their
# combined maximum (a superset of the pods that fit on one of them).
ROOMS_EXACT = 16


class Change(enum.IntFlag):
    """Kinds of cluster change a parked pod may wait for."""

    NONE = 0
    ROOM = enum.auto()  # room freed on a node (a pod left, an assumption undone, a node grew)
    NODE = enum.auto()  # a node added, or its labels, taints, cordon, capacity changed
    HEALTH = enum.auto()  # a node's set of unhealthy GPUs changed
    TELEMETRY = enum.auto()  # a node reported (its telemetry is fresh again)
    WINDOW = enum.auto()  # a batch window opened or closed, or changed
    VICTIMS = enum.auto()  # what preemption may take changed (PDB, plan, bind, min runtime)
    POLICY = enum.auto()  # a class, quota or namespace changed
    ALL = ROOM | NODE | HEALTH | TELEMETRY | WINDOW | VICTIMS | POLICY


# The engine's filter reasons (``Reason.text`` of each filter plugin) and the
# changes that can lift them. A node being added lifts any of them (it comes
# with NODE | ROOM | HEALTH | TELEMETRY).
REJECTION_WAKES: Mapping[str, Change] = {
    "insufficient GPUs": Change.ROOM,
    "insufficient GPU share": Change.ROOM,
    "insufficient cpu": Change.ROOM,
    "insufficient memory": Change.ROOM,
    "no GPUs": Change.NODE,
    "pool mismatch": Change.NODE,
    "GPU model mismatch": Change.NODE,
    "insufficient GPU memory": Change.NODE,
    "node affinity mismatch": Change.NODE,
    "untolerated taint": Change.NODE,
    "unschedulable": Change.NODE,
    "outside residency regions": Change.NODE,
    "outside residency zones": Change.NODE,
    "unhealthy": Change.HEALTH | Change.NODE,
    "stale telemetry": Change.TELEMETRY | Change.NODE,
}
_CAPACITY = frozenset(k for k, v in REJECTION_WAKES.items() if v & Change.ROOM)

REASON_WAKES: Mapping[str, Change] = {
    "QuotaExceeded": Change.ROOM,
    "WindowClosed": Change.WINDOW,
    "InvalidSchedule": Change.WINDOW,
    "UnknownClass": Change.NONE,
    "InvalidClass": Change.NONE,
    "ClassNotAllowed": Change.NONE,
    "InvalidRequest": Change.NONE,  # the pod itself must change (its own event requeues it)
    "Preempting": Change.ROOM | Change.NODE,
}


@dataclass(frozen=True, slots=True)
class Size:
    """A request, or what one node has free: whole GPUs, the largest share, cpu, memory."""

    gpus: int = 0
    milli: int = 0
    cpu_milli: int = 0
    memory_mib: int = 0

    def fits(self, room: Size) -> bool:
        """Whether this request fits in ``room`` (one node's free resources)."""
        return (
            self.gpus <= room.gpus
            and self.milli <= room.milli
            and self.cpu_milli <= room.cpu_milli
            and self.memory_mib <= room.memory_mib
        )


def wakes_for(reason: str, rejections: Mapping[str, int] = {}, preempts: bool = False) -> Change:
    """The changes that can help a pod parked with ``reason`` (and filter ``rejections``)."""
    if reason == "Unschedulable":
        wake = Change.POLICY
        if not rejections:
            wake |= Change.NODE  # no nodes at all: one being added helps
        for text in rejections:
            wake |= REJECTION_WAKES.get(text, Change.ALL)
        if preempts:
            wake |= Change.VICTIMS
        return wake
    return REASON_WAKES.get(reason, Change.ALL) | Change.POLICY


def sized(wake: Change, reason: str, rejections: Iterable[str]) -> bool:
    """Whether ROOM wakes the pod only where its request fits (it waits for room on a node)."""
    if not wake & Change.ROOM or reason not in ("Unschedulable", "Preempting"):
        return False
    return reason == "Preempting" or bool(_CAPACITY.intersection(rejections))


@dataclass
class Changes:
    """Changes seen since the parked pods were last woken; ``rooms``: nodes that freed room."""

    kinds: Change = Change.NONE
    rooms: set[str] = field(default_factory=set)
    anywhere: bool = False  # room freed without a known node: every size may fit

    def add(self, kind: Change, node: str | None = None) -> None:
        """Note a change (``node``: where room was freed, for ``ROOM``)."""
        self.kinds |= kind
        if kind & Change.ROOM:
            if node is None:
                self.anywhere = True
            else:
                self.rooms.add(node)

    def freed(self, node: str | None) -> None:
        """Room was freed on ``node`` (None: nothing was held, nothing to note)."""
        if node:
            self.add(Change.ROOM, node)

    def __bool__(self) -> bool:
        return bool(self.kinds)


def free_rooms(snap: Snapshot, nodes: Iterable[str]) -> list[Size]:
    """What each of ``nodes`` has free now (merged into one bound when there are many)."""
    rows = [snap.row(n) for n in nodes if n in snap]
    if len(rows) > ROOMS_EXACT:
        return [Size(int(snap.whole_free[rows].max()), int(snap.max_free[rows].max()),
                     int(snap.cpu_free[rows].max()), int(snap.mem_free[rows].max()))]  # fmt: skip
    return [Size(int(snap.whole_free[r]), int(snap.max_free[r]), int(snap.cpu_free[r]),
                 int(snap.mem_free[r])) for r in rows]  # fmt: skip


def helps(wake: Change, need: Size | None, changes: Changes, rooms: list[Size] | None) -> bool:
    """Whether ``changes`` can help a pod waiting for ``wake`` (with request ``need``).

    ``rooms`` is what each node in ``changes.rooms`` has free now (None: room
    anywhere). A pod with a ``need`` that waits only for room is helped only
    where its request fits.
    """
    hit = wake & changes.kinds
    if not hit:
        return False
    if hit != Change.ROOM or need is None or rooms is None:
        return True
    return any(need.fits(r) for r in rooms)
