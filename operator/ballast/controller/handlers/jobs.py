"""Job handlers: index class-labelled jobs of every kind in the table, act at window edges.

One kopf index per kind of ``controller.jobs.JOB_KINDS`` (class name → the
job as last seen). kopf resolves each against discovery: a kind whose CRD is
not installed is not watched (kopf logs it once) and its index stays empty,
and it is picked up when the CRD appears. Only objects labelled
``ballast.dev/class`` are indexed.

Every write for a window's jobs is made by that window's daemon
(``handlers/batchwindow.py``) through ``sweep``, so one writer decides per
window; a job event only wakes the daemon of its class's window.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import kopf

from ballast.api.wellknown import API_VERSION, GROUP, LABEL_CLASS, VERSION
from ballast.controller import jobs as logic
from ballast.controller.events import post
from ballast.kube.raw import PODS, Kube, KubeError
from ballast.logs import kv

log = logging.getLogger(__name__)
WLC = (GROUP, VERSION, "workloadclasses")
BW = (GROUP, VERSION, "batchwindows")

# Window name → the event its daemon waits on besides its timer. Module
# state: the operator is one process, and kopf hands handlers copies of memo.
_wakers: dict[str, asyncio.Event] = {}


def index_name(kind: logic.JobKind) -> str:
    """The kopf index (and kwarg) holding jobs of ``kind``."""
    return f"jobs_{kind.key}"


def waker(window: str) -> asyncio.Event:
    """The event that wakes ``window``'s daemon."""
    event = _wakers.get(window)
    if event is None:
        event = _wakers[window] = asyncio.Event()
    return event


def forget(window: str) -> None:
    """Drop the waker of a window whose daemon ended."""
    _wakers.pop(window, None)


def _class_window(indexes: Mapping[str, Any], class_name: str) -> str | None:
    wlc_index: Any = indexes.get("workloadclass_index") or {}
    for entry in wlc_index.get(class_name, ()):
        if not entry["deleting"]:
            window = entry["spec"].get("window")
            return window if isinstance(window, str) else None
    return None


def _register(kind: logic.JobKind) -> None:
    async def index(body: kopf.Body, **_: Any) -> dict[str, logic.JobView]:
        view = logic.job_view(kind, body)
        # An empty result drops the object from the index (None would keep the old value).
        return {} if view is None else {view.class_name: view}

    async def event(labels: kopf.Labels, **kwargs: Any) -> None:
        window = _class_window(kwargs, str(labels.get(LABEL_CLASS, "")))
        if window:
            waker(window).set()

    index.__doc__ = f"class name → {kind.kind}s labelled with it (as last seen)."
    event.__doc__ = f"A {kind.kind} of a windowed class changed: wake its window's daemon."
    filters: dict[str, Any] = {"labels": {LABEL_CLASS: kopf.PRESENT}}
    kopf.index(kind.group, kind.version, kind.plural, id=index_name(kind), **filters)(index)
    kopf.on.event(kind.group, kind.version, kind.plural, id=f"jobs_{kind.key}_event", **filters)(
        event
    )


for _kind in logic.JOB_KINDS:
    _register(_kind)


def jobs_of(indexes: Mapping[str, Any], classes: Iterable[str]) -> list[logic.JobView]:
    """Every indexed job (all kinds) labelled with one of ``classes``."""
    out: list[logic.JobView] = []
    for kind in logic.JOB_KINDS:
        index: Any = indexes.get(index_name(kind)) or {}
        for class_name in classes:
            out.extend(index.get(class_name, ()))
    return out


def window_classes(indexes: Mapping[str, Any], window: str) -> dict[str, Mapping[str, Any]]:
    """Class name → index entry, for the live classes that name ``window``."""
    wlc_index: Any = indexes.get("workloadclass_index") or {}
    return {
        name: entry
        for name, entries in wlc_index.items()
        for entry in entries
        if entry["spec"].get("window") == window and not entry["deleting"]
    }


async def sweep(
    window: str,
    spec: Mapping[str, Any],
    is_open: bool | None,
    memo: Any,
    indexes: Mapping[str, Any],
) -> logic.Plan:
    """Decide and carry out what the window's jobs need now; returns the plan (counts, wake)."""
    classes = window_classes(indexes, window)
    view = logic.WindowView(
        window,
        bool(is_open),
        spec.get("onClose") or "Finish",
        int(spec.get("gracePeriodSeconds", 300) or 0),
    )
    jobs = jobs_of(indexes, classes)
    kube: Kube = memo.kube
    running: dict[str, tuple[str, ...]] = {}
    pods_seen: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        if logic.needs_pods(view, job):
            pods = await asyncio.to_thread(_pods, kube, job)
            pods_seen[job.key] = pods
            running[job.key] = logic.running_pods(pods)
    signals = {
        name: str((entry["spec"].get("preemption") or {}).get("signal") or "CheckpointRequest")
        for name, entry in classes.items()
    }
    plan = logic.plan(view, jobs, running, signals, memo.clock.now())
    for action in plan.actions:
        await asyncio.to_thread(
            carry_out, kube, action, window, pods_seen.get(action.job.key), classes
        )
    return plan


def _pods(kube: Kube, job: logic.JobView) -> list[dict[str, Any]]:
    kind = logic.KINDS_BY_KEY[job.kind]
    try:
        items = kube.list(
            PODS.path(namespace=job.namespace),
            labelSelector=kind.pod_selector(job.name, job.uid),
        )["items"]
    except KubeError as exc:
        log.warning("listing job pods failed", extra=kv(job=job.key, error=exc))
        return []
    return list(items)


def carry_out(
    kube: Kube,
    action: logic.Action,
    window: str,
    pods: list[dict[str, Any]] | None,
    classes: Mapping[str, Mapping[str, Any]],
) -> bool:
    """Write one action (pods first, then the job), then post events on the job and class.

    A conflict or a vanished job is left to the next tick, which decides on
    the fresh object. Never raises.
    """
    job = action.job
    kind = logic.KINDS_BY_KEY[job.kind]
    try:
        if action.verb == "checkpoint":
            _annotate_pods(kube, job, action, pods or [])
        elif action.verb == "withdraw" and job.checkpoint_at is not None:
            _withdraw_pods(kube, job)
        kube.patch(
            kind.resource.path(job.name, job.namespace),
            logic.action_patch(kind, action, window),
        )
    except KubeError as exc:
        level = logging.INFO if exc.conflict or exc.not_found else logging.WARNING
        log.log(level, "job action deferred", extra=kv(job=job.key, verb=action.verb, error=exc))
        return False
    except Exception as exc:  # transport trouble: the next tick retries
        log.warning("job action failed", extra=kv(job=job.key, verb=action.verb, error=exc))
        return False
    log.info("job action", extra=kv(job=job.key, verb=action.verb, window=window))
    job_ref = {
        "apiVersion": kind.api_version,
        "kind": kind.kind,
        "metadata": {"name": job.name, "namespace": job.namespace, "uid": job.uid},
    }
    post(job_ref, "Normal", action.reason, action.message)
    entry = classes.get(job.class_name)
    if entry is not None:
        class_ref = {
            "apiVersion": API_VERSION,
            "kind": "WorkloadClass",
            "metadata": {"name": job.class_name, "uid": entry["uid"]},
        }
        post(class_ref, "Normal", action.reason, f"{kind.kind} {job.namespace}/{job.name}: "
             f"{action.message}")  # fmt: skip
    return True


def _annotate_pods(
    kube: Kube, job: logic.JobView, action: logic.Action, pods: list[dict[str, Any]]
) -> None:
    wanted = set(action.pods)
    for pod in pods:
        meta = pod["metadata"]
        if meta["name"] not in wanted:
            continue
        try:
            kube.patch(
                PODS.path(meta["name"], job.namespace),
                {"metadata": {"annotations": {logic.ANNOTATION_CHECKPOINT: action.stamp}}},
            )
        except KubeError as exc:
            if not exc.not_found:
                raise
            continue
        post(pod, "Normal", "CheckpointRequested", action.message)


def _withdraw_pods(kube: Kube, job: logic.JobView) -> None:
    """Remove the request from the job's pods, only where it is the one Ballast wrote."""
    assert job.checkpoint_at is not None
    stamp = job.checkpoint_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for pod in _pods(kube, job):
        meta = pod["metadata"]
        if (meta.get("annotations") or {}).get(logic.ANNOTATION_CHECKPOINT) != stamp:
            continue
        try:
            kube.patch(
                PODS.path(meta["name"], job.namespace),
                {"metadata": {"annotations": {logic.ANNOTATION_CHECKPOINT: None}}},
            )
        except KubeError as exc:
            if not exc.not_found:
                raise


async def release_class(
    memo: Any, indexes: Mapping[str, Any], class_name: str, why: str, uid: str | None
) -> None:
    """Resume the jobs Ballast holds for a class that no longer names an existing window."""
    actions = logic.release(jobs_of(indexes, [class_name]), why)
    classes = {class_name: {"uid": uid}} if uid else {}
    for action in actions:
        await asyncio.to_thread(carry_out, memo.kube, action, "", None, classes)


async def workloadclass_jobs(
    type: str, name: str, uid: str, spec: kopf.Spec, meta: kopf.Meta, memo: Any, **kwargs: Any
) -> None:
    """A class changed: wake its window's daemon, or release its jobs when it has none."""
    window = spec.get("window") if type != "DELETED" and not meta.get("deletionTimestamp") else None
    bw_index: Any = kwargs.get("batchwindow_index") or {}
    if isinstance(window, str) and window:
        if window in bw_index:
            waker(window).set()
            return
        why = f"BatchWindow {window} does not exist"
    else:
        why = "the class names no BatchWindow" if type != "DELETED" else "the class was deleted"
    await release_class(memo, kwargs, name, why, uid if type != "DELETED" else None)


@kopf.on.event(*BW)
async def batchwindow_jobs(type: str, name: str, memo: Any, **kwargs: Any) -> None:
    """A window was deleted: release the jobs it held."""
    if type != "DELETED":
        return
    for class_name, entry in window_classes(kwargs, name).items():
        await release_class(
            memo, kwargs, class_name, f"BatchWindow {name} was deleted", entry["uid"]
        )
