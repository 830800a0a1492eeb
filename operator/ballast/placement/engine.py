"""The decision: filter → score → normalise → weighted sum → pick → choose GPUs → explain.

An :class:`Engine` is built once per policy (profile) and class set and is
reused for every decision; it holds no cluster state. The same snapshot, pod,
``now`` and ``seed`` always give the same decision: ties are broken by the
profile's tie-breakers and then by a random pick seeded from ``seed`` and the
pod's uid (a stable CRC, never Python's salted ``hash``). The one exception
is a profile with ``percentage_of_nodes_to_score`` (the ``kube-*`` ones):
like kube-scheduler, the engine then remembers where the last search for
feasible nodes stopped and starts the next one there.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ballast.placement.framework import (
    CycleState,
    FilterPlugin,
    GPUChooser,
    IntArray,
    ScorePlugin,
    Scores,
)
from ballast.placement.objects import DEFAULT_CLASS, ClassPolicy, Pod
from ballast.placement.plugins.base import first_fit
from ballast.placement.profiles import FIRST_FIT, Profile, profile
from ballast.placement.registry import Registry, default_registry
from ballast.placement.snapshot import Snapshot

_TIE = 1e-9
MIN_FEASIBLE_NODES = 100  # kube-scheduler's minFeasibleNodesToFind
MIN_FEASIBLE_PERCENTAGE = 5  # and minFeasibleNodesPercentageToFind


@dataclass(frozen=True, slots=True)
class PluginScore:
    """One plugin's view of one node."""

    plugin: str
    raw: float
    normalized: float
    weight: float


@dataclass(frozen=True, slots=True)
class NodeScore:
    """A node's weighted total and the per-plugin parts."""

    node: str
    total: float
    plugins: tuple[PluginScore, ...]


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a pod goes (or why it cannot go anywhere), with the reasons.

    ``scores`` lists the chosen node first, then the runners-up by total.
    ``rejections`` counts nodes per filter reason. ``stale`` counts the
    feasible nodes whose telemetry was stale or missing (scored neutral), and
    ``chosen_stale`` says whether the chosen node was one of them.
    """

    pod: str
    node: str | None
    gpus: tuple[int, ...] = ()
    nodes_total: int = 0
    feasible: int = 0
    rejections: Mapping[str, int] = field(default_factory=dict)
    scores: tuple[NodeScore, ...] = ()
    stale: int = 0
    chosen_stale: bool = False

    @property
    def schedulable(self) -> bool:
        """True when a node was chosen."""
        return self.node is not None

    def summary(self) -> str:
        """``0/64 nodes: 40 pool mismatch, 20 insufficient GPU memory, 4 unhealthy``."""
        parts = sorted(self.rejections.items(), key=lambda kv: (-kv[1], kv[0]))
        detail = ", ".join(f"{n} {text}" for text, n in parts)
        head = f"{self.feasible}/{self.nodes_total} nodes"
        return f"{head}: {detail}" if detail else f"{head} available"

    def message(self) -> str:
        """A one-line explanation fit for a Kubernetes event."""
        if self.node is None:
            return self.summary()
        best = self.scores[0] if self.scores else None
        parts = (
            " + ".join(f"{p.plugin} {p.normalized:.1f}x{p.weight:g}" for p in best.plugins)
            if best
            else ""
        )
        text = f"assigned {self.pod} to {self.node}"
        if self.gpus:
            text += f" (GPUs {','.join(map(str, self.gpus))})"
        if best:
            text += f": score {best.total:.1f} = {parts}"
        if len(self.scores) > 1:
            text += f"; runner-up {self.scores[1].node} {self.scores[1].total:.1f}"
        if self.chosen_stale:
            text += f"; telemetry of {self.node} is stale or missing (scored neutral)"
        if self.stale and (self.stale > 1 or not self.chosen_stale):
            text += f"; {self.stale}/{self.feasible} feasible nodes have stale or missing telemetry"
        return text


@dataclass(slots=True)
class Filtered:
    """Outcome of the filter phase: feasible rows, rejection counts, preemption candidates."""

    feasible: IntArray
    rejections: dict[str, int]
    resolvable: IntArray
    total: int


class Engine:
    """A policy ready to decide: plugins built from a profile, classes by name."""

    def __init__(
        self,
        policy: Profile | str = "ballast",
        classes: Mapping[str, ClassPolicy] | None = None,
        registry: Registry | None = None,
    ) -> None:
        self.profile = profile(policy) if isinstance(policy, str) else policy
        self.classes: Mapping[str, ClassPolicy] = dict(classes or {})
        reg = registry or default_registry()
        self.filters: list[FilterPlugin] = [
            reg.filter(r.name, r.args) for r in self.profile.filters
        ]
        self.scores: list[ScorePlugin] = [reg.score(r.name, r.args) for r in self.profile.scores]
        self._weights = {r.name: r.weight for r in self.profile.scores}
        self.tie_breakers = [reg.score(r.name, r.args) for r in self.profile.tie_breakers]
        self.chooser: GPUChooser | None = None
        if self.profile.gpu_chooser != FIRST_FIT:
            found = [s for s in self.scores if s.name == self.profile.gpu_chooser]
            if not found or not isinstance(found[0], GPUChooser):
                raise ValueError(f"gpu_chooser {self.profile.gpu_chooser!r} is not a score here")
            self.chooser = found[0]
        self._class_weights: dict[int, tuple[ClassPolicy, list[tuple[ScorePlugin, float]]]] = {}
        self._next_start = 0  # kube-scheduler's nextStartNodeIndex

    def class_of(self, pod: Pod) -> ClassPolicy:
        """The pod's class policy (the default Offline class when unknown)."""
        return self.classes.get(pod.class_name, DEFAULT_CLASS)

    def weights(self, cls: ClassPolicy) -> list[tuple[ScorePlugin, float]]:
        """Score plugins with their effective weight for ``cls`` (zero weights dropped)."""
        cached = self._class_weights.get(id(cls))
        if cached is not None and cached[0] is cls:
            return cached[1]
        out: list[tuple[ScorePlugin, float]] = []
        for plugin in self.scores:
            w = cls.placement.weights.get(plugin.name, self._weights[plugin.name])
            off = "packing" if cls.placement.mode == "spread" else "spread"
            if plugin.role != off and w > 0:
                out.append((plugin, float(w)))
        self._class_weights[id(cls)] = (cls, out)
        return out

    def cycle(self, snapshot: Snapshot, pod: Pod, now: float, seed: int = 0) -> CycleState:
        """The per-decision state the plugins share."""
        on = self.profile.telemetry
        if on:
            fresh = snapshot.freshness(now, self.profile.telemetry_max_age_s)
            sick = snapshot.known_sick()
        else:
            fresh = np.zeros(snapshot.present.shape[0], dtype=bool)
            sick = ()
        free = snapshot.usable_free(sick)
        if snapshot.dra is not None:  # DRA: only the devices the pod's claims match
            free = snapshot.dra.restrict(pod, free, snapshot.row_of)
        return CycleState(snapshot, pod, self.class_of(pod), now, seed, free, fresh, sick, on)

    def filter(self, state: CycleState) -> Filtered:
        """Run every filter in order; a node is charged to the first filter that rejects it."""
        nodes = state.snapshot.rows()
        total = int(nodes.shape[0])
        rejections: dict[str, int] = {}
        resolvable: list[IntArray] = []
        for plugin in self.filters:
            if not nodes.shape[0]:
                break
            codes = plugin.filter(state, nodes)
            bad = codes != 0
            if not bad.any():
                continue
            counts = np.bincount(codes, minlength=len(plugin.reasons) + 1)
            for i, reason in enumerate(plugin.reasons, start=1):
                if counts[i]:
                    rejections[reason.text] = rejections.get(reason.text, 0) + int(counts[i])
                    if reason.resolvable:
                        resolvable.append(nodes[codes == i])
            nodes = nodes[~bad]
        res = np.sort(np.concatenate(resolvable)) if resolvable else np.zeros(0, dtype=np.int64)
        return Filtered(nodes, rejections, res, total)

    def decide(
        self,
        snapshot: Snapshot,
        pod: Pod,
        *,
        now: float,
        seed: int = 0,
        nominated: str | None = None,
    ) -> Decision:
        """Choose a node and GPUs for ``pod`` (does not change the snapshot).

        A ``nominated`` node (from a preemption plan) is taken whenever it
        passes the filters, as kube-scheduler does; scores are still computed
        for the explanation.
        """
        state = self.cycle(snapshot, pod, now, seed)
        return self.decide_in(state, nominated)

    def decide_in(self, state: CycleState, nominated: str | None = None) -> Decision:
        """:meth:`decide` for a prepared cycle state."""
        f = self.filter(state)
        nodes = f.feasible
        if self.profile.percentage_of_nodes_to_score is not None and nodes.shape[0]:
            nodes = self._sample(state, nodes)
        if not nodes.shape[0]:
            return Decision(state.pod.key, None, (), f.total, 0, f.rejections)
        stale = int(np.count_nonzero(~state.fresh[nodes])) if state.telemetry else 0
        weighted = self.weights(state.cls)
        total = np.zeros(nodes.shape[0])
        parts: list[tuple[ScorePlugin, float, Scores, Scores]] = []
        if nodes.shape[0] > 1 or self.profile.explain_top > 0:
            for plugin, w in weighted:
                raw = plugin.score(state, nodes)
                norm = plugin.normalize(state, raw)
                total += w * norm
                parts.append((plugin, w, raw, norm))
        pick = -1
        if nominated is not None and nominated in state.snapshot:
            hit = np.flatnonzero(nodes == state.snapshot.row(nominated))
            pick = int(hit[0]) if hit.shape[0] else -1
        if pick < 0:
            pick = self._pick(state, nodes, total)
        row = int(nodes[pick])
        gpus = self._choose(state, row)
        scores = self._explain(state, nodes, total, pick, parts)
        return Decision(
            state.pod.key,
            state.snapshot.names[row],
            gpus,
            f.total,
            int(nodes.shape[0]),
            f.rejections,
            scores,
            stale,
            state.telemetry and not bool(state.fresh[row]),
        )

    def _sample(self, state: CycleState, feasible: IntArray) -> IntArray:
        """The feasible nodes kube-scheduler would find before it stops searching.

        It examines nodes in order from where the last search stopped and
        stops once it has :func:`nodes_to_find` feasible ones; the next search
        starts after the last node examined.
        """
        rows = state.snapshot.rows()
        n_all = int(rows.shape[0])
        want = nodes_to_find(self.profile.percentage_of_nodes_to_score or 0, n_all)
        start = self._next_start % n_all
        if feasible.shape[0] <= want:
            return feasible  # every node examined: the start does not move
        pos = (np.searchsorted(rows, feasible) - start) % n_all
        order = np.argsort(pos, kind="stable")
        # The search goes on until a feasible node beyond ``want`` turns up
        # (not kept); every node before it was examined.
        self._next_start = (start + int(pos[order[want]])) % n_all
        return np.sort(feasible[order[:want]])

    def _pick(self, state: CycleState, nodes: IntArray, total: Scores) -> int:
        best = float(total.max())
        tied = np.flatnonzero(total >= best - _TIE)
        for breaker in self.tie_breakers:
            if tied.shape[0] == 1:
                break
            raw = breaker.score(state, nodes[tied])
            tied = tied[raw >= float(raw.max()) - _TIE]
        if tied.shape[0] == 1:
            return int(tied[0])
        rng = np.random.default_rng([state.seed, zlib.crc32(state.pod.id.encode())])
        return int(tied[int(rng.integers(tied.shape[0]))])

    def _choose(self, state: CycleState, row: int) -> tuple[int, ...]:
        if self.chooser is not None:
            return self.chooser.choose_gpus(state, row)
        return first_fit(state, row)

    def _explain(
        self,
        state: CycleState,
        nodes: IntArray,
        total: Scores,
        pick: int,
        parts: list[tuple[ScorePlugin, float, Scores, Scores]],
    ) -> tuple[NodeScore, ...]:
        k = self.profile.explain_top
        if k <= 0:
            return ()
        order = [pick]
        if nodes.shape[0] > 1 and k > 1:
            top = np.argpartition(-total, min(k, nodes.shape[0] - 1))[: k + 1]
            top = top[np.argsort(-total[top], kind="stable")]
            order += [int(i) for i in top if int(i) != pick][: k - 1]
        names = state.snapshot.names
        return tuple(
            NodeScore(
                names[int(nodes[i])],
                float(total[i]),
                tuple(PluginScore(p.name, float(r[i]), float(n[i]), w) for p, w, r, n in parts),
            )
            for i in order
        )


def nodes_to_find(percentage: int, n_all: int) -> int:
    """kube-scheduler's ``numFeasibleNodesToFind``: how many feasible nodes a search wants.

    Under 100 nodes, all; else ``percentage`` of them (0: ``50 - n/125``, at
    least 5), and never fewer than 100.
    """
    if n_all < MIN_FEASIBLE_NODES:
        return n_all
    if percentage == 0:
        percentage = max(50 - n_all // 125, MIN_FEASIBLE_PERCENTAGE)
    return max(n_all * percentage // 100, MIN_FEASIBLE_NODES)
