"""Informers for the PodGroup kinds the API server serves (both resources are ``podgroups``).

The scheduler watches scheduler-plugins' ``scheduling.x-k8s.io/v1alpha1``
PodGroups when that CRD is installed, and Kubernetes' own
``scheduling.k8s.io`` PodGroups (the Workload API) at the newest version the
server serves. Their events reach the scheduling thread under distinct kinds
(:data:`~ballast.scheduler.groups.PLUGINS_KIND`, ``KUBE_KIND``).
"""

from __future__ import annotations

import logging
import queue
from typing import Any

from ballast.kube import compat
from ballast.kube.raw import Kube, Resource
from ballast.logs import kv
from ballast.scheduler.groups import KUBE_KIND, PLUGINS_KIND
from ballast.scheduler.informer import Event, Informer

log = logging.getLogger(__name__)

PLUGINS_PODGROUPS = Resource("scheduling.x-k8s.io", "v1alpha1", "podgroups", True)
#: Newest first: the first the server serves is watched.
KUBE_VERSIONS = ("v1", "v1beta1", "v1alpha3", "v1alpha2")


class _Renamed(queue.Queue[Event]):
    """Hands events on to ``out`` under another kind name."""

    def __init__(self, out: queue.Queue[Event], kind: str) -> None:
        super().__init__()
        self.target = out
        self.kind = kind

    def put(self, item: Event, block: bool = True, timeout: float | None = None) -> None:
        self.target.put(Event(self.kind, item.type, item.obj), block, timeout)


def served_group_resources(kube: Kube) -> dict[str, Resource]:
    """PodGroup resources the server serves, by the event kind they are delivered as."""
    out: dict[str, Resource] = {}
    if compat.serves(kube.get, "scheduling.x-k8s.io/v1alpha1", "podgroups"):
        out[PLUGINS_KIND] = PLUGINS_PODGROUPS
    for version in KUBE_VERSIONS:
        if compat.serves(kube.get, f"scheduling.k8s.io/{version}", "podgroups"):
            out[KUBE_KIND] = Resource("scheduling.k8s.io", version, "podgroups", True)
            break
    return out


def group_informers(kube: Kube, events: queue.Queue[Event], required: set[str]) -> list[Any]:
    """Informers for the served PodGroup kinds; each kind joins ``required`` (must list once)."""
    informers: list[Any] = []
    served = served_group_resources(kube)
    for kind, res in served.items():
        informers.append(Informer(kube, res, _Renamed(events, kind)))
        required.add(kind)
    log.info("pod groups", extra=kv(watched=",".join(f"{r.group}/{r.version}" for r in
                                                     served.values()) or "none"))  # fmt: skip
    return informers
