"""The day replay's workload: traces in, timed pods out, compressed; bodies and policy objects."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from ballast.api import wellknown as wk
from ballast.api.v1alpha1.batchwindow import BatchWindow
from ballast.api.v1alpha1.gpuquota import GPUQuota
from ballast.api.v1alpha1.workloadclass import WorkloadClass
from ballast.dayreplay import workload as wl
from ballast.dayreplay.caches import ModelCaches
from ballast.localcluster import kwokstages
from ballast.placement.admission import QuotaSet
from ballast.placement.objects import Pod, QuotaPolicy
from ballast.sim.genai import Job, Model, Workload, classes


def _work() -> Workload:
    serve = Pod(namespace="serving", name="serve-M1-1", uid="s1", class_name="serving", gpus=1,
                cpu_milli=8000, memory_mib=32768, models=("M1",))  # fmt: skip
    batch = Pod(namespace="tenant-G_7", name="batch-G7", uid="b1", class_name="genai-batch",
                gpus=1, models=("M1",))  # fmt: skip
    share = Pod(namespace="research", name="openb-pod-0001-3", uid="bg-3", class_name="research",
                gpu_milli=500, cpu_milli=4000, memory_mib=1024, gpu_products=("T4",))  # fmt: skip
    return Workload(
        jobs=[
            Job(serve, 0.0, None, "serving"),
            Job(batch, 3600.0, 600.0, "batch"),
            Job(share, 7200.0, 1200.0, "background"),
        ],
        removals=[(5400.0, "s1")],
        models={"M1": Model("M1", 4 * 10**9, 20.0)},
        classes=classes(),
        quotas=QuotaSet(
            [QuotaPolicy("tenant-G_7", 4000, cohort="shared", borrowing_limit_milli=4000)]
        ),
        horizon_s=4 * 3600.0,
    )


def test_plan_compresses_every_time_by_the_speedup() -> None:
    cfg = wl.DayConfig(minutes=2, hours=4)  # 4 h in 2 min: 120x
    assert cfg.speedup == 120
    plan = wl.plan(_work(), cfg)
    by_kind = {p.kind: p for p in plan.pods}
    assert [p.kind for p in plan.pods] == ["serving", "batch", "background"]
    assert by_kind["serving"].at_s == 0 and by_kind["serving"].run_s is None
    assert by_kind["serving"].remove_at_s == pytest.approx(5400 / 120)
    assert by_kind["batch"].at_s == pytest.approx(30.0)
    assert by_kind["batch"].run_s == pytest.approx(5.0)
    assert by_kind["background"].run_s == pytest.approx(10.0)
    assert by_kind["background"].gpu_milli == 500 and by_kind["background"].demand_milli == 500
    # Class minimum runtimes shrink with the rest; the background class gets the window.
    assert plan.classes["genai-batch"].preemption.min_runtime_s == pytest.approx(1.0)
    assert plan.classes["research"].preemption.grace_period_s == pytest.approx(30 / 120)
    research = wl.class_body(plan.classes["research"])
    # Whole seconds in the API, the nearest: 0.25 s is 0 (ceil made it 1 s, 4x too long).
    assert research["spec"]["preemption"]["gracePeriodSeconds"] == 0
    assert plan.classes["research"].window == wl.WINDOW
    assert plan.window_open_s == pytest.approx(0.25 * 120)
    assert plan.counts() == {"serving": 1, "batch": 1, "background": 1}


def test_names_and_namespaces_are_dns_labels() -> None:
    plan = wl.plan(_work(), wl.DayConfig())
    for p in plan.pods:
        assert p.name == wl.dns_label(p.name) and len(p.name) <= 63
    assert "tenant-g-7" in plan.namespaces
    assert wl.dns_label("--A_b..C--") == "a-b-c"
    assert wl.dns_label("x" * 100) == "x" * 63
    assert wl.dns_label("__") == "x"
    assert plan.quotas[0].namespace == "tenant-g-7" and plan.quotas[0].gpus == 4


def test_pod_bodies_for_each_scheduler() -> None:
    plan = wl.plan(_work(), wl.DayConfig(minutes=2, hours=4))
    share = next(p for p in plan.pods if p.kind == "background")
    mine = wl.pod_body(share, "ballast", "pc-research", shares=True)
    theirs = wl.pod_body(share, "default-scheduler", "pc-research", shares=False)
    assert mine["metadata"]["annotations"][wk.ANNOTATION_GPU_MILLI] == "500"
    assert wk.GPU_RESOURCE not in mine["spec"]["containers"][0]["resources"]["requests"]
    # Without GPU sharing a share takes a whole GPU.
    assert theirs["spec"]["containers"][0]["resources"]["limits"][wk.GPU_RESOURCE] == "1"
    assert wk.ANNOTATION_GPU_MILLI not in theirs["metadata"]["annotations"]
    for body in (mine, theirs):
        assert body["metadata"]["annotations"][kwokstages.RUN_FOR_ANNOTATION] == "10.000s"
        assert body["metadata"]["labels"][wl.REPLAY_LABEL] == "background"
        assert body["spec"]["priorityClassName"] == "pc-research"
        term = body["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]
        assert term["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == ["T4"]
    serve = wl.pod_body(plan.pods[0], "ballast", None, shares=True)
    assert kwokstages.RUN_FOR_ANNOTATION not in serve["metadata"]["annotations"]
    assert serve["metadata"]["annotations"][wk.ANNOTATION_MODELS] == "M1"
    assert "priorityClassName" not in serve["spec"]


def test_policy_objects_pass_the_api_models() -> None:
    plan = wl.plan(_work(), wl.DayConfig())
    for cls in plan.classes.values():
        WorkloadClass.model_validate({"spec": wl.class_body(cls)["spec"]})
    for q in plan.quotas:
        GPUQuota.model_validate({"spec": wl.quota_body(q)["spec"]})
    BatchWindow.model_validate({"spec": wl.window_body("2026-12-01T10:00:00Z", 300)["spec"]})
    research = wl.class_body(plan.classes["research"])
    assert research["spec"]["window"] == wl.WINDOW
    assert research["spec"]["preemption"]["policy"] == "Never"


def test_the_run_for_stage_reads_the_annotation_the_bodies_carry() -> None:
    docs = [d for d in yaml.safe_load_all(kwokstages.STAGES) if d]
    names = [d["metadata"]["name"] for d in docs]
    assert names == ["pod-ready", "pod-run-for", "pod-complete", "pod-delete"]
    run_for = docs[1]["spec"]
    assert wl.RUN_FOR in run_for["delay"]["durationFrom"]["expressionFrom"]
    assert run_for["next"]["statusTemplate"].strip().endswith("phase: Succeeded")


def test_model_caches_are_lru_per_node() -> None:
    caches = ModelCaches(10)
    sizes, load = {"a": 6, "b": 6, "c": 3}, {"a": 1.0, "b": 2.0, "c": 4.0}
    first = caches.bind("n1", ("a",), sizes, load)
    assert (first.hit, first.load_s, first.changed) == (False, 1.0, True)
    again = caches.bind("n1", ("a",), sizes, load)
    assert (again.hit, again.load_s, again.changed) == (True, 0.0, False)
    assert not caches.bind("n2", ("a",), sizes, load).hit  # caches are per node
    caches.bind("n1", ("b",), sizes, load)  # evicts a (no room for both)
    assert [i.name for i in caches.inventory("n1").items] == ["b"]
    caches.bind("n1", ("c",), sizes, load)
    inv = caches.inventory("n1")
    assert [i.name for i in inv.items] == ["b", "c"] and inv.capacity_bytes == 10


def _write(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_load_reads_any_files_of_the_trace_formats(tmp_path: Path) -> None:
    reqs = _write(
        tmp_path / "req.csv",
        ["gmt_create", "predict_type", "predict_status", "exec_time_seconds", "groupId",
         "checkpoint_model_version_id"],
        [[f"2025-01-01 00:{m:02d}:00", "T", "SUCCEED", 30, f"g{m % 2}", f"m{m % 3}"]
         for m in range(0, 60, 2)],
    )  # fmt: skip
    lat = _write(
        tmp_path / "lat.csv", ["timestamp_anon", "value", "container_ip"], [[0, 15000, "x"]]
    )
    pods = _write(
        tmp_path / "pods.csv",
        ["name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "gpu_spec", "qos",
         "pod_phase", "creation_time", "deletion_time", "scheduled_time"],
        [[f"p{i}", 1000, 1024, 1, 1000, "", "BE", "Running", i * 10, i * 10 + 900, i * 10]
         for i in range(20)],
    )  # fmt: skip
    cfg = wl.DayConfig(minutes=1, hours=1, start_day=0)
    plan = wl.load(wl.TracePaths(reqs, lat, pods), capacity_gpus=8, cfg=cfg)
    counts = plan.counts()
    assert counts.get("background", 0) > 0
    assert counts.get("serving", 0) + counts.get("batch", 0) > 0
    assert all(0 <= p.at_s < cfg.replay_s for p in plan.pods)
    assert all(p.run_s is None or p.run_s > 0 for p in plan.pods)
    assert {m.load_s for m in plan.models.values()} == {15.0}
