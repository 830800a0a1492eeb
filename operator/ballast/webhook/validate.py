"""The validating webhook: which pods of a class are refused, and why (pure).

A pod is refused, with a message naming the field, when:

- it claims a class whose ``namespaceSelector`` does not select its
  namespace (or whose selector cannot be read: nobody may use that class);
- a ``ballast.dev/*`` annotation Ballast reads is malformed
  (``gpu-milli`` not an integer in 1..1000, ``gpu-ids`` not a list of
  distinct GPU indices, ``models``/``datasets`` names with blanks or control
  characters, ``checkpoint-requested-at`` not an RFC 3339 time), or it asks
  for a GPU share and whole GPUs at once;
- it asks for more whole GPUs than the largest node that could ever be in
  the class's pool has (nodes whose ``nvidia.com/gpu.product`` is one of the
  pool's ``gpuProducts`` and whose ``nvidia.com/gpu.memory`` is at least
  ``minGPUMemoryMiB``; pool membership itself changes, so it is not used).

Everything uncertain is allowed with a warning instead: an unknown class
(it may be created next), a namespace or node list the webhook has not read,
a pool no node matches yet (nodes may be added). The scheduler checks the
same things again and is the last line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ballast.api import wellknown as wk
from ballast.scheduler.podspec import GPU_IDS_ANNOTATION, gpu_ids
from ballast.webhook.view import ClassView, NodeView

ANNOTATION_CHECKPOINT = wk.ANNOTATION_CHECKPOINT_REQUEST
KNOWN_ANNOTATIONS = frozenset(
    {
        wk.ANNOTATION_GPU_MILLI,
        wk.ANNOTATION_MODELS,
        wk.ANNOTATION_DATASETS,
        GPU_IDS_ANNOTATION,
        ANNOTATION_CHECKPOINT,
    }
)
MAX_NAME = 253
_BAD_NAME = re.compile(r"[\s\x00-\x1f\x7f]")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")


@dataclass(slots=True)
class Verdict:
    """Denials (the pod is refused when there is one) and warnings."""

    denials: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        """True when nothing was denied."""
        return not self.denials


def _map(raw: Any) -> Mapping[str, Any]:
    return raw if isinstance(raw, Mapping) else {}


def _field(key: str) -> str:
    return f"metadata.annotations[{key}]"


def annotation_problems(annotations: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(denials, warnings) for the ``ballast.dev/*`` annotations of a pod."""
    denials: list[str] = []
    warnings: list[str] = []
    for key, raw in annotations.items():
        if not isinstance(key, str) or not key.startswith(wk.GROUP + "/"):
            continue
        value = raw if isinstance(raw, str) else ""
        if key == wk.ANNOTATION_GPU_MILLI:
            parsed = wk.parse_gpu_milli(value)
            if parsed.problems or not value:
                denials.append(f"{_field(key)}: {value[:32]!r} must be an integer in 1..1000")
        elif key == GPU_IDS_ANNOTATION:
            mapped = gpu_ids({"metadata": {"annotations": {key: value}}})
            if mapped.problems:
                denials.append(
                    f"{_field(key)}: {value[:32]!r} must be a comma-separated list of "
                    "distinct GPU indices (at most 64)"
                )
        elif key in (wk.ANNOTATION_MODELS, wk.ANNOTATION_DATASETS):
            names = value.split(",")
            bad = [n for n in names if not n.strip() or _BAD_NAME.search(n.strip())]
            long = [n for n in names if len(n.strip()) > MAX_NAME]
            if bad or long:
                denials.append(
                    f"{_field(key)}: must be comma-separated names without blanks or "
                    f"control characters, each at most {MAX_NAME} characters "
                    f"(bad: {(bad or long)[0][:32]!r})"
                )
        elif key == ANNOTATION_CHECKPOINT:
            if not _RFC3339.match(value):
                denials.append(f"{_field(key)}: {value[:32]!r} is not an RFC 3339 time")
        else:
            warnings.append(f"{_field(key)}: not an annotation Ballast reads; ignored")
    return denials, warnings


def gpu_request(spec: Mapping[str, Any]) -> tuple[int, list[str]]:
    """Whole GPUs a pod needs at once (containers summed, init containers at their peak)."""
    problems: list[str] = []

    def of(list_name: str) -> list[int]:
        out: list[int] = []
        containers = spec.get(list_name)
        for i, c in enumerate(containers if isinstance(containers, list) else ()):
            res = _map(_map(c).get("resources"))
            n = 0
            for part in ("limits", "requests"):
                raw = _map(res.get(part)).get(wk.GPU_RESOURCE)
                if raw is None:
                    continue
                try:
                    n = int(str(raw))
                    if n < 0:
                        raise ValueError
                except ValueError:
                    problems.append(
                        f"spec.{list_name}[{i}].resources.{part}[{wk.GPU_RESOURCE}]: "
                        f"{str(raw)[:32]!r} is not a whole number of GPUs"
                    )
                break  # limits, when set, are the request of an extended resource
            out.append(n)
        return out

    total = sum(of("containers"))
    init = of("initContainers")
    return max([total, *init]), problems


def eligible(node: NodeView, cls: ClassView) -> bool:
    """Whether ``node`` could ever be in ``cls``'s pool (GPU model and memory)."""
    if cls.gpu_products and node.product not in cls.gpu_products:
        return False
    return not (cls.min_gpu_memory_mib and node.memory_mib < cls.min_gpu_memory_mib)


def _pool_text(cls: ClassView) -> str:
    parts = []
    if cls.gpu_products:
        parts.append("gpuProducts " + ", ".join(cls.gpu_products))
    if cls.min_gpu_memory_mib:
        parts.append(f"minGPUMemoryMiB {cls.min_gpu_memory_mib}")
    return f" ({'; '.join(parts)})" if parts else ""


def capacity_problems(
    gpus: int, milli: int, cls: ClassView | None, nodes: Sequence[NodeView] | None
) -> tuple[list[str], list[str]]:
    """(denials, warnings): a GPU request no node of the class's pool could ever hold."""
    need = gpus or (1 if milli else 0)
    if not need:
        return [], []
    if nodes is None:
        return [], ["the Ballast webhook has not read the nodes yet; GPU capacity not checked"]
    candidates = [n for n in nodes if cls is None or eligible(n, cls)]
    largest = max((n.gpus for n in candidates), default=0)
    what = f"WorkloadClass {cls.name}'s pool{_pool_text(cls)}" if cls else "the cluster"
    if largest == 0:
        return [], [f"no node of {what} has GPUs yet; the pod waits for one"]
    if need > largest:
        return [
            f"spec.containers[*].resources: {need} {wk.GPU_RESOURCE} requested, but the "
            f"largest node of {what} has {largest}; no node could ever run this pod"
        ], []
    return [], []


def pod_verdict(
    pod: Mapping[str, Any],
    namespace: str,
    namespace_labels: Mapping[str, str] | None,
    class_name: str,
    cls: ClassView | None,
    nodes: Sequence[NodeView] | None,
) -> Verdict:
    """Whether ``pod`` (being created in ``namespace``) may exist, and what to tell the user."""
    v = Verdict()
    meta = _map(pod.get("metadata"))
    spec = _map(pod.get("spec"))
    denials, warnings = annotation_problems(_map(meta.get("annotations")))
    v.denials += denials
    v.warnings += warnings
    label = f"metadata.labels[{wk.LABEL_CLASS}]"
    if class_name and cls is None:
        v.warnings.append(
            f"{label}: WorkloadClass {class_name} does not exist; the pod waits until it is created"
        )
    elif cls is not None and cls.namespaces is None:
        v.denials.append(
            f"{label}: WorkloadClass {cls.name} cannot be used: its spec.namespaceSelector "
            f"cannot be read ({'; '.join(cls.problems)})"
        )
    elif cls is not None and cls.namespaces is not None and not cls.namespaces.empty:
        if namespace_labels is None:
            v.warnings.append(f"namespace {namespace} is unknown; namespaceSelector not checked")
        else:
            labels = {**namespace_labels, "kubernetes.io/metadata.name": namespace}
            if not cls.namespaces.matches(labels):
                v.denials.append(
                    f"{label}: namespace {namespace} may not use WorkloadClass {cls.name} "
                    "(its spec.namespaceSelector does not select the namespace)"
                )
    gpus, problems = gpu_request(spec)
    v.denials += problems
    milli = wk.parse_gpu_milli(
        str(_map(meta.get("annotations")).get(wk.ANNOTATION_GPU_MILLI) or "")
    ).value
    if gpus and 0 < milli < 1000:  # a full 1000 is one whole GPU, as the scheduler reads it
        v.denials.append(
            f"{_field(wk.ANNOTATION_GPU_MILLI)}: a GPU share cannot be combined with a "
            f"{wk.GPU_RESOURCE} request"
        )
    if not problems and (cls is not None or not class_name):
        denials, warnings = capacity_problems(gpus, milli, cls, nodes)
        v.denials += denials
        v.warnings += warnings
    return v
