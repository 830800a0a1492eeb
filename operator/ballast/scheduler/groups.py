"""Pod groups (gangs) at the trust boundary: which group a pod is in, and what the group asks.

Two sources name a group, both namespaced:

- the scheduler-plugins ``PodGroup`` CRD (``scheduling.x-k8s.io/v1alpha1``,
  used by Kubeflow's training operators and many platforms): pods carry the
  label ``scheduling.x-k8s.io/pod-group: <name>``; the group's
  ``spec.minMember`` pods must start together, waiting at most
  ``spec.scheduleTimeoutSeconds`` with places reserved;
- Kubernetes' own ``PodGroup`` (``scheduling.k8s.io``, the Workload API,
  behind the ``GenericWorkload`` feature gate): pods name it in
  ``spec.schedulingGroup.podGroupName``; a ``gang`` scheduling policy's
  ``minCount`` pods must start together (a ``basic`` policy schedules each
  pod alone).

Tenants write pod labels and may write PodGroups: every value is checked
here, and a bad one becomes a reason on the group's pods, never an exception.
Pure (no I/O).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ballast.scheduler.mapping import Mapped

POD_GROUP_LABEL = "scheduling.x-k8s.io/pod-group"
#: Event kinds of the two PodGroup informers (both resources are named ``podgroups``).
PLUGINS_KIND = "podgroups.scheduling.x-k8s.io"
KUBE_KIND = "podgroups.scheduling.k8s.io"
PLUGINS = "x-k8s"
KUBE = "k8s"
#: A group larger than this is a typo or an attack, not a training job.
MAX_MEMBERS = 4096
DEFAULT_TIMEOUT_S = 60.0
MAX_TIMEOUT_S = 86400.0
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)


@dataclass(frozen=True, slots=True)
class GroupKey:
    """One group: where it is defined, its namespace and name."""

    source: str  # PLUGINS | KUBE
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def kind(self) -> str:
        """The PodGroup kind that defines it, for messages."""
        return "PodGroup (scheduling.x-k8s.io)" if self.source == PLUGINS else "PodGroup"


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """What a group asks: ``min_member`` pods start together (``gang`` false: each alone)."""

    min_member: int
    timeout_s: float = DEFAULT_TIMEOUT_S
    gang: bool = True
    within: str = ""  # a node label key: the whole group in one domain of it


def pod_group(obj: Mapping[str, Any]) -> Mapped:
    """The :class:`GroupKey` of a slim pod (None: in no group), with problems.

    The ``scheduling.x-k8s.io/pod-group`` label wins over ``spec.schedulingGroup``
    when both are set: it is an explicit choice, while the Job controller (with
    ``WorkloadWithJob``) gives every Job a PodGroup, a ``basic`` one unless asked.
    """
    meta = obj.get("metadata")
    spec = obj.get("spec")
    meta = meta if isinstance(meta, Mapping) else {}
    spec = spec if isinstance(spec, Mapping) else {}
    ns = str(meta.get("namespace") or "")
    labels = meta.get("labels")
    label = labels.get(POD_GROUP_LABEL) if isinstance(labels, Mapping) else None
    if label is not None:
        if not isinstance(label, str) or not _NAME.match(label):
            return Mapped(
                None, [f"label {POD_GROUP_LABEL}={str(label)[:80]!r} is not a PodGroup name"]
            )
        return Mapped(GroupKey(PLUGINS, ns, label))
    ref = spec.get("schedulingGroup")
    if isinstance(ref, Mapping) and ref.get("podGroupName"):
        name = ref["podGroupName"]
        if isinstance(name, str) and _NAME.match(name):
            return Mapped(GroupKey(KUBE, ns, name))
        return Mapped(None, [f"spec.schedulingGroup.podGroupName {str(name)[:80]!r} is not a name"])
    return Mapped(None)


def _count(raw: Any, what: str, problems: list[str]) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        problems.append(f"{what} must be a whole number, got {str(raw)[:40]!r}")
        return 0
    if not 1 <= raw <= MAX_MEMBERS:
        problems.append(f"{what} must be between 1 and {MAX_MEMBERS}, got {raw}")
        return 0
    return raw


def _timeout(raw: Any, problems: list[str]) -> float:
    if raw is None:
        return DEFAULT_TIMEOUT_S
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_TIMEOUT_S:
        problems.append(
            f"spec.scheduleTimeoutSeconds must be 1..{int(MAX_TIMEOUT_S)}, got {str(raw)[:40]!r}"
        )
        return DEFAULT_TIMEOUT_S
    return float(raw)


def plugins_group(obj: Mapping[str, Any]) -> Mapped:
    """A scheduler-plugins PodGroup → :class:`GroupSpec` (None when unusable), with problems."""
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        return Mapped(None, ["spec is missing"])
    problems: list[str] = []
    n = _count(spec.get("minMember"), "spec.minMember", problems)
    timeout = _timeout(spec.get("scheduleTimeoutSeconds"), problems)
    if not n:
        return Mapped(None, problems)
    return Mapped(GroupSpec(n, timeout), problems)


def kube_group(obj: Mapping[str, Any]) -> Mapped:
    """A Kubernetes PodGroup (scheduling.k8s.io) → :class:`GroupSpec`, with problems."""
    spec = obj.get("spec")
    policy = spec.get("schedulingPolicy") if isinstance(spec, Mapping) else None
    if not isinstance(policy, Mapping):
        return Mapped(None, ["spec.schedulingPolicy is missing"])
    gang = policy.get("gang")
    if isinstance(gang, Mapping):
        problems: list[str] = []
        n = _count(gang.get("minCount"), "spec.schedulingPolicy.gang.minCount", problems)
        within = _topology_key(spec if isinstance(spec, Mapping) else {}, problems)
        return Mapped(GroupSpec(n, within=within) if n else None, problems)
    if isinstance(policy.get("basic"), Mapping):
        return Mapped(GroupSpec(1, gang=False))
    return Mapped(None, ["spec.schedulingPolicy has neither gang nor basic"])


def _topology_key(spec: Mapping[str, Any], problems: list[str]) -> str:
    """``spec.schedulingConstraints.topology[0].key`` ("" when absent or not a label key)."""
    cons = spec.get("schedulingConstraints")
    topo = cons.get("topology") if isinstance(cons, Mapping) else None
    if not isinstance(topo, list) or not topo or not isinstance(topo[0], Mapping):
        return ""
    key = topo[0].get("key")
    if isinstance(key, str) and _LABEL_KEY.match(key):
        return key
    problems.append(
        f"spec.schedulingConstraints.topology[0].key {str(key)[:80]!r} is not a label key"
    )
    return ""


def group_key_of(kind: str, obj: Mapping[str, Any]) -> GroupKey | None:
    """The key of a PodGroup object delivered by the informer of ``kind``."""
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        return None
    ns, name = meta.get("namespace"), meta.get("name")
    if not (isinstance(ns, str) and isinstance(name, str) and ns and name):
        return None
    return GroupKey(PLUGINS if kind == PLUGINS_KIND else KUBE, ns, name)


@dataclass
class Reservation:
    """Places held in the snapshot for a group's members while it waits for the rest."""

    uids: tuple[str, ...]
    nodes: tuple[str, ...]
    expires: float  # monotonic


class GroupBook:
    """Group specs by key, places reserved, and groups whose reservation expired."""

    def __init__(self) -> None:
        self.specs: dict[GroupKey, Mapped] = {}
        # What an event about the PodGroup object needs (kind, version, name, uid).
        self.refs: dict[GroupKey, dict[str, Any]] = {}
        self.reservations: dict[GroupKey, Reservation] = {}
        # After a reservation expires, the group reserves again only once it has
        # more members than it had then (so it cannot hold room forever).
        self.expired_with: dict[GroupKey, int] = {}

    def on_object(self, kind: str, deleted: bool, obj: Mapping[str, Any]) -> GroupKey | None:
        """Apply a PodGroup event; returns the key when what it asks changed."""
        key = group_key_of(kind, obj)
        if key is None:
            return None
        old = self.specs.get(key)
        if deleted:
            self.specs.pop(key, None)
            self.refs.pop(key, None)
            return key if old is not None else None
        meta = obj.get("metadata") or {}
        uid = meta.get("uid") if isinstance(meta, Mapping) else None
        self.refs[key] = {
            "apiVersion": str(obj.get("apiVersion") or ""),
            "metadata": {"namespace": key.namespace, "name": key.name,
                         "uid": uid if isinstance(uid, str) else ""},
        }  # fmt: skip
        new = plugins_group(obj) if kind == PLUGINS_KIND else kube_group(obj)
        if old is not None and old.value == new.value and old.problems == new.problems:
            return None
        self.specs[key] = new
        return key

    def keys(self, kind: str) -> list[GroupKey]:
        """Known groups from the informer of ``kind``."""
        source = PLUGINS if kind == PLUGINS_KIND else KUBE
        return [k for k in self.specs if k.source == source]
