"""The cluster snapshot the plugins read: columnar node state, kept current incrementally.

A live scheduler keeps one snapshot for its whole life and mutates it: it
adds, updates and removes nodes as watch events arrive, records telemetry and
cache inventories, and calls :meth:`Snapshot.assume` when it binds a pod and
:meth:`Snapshot.forget` when a pod ends. Nothing is rebuilt per decision:
per-node aggregates (free whole GPUs, largest free share, CPU and memory
left) are updated for the one row that changed.

Node rows are stable indices into numpy columns; a removed node's row is
reused by the next added node. GPU amounts are milli-GPUs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ballast.api.wellknown import CacheInventory, CacheItem, NodeTelemetry
from ballast.placement.columns import LabelColumns, TaintSets, grow
from ballast.placement.fragmentation import WorkloadMix
from ballast.placement.objects import MILLI, NodeInfo, Pod, Tier
from ballast.placement.state import NodeCaches, Placement, Usage, UsageBook

if TYPE_CHECKING:
    from ballast.placement.dra import DeviceTable

__all__ = ["Placement", "PlacementError", "Snapshot"]

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]


class PlacementError(ValueError):
    """An update the snapshot refuses because it would leave an impossible state."""


# Per-node columns and what a new row starts as.
_COLUMNS: tuple[tuple[str, object], ...] = tuple(
    [(a, 0) for a in ("gpu_count", "gpu_memory", "cpu_cap", "cpu_free", "mem_cap", "mem_free")]
    + [(a, 0) for a in ("free", "whole_free", "max_free", "free_sum", "taint_id")]
    + [("product", -1), ("tele_at", math.nan), ("tele_max_age", math.nan), ("gpu_sick", False)]
    + [(a, 0.0) for a in ("tele_mem_free", "tele_util", "tele_throttled")]
    + [("tele_free_sum", -1)]
)


class Snapshot:
    """Nodes, their free resources, telemetry and caches, and the pods placed on them."""

    def __init__(self, gpus_per_node: int = 8, mix: WorkloadMix | None = None) -> None:
        cap = 16
        self.mix = mix if mix is not None else WorkloadMix()
        self.names: list[str] = []
        self._index: dict[str, int] = {}
        self._spare: list[int] = []
        self.present = np.zeros(cap, dtype=bool)
        self.unschedulable = np.zeros(cap, dtype=bool)
        self.gpu_count = np.zeros(cap, dtype=np.int32)
        self.gpu_memory = np.zeros(cap, dtype=np.int32)
        self.product = np.full(cap, -1, dtype=np.int32)
        self.cpu_cap = np.zeros(cap, dtype=np.int64)
        self.cpu_free = np.zeros(cap, dtype=np.int64)
        self.mem_cap = np.zeros(cap, dtype=np.int64)
        self.mem_free = np.zeros(cap, dtype=np.int64)
        self.free = np.zeros((cap, gpus_per_node), dtype=np.int32)
        self.whole_free = np.zeros(cap, dtype=np.int32)
        self.max_free = np.zeros(cap, dtype=np.int32)
        self.free_sum = np.zeros(cap, dtype=np.int64)
        self.taint_id = np.zeros(cap, dtype=np.int32)
        self.tele_at = np.full(cap, np.nan)
        self.tele_max_age = np.full(cap, np.nan)  # per node; NaN: the caller's max age
        self.tele_mem_free = np.zeros(cap)
        self.tele_util = np.zeros(cap)
        self.tele_throttled = np.zeros(cap)
        # free_sum when the telemetry was taken in: GPUs allocated since then are
        # load the report cannot show yet (-1: no report).
        self.tele_free_sum = np.full(cap, -1, dtype=np.int64)
        self.gpu_sick = np.zeros((cap, gpus_per_node), dtype=bool)
        self.sick_rows: set[int] = set()
        self.labels = LabelColumns(cap)
        self.taints = TaintSets()
        self.products: list[str] = []
        self._product_ids: dict[str, int] = {}
        self.caches = NodeCaches()
        self.pods: dict[str, Placement] = {}
        self.row_pods: list[dict[str, Placement]] = []
        self.spread: dict[str, dict[int, int]] = {}
        self.usage = UsageBook()
        self.version = 0
        self._rows_cache: tuple[int, I64] = (-1, np.zeros(0, dtype=np.int64))
        self._topology = 0
        self._negative: set[int] = set()
        self._usable: tuple[int, tuple[int, ...], I32 | None] = (-1, (), None)
        # DRA devices mapped onto the GPU columns (placement/dra.py); None: no DRA.
        self.dra: DeviceTable | None = None

    # ----------------------------------------------------------------- nodes
    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def row(self, name: str) -> int:
        """The row of node ``name`` (KeyError when unknown)."""
        return self._index[name]

    def rows(self) -> I64:
        """Rows of every node present, in ascending order (cached until nodes change)."""
        topo, rows = self._rows_cache
        if topo != self._topology:
            rows = np.flatnonzero(self.present[: len(self.names)]).astype(np.int64)
            self._rows_cache = (self._topology, rows)
        return rows

    def row_of(self, name: str) -> int | None:
        """The row of node ``name``, None when unknown."""
        return self._index.get(name)

    def node_names(self) -> Iterator[str]:
        """Names of the nodes present."""
        return iter(self._index)

    def _grow(self, need: int) -> None:
        cap = self.present.shape[0]
        if need <= cap:
            return
        size = max(need, cap * 2)
        self.present = grow(self.present, size, False)
        self.unschedulable = grow(self.unschedulable, size, False)
        for attr, fill in _COLUMNS:
            setattr(self, attr, grow(getattr(self, attr), size, fill))
        self.labels.resize(size)

    def _widen(self, gpus: int) -> None:
        if gpus <= self.free.shape[1]:
            return
        extra = gpus - self.free.shape[1]
        self.free = np.pad(self.free, ((0, 0), (0, extra)))
        self.gpu_sick = np.pad(self.gpu_sick, ((0, 0), (0, extra)))

    def product_id(self, product: str) -> int:
        """Interned id of a GPU product name (-1 for none)."""
        if not product:
            return -1
        pid = self._product_ids.get(product)
        if pid is None:
            pid = self._product_ids[product] = len(self.products)
            self.products.append(product)
        return pid

    def add_node(self, node: NodeInfo) -> int:
        """Add ``node`` (or update it when the name is known); returns its row."""
        if node.name in self._index:
            return self.update_node(node)
        if self._spare:
            r = self._spare.pop()
        else:
            r = len(self.names)
            self._grow(r + 1)
            self.names.append(node.name)
            self.row_pods.append({})
        self.names[r] = node.name
        self._index[node.name] = r
        self.present[r] = True
        self.free[r] = 0
        self.cpu_free[r] = node.cpu_milli
        self.mem_free[r] = node.memory_mib
        self._widen(node.gpu_count)
        self.free[r, : node.gpu_count] = MILLI
        self._set_static(r, node)
        self._topology += 1
        return r

    def update_node(self, node: NodeInfo) -> int:
        """Replace a node's static facts, keeping what its pods hold."""
        r = self._index[node.name]
        self.cpu_free[r] += node.cpu_milli - self.cpu_cap[r]
        self.mem_free[r] += node.memory_mib - self.mem_cap[r]
        self._widen(node.gpu_count)
        # Free GPU amounts are recomputed from what the node's pods hold, so a
        # GPU that disappears and comes back is still held by its pod.
        held = np.zeros(self.free.shape[1], dtype=np.int64)
        for p in self.row_pods[r].values():
            for g in p.gpus:
                if g < held.shape[0]:
                    held[g] += p.milli_per_gpu
        self.free[r] = 0
        self.free[r, : node.gpu_count] = MILLI - held[: node.gpu_count]
        self._set_static(r, node)
        return r

    def _set_static(self, r: int, node: NodeInfo) -> None:
        self.gpu_count[r] = node.gpu_count
        self.gpu_memory[r] = node.gpu_memory_mib
        self.product[r] = self.product_id(node.product)
        self.cpu_cap[r] = node.cpu_milli
        self.mem_cap[r] = node.memory_mib
        self.unschedulable[r] = node.unschedulable
        self.taint_id[r] = self.taints.intern(node.taints)
        self.labels.set_row(r, node.labels)
        self._refresh(r)  # before telemetry, which notes free_sum as of its report
        if node.cache is not None:
            self.set_cache(node.name, node.cache)
        if node.telemetry is not None:
            self.set_telemetry(node.name, node.telemetry)

    def remove_node(self, name: str) -> list[Placement]:
        """Remove a node; its pods are forgotten and returned."""
        r = self._index[name]
        gone = [p for p in list(self.row_pods[r].values()) if self.forget(p.uid)]
        del self._index[name]
        self.present[r] = False
        self.free[r] = 0
        self.gpu_sick[r] = False
        self.sick_rows.discard(r)
        self.tele_at[r] = math.nan
        self.tele_max_age[r] = math.nan
        self.tele_free_sum[r] = -1
        self.labels.clear_row(r)
        self.caches.clear(r)
        self._spare.append(r)
        self._topology += 1
        self._refresh(r)
        return gone

    def set_unschedulable(self, name: str, value: bool) -> None:
        """Cordon or uncordon a node."""
        self.unschedulable[self._index[name]] = value
        self.version += 1

    def _refresh(self, r: int) -> None:
        row = self.free[r]
        row[self.gpu_count[r] :] = 0  # GPUs a node lost (update_node) hold nothing
        if row.size and row.min() < 0:
            self._negative.add(r)
        else:
            self._negative.discard(r)
        self.whole_free[r] = int(np.count_nonzero(row >= MILLI))
        self.max_free[r] = int(row.max()) if row.size else 0
        self.free_sum[r] = int(row.sum())
        self.version += 1

    # ------------------------------------------------------------- telemetry
    def set_telemetry(self, name: str, telemetry: NodeTelemetry | None) -> None:
        """Record a node's GPU telemetry (None forgets it)."""
        r = self._index[name]
        self.gpu_sick[r] = False
        self.sick_rows.discard(r)
        if telemetry is None or telemetry.observed_at is None or not telemetry.gpus:
            self.tele_at[r] = math.nan
            self.tele_max_age[r] = math.nan
            self.tele_free_sum[r] = -1
            self.version += 1
            return
        at = telemetry.observed_at.timestamp()
        if at != self.tele_at[r] or self.tele_free_sum[r] < 0:
            # A new report: allocations up to now are in it. The same report
            # applied again (a Node update) keeps counting the pods bound since.
            self.tele_free_sum[r] = self.free_sum[r]
        self.tele_at[r] = at
        self.tele_max_age[r] = math.nan if telemetry.max_age_s is None else telemetry.max_age_s
        gs = telemetry.gpus
        mem = [1 - g.memory_used_mib / g.memory_total_mib for g in gs if g.memory_total_mib > 0]
        self.tele_mem_free[r] = min(1.0, max(0.0, sum(mem) / len(mem))) if mem else 0.5
        self.tele_util[r] = min(1.0, max(0.0, sum(g.utilization_pct for g in gs) / len(gs) / 100))
        self.tele_throttled[r] = sum(g.throttled for g in gs) / len(gs)
        for g in gs:
            if not g.healthy and 0 <= g.index < self.free.shape[1]:
                self.gpu_sick[r, g.index] = True
                self.sick_rows.add(r)
        self.version += 1

    def freshness(self, now: float, max_age_s: float) -> npt.NDArray[np.bool_]:
        """Which rows have telemetry observed at most ``max_age_s`` before ``now``.

        A node whose telemetry carries its own limit (``NodeTelemetry.max_age_s``,
        from a GPUNodeTelemetry record's report interval) uses that instead.
        """
        with np.errstate(invalid="ignore"):
            age = now - self.tele_at
            limit = np.where(np.isnan(self.tele_max_age), max_age_s, self.tele_max_age)
            return (age <= limit) & (age >= -limit)

    def known_sick(self) -> tuple[int, ...]:
        """Rows with a GPU that the node's latest telemetry calls unhealthy, ascending.

        Age does not matter here: a GPU last reported unhealthy stays out of use
        until a report says otherwise (an agent that died after an XID 79 does
        not make its GPU usable again). Stale data never makes a node *worse*
        than its last report.
        """
        return tuple(sorted(self.sick_rows))

    def load_since_report(self, rows: I64) -> npt.NDArray[np.float64]:
        """Fraction of each row's GPU capacity allocated since its telemetry was taken in.

        Pods bound after the agent's last report are load the report cannot show
        yet; the telemetry score counts them as busy so that a burst does not pile
        onto one node that looked idle. 0 for rows without telemetry.
        """
        base = self.tele_free_sum[rows]
        cap = self.gpu_count[rows].astype(np.float64) * MILLI
        grown = np.where(base >= 0, base - self.free_sum[rows], 0).clip(min=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(cap > 0, grown / cap, 0.0)

    def usable_free(self, sick: tuple[int, ...]) -> I32:
        """Free milli per GPU, reading the unhealthy GPUs of ``sick`` rows as full.

        Returns the live ``free`` matrix itself when nothing needs hiding, and
        otherwise a copy that is reused until the snapshot changes.
        """
        if not sick and not self._negative:
            return self.free
        version, key, cached = self._usable
        if version == self.version and key == sick and cached is not None:
            return cached
        out = np.maximum(self.free, 0)
        for r in sick:
            out[r, self.gpu_sick[r]] = 0
        self._usable = (self.version, sick, out)
        return out

    # ---------------------------------------------------------------- caches
    def set_cache(self, name: str, inventory: CacheInventory) -> None:
        """Replace a node's cache inventory."""
        self.caches.replace(self._index[name], inventory)
        self.version += 1

    def cache_put(self, name: str, item: CacheItem) -> None:
        """Record that ``item`` is now cached on node ``name``."""
        self.caches.put(self._index[name], item.key, item.bytes)
        self.version += 1

    def cache_evict(self, name: str, key: str) -> None:
        """Record that the item ``key`` (``kind/name``) left node ``name``'s cache."""
        self.caches.evict(self._index[name], key)
        self.version += 1

    # ----------------------------------------------------------------- pods
    def fits(self, pod: Pod, name: str, gpus: tuple[int, ...]) -> str:
        """Why ``pod`` cannot take ``gpus`` on node ``name`` now ("" when it can)."""
        r = self._index.get(name)
        if r is None or not self.present[r]:
            return f"no node {name}"
        if pod.cpu_milli > self.cpu_free[r] or pod.memory_mib > self.mem_free[r]:
            return "insufficient cpu or memory"
        want = pod.gpus if pod.gpus else (1 if pod.gpu_milli else 0)
        if len(gpus) != want or len(set(gpus)) != want:
            return f"needs {want} distinct GPU indices, got {gpus}"
        need = MILLI if pod.gpus else pod.gpu_milli
        for g in gpus:
            if not 0 <= g < self.gpu_count[r] or self.free[r, g] < need:
                return f"GPU {g} lacks {need} free milli"
        return ""

    def assume(
        self,
        pod: Pod,
        node: str,
        gpus: tuple[int, ...] = (),
        *,
        start_time: float,
        tier: Tier = "Offline",
        borrowed: bool = False,
    ) -> Placement:
        """Record ``pod`` as running on ``node`` with ``gpus``; returns its placement.

        Raises :class:`PlacementError` when the pod is already placed or does
        not fit: the snapshot never holds an impossible state.
        """
        if pod.id in self.pods:
            raise PlacementError(f"pod {pod.id} is already placed")
        problem = self.fits(pod, node, gpus)
        if problem:
            raise PlacementError(f"pod {pod.key} on {node}: {problem}")
        milli = MILLI if pod.gpus else pod.gpu_milli
        return self._record(
            pod, node, tuple(gpus), milli if gpus else 0, start_time, tier, borrowed
        )

    def account(
        self,
        pod: Pod,
        node: str,
        gpus: tuple[int, ...],
        milli_per_gpu: int,
        *,
        start_time: float,
        tier: Tier = "Offline",
        borrowed: bool = False,
    ) -> Placement:
        """Record a pod that is already bound (by us before a restart, or by someone else).

        Its CPU and memory are charged as they are (the node may be over
        committed on those by another party), but GPUs are held to the same
        rules as :meth:`assume`: each index exists on the node, appears once
        and has ``milli_per_gpu`` free. Anything else raises
        :class:`PlacementError`; the caller picks GPUs that do fit.
        """
        if pod.id in self.pods:
            raise PlacementError(f"pod {pod.id} is already placed")
        r = self._index.get(node)
        if r is None or not self.present[r]:
            raise PlacementError(f"no node {node}")
        if not 0 <= milli_per_gpu <= MILLI or (gpus and milli_per_gpu == 0):
            raise PlacementError(f"impossible share {milli_per_gpu} milli per GPU")
        if len(set(gpus)) != len(gpus):
            raise PlacementError(f"GPU indices repeat: {gpus}")
        for g in gpus:
            if not 0 <= g < self.gpu_count[r] or self.free[r, g] < milli_per_gpu:
                raise PlacementError(f"GPU {g} on {node} lacks {milli_per_gpu} free milli")
        return self._record(pod, node, tuple(gpus), milli_per_gpu, start_time, tier, borrowed)

    def free_gpus(self, node: str) -> list[tuple[int, int]]:
        """``(index, free milli)`` of each GPU of ``node``, lowest index first."""
        r = self._index[node]
        return [(g, int(self.free[r, g])) for g in range(int(self.gpu_count[r]))]

    def _record(
        self,
        pod: Pod,
        node: str,
        gpus: tuple[int, ...],
        milli: int,
        start_time: float,
        tier: Tier,
        borrowed: bool,
    ) -> Placement:
        r = self._index[node]
        p = Placement(
            pod.id,
            pod.namespace,
            pod.name,
            pod.class_name,
            tier,
            pod.priority,
            node,
            gpus,
            milli,
            pod.cpu_milli,
            pod.memory_mib,
            start_time,
            pod.labels,
            borrowed,
            pod.spread_key,
            pod.tenant,
        )
        self._apply(r, p, -1)
        return p

    def started(self, uid: str, start_time: float) -> None:
        """Move a placed pod's start to when it really started (later only; unknown: no-op).

        A pod is assumed when it is placed, before its bind is written and long
        before it runs; ``minRuntimeSeconds`` counts from the start its node
        reports. The start only moves later, so a victim's protection never shrinks.
        """
        p = self.pods.get(uid)
        if p is None or start_time <= p.start_time:
            return
        moved = replace(p, start_time=start_time)
        self.pods[uid] = moved
        self.row_pods[self._index[p.node]][uid] = moved

    def forget(self, uid: str) -> Placement | None:
        """Remove a placed pod (ended, evicted, or an assumption undone); None if unknown."""
        p = self.pods.get(uid)
        if p is None:
            return None
        self._apply(self._index[p.node], p, +1)
        return p

    def _apply(self, r: int, p: Placement, sign: int) -> None:
        for g in p.gpus:
            self.free[r, g] += sign * p.milli_per_gpu
        self.cpu_free[r] += sign * p.cpu_milli
        self.mem_free[r] += sign * p.memory_mib
        if sign < 0:
            self.pods[p.uid] = p
            self.row_pods[r][p.uid] = p
        else:
            del self.pods[p.uid]
            del self.row_pods[r][p.uid]
        if p.spread_key:
            counts = self.spread.setdefault(p.spread_key, {})
            counts[r] = counts.get(r, 0) - sign
            if counts[r] <= 0:
                del counts[r]
        self.usage.charge(p.tenant_key, p.tier, p.class_name, p.demand_milli, p.borrowed, -sign)
        self._refresh(r)

    def placements_on(self, name: str) -> list[Placement]:
        """Pods placed on node ``name``, in placement order."""
        return list(self.row_pods[self._index[name]].values())

    def tenant_usage(self, namespace: str) -> Usage:
        """GPU usage of a tenant namespace (a copy)."""
        return self.usage.get(namespace)

    # ------------------------------------------------------------- summaries
    def capacity_milli(self) -> int:
        """GPU capacity of the nodes present."""
        return int(self.gpu_count[self.rows()].sum()) * MILLI

    def allocated_milli(self) -> int:
        """GPU milli held by placed pods on the nodes present."""
        rows = self.rows()
        return int(self.gpu_count[rows].sum()) * MILLI - int(self.free_sum[rows].sum())
