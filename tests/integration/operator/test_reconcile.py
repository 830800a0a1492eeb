"""Operator behaviour: conditions for what the schema cannot catch, drift, deletion, restart."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

from kutil import condition, events_for, ready, wait_for

from ballast.kube.raw import (
    BATCHWINDOWS,
    GPUQUOTAS,
    PRIORITY_CLASSES,
    WORKLOADCLASSES,
    Kube,
    Resource,
)
from ballast.windows import schedule_from_spec, state_at


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def wlc(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ballast.dev/v1alpha1",
        "kind": "WorkloadClass",
        "metadata": {"name": name},
        "spec": {"tier": "Nearline", **spec},
    }


def bw(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ballast.dev/v1alpha1",
        "kind": "BatchWindow",
        "metadata": {"name": name},
        "spec": {"schedule": "0 22 * * *", "duration": "8h", **spec},
    }


def pc_of(kube: Kube, name: str) -> dict[str, Any] | None:
    return kube.get(PRIORITY_CLASSES.path(f"ballast-{name}"))


def test_missing_window_reported_then_resolved(operator: object, kube: Kube) -> None:
    cls, window = uniq("nightly"), uniq("win")
    kube.create(WORKLOADCLASSES.path(), wlc(cls, tier="Offline", window=window))
    obj = wait_for(lambda: ready(kube, WORKLOADCLASSES, cls, "False"), what="Ready=False")
    assert condition(obj)["reason"] == "WindowNotFound"  # type: ignore[index]
    assert window in condition(obj)["message"]  # type: ignore[index]
    assert pc_of(kube, cls) is not None  # the PriorityClass does not wait for the window
    kube.create(BATCHWINDOWS.path(), bw(window))
    wait_for(lambda: ready(kube, WORKLOADCLASSES, cls), timeout=30, what="Ready once window exists")


def test_schedule_problems_become_conditions_and_events(operator: object, kube: Kube) -> None:
    cases = {
        uniq("bad-minute"): ({"schedule": "61 * * * *"}, "InvalidSchedule"),
        uniq("never-closes"): (
            {"schedule": "0 * * * *", "duration": "2h"},
            "DurationNotShorterThanPeriod",
        ),
    }
    for name, (spec, _) in cases.items():
        kube.create(BATCHWINDOWS.path(), bw(name, **spec))
    for name, (_, reason) in cases.items():
        obj = wait_for(lambda n=name: ready(kube, BATCHWINDOWS, n, "False"), what=f"{name} invalid")
        assert condition(obj)["reason"] == reason  # type: ignore[index]
        wait_for(
            lambda n=name, r=reason: any(
                e.get("reason") == r for e in events_for(kube, n, "BatchWindow")
            ),
            what=f"{reason} event",
        )


def test_quota_namespace_conflict(operator: object, kube: Kube) -> None:
    ns = uniq("tenant")
    first, second = uniq("quota-a"), uniq("quota-b")
    spec = {"namespaces": [ns], "gpus": 4}
    kube.create(
        GPUQUOTAS.path(),
        {
            "apiVersion": "ballast.dev/v1alpha1",
            "kind": "GPUQuota",
            "metadata": {"name": first},
            "spec": spec,
        },
    )
    wait_for(lambda: ready(kube, GPUQUOTAS, first), what="first quota Ready")
    kube.create(
        GPUQUOTAS.path(),
        {
            "apiVersion": "ballast.dev/v1alpha1",
            "kind": "GPUQuota",
            "metadata": {"name": second},
            "spec": spec,
        },
    )
    obj = wait_for(lambda: ready(kube, GPUQUOTAS, second, "False"), what="conflict reported")
    assert condition(obj)["reason"] == "NamespaceConflict"  # type: ignore[index]
    assert first in condition(obj)["message"]  # type: ignore[index]
    assert ready(kube, GPUQUOTAS, first)  # the first claim stands


def test_batchwindow_status_matches_window_arithmetic(operator: object, kube: Kube) -> None:
    name = uniq("berlin")
    spec = {"schedule": "30 7 * * 1-5", "duration": "90m", "timeZone": "Europe/Berlin"}
    kube.create(BATCHWINDOWS.path(), bw(name, **spec))
    obj = wait_for(lambda: ready(kube, BATCHWINDOWS, name), what="window Ready")
    now = dt.datetime.now(dt.UTC)
    want = state_at(schedule_from_spec(obj["spec"], now), now)
    status = obj["status"]
    assert status["open"] is want.open
    assert status["nextOpen"] == want.next_open.strftime("%Y-%m-%dT%H:%M:%SZ")  # type: ignore[union-attr]


def test_window_status_flips_at_the_edge(operator: object, kube: Kube) -> None:
    # Opens every minute for 20 s: an edge comes within 40 s whatever the time.
    name = uniq("flicker")
    kube.create(BATCHWINDOWS.path(), bw(name, schedule="* * * * *", duration="20s"))
    first = wait_for(lambda: ready(kube, BATCHWINDOWS, name), what="window Ready")["status"]["open"]
    wait_for(
        lambda: (
            (kube.get(BATCHWINDOWS.path(name)) or {}).get("status", {}).get("open") is (not first)
        ),
        timeout=45,
        what="open to flip",
    )
    reason = "WindowClosed" if first else "WindowOpened"
    wait_for(
        lambda: any(e.get("reason") == reason for e in events_for(kube, name, "BatchWindow")),
        what=reason,
    )


def test_drift_is_repaired(operator: object, kube: Kube) -> None:
    name = uniq("drift")
    kube.create(WORKLOADCLASSES.path(), wlc(name, priority=3))
    wait_for(lambda: ready(kube, WORKLOADCLASSES, name), what="Ready")
    path = PRIORITY_CLASSES.path(f"ballast-{name}")
    kube.patch(
        path, {"description": "edited by hand", "metadata": {"labels": {"ballast.dev/owner": None}}}
    )
    wait_for(
        lambda: "managed by Ballast" in (kube.get(path) or {}).get("description", ""),
        timeout=15,
        what="description restored",
    )
    old_uid = kube.get(path)["metadata"]["uid"]  # type: ignore[index]
    kube.delete(path)
    restored = wait_for(
        lambda: (pc := kube.get(path)) and pc["metadata"]["uid"] != old_uid and pc,
        timeout=15,
        what="recreated",
    )
    assert restored["value"] == 200_003


def test_a_class_left_alone_is_not_rewritten_by_the_resync(operator: object, kube: Kube) -> None:
    # The session's operator resyncs every 3 s (conftest). The index's copy of the
    # PriorityClass once read the server's omitted ``globalDefault`` as drift, so every
    # pass re-applied every class's PriorityClass and posted PriorityClassRestored.
    name = uniq("quiet")
    kube.create(WORKLOADCLASSES.path(), wlc(name))
    wait_for(lambda: ready(kube, WORKLOADCLASSES, name), what="Ready")
    time.sleep(10)  # three resync passes
    reasons = [e.get("reason") for e in events_for(kube, name, "WorkloadClass")]
    assert reasons.count("PriorityClassCreated") == 1
    assert "PriorityClassRestored" not in reasons, reasons


def test_priority_change_replaces_priorityclass(operator: object, kube: Kube) -> None:
    name = uniq("bump")
    kube.create(WORKLOADCLASSES.path(), wlc(name, priority=1))
    wait_for(lambda: ready(kube, WORKLOADCLASSES, name), what="Ready")
    kube.patch(WORKLOADCLASSES.path(name), {"spec": {"priority": 9}})
    wait_for(
        lambda: (pc_of(kube, name) or {}).get("value") == 200_009, timeout=20, what="new value"
    )
    obj = wait_for(lambda: ready(kube, WORKLOADCLASSES, name), what="Ready after change")
    assert obj["status"]["priorityValue"] == 200_009
    wait_for(
        lambda: any(
            e.get("reason") == "PriorityClassReplaced"
            for e in events_for(kube, name, "WorkloadClass")
        ),
        what="replace event",
    )


def test_deleting_class_removes_priorityclass(operator: object, kube: Kube) -> None:
    name = uniq("gone")
    kube.create(WORKLOADCLASSES.path(), wlc(name))
    wait_for(lambda: pc_of(kube, name), what="PriorityClass")
    kube.delete(WORKLOADCLASSES.path(name))
    wait_for(lambda: pc_of(kube, name) is None, timeout=30, what="garbage collection")


def finalizers(kube: Kube, res: Resource, name: str) -> list[str] | None:
    """The object's finalizers ([] when none); None when it is gone."""
    obj = kube.get(res.path(name))
    return None if obj is None else list(obj["metadata"].get("finalizers") or [])


def test_slo_classes_and_quotas_carry_no_finalizer(operator: Any, kube: Kube) -> None:
    """The SLO reading and the quota resync are operator loops: deleting never waits for it."""
    cls, quota = uniq("slo-nofin"), uniq("quota-nofin")
    kube.create(WORKLOADCLASSES.path(), wlc(cls, tier="Interactive"))
    kube.create(GPUQUOTAS.path(), {
        "apiVersion": "ballast.dev/v1alpha1", "kind": "GPUQuota",
        "metadata": {"name": quota},
        "spec": {"namespaces": [uniq("tenant")], "gpus": 1},
    })  # fmt: skip
    wait_for(lambda: ready(kube, WORKLOADCLASSES, cls), what="class Ready")
    # An slo added later is read by the operator's SLO loop: SLOMet appears
    # (whatever Prometheus says by now) for the class's new generation.
    kube.patch(WORKLOADCLASSES.path(cls), {"spec": {"slo": {"latencyP95Ms": 500}}})
    obj = wait_for(
        lambda: (o := ready(kube, WORKLOADCLASSES, cls)) and condition(o, "SLOMet") and o,
        timeout=30, what="SLOMet written by the loop",
        explain=lambda: operator.log_tail(20),
    )  # fmt: skip
    slo_met = condition(obj, "SLOMet")
    assert slo_met is not None
    assert slo_met["observedGeneration"] == obj["metadata"]["generation"]
    wait_for(lambda: ready(kube, GPUQUOTAS, quota), what="quota Ready")
    assert finalizers(kube, WORKLOADCLASSES, cls) == []
    assert finalizers(kube, GPUQUOTAS, quota) == []
    # The slo removed: the loop takes SLOMet away.
    kube.patch(WORKLOADCLASSES.path(cls), {"spec": {"slo": None}})
    wait_for(
        lambda: (o := ready(kube, WORKLOADCLASSES, cls)) and condition(o, "SLOMet") is None,
        timeout=30, what="SLOMet removed",
    )  # fmt: skip
    # kopf's finalizer as an older operator (with timers) left it is taken off.
    for res, name in ((WORKLOADCLASSES, cls), (GPUQUOTAS, quota)):
        kube.patch(res.path(name), {"metadata": {"finalizers": ["ballast.dev/finalizer"]}})
        wait_for(lambda r=res, n=name: finalizers(kube, r, n) == [], what=f"{name} released")
    # With the operator stopped, deleting them does not wait for it.
    kube.patch(WORKLOADCLASSES.path(cls), {"spec": {"slo": {"latencyP95Ms": 500}}})
    wait_for(
        lambda: condition(kube.get(WORKLOADCLASSES.path(cls)), "SLOMet"),
        timeout=30, what="SLOMet back",
    )  # fmt: skip
    operator.stop()
    try:
        kube.delete(WORKLOADCLASSES.path(cls))
        kube.delete(GPUQUOTAS.path(quota))
        wait_for(
            lambda: finalizers(kube, WORKLOADCLASSES, cls) is None
            and finalizers(kube, GPUQUOTAS, quota) is None,
            timeout=10, what="both gone without the operator",
        )  # fmt: skip
    finally:
        operator.start()
        time.sleep(1.0)
        assert operator.alive(), operator.log_tail()


def test_restart_mid_reconciliation_converges(operator: Any, kube: Kube) -> None:
    prefix = uniq("restart")
    names = [f"{prefix}-{i}" for i in range(30)]
    for i, n in enumerate(names):
        kube.create(WORKLOADCLASSES.path(), wlc(n, priority=i))
        if i == 10:
            operator.kill()  # in the middle of the burst
    time.sleep(1)
    operator.start()
    for n in names:
        wait_for(lambda n=n: ready(kube, WORKLOADCLASSES, n), timeout=90, what=f"{n} Ready")
    pcs = [
        p
        for p in kube.list(PRIORITY_CLASSES.path())["items"]
        if p["metadata"]["name"].startswith(f"ballast-{prefix}")
    ]
    assert sorted(p["metadata"]["name"] for p in pcs) == sorted(f"ballast-{n}" for n in names)
    for p in pcs:
        assert len(p["metadata"]["ownerReferences"]) == 1
