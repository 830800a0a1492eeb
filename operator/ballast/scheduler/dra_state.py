"""DRA on the scheduling thread: slices, classes and claims in; asks, allocations and holds out.

A mixin of :class:`~ballast.scheduler.core.Scheduler` (like
:mod:`ballast.scheduler.watch`): it shares the scheduler's state. What it
keeps:

- the :class:`~ballast.placement.dra.DeviceTable` (also ``snapshot.dra``):
  every node-local ResourceSlice's devices, mapped onto GPU columns;
- DeviceClasses (their CEL selectors) and ResourceClaims by ``namespace/name``;
- the holds: every allocated claim's devices are charged to the snapshot as
  placements ``claim/<uid>/<device>`` (whoever allocated it), and a claim
  Ballast has just allocated is held tentatively until the claim's own
  update shows the allocation, or the bind fails.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ballast.logs import kv
from ballast.placement import cel
from ballast.placement.dra import HOLD_PREFIX, Allocated, Ask, DeviceTable, Request, hold_pod
from ballast.placement.engine import Decision
from ballast.placement.objects import ClassPolicy, NodeInfo, Pod
from ballast.placement.snapshot import PlacementError, Snapshot
from ballast.scheduler import dra_mapping as dm
from ballast.scheduler.actions import Actions
from ballast.scheduler.dra_writes import ClaimWrite, allocation_body
from ballast.scheduler.hints import Change, Changes
from ballast.scheduler.metrics import SchedulerMetrics
from ballast.scheduler.podcache import PodCache, PodRecord
from ballast.scheduler.schedqueue import SchedulingQueue

log = logging.getLogger(__name__)

DRA_KINDS = ("resourceslices", "deviceclasses", "resourceclaims")
CLAIM_CLASS = ""  # holds are charged to the class of the pod that allocated them


class DraHandlers:
    """Dynamic Resource Allocation state and steps (see the module docstring)."""

    actions: Actions
    snapshot: Snapshot
    pods: PodCache
    queue: SchedulingQueue
    metrics: SchedulerMetrics
    changes: Changes

    if TYPE_CHECKING:

        def _park(self, rec: PodRecord, reason: str, message: str) -> None: ...

        def _invalid(self, kind: str, obj: Mapping[str, Any], problems: list[str], *,
                     reason: str = "InvalidObject", prefix: str = "") -> None: ...  # fmt: skip

    def _dra_init(self) -> None:
        self.dra = DeviceTable()
        self.snapshot.dra = self.dra
        self.dra_claims: dict[str, dm.Claim] = {}
        self.dra_classes: dict[str, tuple[str, ...]] = {}
        self.dra_holds: dict[str, tuple[str, tuple[str, ...]]] = {}  # claim uid → node, keys
        self.dra_tentative: dict[str, str] = {}  # claim uid → pod uid that allocated it
        self.dra_waiting: dict[str, set[str]] = {}  # claim key → pod uids waiting for it
        self.dra_ext: dict[str, NodeInfo] = {}  # node → facts as the Node object gives them
        self._dra_warned: dict[str, str] = {}

    # ----------------------------------------------------------------- events
    def _dra_known(self, kind: str) -> list[dict[str, Any]]:
        """Minimal objects for what is held of ``kind`` (relist pruning)."""
        if kind == "resourceslices":
            return [{"metadata": {"name": n}} for n in self.dra.slices]
        if kind == "deviceclasses":
            return [{"metadata": {"name": n}} for n in self.dra_classes]
        return [{"metadata": {"namespace": c.namespace, "name": c.name, "uid": c.uid}}
                for c in self.dra_claims.values()]  # fmt: skip

    def _dra_event(self, kind: str, deleted: bool, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
        name = str((meta or {}).get("name") or "")
        if not name:
            return
        if kind == "resourceslices":
            self._dra_slice(name, deleted, obj)
        elif kind == "deviceclasses":
            if deleted:
                self.dra_classes.pop(name, None)
            else:
                mapped = dm.device_class(obj)
                self.dra_classes[name] = mapped.value
                if mapped.problems:
                    self._invalid("DeviceClass", obj, mapped.problems)
            self.changes.add(Change.POLICY)
        elif kind == "resourceclaims":
            c = dm.claim(obj)
            self._dra_claim(c, deleted)

    def _dra_slice(self, name: str, deleted: bool, obj: dict[str, Any]) -> None:
        if deleted:
            nodes = self.dra.remove_slice(name)
        else:
            mapped = dm.resource_slice(obj)
            node, devices = mapped.value
            if mapped.problems:
                self.metrics.invalid_objects.labels("ResourceSlice").inc()
                text = "; ".join(mapped.problems)[:900]
                if self._dra_warned.get(f"slice/{name}") != text:
                    self._dra_warned[f"slice/{name}"] = text
                    log.warning("ResourceSlice ignored", extra=kv(name=name, problems=text))
                    self.actions.event(obj, "Warning", "InvalidResourceSlice",
                                       "ignored: " + text, kind="ResourceSlice",
                                       api_version="resource.k8s.io/v1")  # fmt: skip
            nodes = self.dra.set_slice(name, node, devices)
        for node in nodes:
            self._dra_refresh_node(node)

    def _dra_refresh_node(self, node: str) -> None:
        """A node's devices changed: its GPU columns, and the holds on it, again."""
        facts = self.dra_ext.get(node)
        if facts is None or node not in self.snapshot:
            return
        holds = [u for u, (n, _) in self.dra_holds.items() if n == node]
        for uid in holds:
            self._dra_unhold(uid)
        self.snapshot.update_node(self._dra_node(facts))
        for c in self.dra_claims.values():
            if c.uid in holds or (c.allocated and c.node == node):
                self._dra_hold_claim(c)
        self.changes.add(Change.NODE | Change.ROOM, node)

    def _dra_node(self, info: NodeInfo) -> NodeInfo:
        """A node's facts with its DRA GPUs: columns for the larger of both kinds."""
        # Kept without telemetry and cache: a slice change re-applies only the static facts.
        self.dra_ext[info.name] = dataclasses.replace(info, telemetry=None, cache=None)
        self.dra.ext[info.name] = info.gpu_count
        n, mem, product = self.dra.node_facts(info.name)
        if n <= info.gpu_count:
            return info
        return dataclasses.replace(info, gpu_count=n, gpu_memory_mib=info.gpu_memory_mib or mem,
                                   gpu_product=info.gpu_product or product)  # fmt: skip

    def _dra_node_added(self, node: str) -> None:
        """A node (re)appeared: charge the claims allocated on it."""
        for c in self.dra_claims.values():
            if c.allocated and c.node == node:
                self._dra_unhold(c.uid)  # what it held went with the node's old row
                self._dra_hold_claim(c)

    def _dra_claim(self, c: dm.Claim, deleted: bool) -> None:
        if deleted:
            self.dra_claims.pop(c.key, None)
            self.dra_tentative.pop(c.uid, None)
            self._dra_unhold(c.uid)
        else:
            self.dra_claims[c.key] = c
            if c.allocated:
                self.dra_tentative.pop(c.uid, None)
                held = {uid.split("/", 2)[2] for uid in self.dra_holds.get(c.uid, ("", ()))[1]}
                if held != {r.key for r in c.results if self.dra.find(r.key)}:
                    # Not what we hold for it (allocated elsewhere, or changed): follow the claim.
                    self._dra_unhold(c.uid)
                    self._dra_hold_claim(c)
            elif c.uid not in self.dra_tentative:
                self._dra_unhold(c.uid)
        for uid in self.dra_waiting.pop(c.key, set()):
            rec = self.pods.get(uid)
            if rec is not None and rec.uid in self.queue.parked:
                self.queue.unpark([rec])

    # ------------------------------------------------------------------ holds
    def _dra_hold_claim(self, c: dm.Claim) -> None:
        allocs = []
        for r in c.results:
            found = self.dra.find(r.key)
            if found is None:
                continue  # a device Ballast does not model (another driver, a gone slice)
            node, slot = found
            allocs.append(Allocated(r.request, slot.device, slot.milli, slot.column))
        if allocs:
            self._dra_hold(c.uid, c.namespace, c.name, node, allocs, CLAIM_CLASS, "")

    def _dra_hold(self, claim_uid: str, ns: str, name: str, node: str,
                  allocs: list[Allocated], class_name: str, tenant: str) -> None:  # fmt: skip
        self.dra.hold(claim_uid, [a.device.key for a in allocs])
        keys: list[str] = []
        if node in self.snapshot:
            for a in allocs:
                pod = hold_pod(claim_uid, ns, name, a, class_name, tenant)
                if pod.id in self.snapshot.pods:
                    continue
                try:
                    self.snapshot.account(pod, node, (a.column,), a.milli, start_time=0.0)
                    keys.append(pod.id)
                except PlacementError as exc:
                    log.warning("claim device not charged", extra=kv(claim=f"{ns}/{name}",
                                device=a.device.key, error=exc))  # fmt: skip
        self.dra_holds[claim_uid] = (node, tuple(keys))

    def _dra_unhold(self, claim_uid: str) -> None:
        held = self.dra_holds.pop(claim_uid, None)
        self.dra.release(claim_uid)
        if held is None:
            return
        for uid in held[1]:
            if self.snapshot.forget(uid) is not None:
                self.changes.freed(held[0])

    def _dra_bind_failed(self, pod_uid: str) -> None:
        """Our bind failed: tentative allocations of the pod's claims are released."""
        for claim_uid, who in list(self.dra_tentative.items()):
            if who == pod_uid:
                del self.dra_tentative[claim_uid]
                self._dra_unhold(claim_uid)

    # -------------------------------------------------------------- deciding
    def _dra_prepare(self, rec: PodRecord, epod: Pod) -> tuple[Pod, str, str]:
        """The pod as the engine must see it for its claims, or ``(pod, reason, message)``."""
        refs = dm.pod_claims(rec.obj["spec"], rec.obj["status"])
        self.dra.asks.pop(epod.id, None)
        requests: list[Request] = []
        node = ""
        for ref in refs:
            if not ref["claim"]:
                return epod, "WaitingForResourceClaim", (
                    f"waiting for the ResourceClaim of {ref['name']} (template "
                    f"{ref['template']}) to be created")  # fmt: skip
            key = f"{rec.namespace}/{ref['claim']}"
            c = self.dra_claims.get(key)
            if c is None:
                self.dra_waiting.setdefault(key, set()).add(rec.uid)
                return epod, "WaitingForResourceClaim", f"ResourceClaim {key} does not exist yet"
            if c.problems:
                return epod, "InvalidRequest", f"ResourceClaim {key}: " + "; ".join(c.problems)
            if c.allocated:
                if node and c.node and c.node != node:
                    return epod, "Unschedulable", "the pod's claims are allocated on two nodes"
                node = c.node or node
                continue
            for r in c.requests:
                if r.device_class not in self.dra_classes:
                    self.dra_waiting.setdefault(key, set()).add(rec.uid)
                    return epod, "UnknownDeviceClass", (
                        f"ResourceClaim {key} request {r.name}: DeviceClass "
                        f"{r.device_class!r} does not exist")  # fmt: skip
                selectors = (*self.dra_classes[r.device_class], *r.selectors)
                for expr in selectors:
                    error = cel.compile_error(expr)
                    if error:
                        where = (f"DeviceClass {r.device_class}" if expr not in r.selectors
                                 else f"ResourceClaim {key} request {r.name}")  # fmt: skip
                        self._dra_bad_selector(rec, f"{where}: {error}")
                        return epod, "InvalidDeviceSelector", f"{where}: {error}"
                requests.append(Request(c.uid, key, r.name, selectors, r.count))
        if not refs:
            return epod, "", ""
        mig, milli, problem = self.dra.shape(tuple(requests))
        if problem:
            return epod, "InvalidRequest", problem
        ask = Ask(tuple(requests), node, mig, milli)
        count = sum(r.count for r in requests)
        pod = dataclasses.replace(
            epod, gpus=0 if mig else count, gpu_milli=milli if mig else 0,
            node_selector={**epod.node_selector, "kubernetes.io/hostname": node}
            if node else epod.node_selector,
        )  # fmt: skip
        if requests:
            self.dra.asks[pod.id] = ask
        return pod, "", ""

    def _dra_bad_selector(self, rec: PodRecord, text: str) -> None:
        if self._dra_warned.get(rec.uid) == text:
            return
        self._dra_warned[rec.uid] = text
        self.metrics.invalid_objects.labels("ResourceClaim").inc()
        self.actions.event(rec.obj, "Warning", "InvalidDeviceSelector", text[:900])

    def _dra_unschedulable(self, epod: Pod, decision: Decision) -> str:
        """The reason a pod with claims found no node, naming the claims' devices."""
        ask = self.dra.asks.pop(epod.id, None)
        if ask is None:
            return ""
        return f"{decision.summary()}; {self.dra.explain(ask.requests)}"

    def _dra_commit(self, rec: PodRecord, epod: Pod, d: Decision, cls: ClassPolicy) -> (
        tuple[Pod, list[ClaimWrite]] | str
    ):  # fmt: skip
        """Devices for the pod's claims on the chosen node, held at once; or why not."""
        assert d.node is not None
        refs = dm.pod_claims(rec.obj["spec"], rec.obj["status"])
        ask = self.dra.asks.pop(epod.id, None)
        writes: list[ClaimWrite] = []
        allocs: list[Allocated] = []
        if ask is not None and ask.requests:
            free = self.snapshot.usable_free(self.snapshot.known_sick())
            got = self.dra.allocate(ask, d.node, d.gpus, free[self.snapshot.row(d.node)])
            if isinstance(got, str):
                return got
            allocs = got
        now = self.actions.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        for ref in refs:
            c = self.dra_claims[f"{rec.namespace}/{ref['claim']}"]
            if c.allocated:
                writes.append(ClaimWrite(c.namespace, c.name, c.uid, None))
                continue
            mine = [a for a in allocs if a.claim_uid == c.uid]
            results = [{"request": a.request, "driver": a.device.driver, "pool": a.device.pool,
                        "device": a.device.name} for a in mine]  # fmt: skip
            writes.append(ClaimWrite(c.namespace, c.name, c.uid,
                                     allocation_body(d.node, results, now),
                                     c.resource_version))  # fmt: skip
            self._dra_hold(c.uid, c.namespace, c.name, d.node, mine, cls.name, epod.tenant)
            self.dra_tentative[c.uid] = rec.uid
        return dataclasses.replace(epod, gpus=0, gpu_milli=0), writes


def is_hold(uid: str) -> bool:
    """Whether a snapshot placement is a claim's device hold, not a pod."""
    return uid.startswith(HOLD_PREFIX)
