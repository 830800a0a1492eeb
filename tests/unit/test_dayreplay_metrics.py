"""The day replay's figures from recorded pod timelines, and the report built on them."""

from __future__ import annotations

import io
from pathlib import Path

import orjson

from ballast.dayreplay import report
from ballast.dayreplay.driver import Recorder, progress_printer
from ballast.dayreplay.metrics import Timeline, allocation_series, percentile, summarize
from ballast.dayreplay.workload import REPLAY_LABEL
from ballast.placement.objects import ClassPolicy, PreemptionPolicy


def tl(name: str, tier: str, created: float, bound: float | None, ended: float | None = None,
       end: str = "", milli: int = 1000, **kw: object) -> Timeline:  # fmt: skip
    return Timeline(name, "ns", "kind", tier, milli, created, bound, "n1" if bound is not None else None,
                    ended, end, **kw)  # type: ignore[arg-type]  # fmt: skip


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 99) == 3.0
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 99) == 99.0
    assert percentile([1.0, 2.0], 50) == 1.0


def test_queue_waits_per_tier_count_never_placed_pods_until_the_end() -> None:
    pods = [
        tl("a", "Interactive", 0, 1),
        tl("b", "Interactive", 2, 5),
        tl("c", "Offline", 0, None),  # never placed: waits until the end (10 s)
        tl("d", "Offline", 4, None, ended=6, end="removed"),  # removed while waiting: 2 s
    ]
    s = summarize(pods, capacity_gpus=2, end_s=10)
    inter, off = s["tiers"]["Interactive"], s["tiers"]["Offline"]
    assert (inter["queue_wait_p50_s"], inter["queue_wait_p99_s"]) == (1, 3)
    assert (off["placed"], off["never_placed"], off["queue_wait_p99_s"]) == (0, 2, 10)
    assert (
        s["tiers"]["Nearline"]["pods"] == 0 and s["tiers"]["Nearline"]["queue_wait_p50_s"] is None
    )
    assert s["never_placed"] == 2 and s["placed"] == 2


def test_preemptions_quota_waits_window_holds_and_caches() -> None:
    pods = [
        tl("a", "Offline", 0, 0, ended=3, end="preempted", reasons={"WindowClosed"}),
        tl(
            "b",
            "Nearline",
            0,
            2,
            reasons={"QuotaExceeded"},
            models=("m",),
            cache_hit=False,
            cold_start_s=20.0,
        ),
        tl("c", "Interactive", 1, 1.5, models=("m",), cache_hit=True),
        tl("d", "Interactive", 1, None, models=("m",)),  # not placed: no cache figure
    ]
    s = summarize(pods, capacity_gpus=4, end_s=4)
    assert s["tiers"]["Offline"]["preempted"] == 1 and s["preemptions"] == 1
    assert s["quota_waits"] == 1 and s["tiers"]["Nearline"]["quota_waits"] == 1
    assert s["window_holds"] == 1
    assert (s["model_placements"], s["cache_hits"], s["cold_start_s"]) == (2, 1, 20.0)


def test_allocation_over_time_and_the_peak() -> None:
    pods = [
        tl("a", "Offline", 0, 0, ended=2, end="completed", milli=2000),
        tl("b", "Offline", 1, 3, milli=1000),
        tl("c", "Offline", 1, None, milli=500),
    ]
    series = allocation_series(pods, capacity_gpus=4, end_s=4, step_s=1)
    assert series["t_s"] == [0, 1, 2, 3, 4]
    assert series["allocated_gpus"] == [2, 2, 0, 1, 1]
    assert series["demand_gpus"] == [2, 3.5, 1.5, 1.5, 1.5]
    s = summarize(pods, capacity_gpus=4, end_s=4)
    assert s["peak"] == {"t_s": 1, "demand_gpus": 3.5, "allocated_gpus": 2, "unallocated_gpus": 2}
    assert s["gpu_allocation_mean_pct"] == 30.0  # 6 GPU-steps of 20
    assert s["gpu_work_served_mean_pct"] == 30.0  # no share taken whole: served = allocated


def test_work_served_counts_a_share_as_its_fraction_where_a_whole_gpu_was_taken() -> None:
    # kube-scheduler gives a 0.5-GPU share a whole GPU: allocated 1, served 0.5.
    pods = [tl("s", "Offline", 0, 0, milli=1000, work_milli=500), tl("w", "Offline", 0, 0)]
    series = allocation_series(pods, capacity_gpus=4, end_s=1, step_s=1)
    assert series["allocated_gpus"] == [2, 2] and series["served_gpus"] == [1.5, 1.5]
    s = summarize(pods, capacity_gpus=4, end_s=1)
    assert (s["gpu_allocation_mean_pct"], s["gpu_work_served_mean_pct"]) == (50.0, 37.5)


def test_preemptions_before_the_victims_minimum_runtime_are_counted() -> None:
    pods = [
        tl("early", "Offline", 0, 1, ended=2.5, end="preempted", min_runtime_s=2.0),
        tl("late", "Offline", 0, 1, ended=3.5, end="preempted", min_runtime_s=2.0),
        tl("unprotected", "Nearline", 0, 1, ended=1.2, end="preempted"),
        tl("completed", "Offline", 0, 1, ended=1.5, end="completed", min_runtime_s=2.0),
        tl("waiting", "Offline", 0, None, ended=1.0, end="preempted", min_runtime_s=2.0),
    ]
    s = summarize(pods, capacity_gpus=4, end_s=4)
    assert s["preemptions"] == 4 and s["preempted_before_min_runtime"] == 1
    assert s["tiers"]["Offline"]["preempted_before_min_runtime"] == 1
    assert s["tiers"]["Nearline"]["preempted_before_min_runtime"] == 0
    doc = {"schedulers": {"a": s, "b": s}}
    row = next(r for r in report.rows(doc) if r[0].startswith("preemptions before"))
    assert row[1:] == ["1", "1"]


def test_recorder_folds_watch_events_into_timelines() -> None:
    from ballast.dayreplay import workload as wl
    from ballast.dayreplay.caches import ModelCaches
    from ballast.sim.genai import Model

    pods = (
        wl.ReplayPod("p1", "ns", "serving", "Interactive", "serving", 1, 0, 0, 0, ("m",), (), 0, None, 5),
        wl.ReplayPod("p2", "ns", "research", "Offline", "background", 0, 500, 0, 0, (), (), 0, 3, None),
    )  # fmt: skip
    research = ClassPolicy("research", "Offline", 0, PreemptionPolicy("never", min_runtime_s=2.4))
    plan = wl.DayPlan(
        pods, {"research": research}, (), {"m": Model("m", 10, 7.0)}, 0, wl.DayConfig()
    )
    rec = Recorder(None, plan, shares=False, caches=ModelCaches(100), t0=0)  # type: ignore[arg-type]
    rec.now = lambda: 1.0  # type: ignore[method-assign]
    meta1, meta2 = {"namespace": "ns", "name": "p1"}, {"namespace": "ns", "name": "p2"}
    waiting = {
        "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]
    }
    rec.handle("ADDED", {"metadata": meta1, "spec": {}, "status": waiting})
    rec.handle("ADDED", {"metadata": meta2, "spec": {}})
    rec.handle("ADDED", {"metadata": {"namespace": "ns", "name": "other"}})  # not the replay's
    rec.now = lambda: 2.0  # type: ignore[method-assign]
    rec.handle("MODIFIED", {"metadata": meta1, "spec": {"nodeName": "n1"}})
    rec.handle("MODIFIED", {"metadata": meta2, "spec": {"nodeName": "n1"}})
    rec.now = lambda: 4.0  # type: ignore[method-assign]
    rec.handle(
        "MODIFIED",
        {"metadata": meta2, "spec": {"nodeName": "n1"}, "status": {"phase": "Succeeded"}},
    )
    rec.removing.add(("ns", "p1"))
    rec.handle("DELETED", {"metadata": meta1, "spec": {"nodeName": "n1"}})
    by = {t.name: t for t in rec.snapshot()}
    assert set(by) == {"p1", "p2"}
    p1, p2 = by["p1"], by["p2"]
    assert (p1.created, p1.bound, p1.node, p1.ended, p1.end) == (1.0, 2.0, "n1", 4.0, "removed")
    assert p1.reasons == {"Unschedulable"} and p1.cache_hit is False and p1.cold_start_s == 7.0
    assert rec.nodes_to_write.get_nowait() == "n1"
    assert (p2.ended, p2.end, p2.gpu_milli) == (4.0, "completed", 1000)  # a share is a GPU here
    assert p2.work_milli == 500  # and half a GPU of the trace's work
    assert (p1.min_runtime_s, p2.min_runtime_s) == (0, 2)  # the API's whole seconds
    # A deletion nobody asked for is a preemption.
    rec2 = Recorder(None, plan, shares=True, caches=ModelCaches(100), t0=0)  # type: ignore[arg-type]
    rec2.handle("ADDED", {"metadata": meta2, "spec": {"nodeName": "n1"}})
    rec2.handle(
        "MODIFIED", {"metadata": {**meta2, "deletionTimestamp": "x"}, "spec": {"nodeName": "n1"}}
    )
    assert rec2.snapshot()[0].end == "preempted" and rec2.snapshot()[0].gpu_milli == 500
    assert rec2.counts() == {"created": 1, "bound": 1, "pending": 0, "preempted": 1}


def test_a_relist_after_an_expired_watch_catches_up_on_lost_events() -> None:
    from ballast.dayreplay import workload as wl
    from ballast.dayreplay.caches import ModelCaches

    pods = tuple(
        wl.ReplayPod(n, "ns", "research", "Offline", "background", 1, 0, 0, 0, (), (), 0, 3, None)
        for n in ("p1", "p2", "p3")
    )
    plan = wl.DayPlan(pods, {}, (), {}, 0, wl.DayConfig())

    class Listed:  # what the API server's list answers after the watch expired
        def list_all(self, path: str, **query: object) -> tuple[list[dict[str, object]], str]:
            assert query == {"labelSelector": REPLAY_LABEL}
            return [
                {"metadata": {"namespace": "ns", "name": "p1"}, "spec": {"nodeName": "n1"}},
                {"metadata": {"namespace": "ns", "name": "p3"}, "spec": {}},
            ], "42"

    rec = Recorder(Listed(), plan, shares=False, caches=ModelCaches(100), t0=0)  # type: ignore[arg-type]
    rec.now = lambda: 1.0  # type: ignore[method-assign]
    for name in ("p1", "p2"):
        rec.handle("ADDED", {"metadata": {"namespace": "ns", "name": name}, "spec": {}})
    rec.now = lambda: 9.0  # type: ignore[method-assign]
    assert rec.relist() == "42"
    by = {t.name: t for t in rec.snapshot()}
    assert (by["p1"].bound, by["p1"].node, by["p1"].ended) == (9.0, "n1", None)
    assert (by["p2"].ended, by["p2"].end) == (9.0, "preempted")  # deleted while unwatched
    assert by["p3"].created == 9.0 and by["p3"].bound is None


def test_report_table_json_and_html(tmp_path: Path) -> None:
    a = summarize([tl("a", "Interactive", 0, 1), tl("b", "Offline", 0, None)], 2, 4,
                  window_open_s=2)  # fmt: skip
    b = summarize([tl("a", "Interactive", 0, 2), tl("b", "Offline", 0, 3)], 2, 4,
                  window_open_s=2)  # fmt: skip
    doc = report.document({"minutes": 1}, {"serving": 1}, {"ballast": a, "kube-gpu-binpack": b})
    assert doc["queue_wait_p99_s"]["ballast"]["Interactive"] == 1
    assert doc["queue_wait_p99_s"]["kube-gpu-binpack"]["Offline"] == 3
    text = report.table(doc)
    assert "Interactive queue wait p99" in text and "kube-gpu-binpack" in text.splitlines()[0]
    after = next(line for line in text.splitlines() if "after the window opens" in line)
    assert after.split()[-4:] == [
        f"{a['gpu_work_served_after_window_opens_mean_pct']:.2f}", "%",
        f"{b['gpu_work_served_after_window_opens_mean_pct']:.2f}", "%",
    ]  # fmt: skip
    js, page = report.write(doc, tmp_path / "out")
    assert orjson.loads(js.read_bytes())["queue_wait_p99_s"] == doc["queue_wait_p99_s"]
    body = page.read_text()
    assert body.count("data:image/png;base64,") == 2 and "<table>" in body


def test_progress_line_off_a_terminal_prints_every_ten_seconds() -> None:
    out = io.StringIO()
    show = progress_printer("ballast", 60, out)
    counts = {"created": 3, "bound": 2, "pending": 1, "preempted": 0}
    for t in (0, 1, 5, 10.5, 11):
        show(t, counts)
    show(60, counts, final=True)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert (
        "created     3" in lines[0]
        and "0:10/1:00" in lines[1]
        and "[####################]" in lines[2]
    )


def test_work_served_after_the_window_opens_leaves_out_the_held_start() -> None:
    # Nothing runs for the first 2 s (the window is shut), then 2 of 4 GPUs.
    pods = [tl("a", "Offline", 0, 2), tl("b", "Offline", 0, 2)]
    s = summarize(pods, capacity_gpus=4, end_s=3, window_open_s=2)
    assert s["gpu_work_served_mean_pct"] == 25.0  # steps 0..3: 0, 0, 2, 2 of 4
    assert s["gpu_work_served_after_window_opens_mean_pct"] == 50.0  # steps 2, 3
    no_window = summarize(pods, capacity_gpus=4, end_s=3)
    assert no_window["gpu_work_served_after_window_opens_mean_pct"] is None
