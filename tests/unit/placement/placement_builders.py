"""Fluent builders for placement test fixtures: ``make_pod("p").gpu(2).cls("chat").obj``."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from ballast.api.wellknown import (
    LABEL_GPU_PRODUCT,
    LABEL_POOL,
    LABEL_REGION,
    LABEL_ZONE,
    CacheInventory,
    CacheItem,
    GPUTelemetry,
    NodeTelemetry,
)
from ballast.placement.fragmentation import WorkloadMix
from ballast.placement.objects import (
    NodeInfo,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    Pod,
    Taint,
    Toleration,
)
from ballast.placement.snapshot import Snapshot

T0 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
NOW = T0.timestamp()


class PodBuilder:
    def __init__(self, name: str, namespace: str = "team-a") -> None:
        self.kw: dict[str, Any] = {
            "namespace": namespace,
            "name": name,
            "uid": f"{namespace}/{name}",
        }

    def _set(self, **kw: Any) -> PodBuilder:
        self.kw.update(kw)
        return self

    def gpu(self, n: int) -> PodBuilder:
        return self._set(gpus=n)

    def share(self, milli: int) -> PodBuilder:
        return self._set(gpu_milli=milli)

    def cpu(self, milli: int, mem_mib: int = 0) -> PodBuilder:
        return self._set(cpu_milli=milli, memory_mib=mem_mib)

    def cls(self, name: str) -> PodBuilder:
        return self._set(class_name=name)

    def priority(self, p: int) -> PodBuilder:
        return self._set(priority=p)

    def products(self, *names: str) -> PodBuilder:
        return self._set(gpu_products=names)

    def gpu_memory(self, mib: int) -> PodBuilder:
        return self._set(min_gpu_memory_mib=mib)

    def selector(self, **labels: str) -> PodBuilder:
        return self._set(node_selector=labels)

    def affinity(self, *terms: tuple[tuple[str, str, tuple[str, ...]], ...]) -> PodBuilder:
        return self._set(
            affinity=tuple(
                NodeSelectorTerm(tuple(NodeSelectorRequirement(k, op, v) for k, op, v in t))  # type: ignore[arg-type]
                for t in terms
            )
        )

    def tolerate(self, key: str = "", operator: str = "Exists", value: str = "") -> PodBuilder:
        tol = Toleration(key, operator, value)  # type: ignore[arg-type]
        return self._set(tolerations=(*self.kw.get("tolerations", ()), tol))

    def models(self, *names: str) -> PodBuilder:
        return self._set(models=names)

    def datasets(self, *names: str) -> PodBuilder:
        return self._set(datasets=names)

    def created(self, t: float) -> PodBuilder:
        return self._set(creation_time=t)

    def labels(self, **labels: str) -> PodBuilder:
        return self._set(labels=labels)

    def spread(self, key: str) -> PodBuilder:
        return self._set(spread_key=key)

    @property
    def obj(self) -> Pod:
        return Pod(**self.kw)


class NodeBuilder:
    def __init__(self, name: str) -> None:
        self.kw: dict[str, Any] = {
            "name": name,
            "gpu_count": 8,
            "gpu_memory_mib": 81920,
            "gpu_product": "A100",
            "cpu_milli": 96000,
            "memory_mib": 1 << 20,
            "labels": {"kubernetes.io/hostname": name},
        }

    def _set(self, **kw: Any) -> NodeBuilder:
        self.kw.update(kw)
        return self

    def gpus(
        self, n: int, product: str | None = None, memory_mib: int | None = None
    ) -> NodeBuilder:
        self.kw["gpu_count"] = n
        if product is not None:
            self.kw["gpu_product"] = product
        if memory_mib is not None:
            self.kw["gpu_memory_mib"] = memory_mib
        return self

    def cpu(self, milli: int, mem_mib: int | None = None) -> NodeBuilder:
        self.kw["cpu_milli"] = milli
        if mem_mib is not None:
            self.kw["memory_mib"] = mem_mib
        return self

    def label(self, key: str, value: str) -> NodeBuilder:
        self.kw["labels"] = {**self.kw["labels"], key: value}
        return self

    def zone(self, z: str) -> NodeBuilder:
        return self.label(LABEL_ZONE, z)

    def region(self, r: str) -> NodeBuilder:
        return self.label(LABEL_REGION, r)

    def pool(self, name: str, taint: bool = True) -> NodeBuilder:
        self.label(LABEL_POOL, name)
        if taint:
            self.taint(LABEL_POOL, name)
        return self

    def taint(self, key: str, value: str = "", effect: str = "NoSchedule") -> NodeBuilder:
        return self._set(taints=(*self.kw.get("taints", ()), Taint(key, value, effect)))  # type: ignore[arg-type]

    def cordoned(self) -> NodeBuilder:
        return self._set(unschedulable=True)

    def cache(self, *items: tuple[str, int], capacity: int = 10**12) -> NodeBuilder:
        inv = CacheInventory(capacity, tuple(CacheItem(*k.split("/", 1), b) for k, b in items))
        return self._set(cache=inv)

    def telemetry(
        self,
        age_s: float = 0.0,
        util: float = 0.0,
        mem_used_frac: float = 0.0,
        throttled: bool = False,
        sick: tuple[int, ...] = (),
    ) -> NodeBuilder:
        n, mem = self.kw["gpu_count"], self.kw["gpu_memory_mib"]
        gpus = tuple(
            GPUTelemetry(
                i, int(mem * mem_used_frac), mem, util, throttled=throttled, healthy=i not in sick
            )
            for i in range(n)
        )
        return self._set(telemetry=NodeTelemetry(T0 - dt.timedelta(seconds=age_s), gpus))

    @property
    def obj(self) -> NodeInfo:
        kw = dict(self.kw)
        if kw["gpu_count"] and LABEL_GPU_PRODUCT not in kw["labels"]:
            kw["labels"] = {**kw["labels"], LABEL_GPU_PRODUCT: kw["gpu_product"]}
        return NodeInfo(**kw)


def make_pod(name: str, namespace: str = "team-a") -> PodBuilder:
    return PodBuilder(name, namespace)


def make_node(name: str) -> NodeBuilder:
    return NodeBuilder(name)


def snapshot(*nodes: NodeBuilder | NodeInfo, mix: WorkloadMix | None = None) -> Snapshot:
    snap = Snapshot(mix=mix or WorkloadMix())
    for n in nodes:
        snap.add_node(n.obj if isinstance(n, NodeBuilder) else n)
    return snap


def replace(pod: Pod, **kw: Any) -> Pod:
    return dataclasses.replace(pod, **kw)
