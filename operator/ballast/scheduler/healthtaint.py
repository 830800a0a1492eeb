"""A taint on nodes whose GPUs are all unhealthy, removed when one is healthy again.

The engine already keeps unhealthy GPUs from Ballast's pods; the taint
(``ballast.dev/gpu-unhealthy:NoSchedule``) tells every other scheduler too,
and shows in ``kubectl describe node``. It follows the node's latest
telemetry (the agent's record, or its annotation): all GPUs it lists are
unhealthy → tainted; any GPU healthy, or no telemetry at all → not tainted.
A report that goes stale keeps its verdict, as the engine does.

:class:`HealthTaints` is pure bookkeeping: it remembers each node's taints
and ``resourceVersion`` from Node events and returns the change to write (a
merge patch fenced on that ``resourceVersion``), at most once per
``retry_s`` for the same node state, so a heartbeat record does not repeat
a write the API server refused or a standby replica dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ballast.api.wellknown import GROUP, NodeTelemetry

TAINT_KEY = f"{GROUP}/gpu-unhealthy"
TAINT_EFFECT = "NoSchedule"


@dataclass(frozen=True, slots=True)
class TaintChange:
    """A write to make: the node's new taint list, and what to say about it."""

    node: str
    uid: str
    resource_version: str
    taints: tuple[Mapping[str, Any], ...]
    tainted: bool
    message: str


@dataclass(slots=True)
class _Seen:
    taints: tuple[Mapping[str, Any], ...] = ()
    resource_version: str = ""
    uid: str = ""
    telemetry: NodeTelemetry | None = None
    asked: tuple[str, bool] | None = None  # (resourceVersion, tainted) last asked for
    asked_at: float = -1e18


def sick_gpus(telemetry: NodeTelemetry | None) -> tuple[int, ...] | None:
    """Indices of the GPUs when every GPU the telemetry lists is unhealthy, else None."""
    if telemetry is None or telemetry.observed_at is None or not telemetry.gpus:
        return None
    if any(g.healthy for g in telemetry.gpus):
        return None
    return tuple(sorted(g.index for g in telemetry.gpus))


def _has_taint(taints: Sequence[Mapping[str, Any]]) -> bool:
    return any(t.get("key") == TAINT_KEY and t.get("effect") == TAINT_EFFECT for t in taints)


class HealthTaints:
    """Decides when a node's ``ballast.dev/gpu-unhealthy`` taint must be added or removed."""

    def __init__(self, retry_s: float = 30.0) -> None:
        self.retry_s = retry_s
        self._nodes: dict[str, _Seen] = {}

    def forget(self, node: str) -> None:
        """The node is gone."""
        self._nodes.pop(node, None)

    def on_node(
        self, node: Mapping[str, Any], telemetry: NodeTelemetry | None, now: float
    ) -> TaintChange | None:
        """A Node event with the node's telemetry as read now; the change to make, if any."""
        meta = node.get("metadata") or {}
        name = str(meta.get("name") or "")
        if not name:
            return None
        raw = (node.get("spec") or {}).get("taints")
        taints = tuple(t for t in raw if isinstance(t, Mapping)) if isinstance(raw, list) else ()
        seen = self._nodes.setdefault(name, _Seen())
        seen.taints = taints
        seen.resource_version = str(meta.get("resourceVersion") or "")
        seen.uid = str(meta.get("uid") or "")
        seen.telemetry = telemetry
        return self._decide(name, seen, now)

    def on_telemetry(
        self, name: str, telemetry: NodeTelemetry | None, now: float
    ) -> TaintChange | None:
        """The node's telemetry changed (record or annotation); the change to make, if any."""
        seen = self._nodes.get(name)
        if seen is None:
            # No Node event yet: remember the telemetry, decide when the node shows up.
            self._nodes[name] = _Seen(telemetry=telemetry)
            return None
        seen.telemetry = telemetry
        return self._decide(name, seen, now)

    def _decide(self, name: str, seen: _Seen, now: float) -> TaintChange | None:
        if not seen.resource_version:
            return None
        sick = sick_gpus(seen.telemetry)
        want = sick is not None
        if want == _has_taint(seen.taints):
            seen.asked = None
            return None
        ask = (seen.resource_version, want)
        if seen.asked == ask and now - seen.asked_at < self.retry_s:
            return None
        seen.asked, seen.asked_at = ask, now
        others = tuple(t for t in seen.taints if t.get("key") != TAINT_KEY)
        if want:
            taint = {"key": TAINT_KEY, "value": "true", "effect": TAINT_EFFECT}
            gpus = ",".join(map(str, sick or ()))
            message = (
                f"all {len(sick or ())} GPUs unhealthy (GPUs {gpus}); tainted "
                f"{TAINT_KEY}:{TAINT_EFFECT} until one is healthy again"
            )
            return TaintChange(
                name, seen.uid, seen.resource_version, (*others, taint), True, message
            )
        message = f"a GPU is healthy again (or the node reports none); removed {TAINT_KEY}"
        return TaintChange(name, seen.uid, seen.resource_version, others, False, message)
