"""Which Kubernetes servers Ballast runs against, checked when a process starts.

Ballast supports the three newest Kubernetes minors (see ``SUPPORTED``; the
local control plane builds the newest, ``make test K8S_VERSION=1.35`` the
oldest). At start, the operator and the scheduler ask the API server for
the API groups they use; a missing one is a clear error that names it and
what needs it, instead of a crash deep inside a watch. A server older than
the oldest supported minor that still serves every API gets a warning.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from ballast.logs import kv

log = logging.getLogger(__name__)

SUPPORTED = ((1, 35), (1, 37))  # oldest and newest minor tested

SCHEDULER_APIS: Mapping[str, str] = {
    "v1": "pods, nodes, namespaces, bindings",
    "coordination.k8s.io/v1": "the leader-election Lease",
    "policy/v1": "PodDisruptionBudgets and the Eviction API",
    "events.k8s.io/v1": "events that explain decisions",
    "ballast.dev/v1alpha1": "Ballast's CRDs (install them: kubectl apply -f crds/)",
}
OPERATOR_APIS: Mapping[str, str] = {
    "v1": "events and namespaces",
    "scheduling.k8s.io/v1": "the PriorityClasses it produces",
    "ballast.dev/v1alpha1": "Ballast's CRDs (install them: kubectl apply -f crds/)",
}


class IncompatibleServer(RuntimeError):
    """The API server lacks an API Ballast needs."""


def _path(group_version: str) -> str:
    return "/api/v1" if group_version == "v1" else f"/apis/{group_version}"


def server_minor(version: Mapping[str, Any]) -> tuple[int, int] | None:
    """``(major, minor)`` from a ``/version`` document (``gitVersion`` wins over ``minor``)."""
    m = re.match(r"v?(\d+)\.(\d+)", str(version.get("gitVersion") or ""))
    if m:
        return int(m.group(1)), int(m.group(2))
    try:
        return int(str(version.get("major"))), int(re.sub(r"\D", "", str(version.get("minor"))))
    except ValueError:
        return None


def serves(get: Callable[[str], dict[str, Any] | None], group_version: str, plural: str) -> bool:
    """Whether the server serves resource ``plural`` in ``group_version`` (its discovery list)."""
    try:
        doc = get(_path(group_version))
    except Exception as exc:  # discovery failing is "not served", not a crash at start
        log.warning("discovery failed", extra=kv(group_version=group_version, error=exc))
        return False
    resources = (doc or {}).get("resources") or []
    return any(isinstance(r, dict) and r.get("name") == plural for r in resources)


def check(get: Callable[[str], dict[str, Any] | None], needs: Mapping[str, str]) -> list[str]:
    """Problems with the server reached through ``get`` (a GET returning None on 404)."""
    problems = [
        f"the API server does not serve {gv} (needed for {why})"
        for gv, why in needs.items()
        if get(_path(gv)) is None
    ]
    return problems


def require(
    get: Callable[[str], dict[str, Any] | None], needs: Mapping[str, str], component: str
) -> None:
    """Raise :class:`IncompatibleServer` naming every missing API; warn on an old server."""
    version = get("/version") or {}
    found = server_minor(version)
    problems = check(get, needs)
    oldest, newest = SUPPORTED
    span = f"v{oldest[0]}.{oldest[1]} to v{newest[0]}.{newest[1]}"
    if problems:
        raise IncompatibleServer(
            f"{component} cannot run against Kubernetes {version.get('gitVersion', '?')}: "
            + "; ".join(problems)
            + f". Ballast supports Kubernetes {span}."
        )
    if found is not None and found < oldest:
        log.warning(
            "kubernetes older than supported",
            extra=kv(server=version.get("gitVersion"), supported=span, component=component),
        )
