"""Apply a class's ScaledObjects and judge ``ScalingReady``: the I/O around :mod:`scaling`.

``ScalingReady`` on the WorkloadClass says whether its ``scaling`` is
carried out:

- ``False, KEDANotInstalled``: the API server does not serve
  ``scaledobjects.keda.sh/v1alpha1``; nothing is written.
- ``False, PrometheusNotConfigured``: the operator has no ``--prometheus-url``
  to put in the triggers; nothing is written.
- ``False, ScaledObjectSyncFailed``: an apply or delete failed (retried).
- ``False, ScaledObjectNotReady``: KEDA reports one of them not Ready (its message).
- ``True, NoWorkloads`` / ``True, ScaledObjectsReady``.

Without ``scaling`` the condition is removed, as are the ScaledObjects.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ballast.api.v1alpha1.serving import Scaling
from ballast.api.wellknown import FIELD_MANAGER
from ballast.controller import scaling as logic
from ballast.controller.conditions import Cond, merge_conditions
from ballast.controller.scaling import Workload
from ballast.kube.raw import WORKLOADCLASSES, Kube, KubeError, Resource
from ballast.logs import kv

log = logging.getLogger(__name__)

CONDITION = "ScalingReady"
SCALED_OBJECTS = Resource(logic.KEDA_GROUP, logic.KEDA_VERSION, logic.SCALED_OBJECTS, True)
# The Prometheus KEDA's triggers read. BALLAST_PROMETHEUS_URL is what
# `ballast operator --prometheus-url` sets (the SLO reader's too);
# BALLAST_SCALING_PROMETHEUS_URL wins where KEDA reaches Prometheus at
# another address than the operator does.
ENV_PROMETHEUS_URL = "BALLAST_PROMETHEUS_URL"
ENV_SCALING_PROMETHEUS_URL = "BALLAST_SCALING_PROMETHEUS_URL"
ENV_SCALING = "BALLAST_SCALING"
STATUS_ATTEMPTS = 5
INSTALL_HINT = (
    "install KEDA (https://keda.sh: its CRDs, operator and metrics API server, e.g. the kedacore/"
    "keda Helm chart); the local cluster: `ballast cluster up --keda` (docs/autoscaling.md)"
)


def scaling_enabled() -> bool:
    """Whether the scaling handlers run (``$BALLAST_SCALING`` is not ``off``).

    The Helm chart turns them off with its KEDA switch, and with it the
    operator's rights on workloads and ScaledObjects.
    """
    return os.environ.get(ENV_SCALING, "").strip().lower() not in ("off", "false", "0")


def prometheus_url() -> str | None:
    """The ``serverAddress`` for the triggers, or None when the operator has none."""
    return os.environ.get(ENV_SCALING_PROMETHEUS_URL) or os.environ.get(ENV_PROMETHEUS_URL) or None


def keda_served(kube: Kube) -> bool:
    """Whether the API server serves ``keda.sh/v1alpha1`` ScaledObjects (discovery)."""
    doc = kube.get(f"/apis/{logic.KEDA_GROUP}/{logic.KEDA_VERSION}")
    if doc is None:
        return False
    return any(r.get("name") == logic.SCALED_OBJECTS for r in doc.get("resources") or ())


@dataclass
class Outcome:
    """What one reconciliation did and what the class should say."""

    condition: Cond | None  # None: remove ScalingReady (no scaling)
    plan: logic.Plan = field(default_factory=logic.Plan)
    errors: list[str] = field(default_factory=list)


def _owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    return any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences") or ())


def keda_not_ready(obj: Mapping[str, Any]) -> str | None:
    """KEDA's message when it reports the ScaledObject ``Ready=False``."""
    for c in (obj.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready" and c.get("status") == "False":
            return str(c.get("message") or c.get("reason") or "not ready")
    return None


def sync(
    kube: Kube,
    class_name: str,
    uid: str,
    scaling: Scaling | None,
    workloads: Iterable[Workload],
    server: str | None,
) -> Outcome:
    """Read the class's ScaledObjects, then apply and delete to match.

    Server-side apply under Ballast's field manager; a ScaledObject is
    deleted only by its uid. ``scaling`` None: delete them all.
    """
    if not keda_served(kube):
        if scaling is None:
            return Outcome(None)
        return Outcome(Cond(CONDITION, False, "KEDANotInstalled",
                            f"scaledobjects.keda.sh/v1alpha1 is not served: {INSTALL_HINT}"))  # fmt: skip
    if scaling is not None and not server:
        return Outcome(Cond(CONDITION, False, "PrometheusNotConfigured",
                            "the operator has no Prometheus for the triggers: start it with "
                            "--prometheus-url (docs/autoscaling.md)"))  # fmt: skip
    items = kube.list(SCALED_OBJECTS.path(), labelSelector=logic.owner_selector(class_name))
    actual = {
        logic.key_of(o): o
        for o in items.get("items") or ()
        if scaling is None or _owned_by(o, uid) or not o["metadata"].get("ownerReferences")
    }
    out = Outcome(None)
    out.plan = logic.plan(class_name, uid, scaling, workloads, actual, server or "")
    for desired in out.plan.apply:
        ns, name = logic.key_of(desired)
        try:
            kube.apply(SCALED_OBJECTS.path(name, ns), desired, field_manager=FIELD_MANAGER)
        except KubeError as exc:
            if exc.not_found:  # the namespace is being deleted
                continue
            out.errors.append(f"ScaledObject {ns}/{name}: {exc}")
        else:
            log.info("scaledobject applied", extra=kv(workloadclass=class_name, namespace=ns,
                                                      name=name))  # fmt: skip
    for ns, name in out.plan.delete:
        try:
            kube.delete(
                SCALED_OBJECTS.path(name, ns), uid=actual[(ns, name)]["metadata"].get("uid")
            )
        except KubeError as exc:
            if not exc.conflict:
                out.errors.append(f"ScaledObject {ns}/{name}: {exc}")
        else:
            log.info("scaledobject deleted", extra=kv(workloadclass=class_name, namespace=ns,
                                                      name=name))  # fmt: skip
    if scaling is None:
        return out
    out.condition = _judge(out, actual)
    return out


def _judge(out: Outcome, actual: Mapping[tuple[str, str], Mapping[str, Any]]) -> Cond:
    if out.errors:
        return Cond(CONDITION, False, "ScaledObjectSyncFailed", "; ".join(out.errors)[:1024],
                    progressing=True)  # fmt: skip
    for key in out.plan.keep:
        why = keda_not_ready(actual[key])
        if why is not None:
            return Cond(CONDITION, False, "ScaledObjectNotReady",
                        f"KEDA: ScaledObject {key[0]}/{key[1]}: {why}", progressing=True)  # fmt: skip
    names = sorted([*out.plan.keep, *(logic.key_of(o) for o in out.plan.apply)])
    if not names:
        return Cond(CONDITION, True, "NoWorkloads",
                    "no Deployment or StatefulSet has pods labelled with this class")  # fmt: skip
    shown = ", ".join(f"{ns}/{name}" for ns, name in names[:10])
    more = f" and {len(names) - 10} more" if len(names) > 10 else ""
    return Cond(CONDITION, True, "ScaledObjectsReady",
                f"{len(names)} ScaledObject(s): {shown}{more}")  # fmt: skip


def write_condition(
    kube: Kube, class_name: str, uid: str, want: Cond | None, now: dt.datetime
) -> str | None:
    """Set (or, for None, remove) ``ScalingReady`` over the class's current status.

    Other conditions are kept (resourceVersion precondition). Returns the
    reason the condition had before, or None.
    """
    path = WORKLOADCLASSES.path(class_name)
    for _ in range(STATUS_ATTEMPTS):
        obj = kube.get(path)
        if obj is None or obj["metadata"].get("uid") != uid:
            return None
        status = obj.get("status") or {}
        old_conditions = [dict(c) for c in status.get("conditions") or ()]
        old = next((c for c in old_conditions if c.get("type") == CONDITION), None)
        before = str(old.get("reason") or "") or None if old is not None else None
        if want is None:
            conditions = [c for c in old_conditions if c.get("type") != CONDITION]
        else:
            generation = obj["metadata"].get("generation")
            conditions = merge_conditions(old_conditions, [want], generation=generation, now=now)
        if _by_type(conditions) == _by_type(old_conditions):
            return before
        patch = {
            "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
            "status": {"conditions": conditions},
        }
        try:
            kube.patch(WORKLOADCLASSES.path(class_name, sub="status"), patch)
        except KubeError as exc:
            if exc.conflict:
                continue
            raise
        return before
    raise KubeError(409, "Conflict", f"workloadclass {class_name} kept changing")


def _by_type(conditions: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(c.get("type")): c for c in conditions}
