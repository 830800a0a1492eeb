"""Where the scheduler learns each node's GPU telemetry and cache inventory.

A source turns a Node object into the engine's telemetry and cache views.
The one shipped here reads the node's annotations (written by the node
agent, or by ``ballast cluster nodes`` on the local cluster); a Prometheus
source can take its place without touching the scheduler or the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ballast.api import wellknown as wk


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
