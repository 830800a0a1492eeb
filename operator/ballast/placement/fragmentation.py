"""GPU fragmentation as in FGD (Weng et al., USENIX ATC '23), vectorised over nodes.

A *task type* is (GPUs per task ``k``, milli-GPUs per GPU ``d``, allowed GPU
products). The fragmentation of a node measured by a task type is the free
GPU capacity that type cannot use there:

- if the node cannot host the type at all (wrong GPU product, too little CPU
  or memory left, or fewer than ``k`` GPUs with ``d`` free), all of its free
  GPU capacity counts;
- otherwise each GPU whose free capacity is below ``d`` counts with what it
  has free (for whole-GPU types, ``d`` = 1000: every partly used GPU).

A node's *expected* fragmentation weighs the types by their popularity in the
workload mix. FGD places a pod where the expected fragmentation grows least;
for a share pod it also picks the GPU that way. CPU-only types are left out
of Ballast's mix: every free GPU is a fragment for them on every node, so they
shift all nodes equally and never change a choice. :class:`TypicalPods` is the
FGD authors' mix (docs/simulator.md): CPU-only types are in it (their share is
``MixArrays.cpu_only``), because the authors' integer score of the gradient
depends on the shift.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ballast.placement.objects import MILLI, Pod

TaskKey = tuple[int, int, tuple[str, ...]]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]


def task_key(pod: Pod) -> TaskKey | None:
    """The task type of ``pod``; None for CPU-only pods."""
    if pod.gpus:
        return (pod.gpus, MILLI, tuple(sorted(pod.gpu_products)))
    if pod.gpu_milli:
        return (1, pod.gpu_milli, tuple(sorted(pod.gpu_products)))
    return None


@dataclass(frozen=True, slots=True)
class MixArrays:
    """The workload mix as arrays: one entry per task type (``compat`` has one extra column)."""

    k: I32
    d: I32
    cpu: I64
    mem: I64
    pop: F64
    #: compat[t, p]: type t may run on product id p; the last column (id -1) is all False.
    compat: B
    #: Popularity of CPU-only types: all free GPU capacity is a fragment for them.
    cpu_only: float = 0.0


class WorkloadMix:
    """Popularity of task types: static prior counts plus a sliding window of arrivals.

    ``window`` recent GPU pods are kept (0: prior only). At most ``max_types``
    of the most popular types are used, which bounds the cost of a decision.
    The CPU and memory of a type are the mean over the pods counted for it.
    """

    def __init__(self, window: int = 1000, max_types: int = 32) -> None:
        if window < 0 or max_types < 1:
            raise ValueError("window must be >= 0 and max_types >= 1")
        self.window = window
        self.max_types = max_types
        self._recent: deque[tuple[TaskKey, int, int]] = deque()
        self._count: Counter[TaskKey] = Counter()
        self._cpu: Counter[TaskKey] = Counter()
        self._mem: Counter[TaskKey] = Counter()
        self._version = 0
        self._cache: tuple[int, int, MixArrays | None] = (-1, -1, None)

    def copy(self) -> WorkloadMix:
        """An independent copy (for what-if snapshots)."""
        out = WorkloadMix(self.window, self.max_types)
        out._recent = deque(self._recent)
        out._count = Counter(self._count)
        out._cpu = Counter(self._cpu)
        out._mem = Counter(self._mem)
        return out

    def _add(self, key: TaskKey, cpu: int, mem: int, sign: int) -> None:
        self._count[key] += sign
        self._cpu[key] += sign * cpu
        self._mem[key] += sign * mem
        if self._count[key] <= 0:
            del self._count[key], self._cpu[key], self._mem[key]
        self._version += 1

    def add_prior(self, pods: Iterable[Pod]) -> None:
        """Count ``pods`` permanently (the trace-wide distribution the FGD paper assumes)."""
        for pod in pods:
            key = task_key(pod)
            if key is not None:
                self._add(key, pod.cpu_milli, pod.memory_mib, 1)

    def observe(self, pod: Pod) -> None:
        """Record an arrival; the oldest arrival leaves once the window is full."""
        key = task_key(pod)
        if key is None or self.window == 0:
            return
        self._recent.append((key, pod.cpu_milli, pod.memory_mib))
        self._add(key, pod.cpu_milli, pod.memory_mib, 1)
        if len(self._recent) > self.window:
            old = self._recent.popleft()
            self._add(old[0], old[1], old[2], -1)

    def popularity(self) -> dict[TaskKey, float]:
        """The types used for decisions and their normalised popularity."""
        top = sorted(self._count.items(), key=lambda kv: (-kv[1], kv[0]))[: self.max_types]
        total = sum(c for _, c in top)
        return {key: c / total for key, c in top} if total else {}

    def arrays(self, products: Sequence[str]) -> MixArrays | None:
        """The mix as arrays against the snapshot's product table; None when empty."""
        version, nprod, cached = self._cache
        if version == self._version and nprod == len(products):
            return cached
        pop = self.popularity()
        result: MixArrays | None = None
        if pop:
            keys = list(pop)
            compat = np.zeros((len(keys), len(products) + 1), dtype=bool)
            for t, key in enumerate(keys):
                allowed = key[2]
                for p, name in enumerate(products):
                    compat[t, p] = not allowed or name in allowed
            n = np.array([self._count[k] for k in keys], dtype=np.float64)
            result = MixArrays(
                k=np.array([k[0] for k in keys], dtype=np.int32),
                d=np.array([k[1] for k in keys], dtype=np.int32),
                cpu=(np.array([self._cpu[k] for k in keys], dtype=np.float64) / n).astype(np.int64),
                mem=(np.array([self._mem[k] for k in keys], dtype=np.float64) / n).astype(np.int64),
                pop=np.array([pop[k] for k in keys], dtype=np.float64),
                compat=compat,
            )
        self._cache = (self._version, len(products), result)
        return result


#: A typical pod of the FGD authors: (GPUs, milli per GPU, products, CPU milli); (0, 0, (), c) is CPU-only.
TypicalKey = tuple[int, int, tuple[str, ...], int]


def typical_key(pod: Pod) -> TypicalKey:
    """The authors' type of ``pod``: exact CPU in the key, memory ignored."""
    key = task_key(pod)
    if key is None:
        return (0, 0, (), pod.cpu_milli)
    return (key[0], key[1], key[2], pod.cpu_milli)


class TypicalPods(WorkloadMix):
    """The FGD authors' workload mix ("typical pods"), fixed from a whole trace.

    Pods are counted by :func:`typical_key` (CPU-only pods too); the most
    popular types are kept, in decreasing count, until they cover
    ``coverage`` of the pods (the authors' experiments: 95%, one type at a
    time; equal counts: larger CPU, then larger milli per GPU, more GPUs,
    then the product list first), and their shares are renormalised over
    what was kept. Memory plays no part. Arrivals do not change it.
    """

    def __init__(self, pods: Iterable[Pod], coverage: float = 0.95) -> None:
        super().__init__(window=0, max_types=1)
        if not 0 < coverage <= 1:
            raise ValueError("coverage must be in (0, 1]")
        counts = Counter(typical_key(p) for p in pods)
        ranked = sorted(
            counts.items(),
            key=lambda kv: (kv[1], kv[0][3], kv[0][1], kv[0][0], "|".join(kv[0][2])),
            reverse=True,
        )
        want = coverage * sum(counts.values())
        kept: list[tuple[TypicalKey, int]] = []
        covered = 0
        for key, n in ranked:
            if covered >= want:
                break
            kept.append((key, n))
            covered += n
        self.types: dict[TypicalKey, float] = {k: n / covered for k, n in kept}

    def copy(self) -> TypicalPods:
        """The same object: it never changes."""
        return self

    def add_prior(self, pods: Iterable[Pod]) -> None:
        """Refused: the typical pods are fixed when built."""
        raise TypeError("TypicalPods is fixed; build a new one")

    def observe(self, pod: Pod) -> None:
        """Arrivals do not change the typical pods."""

    def popularity(self) -> dict[TaskKey, float]:
        """The GPU types and their share (CPU-only types left out; see ``cpu_only``)."""
        out: dict[TaskKey, float] = {}
        for (k, d, prods, _), share in self.types.items():
            if k:
                out[(k, d, prods)] = out.get((k, d, prods), 0.0) + share
        return out

    def arrays(self, products: Sequence[str]) -> MixArrays | None:
        """The typical pods as arrays; None when none needs a GPU."""
        version, nprod, cached = self._cache
        if nprod == len(products) and version == 0:
            return cached
        gpu = [(key, share) for key, share in self.types.items() if key[0]]
        result: MixArrays | None = None
        if gpu:
            compat = np.zeros((len(gpu), len(products) + 1), dtype=bool)
            for t, ((_, _, allowed, _), _) in enumerate(gpu):
                for p, name in enumerate(products):
                    compat[t, p] = not allowed or name in allowed
            result = MixArrays(
                k=np.array([key[0] for key, _ in gpu], dtype=np.int32),
                d=np.array([key[1] for key, _ in gpu], dtype=np.int32),
                cpu=np.array([key[3] for key, _ in gpu], dtype=np.int64),
                mem=np.zeros(len(gpu), dtype=np.int64),
                pop=np.array([share for _, share in gpu], dtype=np.float64),
                compat=compat,
                cpu_only=sum(share for key, share in self.types.items() if not key[0]),
            )
        self._cache = (0, len(products), result)
        return result


def _per_type(free: I32, mix: MixArrays) -> tuple[I64, I64]:
    """``cnt[c,t]`` (GPUs that can take one task of t) and ``small[c,t]`` (free below ``d_t``).

    Computed from a per-node histogram of free values over the sorted task
    sizes, so the cost is O(nodes x (GPUs + types)), not their product.
    """
    c, g = free.shape
    t = mix.d.shape[0]
    order = np.argsort(mix.d, kind="stable")
    bucket = np.searchsorted(mix.d[order], free, side="right")  # how many d_t <= free
    flat = (np.arange(c, dtype=np.int64)[:, None] * (t + 1) + bucket).ravel()
    hist = np.bincount(flat, minlength=c * (t + 1)).reshape(c, t + 1)
    weight = np.bincount(flat, weights=free.ravel(), minlength=c * (t + 1)).reshape(c, t + 1)
    cnt_sorted = g - np.cumsum(hist, axis=1)[:, :t]
    small_sorted = np.cumsum(weight, axis=1)[:, :t]
    back = np.empty_like(order)
    back[order] = np.arange(t)
    return cnt_sorted[:, back], small_sorted[:, back].astype(np.int64)


class PerTypeCache:
    """:func:`_per_type` by node row, recomputed only for rows whose free GPUs changed.

    ``cnt``/``small`` depend only on a row's free milli per GPU and the mix's
    task sizes, so a decision after one placement recomputes one row. Rows
    are compared by content: any free matrix of the same shape may be given.
    """

    def __init__(self) -> None:
        self._key: tuple[object, ...] = ()
        self._free = np.zeros((0, 0), dtype=np.int32)
        self._ok = np.zeros(0, dtype=bool)
        self._cnt = np.zeros((0, 0), dtype=np.int64)
        self._small = np.zeros((0, 0), dtype=np.int64)

    def get(self, free_all: I32, rows: I64, mix: MixArrays) -> tuple[I64, I64]:
        """``_per_type(free_all[rows], mix)``."""
        key = (free_all.shape, mix.d.tobytes())
        if key != self._key:
            n, t = free_all.shape[0], mix.d.shape[0]
            self._key = key
            self._free = np.zeros_like(free_all)
            self._ok = np.zeros(n, dtype=bool)
            self._cnt = np.zeros((n, t), dtype=np.int64)
            self._small = np.zeros((n, t), dtype=np.int64)
        f = free_all[rows]
        stale = ~self._ok[rows] | (self._free[rows] != f).any(axis=1)
        if stale.any():
            s = rows[stale]
            cnt, small = _per_type(f[stale], mix)
            self._cnt[s], self._small[s], self._free[s], self._ok[s] = cnt, small, f[stale], True
        return self._cnt[rows], self._small[rows]


def _hostable_cpu(cpu: I64, mem: I64, mix: MixArrays) -> B:
    return (cpu[:, None] >= mix.cpu) & (mem[:, None] >= mix.mem)


def expected_frag(free: I32, cpu: I64, mem: I64, product: I32, mix: MixArrays) -> F64:
    """Expected fragmentation (milli-GPUs) of each node row given."""
    cnt, small = _per_type(free, mix)
    host = mix.compat[:, product].T & (cnt >= mix.k) & _hostable_cpu(cpu, mem, mix)
    total = free.sum(axis=1, dtype=np.int64)
    frag = np.where(host, small, total[:, None])
    out: F64 = frag @ mix.pop + mix.cpu_only * total
    return out


def delta_node(
    free: I32,
    cpu: I64,
    mem: I64,
    product: I32,
    mix: MixArrays,
    k: int,
    pcpu: int,
    pmem: int,
    per_type: tuple[I64, I64] | None = None,
) -> F64:
    """Growth of expected fragmentation when a pod takes ``k`` whole GPUs (or none) per node.

    Taking fully free GPUs leaves every partly used GPU as it was, so only the
    count of usable GPUs, the total free and the CPU/memory change.
    ``per_type`` is ``_per_type(free, mix)`` when the caller has it.
    """
    cnt, small = per_type if per_type is not None else _per_type(free, mix)
    compat = mix.compat[:, product].T
    total = free.sum(axis=1, dtype=np.int64)
    before = np.where(compat & (cnt >= mix.k) & _hostable_cpu(cpu, mem, mix), small, total[:, None])
    host_after = compat & (cnt - k >= mix.k) & _hostable_cpu(cpu - pcpu, mem - pmem, mix)
    after = np.where(host_after, small, (total - k * MILLI)[:, None])
    return (after - before) @ mix.pop - mix.cpu_only * k * MILLI


def delta_share(
    free: I32,
    cpu: I64,
    mem: I64,
    product: I32,
    mix: MixArrays,
    m: int,
    pcpu: int,
    pmem: int,
    per_type: tuple[I64, I64] | None = None,
) -> F64:
    """Growth of expected fragmentation for a share pod of ``m`` milli on each (node, GPU).

    Returns a ``(nodes, gpus)`` matrix with ``inf`` where the GPU has less
    than ``m`` free. GPUs of one node with the same free amount are alike, so
    each distinct (node, free) pair is evaluated once.
    """
    cnt, small = per_type if per_type is not None else _per_type(free, mix)
    compat = mix.compat[:, product].T
    total = free.sum(axis=1, dtype=np.int64)
    before_host = compat & (cnt >= mix.k) & _hostable_cpu(cpu, mem, mix)
    before = np.where(before_host, small, total[:, None])
    out = np.full(free.shape, np.inf)
    node, gpu = np.nonzero(free >= m)
    if not node.shape[0]:
        return out
    f = free[node, gpu].astype(np.int64)
    key = node.astype(np.int64) * 4096 + f
    uniq, inverse = np.unique(key, return_inverse=True)
    un = uniq // 4096
    uf = uniq % 4096
    ge0 = uf[:, None] >= mix.d
    ge1 = (uf - m)[:, None] >= mix.d
    cnt1 = cnt[un] - ge0 + ge1
    small1 = small[un] - np.where(ge0, 0, uf[:, None]) + np.where(ge1, 0, (uf - m)[:, None])
    ok = compat[un] & _hostable_cpu(cpu[un] - pcpu, mem[un] - pmem, mix)
    after = np.where(ok & (cnt1 >= mix.k), small1, (total[un] - m)[:, None])
    # The difference per type first: a node whose fragmentation does not change
    # gets exactly 0 (the authors' integer score tells 0 from -1e-13).
    grow = (after - before[un]) @ mix.pop - mix.cpu_only * m
    out[node, gpu] = grow[inverse.ravel()]
    return out
