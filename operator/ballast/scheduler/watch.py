"""Watch events into the scheduler's state: the cache side of the scheduling thread.

The informers' events (and the relists that prune what vanished) arrive
here, already on the scheduling thread. Pods pass the trust boundary
(:func:`podspec.slim_pod`) and become records; bound pods are charged to
the snapshot; pending pods of this scheduler are mapped to the engine's
view and queued, or parked with the reason they cannot be scheduled.
Classes, quotas, windows, PDBs and namespaces go to :class:`Policies`.

A mixin of :class:`~ballast.scheduler.core.Scheduler`: it shares the
scheduler's state and is split out only so each file has one concern.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ballast.api.wellknown import API_VERSION, NodeTelemetry
from ballast.clock import Clock
from ballast.logs import kv
from ballast.placement.engine import Engine
from ballast.placement.objects import DEFAULT_CLASS, ClassPolicy, NodeInfo, Pod
from ballast.placement.snapshot import Snapshot
from ballast.scheduler import mapping, podspec
from ballast.scheduler.actions import RESULT, Actions
from ballast.scheduler.config import Config
from ballast.scheduler.dra_state import DRA_KINDS
from ballast.scheduler.groups import KUBE_KIND, PLUGINS_KIND
from ballast.scheduler.healthtaint import HealthTaints, TaintChange
from ballast.scheduler.hints import Change, Changes
from ballast.scheduler.informer import Event
from ballast.scheduler.metrics import SchedulerMetrics
from ballast.scheduler.podcache import PodCache, PodRecord
from ballast.scheduler.policies import Policies
from ballast.scheduler.preempting import Ended, Preemptions
from ballast.scheduler.schedqueue import SchedulingQueue
from ballast.scheduler.sources import NodeDataSource, RecordSource

log = logging.getLogger(__name__)

TERMINAL = ("Succeeded", "Failed")
RECORDS = "gpunodetelemetries"  # the informer's kind for GPUNodeTelemetry
GROUP_KINDS = (PLUGINS_KIND, KUBE_KIND)  # PodGroup informers (gangs.py)


class WatchHandlers:
    """Applies watch events to the scheduler's state (see the module docstring)."""

    actions: Actions
    config: Config
    metrics: SchedulerMetrics
    source: NodeDataSource
    snapshot: Snapshot
    pods: PodCache
    queue: SchedulingQueue
    policies: Policies
    preemptions: Preemptions
    engine: Engine
    synced: set[str]
    _relisting: dict[str, set[str]]
    changes: Changes
    _node_facts: dict[str, NodeInfo]
    _next_window_edge: dt.datetime | None
    _warned_nodes: dict[str, tuple[str, ...]]
    health_taints: HealthTaints
    clock: Clock

    @property
    def classes(self) -> dict[str, ClassPolicy]:
        """Usable classes by name."""
        return {n: e.policy for n, e in self.policies.classes.items() if e.policy is not None}

    if TYPE_CHECKING:  # defined by the scheduler or its other parts

        def _on_result(self, ev: Event) -> None: ...

        def _park(self, rec: PodRecord, reason: str, message: str) -> None: ...

        def _end_plan(self, ended: Ended | None) -> None: ...

        def _now(self) -> dt.datetime: ...

        def _dra_event(self, kind: str, deleted: bool, obj: dict[str, Any]) -> None: ...

        def _dra_node(self, info: NodeInfo) -> NodeInfo: ...

        def _dra_node_added(self, node: str) -> None: ...

        def _dra_known(self, kind: str) -> list[dict[str, Any]]: ...

        def _on_group_object(self, kind: str, deleted: bool, obj: dict[str, Any]) -> None: ...

        def _known_groups(self, kind: str) -> list[dict[str, Any]]: ...

    # ----------------------------------------------------------------- events
    def _dispatch(self, ev: Event) -> None:
        if ev.kind == RESULT:
            self._on_result(ev)
            return
        if ev.type == "RELIST":
            self._relisting[ev.kind] = set()
            return
        if ev.type == "SYNCED":
            self._finish_relist(ev.kind)
            self.synced.add(ev.kind)
            self.changes.add(Change.ALL)
            return
        if ev.type == "SYNC":
            seen = self._relisting.get(ev.kind)
            if seen is not None:
                seen.add(self._key(ev.kind, ev.obj))
        self._apply(ev.kind, ev.type == "DELETED", ev.obj)

    def _apply(self, kind: str, deleted: bool, obj: dict[str, Any]) -> None:
        if kind == "pods":
            self._on_pod(deleted, obj)
        elif kind == "nodes":
            self._on_node(deleted, obj)
        # A status write (ours or the operator's) changes no spec: no one is woken.
        elif kind == "workloadclasses":
            if self.policies.on_class(deleted, obj):
                self.engine = Engine(self.config.profile, self.classes)
                self._policies_changed()
        elif kind == "gpuquotas":
            if self.policies.on_quota(deleted, obj):
                self._policies_changed()
        elif kind == "batchwindows":
            if self.policies.on_window(deleted, obj, self._now()):
                self._next_window_edge = None
                self.changes.add(Change.WINDOW)
        elif kind == "poddisruptionbudgets":
            problems = self.policies.on_pdb(deleted, obj)
            if problems:
                self._invalid("PodDisruptionBudget", obj, problems)
            self.changes.add(Change.VICTIMS)
        elif kind == RECORDS:
            self._on_record(deleted, obj)
        elif kind in DRA_KINDS:
            self._dra_event(kind, deleted, obj)
        elif kind in GROUP_KINDS:
            self._on_group_object(kind, deleted, obj)
        elif kind == "namespaces":
            before = self.policies.generation
            self.policies.on_namespace(deleted, obj)
            if self.policies.generation != before:
                self._policies_changed()

    def _policies_changed(self) -> None:
        # A plan made under the old rules may no longer be allowed.
        for preemptor in list(self.preemptions.plans):
            rec = self.pods.get(preemptor)
            member = self.policies.membership(rec.labels, rec.namespace) if rec else None
            if member is None or member.cls is None:
                self._end_plan(self.preemptions.cancel(preemptor))
        self.changes.add(Change.POLICY)

    @staticmethod
    def _key(kind: str, obj: Mapping[str, Any]) -> str:
        meta = obj.get("metadata") or {}
        if kind == "pods":
            return str(meta.get("uid", ""))
        return f"{meta.get('namespace') or ''}/{meta.get('name', '')}"

    def _finish_relist(self, kind: str) -> None:
        seen = self._relisting.pop(kind, None)
        if seen is None:
            return
        for obj in self._known(kind):
            if self._key(kind, obj) not in seen:
                self._apply(kind, True, obj)

    def _known(self, kind: str) -> list[dict[str, Any]]:
        """Minimal objects for everything of ``kind`` the scheduler holds (relist pruning)."""
        if kind == "pods":
            return [r.obj for r in self.pods]
        if kind in DRA_KINDS:
            return self._dra_known(kind)
        if kind in GROUP_KINDS:
            return self._known_groups(kind)
        if kind == "poddisruptionbudgets":
            pairs = [k.split("/", 1) for k in self.policies.pdbs]
            return [{"metadata": {"namespace": ns, "name": n}} for ns, n in pairs]
        names: list[str] = []
        if kind == "nodes":
            names = list(self.snapshot.node_names())
        elif kind == "workloadclasses":
            names = self.policies.class_names()
        elif kind == "gpuquotas":
            names = self.policies.quota_names()
        elif kind == "batchwindows":
            names = list(self.policies.windows)
        elif kind == "namespaces":
            names = list(self.policies.namespace_labels)
        elif kind == RECORDS and isinstance(self.source, RecordSource):
            names = list(self.source.records)
        return [{"metadata": {"name": n}} for n in names]

    # ------------------------------------------------------------------ nodes
    def _on_node(self, deleted: bool, node: dict[str, Any]) -> None:
        name = str((node.get("metadata") or {}).get("name") or "")
        if not name:
            return
        if deleted:
            self._warned_nodes.pop(name, None)
            self._node_facts.pop(name, None)
            self.health_taints.forget(name)
            if name in self.snapshot:
                self.pods.node_removed(name)
                self.changes.add(Change.NODE)
            return
        mapped = mapping.node_info(node, self.source)
        if mapped.problems:
            self._warn_node(node, mapped.problems)
        mapped.value = self._dra_node(mapped.value)  # GPU columns for its DRA devices too
        # Only what the engine reads counts as a change: a status heartbeat wakes no one.
        facts = dataclasses.replace(mapped.value, telemetry=None)
        if name in self.snapshot:
            if self._node_facts.get(name) != facts:
                self.snapshot.update_node(mapped.value)
                self.changes.add(Change.NODE | Change.ROOM, name)
        else:
            self.snapshot.add_node(mapped.value)
            self._dra_node_added(name)
            for rec in self.pods.bound_to(name):
                if rec.node == name:
                    self._charge_bound(rec)
            self.changes.add(Change.ALL & ~Change.POLICY, name)
        self._node_facts[name] = facts
        if mapped.value.telemetry is not None:
            self._telemetry(name, mapped.value.telemetry)
        self._taint(
            self.health_taints.on_node(node, mapped.value.telemetry, self.clock.monotonic())
        )

    def _taint(self, change: TaintChange | None) -> None:
        if change is not None:
            log.info("node health taint", extra=kv(node=change.node, tainted=change.tainted,
                                                    message=change.message))  # fmt: skip
            self.actions.set_node_taints(change)

    def _on_record(self, deleted: bool, obj: dict[str, Any]) -> None:
        """A GPUNodeTelemetry event: the node's telemetry is the record's (bad: no data)."""
        source = self.source
        name = str((obj.get("metadata") or {}).get("name") or "")
        if not name or not isinstance(source, RecordSource):
            return
        parsed = source.on_record(deleted, obj)
        if parsed.problems and source.first_report(name, parsed.problems):
            self.metrics.invalid_objects.labels("GPUNodeTelemetry").inc()
            log.warning("invalid object", extra=kv(kind="GPUNodeTelemetry", name=name,
                        problems="; ".join(parsed.problems)))  # fmt: skip
            note = "ignored (treated as no data): " + "; ".join(parsed.problems)
            self.actions.event(obj, "Warning", "InvalidNodeData", note[:900],
                               kind="GPUNodeTelemetry", api_version=API_VERSION)  # fmt: skip
        if name in self.snapshot:  # else the Node event reads the record through the source
            self._telemetry(name, parsed.value)
            cache = source.caches.get(name)
            if cache is not None:
                self.snapshot.set_cache(name, cache)
            self._follow_node(name, source)
        now = self.clock.monotonic()
        self._taint(self.health_taints.on_telemetry(name, parsed.value, now))

    def _telemetry(self, name: str, telemetry: NodeTelemetry | None) -> None:
        """Set a node's telemetry; a new report is a TELEMETRY change, new sick GPUs HEALTH."""
        snap = self.snapshot
        r = snap.row(name)
        at, sick = float(snap.tele_at[r]), snap.gpu_sick[r].copy()
        snap.set_telemetry(name, telemetry)
        now_at = float(snap.tele_at[r])
        if now_at != at and not math.isnan(now_at):  # a new report (NaN: none)
            self.changes.add(Change.TELEMETRY)
        if not np.array_equal(sick, snap.gpu_sick[r]):
            self.changes.add(Change.HEALTH)

    def _follow_node(self, node: str, source: RecordSource) -> None:
        """Where the node's kubelet says a pod holds other GPUs than charged, follow the node."""
        if node not in source.assignments:
            return
        for placed in self.snapshot.placements_on(node):
            rec = self.pods.get(placed.uid)
            gpus = source.node_gpus(node, placed.namespace, placed.name)
            if rec is None or not gpus or rec.stage not in ("bound", "placed"):
                continue
            member = self.policies.membership(rec.labels, rec.namespace)
            pod = podspec.bound_pod(rec.obj, member.cls, self.policies.tenant(rec.namespace)).value
            old = self.pods.follow_node(rec, pod, gpus)
            if old is None:
                continue
            self.changes.add(Change.ROOM, node)  # the GPUs it was charged are free again
            note = (f"the node's kubelet assigned GPU(s) {','.join(map(str, gpus))}; Ballast had "
                    f"charged {','.join(map(str, old))}: following the node")  # fmt: skip
            log.info("charge follows the node", extra=kv(pod=rec.key, node=node, gpus=gpus,
                                                           was=old))  # fmt: skip
            self.actions.event(rec.obj, "Normal", "GPUAssignmentFromNode", note)

    def _warn_node(self, node: dict[str, Any], problems: list[str]) -> None:
        name = node["metadata"]["name"]
        key = tuple(problems)
        if self._warned_nodes.get(name) == key:
            return
        self._warned_nodes[name] = key
        self._invalid("Node", node, problems, reason="InvalidNodeData",
                      prefix="ignored (treated as no data): ")  # fmt: skip

    def _invalid(self, kind: str, obj: Mapping[str, Any], problems: list[str], *,
                 reason: str = "InvalidObject", prefix: str = "") -> None:  # fmt: skip
        meta = obj.get("metadata") or {}
        self.metrics.invalid_objects.labels(kind).inc()
        log.warning("invalid object", extra=kv(kind=kind, namespace=meta.get("namespace", ""),
                    name=meta.get("name", ""), problems="; ".join(problems)))  # fmt: skip
        self.actions.event(obj, "Warning", reason, prefix + "; ".join(problems)[:900], kind=kind)

    # ------------------------------------------------------------------- pods
    def _on_pod(self, deleted: bool, raw: dict[str, Any]) -> None:
        obj = podspec.slim_pod(raw)
        uid = obj["metadata"]["uid"]
        if not uid:
            return
        if deleted or obj["status"]["phase"] in TERMINAL:
            self._drop_pod(uid)
            return
        old = self.pods.get(uid)
        changed = old is None or old.obj != obj
        rec = self.pods.upsert(obj)
        if obj["spec"]["nodeName"]:
            self._on_bound(rec)
            return
        if (
            obj["spec"]["schedulerName"] != self.config.scheduler_name
            or obj["metadata"]["deletionTimestamp"]
        ):
            self.queue.remove(uid)
            self._end_plan(self.preemptions.cancel(uid))
            rec.stage = "ignored"
            return
        if rec.stage in ("inflight", "placed", "bound"):
            # Our assumption (the bind result or the bound pod will follow), or a
            # pod known bound: nodeName is never unset, so this update was written
            # before the bind (a condition, a label) and reaches us after the bind
            # result. Deciding the pod again would bind it twice.
            return
        if changed:
            rec.view_generation = -1  # labels or requests changed: map again
        if rec.stage in ("new", "ignored") or (
            changed and rec.stage == "parked"  # its labels, tolerations... changed: try again
        ):
            self._enqueue(rec)

    def _drop_pod(self, uid: str) -> None:
        held = self.snapshot.pods.get(uid)
        self.pods.remove(uid)
        if held is not None:
            self.changes.freed(held.node)
        self.queue.remove(uid)
        self._end_plan(self.preemptions.cancel(uid))
        if uid in self.preemptions.victim_of:
            self.preemptions.victim_gone(uid)
            self.changes.add(Change.VICTIMS)

    def _on_bound(self, rec: PodRecord) -> None:
        self.queue.remove(rec.uid)
        self._end_plan(self.preemptions.cancel(rec.uid))
        held = self.snapshot.pods.get(rec.uid)
        if held is not None and held.node == rec.node:
            if rec.stage == "inflight":
                rec.stage = "placed"
            # Its age (minRuntimeSeconds) counts from when the node started it.
            self.snapshot.started(rec.uid, mapping.parse_time(rec.obj["status"]["startTime"]))
            return
        if held is not None:  # bound somewhere else than we assumed: charge where it is
            self.changes.freed(self.pods.forget(rec))
        self._charge_bound(rec)
        self.changes.add(Change.VICTIMS)  # a pod that preemption may take

    def _charge_bound(self, rec: PodRecord) -> None:
        """Count a bound pod's resources (ours after a restart, or another scheduler's)."""
        member = self.policies.membership(rec.labels, rec.namespace)
        tenant = self.policies.tenant(rec.namespace)
        mapped = podspec.bound_pod(rec.obj, member.cls, tenant)
        pod: Pod = mapped.value
        start = mapping.parse_time(rec.obj["status"]["startTime"]) or pod.creation_time
        node_gpus = None
        if isinstance(self.source, RecordSource):
            node_gpus = self.source.node_gpus(rec.node, rec.namespace, rec.name)
        tier = (member.cls or DEFAULT_CLASS).tier
        charge = self.pods.charge_bound(rec, pod, tier, start, node_gpus)
        problems = [*mapped.problems, *(charge.problems if charge else ())]
        if problems:
            self._invalid("Pod", rec.obj, problems, reason="InvalidGPUAssignment")

    def _view(self, rec: PodRecord) -> tuple[ClassPolicy | None, str, str]:
        """The pod's class and engine view, rebuilt when it or the policies changed.

        Returns ``(class, reason, message)``; a non-empty reason means the
        pod cannot be scheduled as it is (unknown or forbidden class, bad request).
        """
        member = self.policies.membership(rec.labels, rec.namespace)
        if member.cls is None:
            rec.pod = None
            return None, member.reason, member.message
        if rec.pod is None or rec.view_generation != self.policies.generation:
            mapped = podspec.engine_pod(
                rec.obj, member.cls if member.class_name else None,
                self.policies.tenant(rec.namespace),
            )  # fmt: skip
            rec.pod = mapped.value
            rec.view_generation = self.policies.generation
            if mapped.value is None:
                return (
                    member.cls,
                    "InvalidRequest",
                    "cannot schedule: " + "; ".join(mapped.problems),
                )
        return member.cls, "", ""

    def _engine_pod(self, raw: Mapping[str, Any]) -> mapping.Mapped:
        """A raw pod as the engine sees it (for the extender): class and tenant resolved."""
        obj = podspec.slim_pod(raw)
        meta = obj["metadata"]
        member = self.policies.membership(meta["labels"], meta["namespace"])
        if member.cls is None:
            return mapping.Mapped(None, [member.message])
        cls = member.cls if member.class_name else None
        return podspec.engine_pod(obj, cls, self.policies.tenant(meta["namespace"]))

    def _enqueue(self, rec: PodRecord) -> None:
        _, reason, message = self._view(rec)
        if reason:
            self._park(rec, reason, message)
        else:
            self.queue.add(rec)
