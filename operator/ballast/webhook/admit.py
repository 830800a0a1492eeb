"""One AdmissionReview in, one out: the routes the server exposes, over the pure rules.

I/O is injected: namespace labels come from the view, or from
``lookup_namespace`` when the watch has not delivered a namespace created a
moment ago.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

from ballast.logs import kv
from ballast.webhook import mutate, validate
from ballast.webhook.review import request_of, response
from ballast.webhook.view import ClusterView

log = logging.getLogger(__name__)

PATH_MUTATE_PODS = "/mutate/pods"
PATH_MUTATE_JOBS = "/mutate/jobs"
PATH_VALIDATE_PODS = "/validate/pods"
PATHS = (PATH_MUTATE_PODS, PATH_MUTATE_JOBS, PATH_VALIDATE_PODS)

NamespaceLookup = Callable[[str], "dict[str, str] | None"]


def _map(raw: Any) -> Mapping[str, Any]:
    return raw if isinstance(raw, Mapping) else {}


def _who(request: Mapping[str, Any]) -> dict[str, Any]:
    obj = _map(request.get("object"))
    meta = _map(obj.get("metadata"))
    return {
        "namespace": request.get("namespace") or meta.get("namespace") or "",
        "name": request.get("name") or meta.get("name") or meta.get("generateName") or "",
    }


def mutate_pod(
    request: Mapping[str, Any], view: ClusterView, scheduler_name: str
) -> dict[str, Any]:
    """Fill in schedulerName, priority, pool toleration and batching env."""
    pod = _map(request.get("object"))
    name = mutate.class_label(pod)
    uid = str(request["uid"])
    if not name:
        return response(uid)
    cls = view.cls(name)
    if cls is None:
        # Still Ballast's: the scheduler holds it (UnknownClass) until the class exists.
        ops = []
        if _map(pod.get("spec")).get("schedulerName") != scheduler_name:
            ops.append({"op": "add", "path": "/spec/schedulerName", "value": scheduler_name})
        return response(
            uid, patch=ops, warnings=[f"WorkloadClass {name} does not exist; the pod waits for it"]
        )
    m = mutate.pod_mutation(pod, cls, view.priority_class(cls.priority_class), scheduler_name)
    log.info(
        "pod mutated",
        extra=kv(
            **_who(request), workloadclass=name, ops=len(m.ops), dry_run=request.get("dryRun")
        ),
    )
    return response(uid, patch=m.ops, warnings=m.warnings)


def mutate_job(request: Mapping[str, Any], view: ClusterView, now: dt.datetime) -> dict[str, Any]:
    """Create a Job suspended when its class's window is closed."""
    job = _map(request.get("object"))
    name = mutate.class_label(job)
    uid = str(request["uid"])
    cls = view.cls(name) if name else None
    if cls is None:
        return response(uid)
    m = mutate.job_mutation(job, cls, view.window_spec(cls.window) if cls.window else None, now)
    if m.ops:
        log.info(
            "job created suspended",
            extra=kv(**_who(request), workloadclass=name, window=cls.window),
        )
    return response(uid, patch=m.ops, warnings=m.warnings)


def validate_pod(
    request: Mapping[str, Any], view: ClusterView, lookup_namespace: NamespaceLookup
) -> dict[str, Any]:
    """Refuse pods a class's namespace may not use, malformed annotations, impossible requests."""
    pod = _map(request.get("object"))
    uid = str(request["uid"])
    who = _who(request)
    namespace = str(who["namespace"])
    name = mutate.class_label(pod)
    cls = view.cls(name) if name else None
    labels = view.namespace_labels(namespace)
    if (
        labels is None
        and cls is not None
        and cls.namespaces is not None
        and not cls.namespaces.empty
    ):
        labels = lookup_namespace(namespace)
    verdict = validate.pod_verdict(pod, namespace, labels, name, cls, view.node_list())
    if not verdict.allowed:
        log.info("pod refused", extra=kv(**who, workloadclass=name, why="; ".join(verdict.denials)))
        return response(
            uid, allowed=False, message="; ".join(verdict.denials), warnings=verdict.warnings
        )
    return response(uid, warnings=verdict.warnings)


def admit(
    path: str,
    review: Any,
    view: ClusterView,
    *,
    scheduler_name: str,
    now: dt.datetime,
    lookup_namespace: NamespaceLookup,
) -> dict[str, Any]:
    """The AdmissionReview answering ``review`` posted to ``path``.

    Raises ``review.BadReview`` for a body that is not an AdmissionReview and
    ``KeyError`` for an unknown path; a rule that fails unexpectedly allows
    the request with a warning (the scheduler re-checks everything).
    """
    request = request_of(review)
    try:
        if path == PATH_MUTATE_PODS:
            return mutate_pod(request, view, scheduler_name)
        if path == PATH_MUTATE_JOBS:
            return mutate_job(request, view, now)
        if path == PATH_VALIDATE_PODS:
            return validate_pod(request, view, lookup_namespace)
    except Exception as exc:  # a bug must not block workloads: allow, say so, log it
        log.exception("admission rule failed", extra=kv(path=path, **_who(request)))
        return response(str(request["uid"]), warnings=[f"Ballast webhook error: {exc}"])
    raise KeyError(path)
