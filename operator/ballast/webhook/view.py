"""What the webhook knows about the cluster: classes, windows, nodes, namespaces.

Fed by watch streams in ``service`` (one list+watch per kind, never a list
per request) and read by the pure ``mutate``/``validate`` functions. Every
object is mapped once, where it enters, and a malformed one becomes a
problem string, never an exception: the webhook must answer whatever the
cluster holds.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ballast import selectors
from ballast.api import wellknown as wk
from ballast.controller.builders import priority_class_name
from ballast.scheduler.mapping import str_map

MAX_GPUS_PER_NODE = 64  # as the scheduler's node mapping


@dataclass(frozen=True, slots=True)
class Batching:
    """A class's micro-batching contract."""

    max_batch_size: int
    max_queue_delay_ms: int


@dataclass(frozen=True, slots=True)
class ClassView:
    """The parts of a WorkloadClass the webhook acts on."""

    name: str
    priority_class: str
    pool: str = ""
    gpu_products: tuple[str, ...] = ()
    min_gpu_memory_mib: int = 0
    batching: Batching | None = None
    namespaces: selectors.Selector | None = selectors.EVERYTHING  # None: unreadable selector
    window: str = ""
    problems: tuple[str, ...] = ()


def _int(raw: Any, lo: int, hi: int, default: int | None = None) -> int | None:
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int) or not lo <= raw <= hi:
        raise ValueError(f"{raw!r} is not an integer in {lo}..{hi}")
    return raw


def class_view(name: str, spec: Any) -> ClassView:
    """A raw WorkloadClass spec as a :class:`ClassView`; never raises."""
    spec = spec if isinstance(spec, Mapping) else {}
    problems: list[str] = []
    ns_sel, sel_problems = selectors.parse(spec.get("namespaceSelector"))
    problems += [f"spec.namespaceSelector: {p}" for p in sel_problems]
    pool = spec.get("nodePool")
    pool = pool if isinstance(pool, Mapping) else {}
    pool_name = pool.get("name") if isinstance(pool.get("name"), str) else ""
    raw_products = pool.get("gpuProducts")
    products = tuple(
        p for p in (raw_products if isinstance(raw_products, list) else ()) if isinstance(p, str)
    )
    try:
        min_mem = _int(pool.get("minGPUMemoryMiB"), 0, 2**31, 0) or 0
    except ValueError as exc:
        problems.append(f"spec.nodePool.minGPUMemoryMiB: {exc}")
        min_mem = 0
    batching: Batching | None = None
    raw_batching = spec.get("batching")
    if isinstance(raw_batching, Mapping):
        try:
            size = _int(raw_batching.get("maxBatchSize"), 1, 4096)
            delay = _int(raw_batching.get("maxQueueDelayMs"), 0, 60_000, 10)
            if size is None:
                raise ValueError("maxBatchSize is missing")
            batching = Batching(size, delay or 0)
        except ValueError as exc:
            problems.append(f"spec.batching: {exc}")
    window = spec.get("window") if isinstance(spec.get("window"), str) else ""
    return ClassView(
        name=name,
        priority_class=priority_class_name(name),
        pool=pool_name or "",
        gpu_products=products,
        min_gpu_memory_mib=min_mem,
        batching=batching,
        namespaces=ns_sel,
        window=window or "",
        problems=tuple(problems),
    )


@dataclass(frozen=True, slots=True)
class NodeView:
    """A node's GPU capacity and the labels a pool is chosen by."""

    name: str
    gpus: int
    product: str
    memory_mib: int
    labels: Mapping[str, str] = field(default_factory=dict)


def node_view(node: Mapping[str, Any]) -> NodeView:
    """A raw Node as a :class:`NodeView`; unreadable numbers count as 0."""
    meta = node.get("metadata") if isinstance(node.get("metadata"), Mapping) else {}
    status = node.get("status") if isinstance(node.get("status"), Mapping) else {}
    assert isinstance(meta, Mapping) and isinstance(status, Mapping)
    labels = str_map(meta.get("labels"))
    alloc = status.get("allocatable") or status.get("capacity") or {}
    alloc = alloc if isinstance(alloc, Mapping) else {}

    def number(raw: Any, hi: int) -> int:
        try:
            n = int(str(raw))
        except ValueError:
            return 0
        return n if 0 <= n <= hi else 0

    gpus = number(alloc.get(wk.GPU_RESOURCE, "0"), MAX_GPUS_PER_NODE)
    if not gpus:  # GPU feature discovery's label, when the device plugin has not reported yet
        gpus = number(labels.get(wk.LABEL_GPU_COUNT, "0"), MAX_GPUS_PER_NODE)
    return NodeView(
        name=str(meta.get("name") or ""),
        gpus=gpus,
        product=labels.get(wk.LABEL_GPU_PRODUCT, ""),
        memory_mib=number(labels.get(wk.LABEL_GPU_MEMORY_MIB, "0"), 2**31),
        labels=labels,
    )


@dataclass(frozen=True, slots=True)
class PriorityClassView:
    """A PriorityClass's value and preemption policy, as the Priority admission plugin sets them."""

    value: int
    preemption_policy: str


class ClusterView:
    """Thread-safe maps of the watched objects; readers get consistent copies of single entries."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.classes: dict[str, ClassView] = {}
        self.windows: dict[str, Mapping[str, Any]] = {}  # raw BatchWindow specs
        self.nodes: dict[str, NodeView] = {}
        self.namespaces: dict[str, dict[str, str]] = {}
        self.priority_classes: dict[str, PriorityClassView] = {}
        self.synced: set[str] = set()
        # Names listed since the last RELIST: at SYNCED the rest are dropped,
        # so a relist never empties a table while requests read it.
        self._listing: dict[str, set[str]] = {}

    def apply(self, kind: str, event: str, obj: Mapping[str, Any]) -> None:
        """One watch event (``kind`` is the plural) or list marker (RELIST, SYNC, SYNCED)."""
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
        assert isinstance(meta, Mapping)
        name = str(meta.get("name") or "")
        table = self._table(kind)
        with self._lock:
            if event == "RELIST":
                self._listing[kind] = set()
                return
            if event == "SYNCED":
                seen = self._listing.pop(kind, set())
                for gone in set(table) - seen:
                    del table[gone]
                self.synced.add(kind)
                return
            if not name:
                return
            if event == "SYNC" and kind in self._listing:
                self._listing[kind].add(name)
            if event == "DELETED":
                table.pop(name, None)
                return
            table[name] = self._map(kind, name, obj)

    def _table(self, kind: str) -> dict[str, Any]:
        tables: dict[str, dict[str, Any]] = {
            "workloadclasses": self.classes,
            "batchwindows": self.windows,
            "nodes": self.nodes,
            "namespaces": self.namespaces,
            "priorityclasses": self.priority_classes,
        }
        return tables[kind]

    @staticmethod
    def _map(kind: str, name: str, obj: Mapping[str, Any]) -> Any:
        if kind == "workloadclasses":
            return class_view(name, obj.get("spec"))
        if kind == "batchwindows":
            spec = obj.get("spec")
            return dict(spec) if isinstance(spec, Mapping) else {}
        if kind == "nodes":
            return node_view(obj)
        if kind == "namespaces":
            return str_map((obj.get("metadata") or {}).get("labels"))
        value = obj.get("value")
        policy = obj.get("preemptionPolicy")
        return PriorityClassView(
            value if isinstance(value, int) and not isinstance(value, bool) else 0,
            policy if isinstance(policy, str) and policy else "PreemptLowerPriority",
        )

    # Readers -----------------------------------------------------------
    def cls(self, name: str) -> ClassView | None:
        """The class ``name``, or None when unknown."""
        with self._lock:
            return self.classes.get(name)

    def window_spec(self, name: str) -> Mapping[str, Any] | None:
        """The raw spec of BatchWindow ``name``, or None when unknown."""
        with self._lock:
            return self.windows.get(name)

    def namespace_labels(self, name: str) -> dict[str, str] | None:
        """Labels of namespace ``name``, or None when not (yet) seen."""
        with self._lock:
            labels = self.namespaces.get(name)
            return None if labels is None else dict(labels)

    def priority_class(self, name: str) -> PriorityClassView | None:
        """PriorityClass ``name``, or None when unknown."""
        with self._lock:
            return self.priority_classes.get(name)

    def node_list(self) -> list[NodeView] | None:
        """Every node, or None until the node list has been read once."""
        with self._lock:
            return list(self.nodes.values()) if "nodes" in self.synced else None

    def is_synced(self, kind: str) -> bool:
        """Whether the first list of ``kind`` has been read."""
        with self._lock:
            return kind in self.synced
