"""GPU-to-pod attribution: which pod (and container) holds each GPU of the node. Pure.

Two sources, merged by :func:`merge`:

- the kubelet's pod-resources API (:mod:`ballast.agent.podresources`): the
  devices the device plugin actually allocated, the truth on a real node;
- Ballast's own assignment: the ``ballast.dev/gpu-ids`` annotation the
  scheduler writes on the pods it binds (:func:`ballast_pod` reads a pod).

Per pod, the kubelet wins: a pod the kubelet reports with GPUs is
attributed to those GPUs, whatever its annotation says; a mismatch is a
:class:`Conflict`. A pod the kubelet does not report with GPUs (a share of a
GPU through ``ballast.dev/gpu-milli``, or a node without a kubelet socket)
is attributed from its annotation; if the kubelet gave one of those GPUs to
another pod as a whole device, that is a conflict too (the node says the
GPU is taken). Nothing here does I/O or raises on bad input: problems come
back as text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ballast.api import wellknown as wk

POD_RESOURCES = "pod-resources"  # Owner.source: the kubelet said so
BALLAST = "ballast"  # Owner.source: the pod's ballast.dev/gpu-ids said so

# Device-plugin resources whose device ids name whole physical GPUs. A
# time-sliced GPU is advertised as "<id>::<replica>" (and, when renamed, as
# nvidia.com/gpu.shared); MIG devices have MIG UUIDs, not GPU UUIDs, and are
# not attributed to a physical GPU here.
GPU_RESOURCES = (wk.GPU_RESOURCE, f"{wk.GPU_RESOURCE}.shared")
MAX_OWNERS = 32  # per GPU, in the record and the info series
DEFAULT_POD_RESOURCES_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"


@dataclass(frozen=True, slots=True)
class Allocation:
    """Devices of one resource that the kubelet allocated to one container."""

    namespace: str
    pod: str
    container: str
    resource: str
    device_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GPU:
    """One GPU of the node as NVML enumerates it."""

    index: int
    uuid: str


@dataclass(frozen=True, slots=True)
class BallastPod:
    """A pod bound to the node, as far as attribution cares (built by :func:`ballast_pod`)."""

    namespace: str
    name: str
    gpu_ids: tuple[int, ...]
    container: str = ""  # the container that uses the GPUs, when that is unambiguous
    problem: str = ""  # why its annotation was not usable


@dataclass(frozen=True, slots=True, order=True)
class Owner:
    """A container holding (part of) a GPU, and which source said so."""

    namespace: str
    pod: str
    container: str
    source: str


@dataclass(frozen=True, slots=True)
class Conflict:
    """The kubelet and Ballast's annotation disagree about one pod's GPUs."""

    namespace: str
    pod: str
    kubelet: tuple[int, ...]  # GPUs the kubelet gave the pod (empty: none)
    ballast: tuple[int, ...]  # GPUs the pod's ballast.dev/gpu-ids names
    held_by: tuple[str, ...] = ()  # for an annotation-only pod: who the kubelet gave them to

    def describe(self) -> str:
        """One line for the log."""
        if self.held_by:
            return (
                f"{self.namespace}/{self.pod}: {wk.ANNOTATION_GPU_IDS} names GPU(s) "
                f"{_ids(self.ballast)} that the kubelet allocated to {', '.join(self.held_by)}"
            )
        return (
            f"{self.namespace}/{self.pod}: the kubelet allocated GPU(s) {_ids(self.kubelet)}, "
            f"{wk.ANNOTATION_GPU_IDS} says {_ids(self.ballast)}"
        )


@dataclass(frozen=True, slots=True)
class Attribution:
    """Owners per GPU index, the conflicts found, and input that could not be used."""

    owners: Mapping[int, tuple[Owner, ...]]
    conflicts: tuple[Conflict, ...] = ()
    problems: tuple[str, ...] = ()

    def by_uuid(self, gpus: Iterable[GPU]) -> dict[str, tuple[Owner, ...]]:
        """The owners keyed by GPU UUID (what the collector applies to its samples)."""
        return {g.uuid: self.owners[g.index] for g in gpus if g.index in self.owners}


def _ids(ids: Iterable[int]) -> str:
    return ",".join(map(str, ids)) or "none"


def _requests_gpus(container: Mapping[str, Any]) -> bool:
    res = container.get("resources")
    if not isinstance(res, Mapping):
        return False
    for part in ("limits", "requests"):
        values = res.get(part)
        if isinstance(values, Mapping) and str(values.get(wk.GPU_RESOURCE, "0")) not in ("0", ""):
            return True
    return False


def ballast_pod(pod: Mapping[str, Any]) -> BallastPod | None:
    """What attribution needs of a Pod object; None when it carries no ``ballast.dev/gpu-ids``.

    The annotation is validated by the same parser as the scheduler's
    (:func:`ballast.api.wellknown.parse_gpu_ids`); an unusable one gives a
    pod with no GPUs and a ``problem``. The container is the one container
    requesting ``nvidia.com/gpu``, else the pod's only container, else "".
    """
    meta = pod.get("metadata")
    if not isinstance(meta, Mapping):
        return None
    annotations = meta.get("annotations")
    raw = annotations.get(wk.ANNOTATION_GPU_IDS) if isinstance(annotations, Mapping) else None
    if raw is None:
        return None
    namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    parsed = wk.parse_gpu_ids(str(raw))
    spec = pod.get("spec")
    raw_containers = spec.get("containers") if isinstance(spec, Mapping) else None
    containers = [
        c
        for c in (raw_containers if isinstance(raw_containers, list) else ())
        if isinstance(c, Mapping) and isinstance(c.get("name"), str)
    ]
    with_gpus = [c["name"] for c in containers if _requests_gpus(c)]
    if len(with_gpus) == 1:
        container = with_gpus[0]
    elif not with_gpus and len(containers) == 1:
        container = containers[0]["name"]
    else:
        container = ""
    return BallastPod(
        namespace,
        name,
        parsed.value or (),
        container,
        "; ".join(parsed.problems),
    )


def device_index(device_id: str, by_uuid: Mapping[str, int], indices: set[int]) -> int | None:
    """The NVML index a device plugin's device id names, or None.

    A GPU UUID (``GPU-...``, any case) is looked up among the node's GPUs; a
    time-slicing replica suffix (``::<n>``) is ignored; a plain integer is
    an index, accepted when the node has it.
    """
    base = device_id.split("::", 1)[0].strip()
    if base.isascii() and base.isdigit():
        n = int(base)
        return n if n in indices else None
    return by_uuid.get(base.lower())


def kubelet_gpus(
    allocations: Iterable[Allocation], gpus: Sequence[GPU], resources: Sequence[str] = GPU_RESOURCES
) -> tuple[dict[tuple[str, str], dict[int, set[str]]], list[str]]:
    """Per pod (namespace, name): GPU index -> containers, from the kubelet's allocations."""
    by_uuid = {g.uuid.lower(): g.index for g in gpus}
    indices = {g.index for g in gpus}
    out: dict[tuple[str, str], dict[int, set[str]]] = {}
    problems: list[str] = []
    for a in allocations:
        if a.resource not in resources:
            continue
        for dev in a.device_ids:
            index = device_index(dev, by_uuid, indices)
            if index is None:
                problems.append(
                    f"{a.namespace}/{a.pod}: {a.resource} device {dev[:80]!r} "
                    "matches no GPU on this node"
                )
                continue
            out.setdefault((a.namespace, a.pod), {}).setdefault(index, set()).add(a.container)
    return out, problems


def merge(
    kubelet: Iterable[Allocation] | None,
    pods: Iterable[BallastPod] | None,
    gpus: Sequence[GPU],
    resources: Sequence[str] = GPU_RESOURCES,
) -> Attribution:
    """Owners of each GPU from the kubelet (None: not available) and Ballast's annotations.

    See the module docstring for the precedence. GPUs with no owner are
    absent from ``owners``; each GPU's owners are sorted and at most
    ``MAX_OWNERS``.
    """
    indices = {g.index for g in gpus}
    held, problems = kubelet_gpus(kubelet or (), gpus, resources)
    owners: dict[int, set[Owner]] = {}
    for (ns, pod), by_gpu in held.items():
        for index, containers in by_gpu.items():
            for container in containers:
                owners.setdefault(index, set()).add(Owner(ns, pod, container, POD_RESOURCES))
    conflicts: list[Conflict] = []
    for p in pods or ():
        if p.problem:
            problems.append(f"{p.namespace}/{p.name}: {p.problem}")
        claimed = tuple(sorted(i for i in p.gpu_ids if i in indices))
        missing = sorted(set(p.gpu_ids) - indices)
        if missing:
            problems.append(
                f"{p.namespace}/{p.name}: {wk.ANNOTATION_GPU_IDS} names GPU(s) "
                f"{_ids(missing)} that this node does not have"
            )
        kubelet_view = held.get((p.namespace, p.name))
        if kubelet_view is not None:  # the kubelet knows this pod's GPUs: it wins
            got = tuple(sorted(kubelet_view))
            if got != tuple(sorted(p.gpu_ids)) and not p.problem:  # unusable: a problem already
                conflicts.append(Conflict(p.namespace, p.name, got, tuple(sorted(p.gpu_ids))))
            continue
        holders = sorted(
            {
                f"{o.namespace}/{o.pod}"
                for i in claimed
                for o in owners.get(i, ())
                if o.source == POD_RESOURCES
            }
        )
        if holders:  # the node gave these GPUs to someone else as whole devices
            conflicts.append(Conflict(p.namespace, p.name, (), claimed, tuple(holders)))
        for index in claimed:
            owners.setdefault(index, set()).add(Owner(p.namespace, p.name, p.container, BALLAST))
    return Attribution(
        {i: tuple(sorted(os_))[:MAX_OWNERS] for i, os_ in sorted(owners.items())},
        tuple(conflicts),
        tuple(problems),
    )
