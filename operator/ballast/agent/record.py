"""The compact per-node record the scheduler reads, and when to write it.

The record is the ``ballast.dev/gpu-telemetry`` annotation format
(``ballast.api.wellknown.NodeTelemetry``). The file (``--record-out``) is
rewritten every collection, atomically; the node's GPUNodeTelemetry status
(``--publish-record``) and the Node annotation (``--publish-node``) only on a
meaningful change or a heartbeat, so that API writes per node stay bounded
and Node watchers are not woken every interval. The status also carries the
latest cache scan (``ballast.agent.cache_publish``); an item appearing or
leaving is a meaningful change, its size or last use moving is not.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from ballast.agent.attribution import MAX_OWNERS, Owner
from ballast.agent.cache_publish import LatestCache
from ballast.agent.collector import Snapshot
from ballast.api.wellknown import (
    API_VERSION,
    LABEL_MANAGED_BY,
    MANAGED_BY,
    GPUTelemetry,
    NodeTelemetry,
)
from ballast.clock import Clock
from ballast.logs import kv

log = logging.getLogger(__name__)

MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class ChangeThresholds:
    """How far a reading must move to count as a meaningful change."""

    utilization_pct: float = 10.0
    memory_fraction: float = 0.05  # of the GPU's total memory
    temperature_c: float = 10.0


def to_record(snap: Snapshot) -> NodeTelemetry:
    """The scheduler's view of ``snap`` (a GPU without a reading reports 0 for it)."""
    gpus = []
    for g in snap.gpus:
        mem = g.memory
        gpus.append(
            GPUTelemetry(
                index=g.index,
                memory_used_mib=mem.used // MIB if mem else 0,
                memory_total_mib=mem.total // MIB if mem else 0,
                utilization_pct=float(g.utilization_pct or 0),
                temperature_c=float(g.temperature_c or 0),
                power_w=round(g.power_w or 0.0, 1),
                throttled=bool(g.clock_reasons and g.clock_reasons & ~0x1),  # bit 0 is "idle"
                healthy=g.health.healthy,
                xid_errors=g.xid_count,
            )
        )
    return NodeTelemetry(snap.observed_at, tuple(gpus))


def meaningful_change(
    old: NodeTelemetry | None, new: NodeTelemetry, t: ChangeThresholds = ChangeThresholds()
) -> bool:
    """Whether ``new`` differs from ``old`` enough to be worth an API write."""
    if old is None or len(old.gpus) != len(new.gpus):
        return True
    for a, b in zip(old.gpus, new.gpus, strict=True):
        if (a.index, a.healthy, a.throttled, a.xid_errors, a.memory_total_mib) != (
            b.index,
            b.healthy,
            b.throttled,
            b.xid_errors,
            b.memory_total_mib,
        ):
            return True
        if abs(a.utilization_pct - b.utilization_pct) >= t.utilization_pct:
            return True
        if abs(a.temperature_c - b.temperature_c) >= t.temperature_c:
            return True
        if abs(a.memory_used_mib - b.memory_used_mib) >= t.memory_fraction * max(
            b.memory_total_mib, 1
        ):
            return True
    return False


def write_file(path: str, record: NodeTelemetry) -> None:
    """Write ``record`` as JSON to ``path`` atomically (rename over)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".record-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps(record.as_dict()))
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


class Publisher:
    """Writes the record to a file, a GPUNodeTelemetry and/or a Node annotation; counts writes."""

    def __init__(
        self,
        clock: Clock,
        *,
        record_out: str | None = None,
        patch_node: Callable[[str], None] | None = None,
        heartbeat_s: float = 60.0,
        thresholds: ChangeThresholds = ChangeThresholds(),
        write_record: Callable[[Snapshot], None] | None = None,
        cache: LatestCache | None = None,
    ) -> None:
        self.clock = clock
        self.record_out = record_out
        self.patch_node = patch_node
        self.heartbeat_s = heartbeat_s
        self.thresholds = thresholds
        self.cache = cache
        self._record_cache: frozenset[str] | None = None  # cache items last written
        self.writes: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._published: NodeTelemetry | None = None
        self._published_at: float | None = None
        self.write_record = write_record
        self._record_published: tuple[NodeTelemetry | None, float | None] = (None, None)
        self._record_pods: tuple[tuple[Owner, ...], ...] | None = None  # owners last written

    def publish(self, snap: Snapshot) -> None:
        """Write what is due for ``snap``; never raises (failures are counted and logged)."""
        record = to_record(snap)
        with self._lock:
            if self.record_out:
                try:
                    write_file(self.record_out, record)
                    self.writes["file"] += 1
                except OSError as exc:
                    self.failures["file"] += 1
                    log.warning("record write failed", extra=kv(path=self.record_out, error=exc))
            if self.write_record is not None:
                self._publish_record(snap, record)
            if self.patch_node is None:
                return
            now = self.clock.monotonic()
            due = self._published_at is None or now - self._published_at >= self.heartbeat_s
            if not due and not meaningful_change(self._published, record, self.thresholds):
                return
            try:
                self.patch_node(orjson.dumps(record.as_dict()).decode())
            except Exception as exc:  # API or transport failure: retried at the next interval
                self.failures["node"] += 1
                log.warning("node annotation patch failed", extra=kv(error=exc))
                return
            self.writes["node"] += 1
            self._published, self._published_at = record, now

    def _publish_record(self, snap: Snapshot, record: NodeTelemetry) -> None:
        """The GPUNodeTelemetry status: the same write-or-skip rule as the annotation."""
        assert self.write_record is not None
        now = self.clock.monotonic()
        last, at = self._record_published
        cache_items = self.cache.keys() if self.cache is not None else None
        due = at is None or now - at >= self.heartbeat_s
        pods = tuple(g.pods for g in snap.gpus)
        if pods != self._record_pods:
            due = True  # a GPU changed hands: the scheduler must see it now
        if cache_items != self._record_cache:
            due = True  # an item came or went (sizes and last use ride on the heartbeat)
        if not due and not meaningful_change(last, record, self.thresholds):
            return
        try:
            self.write_record(snap)
        except Exception as exc:  # API or transport failure: retried at the next interval
            self.failures["record"] += 1
            log.warning("GPUNodeTelemetry write failed", extra=kv(error=exc))
            return
        self.writes["record"] += 1
        self._record_cache = cache_items
        self._record_published = (record, now)
        self._record_pods = pods


def record_status(
    snap: Snapshot, node_name: str, interval_s: float, heartbeat_s: float | None = None
) -> dict[str, Any]:
    """The GPUNodeTelemetry ``status`` for ``snap`` (wire form, camelCase)."""
    when = snap.observed_at or dt.datetime.now(dt.UTC)
    gpus = []
    for g, r in zip(snap.gpus, to_record(snap).gpus, strict=True):
        gpu: dict[str, Any] = {
            "index": g.index,
            "uuid": g.uuid[:128],
            "product": g.name[:128],
            "memoryTotalMiB": r.memory_total_mib,
            "memoryUsedMiB": r.memory_used_mib,
            "utilizationPct": min(100.0, max(0.0, r.utilization_pct)),
            "throttled": r.throttled,
            "healthy": r.healthy,
            "xidErrors": r.xid_errors,
        }
        if g.health.reasons:
            gpu["unhealthyReasons"] = [x[:64] for x in g.health.reasons[:16]]
        if g.pods:
            gpu["pods"] = [
                {
                    "namespace": o.namespace[:63],
                    "name": o.pod[:253],
                    "container": o.container[:63],
                    "source": o.source,
                }
                for o in g.pods[:MAX_OWNERS]
            ]
        if g.mig is not None and not g.lost:
            gpu["migEnabled"] = g.mig.enabled
            if g.mig.devices:
                gpu["migDevices"] = [
                    {
                        "uuid": d.uuid[:128],
                        "gpuInstanceId": d.gpu_instance,
                        "profile": d.profile[:32],
                        "slices": min(d.slices, 8),
                        "memoryTotalMiB": d.memory.total // MIB if d.memory else 0,
                        "memoryUsedMiB": d.memory.used // MIB if d.memory else 0,
                    }
                    for d in sorted(g.mig.devices, key=lambda d: d.gpu_instance)[:8]
                ]
        gpus.append(gpu)
    return {
        "nodeName": node_name,
        "updateTime": when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reportIntervalSeconds": interval_s,
        **({"heartbeatSeconds": heartbeat_s} if heartbeat_s else {}),
        "gpus": gpus[:64],
    }


class RecordWriter:
    """Creates the node's GPUNodeTelemetry when missing and merge-patches its status.

    ``kube`` is a :class:`ballast.kube.raw.Kube` (anything with its ``get``,
    ``create`` and ``patch``). Only this object is written, never the Node.
    """

    def __init__(
        self,
        kube: Any,
        node_name: str,
        interval_s: float,
        cache: LatestCache | None = None,
        heartbeat_s: float | None = None,
    ) -> None:
        from ballast.kube.raw import GPUNODETELEMETRIES

        self.cache = cache

        self.kube = kube
        self.node_name = node_name
        self.interval_s = interval_s
        self.heartbeat_s = heartbeat_s
        self.path = GPUNODETELEMETRIES.path(node_name)
        self._collection = GPUNODETELEMETRIES.path()
        self._exists = False

    def __call__(self, snap: Snapshot) -> None:
        """Write ``snap`` as the record's status (raises on API failure: the caller counts it)."""
        if not self._exists:
            self._ensure()
        status = record_status(snap, self.node_name, self.interval_s, self.heartbeat_s)
        cache = self.cache.status() if self.cache is not None else None
        if cache is not None:
            status["cache"] = cache
        try:
            self.kube.patch(
                self.path + "/status", {"status": status}, field_manager="ballast-agent"
            )
        except Exception as exc:
            if getattr(exc, "not_found", False):
                self._exists = False  # deleted under us: created again next time
            raise

    def _ensure(self) -> None:
        if self.kube.get(self.path) is None:
            body = {
                "apiVersion": API_VERSION,
                "kind": "GPUNodeTelemetry",
                "metadata": {
                    "name": self.node_name,
                    "labels": {LABEL_MANAGED_BY: MANAGED_BY},
                },
            }
            try:
                self.kube.create(self._collection, body)
            except Exception as exc:
                if not getattr(exc, "conflict", False):  # created meanwhile: fine
                    raise
        self._exists = True
