"""A tiny day replay through Ballast on the session cluster: the figures match the API server."""

from __future__ import annotations

import io
from typing import Any

from kutil import wait_for
from sutil import gpu_node, wait_ready

from ballast.dayreplay import driver as drv
from ballast.dayreplay import report
from ballast.dayreplay import workload as wl
from ballast.dayreplay.caches import ModelCaches
from ballast.dayreplay.metrics import summarize
from ballast.kube.raw import PODS, WORKLOADCLASSES, Kube
from ballast.placement.objects import ClassPolicy


def test_tiny_replay_is_recorded_as_the_api_server_shows_it(
    operator: Any, scheduler: Any, kube: Kube, namespace: str, tid: str
) -> None:
    product = f"REPLAY-{tid}"
    for i in range(2):
        gpu_node(kube, f"day-{tid}-{i}", test=tid, gpus=2, gpu=(product, 16384))
    wait_ready(kube, tid, 2)
    cls = f"day-{tid}"
    kube.create(WORKLOADCLASSES.path(), wl.class_body(ClassPolicy(cls, "Nearline", 10)))
    pc = wait_for(
        lambda: ((kube.get(WORKLOADCLASSES.path(cls)) or {}).get("status") or {}).get(
            "priorityClassName"
        ),
        what="the class's PriorityClass",
    )

    def pod(
        name: str, gpus: int, at: float, run: float | None, remove: float | None = None
    ) -> wl.ReplayPod:
        kind = "serving" if run is None else "batch"
        return wl.ReplayPod(name, namespace, cls, "Nearline", kind, gpus, 0, 1000, 1024, (),
                            (product,), at, run, remove)  # fmt: skip

    pods = (
        pod("done", 1, 0.0, 3.0),  # completes by the kwok stage
        pod("long", 2, 0.0, 60.0),  # still running at the end
        pod("short", 1, 1.0, 2.0),
        pod("serve", 1, 2.0, None, remove=8.0),  # scaled down by the trace
        pod("huge", 4, 3.0, 2.0),  # asks for more GPUs than a node has
    )
    plan = wl.DayPlan(pods, {cls: ClassPolicy(cls, "Nearline", 10)}, (), {}, 0.0,
                      wl.DayConfig(minutes=0.3, hours=1))  # fmt: skip
    out = io.StringIO()
    outcome = drv.drive(
        kube,
        plan,
        "ballast",
        {cls: pc},
        True,
        ModelCaches(1),
        drv.progress_printer("ballast", 18, out),
    )
    assert "created" in out.getvalue() and outcome.create_errors == 0
    # The recording agrees with what the API server lists.
    assert (outcome.api_pods, outcome.api_bound) == (outcome.recorded_pods, outcome.recorded_bound)
    by = {t.name: t for t in outcome.timelines}
    assert set(by) == {p.name for p in pods}
    api = {p["metadata"]["name"]: p for p in kube.list(PODS.path(namespace=namespace))["items"]}
    for name, t in by.items():  # each pod's recorded state is the API server's
        obj = api.get(name)
        assert (t.end == "removed") == (obj is None), name
        if obj is not None:
            assert (t.end == "completed") == (obj["status"].get("phase") == "Succeeded"), name
            assert (t.bound is not None) == bool(obj["spec"].get("nodeName")), name
    done = by["done"]
    if done.bound is not None and done.bound + 3.0 + 5.0 < outcome.end_s:
        assert done.end == "completed"  # ran its 3 s through the kwok stage, then completed
        assert done.ended is not None and done.ended - done.bound >= 2.0  # not kwok's instant
    assert by["serve"].end == "removed"
    assert by["long"].end == ""
    assert by["huge"].bound is None
    s = summarize(outcome.timelines, 4, outcome.end_s)
    tier = s["tiers"]["Nearline"]
    assert tier["pods"] == 5 and tier["never_placed"] == 5 - tier["placed"] >= 1
    assert tier["queue_wait_p99_s"] >= outcome.end_s - 3.0 - 1.0  # the pod that never fitted
    doc = report.document({}, plan.counts(), {"ballast": s})
    assert doc["queue_wait_p99_s"]["ballast"]["Nearline"] == tier["queue_wait_p99_s"]
