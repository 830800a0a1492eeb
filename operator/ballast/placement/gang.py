"""All-or-nothing placement of a group of pods (a gang) on a snapshot; pure (no I/O, no clock).

A gang is placed by the same engine as a single pod, one member after the
other, each member's placement assumed in the snapshot before the next is
decided, so members never share a GPU that has room for one of them. The
attempt is a trial: whatever it assumed is forgotten before
:func:`place_group` returns, whether the group fits or not, so the caller's
snapshot is exactly as it was. The caller assumes the returned placements
for real (they fit, in that order, by construction) and binds them.

A group prefers one topology domain: for each key in ``topology_keys`` that
some node carries (most specific first: an NVLink domain, a rack, a zone)
the domains under that key are tried tightest first (least free GPU left
that still holds the group's demand), and the first domain that holds the
whole group wins. Only when no domain of any key holds it is the group
placed across domains.

When the group does not fit, the result says how many members did fit in the
best attempt and what the others need, at the group level:
``waiting: 3 of 4 members fit; 1 needs 8 GPUs on one node (0/6 nodes: ...)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ballast.api.wellknown import LABEL_ZONE
from ballast.placement.columns import ABSENT
from ballast.placement.engine import Decision, Engine
from ballast.placement.objects import MILLI, Pod
from ballast.placement.snapshot import Snapshot

#: NVIDIA's GPU feature discovery labels the nodes of one NVLink domain (a
#: GB200 NVL72 rack, say) with the same ``nvidia.com/gpu.clique``.
LABEL_NVLINK_DOMAIN = "nvidia.com/gpu.clique"
LABEL_RACK = "topology.kubernetes.io/rack"
#: Most specific first: a group that fits in one NVLink domain goes there.
TOPOLOGY_KEYS: tuple[str, ...] = (LABEL_NVLINK_DOMAIN, LABEL_RACK, LABEL_ZONE)
#: Domains tried per key; a group rarely has more than a few worth trying.
MAX_DOMAINS = 16

#: Why a member may not be placed although it fits (admission: quota, window); "" to admit.
Admit = Callable[[Pod], str]


@dataclass(frozen=True, slots=True)
class MemberPlacement:
    """Where one member goes: its node and GPUs."""

    pod: Pod
    node: str
    gpus: tuple[int, ...]
    decision: Decision


@dataclass(frozen=True, slots=True)
class Unplaced:
    """A member that did not fit in the attempt, and why."""

    pod: Pod
    reason: str  # the engine's summary, or the admission reason
    admitted: bool = True
    rejections: Mapping[str, int] = field(default_factory=dict)  # nodes per filter reason


@dataclass(frozen=True, slots=True)
class GroupPlan:
    """The outcome for a group: every member placed (``complete``), or why not.

    ``placed`` is empty unless the group is complete: a partial group is
    never handed out. ``fit`` counts the members that did fit in the best
    attempt; ``unplaced`` lists the others of that attempt.
    """

    placed: tuple[MemberPlacement, ...]
    total: int
    need: int
    fit: int
    unplaced: tuple[Unplaced, ...] = ()
    domain: tuple[str, str] | None = None  # (label key, value) the group was kept within
    within: str = ""  # a label key the whole group had to stay within (one domain)

    @property
    def complete(self) -> bool:
        """Whether at least ``need`` members have a place (and ``placed`` holds them)."""
        return bool(self.placed) and len(self.placed) >= self.need

    def message(self) -> str:
        """A one-line explanation at the group level."""
        if self.complete:
            where = f" in {self.domain[0]}={self.domain[1]}" if self.domain else ""
            return f"all {len(self.placed)} members of the group placed together{where}"
        head = f"waiting: {self.fit} of {self.total} members fit"
        if self.within:
            head = (f"waiting: no single {self.within} domain holds the group; "
                    f"{self.fit} of {self.total} members fit across domains")  # fmt: skip
        if self.need < self.total:
            head += f" (at least {self.need} must start together)"
        refused = [u for u in self.unplaced if not u.admitted]
        if refused:
            return f"{head}; {len(refused)} not admitted: {refused[0].reason}"
        needs: dict[str, int] = {}
        for u in self.unplaced:
            needs[need_text(u.pod)] = needs.get(need_text(u.pod), 0) + 1
        parts = [f"{n} {'needs' if n == 1 else 'need'} {text}" for text, n in needs.items()]
        detail = f" ({self.unplaced[0].reason})" if self.unplaced else ""
        return f"{head}; {', '.join(parts)}{detail}" if parts else head


def need_text(pod: Pod) -> str:
    """What one member asks of a node, in words."""
    if pod.gpus:
        return f"{pod.gpus} GPU{'s' if pod.gpus != 1 else ''} on one node"
    if pod.gpu_milli:
        return f"{pod.gpu_milli / MILLI:g} of a GPU"
    return f"{pod.cpu_milli}m cpu and {pod.memory_mib} MiB memory"


def member_order(members: Sequence[Pod]) -> list[Pod]:
    """Largest demand first (the hardest to place), then by id, so attempts are repeatable."""
    return sorted(members, key=lambda p: (-p.demand_milli, -p.cpu_milli, -p.memory_mib, p.id))


def _within(pod: Pod, key: str, value: str) -> Pod | None:
    """``pod`` kept to nodes labelled ``key=value`` (None: its own selector forbids that)."""
    have = pod.node_selector.get(key)
    if have is not None:
        return pod if have == value else None
    return dataclasses.replace(pod, node_selector={**pod.node_selector, key: value})


def _attempt(
    engine: Engine,
    snapshot: Snapshot,
    members: Sequence[Pod],
    need: int,
    now: float,
    seed: int,
    domain: tuple[str, str] | None,
    admit: Admit | None,
    stop_early: bool = True,
) -> tuple[list[MemberPlacement], list[Unplaced]]:
    """Place members one by one, assuming each; undo everything before returning."""
    placed: list[MemberPlacement] = []
    unplaced: list[Unplaced] = []
    try:
        for i, pod in enumerate(members):
            # Once too few members are left to reach ``need``, the rest cannot help.
            if stop_early and len(placed) + (len(members) - i) < need:
                unplaced.extend(
                    Unplaced(p, "not tried: the group cannot start") for p in members[i:]
                )
                break
            problem = admit(pod) if admit is not None else ""
            if problem:
                unplaced.append(Unplaced(pod, problem, admitted=False))
                continue
            asked = pod if domain is None else _within(pod, *domain)
            if asked is None:
                unplaced.append(Unplaced(pod, f"its node selector excludes {domain}"))
                continue
            d = engine.decide(snapshot, asked, now=now, seed=seed)
            if d.node is None:
                unplaced.append(Unplaced(pod, d.summary(), rejections=d.rejections))
                continue
            snapshot.assume(pod, d.node, d.gpus, start_time=now, tier=engine.class_of(pod).tier)
            placed.append(MemberPlacement(pod, d.node, d.gpus, d))
    finally:
        for m in placed:
            snapshot.forget(m.pod.id)
    return placed, unplaced


def _domains(snapshot: Snapshot, key: str, demand_milli: int) -> list[str]:
    """Values of ``key`` whose nodes have at least ``demand_milli`` free, tightest first."""
    col = snapshot.labels.column(key)
    if col is None:
        return []
    rows = snapshot.rows()
    ids = col[rows]
    free = snapshot.free_sum[rows]
    out: list[tuple[int, str]] = []
    for vid in np.unique(ids[ids != ABSENT]).tolist():
        room = int(free[ids == vid].sum())
        if room >= demand_milli:
            out.append((room, snapshot.labels.value_name(key, int(vid))))
    out.sort()
    return [name for _, name in out[:MAX_DOMAINS]]


def place_group(
    engine: Engine,
    snapshot: Snapshot,
    members: Sequence[Pod],
    *,
    now: float,
    need: int | None = None,
    seed: int = 0,
    topology_keys: Sequence[str] = TOPOLOGY_KEYS,
    admit: Admit | None = None,
    within: str = "",
) -> GroupPlan:
    """Place ``members`` all together (at least ``need`` of them; default all), or none.

    Never changes ``snapshot`` (every trial assumption is undone). The
    placements of a complete plan fit when assumed in the order given.
    ``within`` (a node label key) requires the whole group in one domain of
    that key (a PodGroup's topology constraint) instead of preferring one.
    """
    order = member_order(members)
    total = len(order)
    want = total if need is None else max(0, min(need, total))
    if total == 0 or want == 0:
        return GroupPlan((), total, want, 0)
    demand = sum(p.demand_milli for p in order[:want])
    for key in (within,) if within else topology_keys:
        for value in _domains(snapshot, key, demand):
            placed, unplaced = _attempt(engine, snapshot, order, want, now, seed, (key, value),
                                        admit)  # fmt: skip
            if len(placed) >= want:
                return GroupPlan(tuple(placed), total, want, len(placed), tuple(unplaced),
                                 (key, value))  # fmt: skip
    # Across domains, every member is tried, so the explanation counts all that fit.
    placed, unplaced = _attempt(engine, snapshot, order, want, now, seed, None, admit, False)
    if len(placed) >= want and not within:
        return GroupPlan(tuple(placed), total, want, len(placed), tuple(unplaced))
    return GroupPlan((), total, want, len(placed), tuple(unplaced), within=within)
