"""Where the scheduler learns each node's GPU telemetry and cache inventory.

A source turns a Node object into the engine's telemetry and cache views.
:class:`AnnotationSource` reads the node's annotations (written by
``ballast cluster nodes`` on the local cluster, or an agent with
``--publish-node``); :class:`RecordSource` reads the agents' GPUNodeTelemetry
records. A Prometheus source can take their place without touching the
scheduler or the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ballast.api import wellknown as wk
from ballast.api.v1alpha1.gpunodetelemetry import (
    to_cache_inventory,
    to_node_assignments,
    to_node_telemetry,
)


class NodeDataSource(Protocol):
    """Telemetry and cache inventory for a node; never raises on bad data."""

    def telemetry(self, node: Mapping[str, Any]) -> wk.Parsed[wk.NodeTelemetry]:
        """The node's GPU telemetry and any problems found reading it."""
        ...

    def cache(self, node: Mapping[str, Any]) -> wk.Parsed[wk.CacheInventory] | None:
        """The node's cache inventory (None: the node publishes none)."""
        ...


class AnnotationSource:
    """Reads ``ballast.dev/gpu-telemetry`` and ``ballast.dev/cache-inventory``."""

    def telemetry(self, node: Mapping[str, Any]) -> wk.Parsed[wk.NodeTelemetry]:
        """Parse the telemetry annotation."""
        annotations = (node.get("metadata") or {}).get("annotations") or {}
        return wk.parse_telemetry(annotations.get(wk.ANNOTATION_TELEMETRY))

    def cache(self, node: Mapping[str, Any]) -> wk.Parsed[wk.CacheInventory] | None:
        """Parse the cache-inventory annotation, if the node has one."""
        annotations = (node.get("metadata") or {}).get("annotations") or {}
        raw = annotations.get(wk.ANNOTATION_CACHE)
        return wk.parse_cache_inventory(raw) if raw else None


class RecordSource:
    """Telemetry from the agents' GPUNodeTelemetry records (``--telemetry-source records``).

    The scheduler's informer feeds :meth:`on_record`; a Node event then reads
    the node's latest record through :meth:`telemetry`. A node without a
    record falls back to its annotation (nodes whose agent does not publish
    records yet, and the local cluster's fake nodes); a node with a record
    ignores the annotation. The cache inventory likewise: the record's
    ``status.cache`` when it has one, else the node's annotation.
    """

    def __init__(self, max_age_s: float | None = None) -> None:
        self.max_age_s = max_age_s
        self.records: dict[str, wk.NodeTelemetry] = {}
        self.caches: dict[str, wk.CacheInventory] = {}  # records that carry a cache
        # What each node's kubelet says pods hold: node -> (namespace, name) -> GPU indices.
        self.assignments: dict[str, dict[tuple[str, str], tuple[int, ...]]] = {}
        self._annotations = AnnotationSource()
        self._warned: dict[str, tuple[str, ...]] = {}

    def on_record(self, deleted: bool, obj: Mapping[str, Any]) -> wk.Parsed[wk.NodeTelemetry]:
        """Take in a record event; returns the node's view now (no data when deleted or bad)."""
        name = str((obj.get("metadata") or {}).get("name") or "")
        cache = None if deleted else to_cache_inventory(obj)
        if cache is None:
            self.caches.pop(name, None)
        else:
            self.caches[name] = cache
        if deleted:
            self.records.pop(name, None)
            self.assignments.pop(name, None)
            self._warned.pop(name, None)
            return wk.Parsed(wk.NodeTelemetry())
        found = to_node_assignments(obj)
        if found:
            self.assignments[name] = found
        else:
            self.assignments.pop(name, None)
        parsed = to_node_telemetry(obj, self.max_age_s)
        self.records[name] = parsed.value
        if not parsed.problems:
            self._warned.pop(name, None)
        return parsed

    def node_gpus(self, node: str, namespace: str, name: str) -> tuple[int, ...] | None:
        """The GPUs ``node``'s kubelet says pod ``namespace/name`` holds (None: it says nothing)."""
        return self.assignments.get(node, {}).get((namespace, name))

    def first_report(self, name: str, problems: list[str]) -> bool:
        """Whether ``problems`` for record ``name`` are new (report each distinct set once)."""
        key = tuple(problems)
        if self._warned.get(name) == key:
            return False
        self._warned[name] = key
        return True

    def telemetry(self, node: Mapping[str, Any]) -> wk.Parsed[wk.NodeTelemetry]:
        """The node's record (its problems were reported with the record), else its annotation."""
        name = str((node.get("metadata") or {}).get("name") or "")
        record = self.records.get(name)
        if record is None:
            return self._annotations.telemetry(node)
        return wk.Parsed(record)

    def cache(self, node: Mapping[str, Any]) -> wk.Parsed[wk.CacheInventory] | None:
        """The record's inventory when the node's record carries one, else the annotation's."""
        cache = self.caches.get(str((node.get("metadata") or {}).get("name") or ""))
        return self._annotations.cache(node) if cache is None else wk.Parsed(cache)
