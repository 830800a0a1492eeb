"""What the platform team declared, as the scheduler uses it: classes, quotas, windows, PDBs.

Fed by the informers for WorkloadClass, GPUQuota, BatchWindow,
PodDisruptionBudget and Namespace. Custom resources are input too: a spec
that the API server accepted can still be one the scheduler cannot use (a
schedule that never fires, a selector that cannot match), so every object is
mapped inside a guard and a broken one becomes a *reason* pods wait with,
never an exception out of the scheduling thread.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ballast import selectors, tenancy
from ballast.api import wellknown as wk
from ballast.logs import kv
from ballast.placement import admission
from ballast.placement.objects import DEFAULT_CLASS, ClassPolicy, DisruptionBudget, WindowState
from ballast.scheduler import mapping
from ballast.windows import InvalidWindow, StateCache, schedule_from_spec

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClassEntry:
    """One WorkloadClass: its policy (None when unusable) and who may use it."""

    policy: ClassPolicy | None
    namespaces: selectors.Selector | None  # None: the selector is unusable, nobody may use it
    problem: str = ""


@dataclass(frozen=True, slots=True)
class WindowEntry:
    """One BatchWindow: its schedule (with its last state), or why it cannot be computed."""

    states: StateCache | None
    problem: str = ""


@dataclass(frozen=True, slots=True)
class Membership:
    """Whether a pod may be scheduled under the class its label names."""

    cls: ClassPolicy | None
    class_name: str
    reason: str = ""  # "", UnknownClass, InvalidClass, ClassNotAllowed
    message: str = ""


class Policies:
    """The declared state, rebuilt incrementally from watch events; pure (no I/O)."""

    def __init__(self) -> None:
        self.classes: dict[str, ClassEntry] = {}
        self.quota_objects: dict[str, Mapping[str, Any]] = {}
        self.quota_set = admission.QuotaSet()
        self.owner_of_ns: dict[str, str] = {}
        self.windows: dict[str, WindowEntry] = {}
        self.pdbs: dict[str, DisruptionBudget] = {}
        self.namespace_labels: dict[str, dict[str, str]] = {}
        # Bumped on every change a waiting pod's engine view depends on.
        self.generation = 0
        # What was last read of each class, quota and window ("kind/name"): an
        # event that changes none of it (a status write) changes nothing here.
        self._read: dict[str, Any] = {}

    def _unchanged(self, kind: str, deleted: bool, obj: Mapping[str, Any], read: Any) -> bool:
        name = str((obj.get("metadata") or {}).get("name") or "")
        key = f"{kind}/{name}"
        if deleted:
            self._read.pop(key, None)
            return False
        if key in self._read and self._read[key] == read:
            return True
        self._read[key] = read
        return False

    # ----------------------------------------------------------------- events
    def on_class(self, deleted: bool, obj: Mapping[str, Any]) -> bool:
        """A WorkloadClass was added, changed or deleted; False when its spec is unchanged."""
        if self._unchanged("class", deleted, obj, obj.get("spec")):
            return False
        name = str((obj.get("metadata") or {}).get("name") or "")
        self.generation += 1
        if deleted:
            self.classes.pop(name, None)
            return True
        spec = obj.get("spec")
        spec = spec if isinstance(spec, Mapping) else {}
        ns_sel, problems = selectors.parse(spec.get("namespaceSelector"))
        try:
            policy: ClassPolicy | None = mapping.class_policy(name, spec)
        except (ValueError, TypeError, ZeroDivisionError, KeyError) as exc:
            policy, problems = None, [*problems, f"spec cannot be used: {exc}"]
        problem = (
            "; ".join(f"namespaceSelector: {p}" for p in problems)
            if ns_sel is None
            else ("; ".join(problems))
        )
        if problem:
            log.warning("workloadclass unusable", extra=kv(workloadclass=name, problem=problem))
        self.classes[name] = ClassEntry(policy, ns_sel, problem)
        return True

    def on_quota(self, deleted: bool, obj: Mapping[str, Any]) -> bool:
        """A GPUQuota was added, changed or deleted; False when nothing read changed."""
        meta = obj.get("metadata") or {}
        if self._unchanged("quota", deleted, obj, (obj.get("spec"), meta.get("creationTimestamp"))):
            return False
        name = str(meta.get("name") or "")
        self.generation += 1
        if deleted:
            self.quota_objects.pop(name, None)
        else:
            self.quota_objects[name] = obj
        claims = [tenancy.QuotaClaim.from_object(o) for o in self.quota_objects.values()]
        self.owner_of_ns = tenancy.owners(claims)
        policies = []
        for qname, q in self.quota_objects.items():
            spec = q.get("spec")
            try:
                policies += mapping.quota_policies(qname, spec if isinstance(spec, Mapping) else {})
            except (ValueError, TypeError) as exc:
                # Unreadable limits: hold the tenant at zero rather than let it run unlimited.
                log.warning("gpuquota unusable", extra=kv(gpuquota=qname, error=exc))
                policies += mapping.quota_policies(qname, {"gpus": 0})
        self.quota_set = admission.QuotaSet(policies)
        return True

    def on_window(self, deleted: bool, obj: Mapping[str, Any], now: dt.datetime) -> bool:
        """A BatchWindow was added, changed or deleted; False when its spec is unchanged."""
        if self._unchanged("window", deleted, obj, obj.get("spec")):
            return False
        name = str((obj.get("metadata") or {}).get("name") or "")
        self.generation += 1
        if deleted:
            self.windows.pop(name, None)
            return True
        spec = obj.get("spec")
        try:
            schedule = schedule_from_spec(spec if isinstance(spec, Mapping) else {}, now)
            entry = WindowEntry(StateCache(schedule))
        except InvalidWindow as exc:
            entry = WindowEntry(None, str(exc))
        except Exception as exc:
            entry = WindowEntry(None, f"schedule cannot be computed: {exc}")
        self.windows[name] = entry
        return True

    def on_pdb(self, deleted: bool, obj: Mapping[str, Any]) -> list[str]:
        """A PodDisruptionBudget changed; returns problems to report."""
        meta = obj.get("metadata") or {}
        key = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        if deleted:
            self.pdbs.pop(key, None)
            return []
        mapped = mapping.disruption_budget(obj)
        self.pdbs[key] = mapped.value
        return mapped.problems

    def on_namespace(self, deleted: bool, obj: Mapping[str, Any]) -> None:
        """A Namespace changed (its labels decide which classes it may use)."""
        meta = obj.get("metadata") or {}
        name = str(meta.get("name") or "")
        labels = mapping.str_map(meta.get("labels"))
        if deleted:
            self.namespace_labels.pop(name, None)
        elif self.namespace_labels.get(name) == labels:
            return
        else:
            self.namespace_labels[name] = labels
        self.generation += 1

    # ---------------------------------------------------------------- queries
    def class_names(self) -> list[str]:
        """Names of the known classes."""
        return list(self.classes)

    def class_policy(self, name: str) -> ClassPolicy:
        """The policy of class ``name`` (the default class when unknown or unusable)."""
        entry = self.classes.get(name)
        return entry.policy if entry is not None and entry.policy is not None else DEFAULT_CLASS

    def membership(self, labels: Mapping[str, str], namespace: str) -> Membership:
        """Which class a pod is scheduled under, or why it may not be."""
        name = labels.get(wk.LABEL_CLASS, "")
        if not name:
            return Membership(DEFAULT_CLASS, "")
        entry = self.classes.get(name)
        if entry is None:
            return Membership(
                None,
                name,
                "UnknownClass",
                f"WorkloadClass {name!r} does not exist; the pod waits until it is created",
            )
        if entry.policy is None or entry.namespaces is None:
            return Membership(
                None,
                name,
                "InvalidClass",
                f"WorkloadClass {name!r} cannot be used: {entry.problem}",
            )
        if not entry.namespaces.empty:
            ns_labels = self.namespace_labels.get(namespace)
            # The namespace's labels plus the one the API server always sets.
            labels_now = {**(ns_labels or {}), "kubernetes.io/metadata.name": namespace}
            if not entry.namespaces.matches(labels_now):
                return Membership(
                    None,
                    name,
                    "ClassNotAllowed",
                    f"namespace {namespace} is not selected by WorkloadClass {name}'s "
                    "namespaceSelector; the pod is not scheduled under that class",
                )
        return Membership(entry.policy, name)

    def tenant(self, namespace: str) -> str:
        """The tenant a namespace is charged to (see :mod:`ballast.tenancy`)."""
        return tenancy.tenant_of(namespace, self.owner_of_ns)

    def quota_names(self) -> list[str]:
        """Names of the known quotas."""
        return list(self.quota_objects)

    def window_problem(self, name: str) -> str:
        """Why window ``name`` cannot be computed ("" when it can or does not exist)."""
        entry = self.windows.get(name)
        return entry.problem if entry is not None else ""

    def window_states(self, now: dt.datetime) -> tuple[dict[str, WindowState], dt.datetime | None]:
        """Each window's state at ``now`` and the earliest next edge among them."""
        out: dict[str, WindowState] = {}
        edge: dt.datetime | None = None
        for name, entry in list(self.windows.items()):
            if entry.states is None:
                out[name] = WindowState(name, False)
                continue
            # Never raises (an error is a closed state); croniter runs once per edge.
            st = entry.states.at(now)
            if st.error is not None:
                self.windows[name] = WindowEntry(None, f"schedule cannot be computed: {st.error}")
                out[name] = WindowState(name, False)
                continue
            nxt = st.next_edge()
            out[name] = WindowState(name, st.open)
            if nxt is not None and (edge is None or nxt < edge):
                edge = nxt
        return out, edge

    def budgets(self) -> list[DisruptionBudget]:
        """Every PodDisruptionBudget."""
        return list(self.pdbs.values())
