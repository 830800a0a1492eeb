"""The pending queue: tier first, then priority, then age.

Every Interactive pod comes before every Nearline pod, which comes before
every Offline pod; within a tier the class priority, then the pod's own
priority, then the older pod (creation time, then uid for determinism).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from ballast.placement.objects import DEFAULT_CLASS, TIER_RANK, ClassPolicy, Pod

QueueKey = tuple[int, int, int, float, str]


def rank(cls: ClassPolicy, pod_priority: int) -> tuple[int, int, int]:
    """How important a pod is: (tier band, class priority, pod priority); higher wins."""
    return (TIER_RANK[cls.tier], cls.priority, pod_priority)


def queue_key(pod: Pod, cls: ClassPolicy) -> QueueKey:
    """Sort key: smaller comes first."""
    t, c, p = rank(cls, pod.priority)
    return (-t, -c, -p, pod.creation_time, pod.id)


class PendingQueue:
    """Pods waiting for admission and a node, iterated in queue order."""

    def __init__(self, classes: Mapping[str, ClassPolicy] | None = None) -> None:
        self.classes: Mapping[str, ClassPolicy] = dict(classes or {})
        self._pods: dict[str, tuple[QueueKey, Pod]] = {}
        self._order: list[Pod] | None = []

    def __len__(self) -> int:
        return len(self._pods)

    def __contains__(self, uid: object) -> bool:
        return uid in self._pods

    def push(self, pod: Pod) -> None:
        """Add (or re-add) a pod."""
        cls = self.classes.get(pod.class_name, DEFAULT_CLASS)
        self._pods[pod.id] = (queue_key(pod, cls), pod)
        self._order = None

    def remove(self, uid: str) -> Pod | None:
        """Take a pod out (bound or deleted); None when absent."""
        entry = self._pods.pop(uid, None)
        if entry is not None:
            self._order = None
        return entry[1] if entry else None

    def ordered(self) -> list[Pod]:
        """The pods in queue order (a new list; the queue may be changed while iterating it)."""
        if self._order is None:
            self._order = [p for _, p in sorted(self._pods.values(), key=lambda e: e[0])]
        return list(self._order)

    def __iter__(self) -> Iterator[Pod]:
        return iter(self.ordered())

    def pop(self) -> Pod | None:
        """Remove and return the first pod; None when empty."""
        order = self.ordered()
        if not order:
            return None
        self.remove(order[0].id)
        return order[0]
