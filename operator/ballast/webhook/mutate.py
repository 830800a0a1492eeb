"""The mutating webhook: what a pod or Job of a class gets filled in (pure).

Pods labelled ``ballast.dev/class`` get:

- ``spec.schedulerName``: Ballast's scheduler (replaced whatever it was: the
  class label is the opt-in to Ballast's placement, quotas and windows);
- ``spec.priorityClassName``: the class's PriorityClass (``ballast-<class>``),
  with ``spec.priority`` and ``spec.preemptionPolicy`` set to what that
  PriorityClass holds (what the API server's Priority admission plugin would
  set, so a re-run of it agrees), or removed when the PriorityClass is not
  known yet, so that the API server fills them in;
- a toleration ``ballast.dev/pool=<pool>:NoSchedule`` when the class names a
  node pool (the taint the node-pool reconciler puts on reserved nodes);
- ``BALLAST_MAX_BATCH_SIZE`` and ``BALLAST_MAX_QUEUE_DELAY_MS`` in every
  container and init container when the class has ``batching``; a variable
  the pod already sets in ``env`` wins and is left alone.

Jobs (batch/v1) labelled with a class (on the Job itself, as the Job window
controller reads it) whose BatchWindow is closed at creation are created
with ``spec.suspend: true`` and the annotation
``ballast.dev/suspended-by-window: <window>``, by which that controller
resumes them when the window opens.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ballast.api import wellknown as wk
from ballast.controller.jobs import ANNOTATION_SUSPENDED_BY
from ballast.webhook.review import pointer
from ballast.webhook.view import ClassView, PriorityClassView
from ballast.windows import InvalidWindow, schedule_from_spec, state_at

ENV_MAX_BATCH_SIZE = "BALLAST_MAX_BATCH_SIZE"
ENV_MAX_QUEUE_DELAY_MS = "BALLAST_MAX_QUEUE_DELAY_MS"
# The annotation the Job window controller (controller/jobs.py) resumes by.
ANNOTATION_SUSPENDED_BY_WINDOW = ANNOTATION_SUSPENDED_BY
POOL_TOLERATION_EFFECT = "NoSchedule"


@dataclass(slots=True)
class Mutation:
    """JSON Patch operations and warnings for the user."""

    ops: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _map(raw: Any) -> Mapping[str, Any]:
    return raw if isinstance(raw, Mapping) else {}


def class_label(obj: Mapping[str, Any]) -> str:
    """The class an object claims by its own ``ballast.dev/class`` label ("" for none).

    A Job's pod template label alone does not count: the Job window
    controller only resumes Jobs labelled themselves, so suspending one
    labelled only in its template would hold it forever.
    """
    name = _map(_map(obj.get("metadata")).get("labels")).get(wk.LABEL_CLASS)
    return name if isinstance(name, str) else ""


def pool_toleration(pool: str) -> dict[str, str]:
    """The toleration of a pool's taint."""
    return {
        "key": wk.TAINT_POOL,
        "operator": "Equal",
        "value": pool,
        "effect": POOL_TOLERATION_EFFECT,
    }


def tolerates(tolerations: Any, pool: str) -> bool:
    """Whether existing tolerations already tolerate ``ballast.dev/pool=<pool>:NoSchedule``."""
    for t in tolerations if isinstance(tolerations, list) else ():
        if not isinstance(t, Mapping):
            continue
        key, op = t.get("key") or "", t.get("operator") or "Equal"
        if key not in ("", wk.TAINT_POOL) or (not key and op != "Exists"):
            continue
        if t.get("effect") not in (None, "", POOL_TOLERATION_EFFECT):
            continue
        if op == "Exists" or t.get("value") == pool:
            return True
    return False


def batching_env(cls: ClassView) -> list[dict[str, str]]:
    """The environment variables of a class's batching contract (none without one)."""
    if cls.batching is None:
        return []
    return [
        {"name": ENV_MAX_BATCH_SIZE, "value": str(cls.batching.max_batch_size)},
        {"name": ENV_MAX_QUEUE_DELAY_MS, "value": str(cls.batching.max_queue_delay_ms)},
    ]


def _env_ops(spec: Mapping[str, Any], env: list[dict[str, str]]) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = []
    for list_name in ("initContainers", "containers"):
        containers = spec.get(list_name)
        for i, c in enumerate(containers if isinstance(containers, list) else ()):
            if not isinstance(c, Mapping):
                continue
            current = c.get("env")
            names = {
                e.get("name")
                for e in (current if isinstance(current, list) else ())
                if isinstance(e, Mapping)
            }
            missing = [e for e in env if e["name"] not in names]
            if not missing:
                continue
            if not isinstance(current, list):
                ops.append(
                    {"op": "add", "path": pointer("spec", list_name, i, "env"), "value": missing}
                )
            else:
                ops += [
                    {"op": "add", "path": pointer("spec", list_name, i, "env", "-"), "value": e}
                    for e in missing
                ]
    return ops


def pod_mutation(
    pod: Mapping[str, Any],
    cls: ClassView,
    priority_class: PriorityClassView | None,
    scheduler_name: str,
) -> Mutation:
    """The patch that makes ``pod`` a well-formed pod of ``cls``; empty when it already is."""
    spec = _map(pod.get("spec"))
    m = Mutation()
    if spec.get("schedulerName") != scheduler_name:
        m.ops.append({"op": "add", "path": "/spec/schedulerName", "value": scheduler_name})
    if spec.get("priorityClassName") != cls.priority_class:
        m.ops.append({"op": "add", "path": "/spec/priorityClassName", "value": cls.priority_class})
    if priority_class is not None:
        if spec.get("priority") != priority_class.value:
            m.ops.append({"op": "add", "path": "/spec/priority", "value": priority_class.value})
        if spec.get("preemptionPolicy") != priority_class.preemption_policy:
            m.ops.append(
                {
                    "op": "add",
                    "path": "/spec/preemptionPolicy",
                    "value": priority_class.preemption_policy,
                }
            )
    else:
        # Resolved by the API server from the new name, as if the pod had named it.
        if spec.get("priority") is not None:
            m.ops.append({"op": "remove", "path": "/spec/priority"})
        if spec.get("preemptionPolicy") is not None:
            m.ops.append({"op": "remove", "path": "/spec/preemptionPolicy"})
        m.warnings.append(
            f"PriorityClass {cls.priority_class} is not known to the Ballast webhook yet; "
            "the API server resolves the pod's priority"
        )
    if cls.pool and not tolerates(spec.get("tolerations"), cls.pool):
        tol = pool_toleration(cls.pool)
        if isinstance(spec.get("tolerations"), list):
            m.ops.append({"op": "add", "path": "/spec/tolerations/-", "value": tol})
        else:
            m.ops.append({"op": "add", "path": "/spec/tolerations", "value": [tol]})
    m.ops += _env_ops(spec, batching_env(cls))
    if cls.problems:
        m.warnings.append(f"WorkloadClass {cls.name}: {'; '.join(cls.problems)}")
    return m


def job_mutation(
    job: Mapping[str, Any],
    cls: ClassView,
    window_spec: Mapping[str, Any] | None,
    now: dt.datetime,
) -> Mutation:
    """Suspend a Job created while its class's window is closed; empty otherwise."""
    m = Mutation()
    if not cls.window:
        return m
    if window_spec is None:
        m.warnings.append(
            f"BatchWindow {cls.window} of WorkloadClass {cls.name} does not exist; "
            "the Job is not suspended (the scheduler holds its pods)"
        )
        return m
    try:
        schedule = schedule_from_spec(window_spec, now)
    except InvalidWindow as exc:
        m.warnings.append(f"BatchWindow {cls.window} cannot be computed ({exc}); not suspended")
        return m
    state = state_at(schedule, now)
    if state.error:
        m.warnings.append(f"BatchWindow {cls.window}: {state.error}; not suspended")
        return m
    if state.open or _map(job.get("spec")).get("suspend") is True:
        return m
    m.ops.append({"op": "add", "path": "/spec/suspend", "value": True})
    meta = _map(job.get("metadata"))
    if isinstance(meta.get("annotations"), Mapping):
        path = pointer("metadata", "annotations", ANNOTATION_SUSPENDED_BY_WINDOW)
        m.ops.append({"op": "add", "path": path, "value": cls.window})
    else:
        m.ops.append(
            {
                "op": "add",
                "path": "/metadata/annotations",
                "value": {ANNOTATION_SUSPENDED_BY_WINDOW: cls.window},
            }
        )
    when = (
        state.next_open.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if state.next_open
        else "unknown"
    )
    m.warnings.append(
        f"created suspended: BatchWindow {cls.window} is closed (next opening {when})"
    )
    return m
