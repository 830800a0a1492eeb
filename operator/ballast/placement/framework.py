"""The plugin framework: protocols, statuses and the per-decision cycle state.

Shaped like kube-scheduler's framework, with one difference that makes a pure
Python engine fast enough: plugins work on a *batch* of node indices at once
(numpy arrays over the snapshot's columns) instead of one node per call. The
contracts are otherwise the same: a filter says which nodes cannot run the pod
and why; a score returns a raw value per node (higher is better) and only
``normalize`` maps raw values onto ``0..MAX_SCORE``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ballast.placement.objects import ClassPolicy, Pod

if TYPE_CHECKING:
    from ballast.placement.snapshot import Snapshot

MAX_SCORE = 100.0
MIN_SCORE = 0.0
NEUTRAL_SCORE = MAX_SCORE / 2

IntArray = npt.NDArray[np.int64]
Codes = npt.NDArray[np.uint8]
Scores = npt.NDArray[np.float64]


class Code(enum.Enum):
    """Outcome of a plugin for one node (kube-scheduler's status codes)."""

    SUCCESS = "Success"
    #: The node cannot run the pod now, but evicting pods could change that.
    UNSCHEDULABLE = "Unschedulable"
    #: Nothing done to the node's pods would help (labels, taints, model...).
    UNRESOLVABLE = "UnschedulableAndUnresolvable"


@dataclass(frozen=True, slots=True)
class Reason:
    """A way a filter can reject a node: short text for summaries, and whether preemption helps."""

    text: str
    resolvable: bool = False


@dataclass(frozen=True, slots=True)
class Status:
    """One plugin's verdict on one node."""

    code: Code = Code.SUCCESS
    reason: str = ""
    plugin: str = ""

    @property
    def ok(self) -> bool:
        """True when the node passed."""
        return self.code is Code.SUCCESS


@dataclass(slots=True)
class CycleState:
    """Everything computed once per decision and shared by the plugins.

    ``free`` is the per-GPU free milli-GPU matrix the plugins must use (GPUs
    the latest telemetry marks unhealthy read as fully used); ``fresh`` says
    which nodes have telemetry no older than their limit, and ``sick`` the rows
    where the latest report names an unhealthy GPU. ``telemetry`` is False when
    the profile ignores telemetry (then nothing is fresh or sick). ``scratch``
    lets a plugin hand data to a later phase (e.g. the GPU it would pick).
    """

    snapshot: Snapshot
    pod: Pod
    cls: ClassPolicy
    now: float
    seed: int
    free: npt.NDArray[np.int32]
    fresh: npt.NDArray[np.bool_]
    sick: tuple[int, ...] = ()
    telemetry: bool = True
    scratch: dict[str, Any] = field(default_factory=dict)

    @property
    def whole(self) -> int:
        """Whole GPUs requested."""
        return self.pod.gpus

    @property
    def share(self) -> int:
        """Share of one GPU requested (milli), 0 for whole-GPU and CPU-only pods."""
        return self.pod.gpu_milli


@runtime_checkable
class FilterPlugin(Protocol):
    """Decides which nodes cannot run a pod.

    A filter must be pure (no I/O, no clock, no mutation of the snapshot),
    deterministic, and must not raise for missing or odd data: a node it
    cannot judge passes, and the score plugins deal with it.
    """

    name: str
    #: Every way this filter rejects a node; code ``i`` (1-based) is ``reasons[i-1]``.
    reasons: tuple[Reason, ...]

    def filter(self, state: CycleState, nodes: IntArray) -> Codes:
        """Return one code per entry of ``nodes``: 0 = passes, ``i`` = ``reasons[i-1]``.

        ``nodes`` are snapshot row indices of live nodes that passed every
        earlier filter; the result has the same length and order.
        """
        ...


@runtime_checkable
class ScorePlugin(Protocol):
    """Ranks the nodes that passed every filter.

    ``role`` tells the engine how class policies affect the plugin:
    ``packing`` plugins are switched off for classes in spread mode and
    ``spread`` plugins for classes in packing mode; other roles always apply.
    """

    name: str
    role: str

    def score(self, state: CycleState, nodes: IntArray) -> Scores:
        """Return a raw score per entry of ``nodes``, higher meaning better.

        Must be finite for every node; missing or stale data gets a neutral
        value (and may be logged), never an exception.
        """
        ...

    def normalize(self, state: CycleState, raw: Scores) -> Scores:
        """Map raw scores of one decision onto ``[MIN_SCORE, MAX_SCORE]``, keeping the order."""
        ...


@runtime_checkable
class GPUChooser(Protocol):
    """Picks the physical GPUs on the chosen node (the Reserve step)."""

    def choose_gpus(self, state: CycleState, node: int) -> tuple[int, ...]:
        """Return the GPU indices to use on ``node``, which passed every filter.

        Whole-GPU pods get ``state.whole`` fully free GPUs, share pods one GPU
        with at least ``state.share`` free, CPU-only pods an empty tuple.
        """
        ...


def min_max(raw: Scores) -> Scores:
    """Min-max normalisation onto 0..MAX_SCORE; all-equal input maps to MAX_SCORE."""
    if raw.size == 0:
        return raw
    lo = float(raw.min())
    hi = float(raw.max())
    if hi - lo <= 1e-12:
        return np.full(raw.shape, MAX_SCORE)
    return np.clip((raw - lo) * (MAX_SCORE / (hi - lo)), MIN_SCORE, MAX_SCORE)


def clip_scale(raw: Scores, lo: float, hi: float) -> Scores:
    """Map a fixed raw range ``[lo, hi]`` onto 0..MAX_SCORE, clipping outliers."""
    span = hi - lo if hi > lo else 1.0
    return np.clip((raw - lo) * (MAX_SCORE / span), MIN_SCORE, MAX_SCORE)


def reject(reasons: tuple[Reason, ...], text: str) -> int:
    """The code for ``text`` in ``reasons`` (used by plugins to build their code arrays)."""
    for i, r in enumerate(reasons):
        if r.text == text:
            return i + 1
    raise KeyError(text)


def status_for(plugin: FilterPlugin, code: int) -> Status:
    """Turn a filter code into a :class:`Status` (for explanations and tests)."""
    if code == 0:
        return Status(plugin=plugin.name)
    reason = plugin.reasons[code - 1]
    kind = Code.UNSCHEDULABLE if reason.resolvable else Code.UNRESOLVABLE
    return Status(kind, reason.text, plugin.name)
