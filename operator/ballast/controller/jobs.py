"""Jobs at BatchWindow edges: which field suspends each kind, and what to do now (pure).

Ballast holds the batch Jobs of a windowed class while the window is closed
by setting the kind's suspend field; the kind's own controller (the Job
controller in kube-controller-manager, JobSet's, Kubeflow's training
operator) then deletes the Job's pods and creates none until it is resumed.
What to do is decided here, level-based, from the Job as last seen, the
window's state and the clock; the handler carries it out. Nothing here does
I/O or reads the clock.

Rules (documented in docs/operator.md, "Jobs and batch windows"):

- Only objects that carry the class label ``ballast.dev/class`` themselves
  are touched (a label on the pod template alone is not enough).
- While the window is **open**, a Job Ballast suspended (annotation
  ``ballast.dev/suspended-by-window``) is resumed; a checkpoint request left
  from a close that the window's reopening overtook is withdrawn.
- While it is **closed**, a running Job is dealt with by ``onClose``:
  ``Evict`` suspends it at once; ``Finish`` leaves a Job that has running
  pods alone until they end (nothing new starts: a Job without running pods
  is suspended); ``Checkpoint`` asks its running pods to checkpoint (the
  class's ``preemption.signal``), records the request on the Job, and
  suspends it ``gracePeriodSeconds`` later.
- A Job someone else suspended (no Ballast annotation) is never resumed; a
  finished Job is never touched.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ballast.api.wellknown import ANNOTATION_CHECKPOINT_REQUEST, LABEL_CLASS
from ballast.controller.conditions import rfc3339
from ballast.kube.raw import Resource

# On a Job: the window whose closing made Ballast suspend it. Its presence is
# what lets Ballast resume the Job; a Job suspended without it is the user's.
ANNOTATION_SUSPENDED_BY = "ballast.dev/suspended-by-window"
# On a Job (and its pods): when Ballast asked it to checkpoint at a close. The
# same key and format (RFC 3339, UTC, seconds) as the scheduler's request on
# a preemption victim.
ANNOTATION_CHECKPOINT = ANNOTATION_CHECKPOINT_REQUEST

OnClose = Literal["Finish", "Checkpoint", "Evict"]
Verb = Literal["suspend", "resume", "checkpoint", "withdraw"]


@dataclass(frozen=True, slots=True)
class JobKind:
    """A kind of batch job Ballast can hold: where it lives and where its suspend field is."""

    key: str  # short id, also the suffix of its kopf index
    group: str
    version: str
    plural: str
    kind: str
    suspend_path: tuple[str, ...]
    # Label on the kind's pods naming their owner: ``<label>=<uid or name>``.
    pod_label: str
    pod_label_from: Literal["uid", "name"]

    @property
    def api_version(self) -> str:
        """``group/version`` as written in ``apiVersion``."""
        return f"{self.group}/{self.version}"

    @property
    def resource(self) -> Resource:
        """Where the kind lives in the REST tree."""
        return Resource(self.group, self.version, self.plural, True)

    def pod_selector(self, name: str, uid: str) -> str:
        """Label selector of the pods the job's controller created."""
        return f"{self.pod_label}={uid if self.pod_label_from == 'uid' else name}"

    def suspended(self, obj: Mapping[str, Any]) -> bool:
        """Whether the object's suspend field is true."""
        node: Any = obj
        for part in self.suspend_path:
            if not isinstance(node, Mapping):
                return False
            node = node.get(part)
        return node is True

    def suspend_patch(self, value: bool) -> dict[str, Any]:
        """A merge patch that sets the suspend field to ``value``."""
        patch: dict[str, Any] = {self.suspend_path[-1]: value}
        for part in reversed(self.suspend_path[:-1]):
            patch = {part: patch}
        return patch


_KUBEFLOW_POD_LABEL = "training.kubeflow.org/job-name"


def _kubeflow(plural: str, kind: str) -> JobKind:
    return JobKind(
        plural.removesuffix("s"),
        "kubeflow.org",
        "v1",
        plural,
        kind,
        ("spec", "runPolicy", "suspend"),
        _KUBEFLOW_POD_LABEL,
        "name",
    )


# The one table of kinds and their suspend fields. Kinds whose API is not
# served (CRD not installed) are skipped: the operator watches only what
# discovery finds.
JOB_KINDS: tuple[JobKind, ...] = (
    JobKind(
        "job",
        "batch",
        "v1",
        "jobs",
        "Job",
        ("spec", "suspend"),
        "batch.kubernetes.io/controller-uid",
        "uid",
    ),
    JobKind(
        "jobset",
        "jobset.x-k8s.io",
        "v1alpha2",
        "jobsets",
        "JobSet",
        ("spec", "suspend"),
        "jobset.sigs.k8s.io/jobset-name",
        "name",
    ),
    _kubeflow("pytorchjobs", "PyTorchJob"),
    _kubeflow("tfjobs", "TFJob"),
    _kubeflow("mpijobs", "MPIJob"),
    _kubeflow("xgboostjobs", "XGBoostJob"),
    _kubeflow("paddlejobs", "PaddleJob"),
    _kubeflow("jaxjobs", "JAXJob"),
)
KINDS_BY_KEY: dict[str, JobKind] = {k.key: k for k in JOB_KINDS}


def served_kinds(discovered: Mapping[str, Iterable[str]]) -> tuple[JobKind, ...]:
    """The kinds of the table whose resource discovery lists.

    ``discovered`` maps ``group/version`` to the plural resource names served
    there (a missing group/version means its CRD is not installed).
    """
    return tuple(k for k in JOB_KINDS if k.plural in set(discovered.get(k.api_version, ())))


@dataclass(frozen=True, slots=True)
class JobView:
    """What the decision needs of one job object."""

    kind: str  # JobKind.key
    namespace: str
    name: str
    uid: str
    class_name: str
    resource_version: str
    suspended: bool
    held_by: str | None  # ANNOTATION_SUSPENDED_BY
    checkpoint_at: dt.datetime | None  # ANNOTATION_CHECKPOINT on the job
    finished: bool

    @property
    def key(self) -> str:
        """``kind:namespace/name``, unique across kinds."""
        return f"{self.kind}:{self.namespace}/{self.name}"


def job_view(kind: JobKind, body: Mapping[str, Any]) -> JobView | None:
    """Read a job object; None when it does not carry the class label."""
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    class_name = labels.get(LABEL_CLASS)
    if not isinstance(class_name, str) or not class_name:
        return None
    annotations = meta.get("annotations") or {}
    held = annotations.get(ANNOTATION_SUSPENDED_BY)
    return JobView(
        kind=kind.key,
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        class_name=class_name,
        resource_version=str(meta.get("resourceVersion", "")),
        suspended=kind.suspended(body),
        held_by=held if isinstance(held, str) and held else None,
        checkpoint_at=parse_time(annotations.get(ANNOTATION_CHECKPOINT)),
        finished=_finished(body),
    )


def _finished(body: Mapping[str, Any]) -> bool:
    """Whether a Complete/Succeeded/Failed condition is True (every kind uses one of these)."""
    for c in (body.get("status") or {}).get("conditions") or ():
        if (
            isinstance(c, Mapping)
            and c.get("type") in ("Complete", "Completed", "Succeeded", "Failed")
            and c.get("status") == "True"
        ):
            return True
    return False


def parse_time(value: Any) -> dt.datetime | None:
    """An RFC 3339 annotation value, or None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def running_pods(pods: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """Names of the pods that are bound to a node, not finished and not being deleted."""
    out = []
    for p in pods:
        meta = p.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        if not (p.get("spec") or {}).get("nodeName"):
            continue
        if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        out.append(str(meta.get("name", "")))
    return tuple(sorted(out))


@dataclass(frozen=True, slots=True)
class WindowView:
    """The window as the decision sees it. ``open`` is False when it cannot be computed."""

    name: str
    open: bool
    on_close: OnClose = "Finish"
    grace_seconds: int = 300


@dataclass(frozen=True, slots=True)
class Action:
    """One write: suspend or resume a job, request or withdraw a checkpoint."""

    verb: Verb
    job: JobView
    reason: str  # the event reason
    message: str
    pods: tuple[str, ...] = ()  # checkpoint: pods to annotate (empty when the signal is None)
    stamp: str = ""  # checkpoint: the request time written on the job and its pods


@dataclass
class Plan:
    """What to do for one window now, what it holds, and when to look again at the latest."""

    actions: list[Action] = field(default_factory=list)
    suspended: int = 0
    checkpointing: int = 0
    finishing: int = 0
    wake_at: dt.datetime | None = None

    def counts(self) -> dict[str, int]:
        """The BatchWindow status fields."""
        return {
            "suspendedJobs": self.suspended,
            "checkpointingJobs": self.checkpointing,
            "finishingJobs": self.finishing,
        }

    def _wake(self, at: dt.datetime) -> None:
        self.wake_at = at if self.wake_at is None else min(self.wake_at, at)


def plan(
    window: WindowView,
    jobs: Iterable[JobView],
    running: Mapping[str, tuple[str, ...]],
    signals: Mapping[str, str],
    now: dt.datetime,
) -> Plan:
    """Decide, for every job of the window's classes, what to do at ``now``.

    ``running`` maps ``JobView.key`` to the job's running pods (see
    ``needs_pods``; a job missing from it is taken to have none);
    ``signals`` maps a class name to its ``preemption.signal``.
    """
    out = Plan()
    for job in sorted(jobs, key=lambda j: j.key):
        _decide(out, window, job, running.get(job.key, ()), signals.get(job.class_name), now)
    return out


def needs_pods(window: WindowView, job: JobView) -> bool:
    """Whether the decision for ``job`` depends on its running pods (list them first)."""
    return not window.open and not job.finished and not job.suspended and window.on_close != "Evict"


def _decide(
    out: Plan,
    window: WindowView,
    job: JobView,
    pods: tuple[str, ...],
    signal: str | None,
    now: dt.datetime,
) -> None:
    if job.finished:
        return
    if window.open:
        if job.suspended and job.held_by is not None:
            out.actions.append(
                Action("resume", job, "JobResumed", f"BatchWindow {window.name} opened")
            )
        elif not job.suspended and job.checkpoint_at is not None:
            out.actions.append(
                Action(
                    "withdraw",
                    job,
                    "CheckpointWithdrawn",
                    f"BatchWindow {window.name} opened again before the grace period ended; "
                    "the job keeps running",
                )
            )
        return
    if job.suspended:
        if job.held_by is not None:
            out.suspended += 1
        return
    closed = f"BatchWindow {window.name} is closed"
    if window.on_close == "Evict":
        out.actions.append(Action("suspend", job, "JobSuspended", f"{closed} (onClose Evict)"))
        out.suspended += 1
        return
    if not pods:
        out.actions.append(
            Action("suspend", job, "JobSuspended", f"{closed}; the job has no running pods")
        )
        out.suspended += 1
        return
    if window.on_close == "Finish":
        out.finishing += 1
        return
    grace = dt.timedelta(seconds=window.grace_seconds)
    if job.checkpoint_at is None:
        deadline = now + grace
        notice = signal != "None"
        out.actions.append(
            Action(
                "checkpoint",
                job,
                "CheckpointRequested",
                f"{closed} (onClose Checkpoint): "
                + (f"checkpoint requested from {len(pods)} pod(s), " if notice else "")
                + f"job suspended at {rfc3339(deadline)}",
                pods=pods if notice else (),
                stamp=rfc3339(now),
            )
        )
        out.checkpointing += 1
        out._wake(deadline)
        return
    deadline = job.checkpoint_at + grace
    if now >= deadline:
        out.actions.append(
            Action(
                "suspend",
                job,
                "JobSuspended",
                f"{closed}; the grace period of {window.grace_seconds}s after the checkpoint "
                "request has passed",
            )
        )
        out.suspended += 1
        return
    out.checkpointing += 1
    out._wake(deadline)


def action_patch(kind: JobKind, action: Action, window: str) -> dict[str, Any]:
    """The merge patch that carries out ``action`` on the job (guarded by resourceVersion).

    A conflict (409) means the job changed since it was seen; the next tick
    decides again on the fresh object.
    """
    meta: dict[str, Any] = {"resourceVersion": action.job.resource_version}
    if action.verb == "suspend":
        meta["annotations"] = {ANNOTATION_SUSPENDED_BY: window, ANNOTATION_CHECKPOINT: None}
        return {"metadata": meta, **kind.suspend_patch(True)}
    if action.verb == "resume":
        meta["annotations"] = {ANNOTATION_SUSPENDED_BY: None, ANNOTATION_CHECKPOINT: None}
        return {"metadata": meta, **kind.suspend_patch(False)}
    if action.verb == "checkpoint":
        meta["annotations"] = {ANNOTATION_CHECKPOINT: action.stamp}
        return {"metadata": meta}
    meta["annotations"] = {ANNOTATION_CHECKPOINT: None}
    return {"metadata": meta}


def release(jobs: Iterable[JobView], why: str) -> list[Action]:
    """Resume every job Ballast holds (its class no longer names an existing window)."""
    return [
        Action("resume", j, "JobResumed", why)
        for j in sorted(jobs, key=lambda j: j.key)
        if j.suspended and j.held_by is not None and not j.finished
    ]
