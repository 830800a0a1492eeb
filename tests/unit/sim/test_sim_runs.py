"""Small simulator runs (seconds) checking the report's invariants, not its figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sim_fixtures import write_genai, write_openb

from ballast.cli import main
from ballast.placement.objects import MILLI
from ballast.sim.experiments import FILL_POLICIES
from ballast.sim.fill import inflate, run_fill, step_average
from ballast.sim.genai import GenAIConfig, build_workload
from ballast.sim.replay import replay
from ballast.sim.traces import (
    load_genai_requests,
    load_latencies_ms,
    load_openb_nodes,
    load_openb_pods,
)


@pytest.mark.parametrize(
    ("name", "xs", "ys", "want"),
    [
        ("flat", [0, 50], [10, 10], 10.0),
        ("step in the middle", [80, 95], [20, 0], 10.0),
        ("last value holds", [50, 92], [9, 4], (2 * 9 + 8 * 4) / 10),
        ("starts inside", [95], [2], 2.0),
    ],
)
def test_step_average(name: str, xs: list[float], ys: list[float], want: float) -> None:
    assert step_average(xs, ys, 90, 100) == pytest.approx(want)


def test_inflate_reaches_the_target_deterministically(tmp_path: Path) -> None:
    _, pods_csv = write_openb(tmp_path, pods=20)
    pods = [t.pod for t in load_openb_pods(pods_csv)]
    a = inflate(pods, 40_000, 150, seed=3)
    assert a[: len(pods)] == pods and sum(p.demand_milli for p in a) >= 60_000
    assert a == inflate(pods, 40_000, 150, seed=3)
    assert len({p.uid for p in a}) == len(a)


@pytest.mark.parametrize("policy", FILL_POLICIES)
def test_fill_invariants(tmp_path: Path, policy: str) -> None:
    nodes_csv, pods_csv = write_openb(tmp_path)
    nodes = load_openb_nodes(nodes_csv)
    cap = sum(n.gpu_count for n in nodes) * MILLI
    pods = inflate([t.pod for t in load_openb_pods(pods_csv)], cap, 110, 0)
    r = run_fill(nodes, pods, policy, stop_pct=110)
    assert r.placed + r.failed <= len(pods)
    assert all(a <= b for a, b in zip(r.arrived_pct, r.arrived_pct[1:], strict=False))
    assert all(0 <= u <= 100 for u in r.unallocated_pct)
    # Unallocated can never be below what has not arrived yet.
    assert all(u >= 100 - a - 1e-9 for a, u in zip(r.arrived_pct, r.unallocated_pct, strict=True))
    assert r.arrived_pct[-1] >= 100


def test_replay_invariants(tmp_path: Path) -> None:
    req, lat = write_genai(tmp_path)
    _, pods_csv = write_openb(tmp_path)
    from ballast.sim.cluster import profile_nodes

    nodes = profile_nodes("tiny")
    cap = sum(n.gpu_count for n in nodes) * MILLI
    cfg = GenAIConfig(start_day=0, days=0.5, background_load=1.0)
    work = build_workload(
        load_genai_requests(req), load_latencies_ms(lat), load_openb_pods(pods_csv), cap, cfg
    )
    assert work.notes["serving_jobs"] > 0 and work.notes["batch_jobs"] > 0
    r = replay(nodes, work, "ballast")
    assert all(0 <= a <= 100 for _, a in r.alloc)
    assert all(w >= 0 for ws in r.waits.values() for w in ws)
    for kind in ("serving", "batch"):
        assert 0 <= r.hits[kind] <= r.placements[kind]
    assert sum(r.preempted.values()) >= r.preemptions
    assert r.waits["Interactive"]  # serving replicas were placed
    again = replay(nodes, work, "ballast")
    assert again.alloc == r.alloc and again.hits == r.hits  # deterministic


def test_simulate_command_writes_report_and_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nodes_csv, pods_csv = write_openb(tmp_path)
    req, lat = write_genai(tmp_path)
    out = tmp_path / "out"
    rc = main(
        [
            "--log-level",
            "WARNING",
            "simulate",
            "--nodes",
            str(nodes_csv),
            "--trace",
            str(pods_csv),
            "--requests",
            str(req),
            "--latency",
            str(lat),
            "--cluster",
            "tiny",
            "--start-day",
            "0",
            "--days",
            "0.3",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    doc = json.loads((out / "report.json").read_text())
    png = (out / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    frag = doc["fragmentation"]
    assert set(frag["policies"]) == set(FILL_POLICIES)
    for f in frag["policies"].values():
        assert 0 <= f["unallocated_gpu_pct"] <= 100
        assert f["pods_placed"] + f["pods_failed"] <= frag["pods_replayed"]
        xs = [p[0] for p in f["curve"]]
        assert xs == sorted(xs)
    genai = doc["genai"]
    for f in genai["policies"].values():
        assert 0 <= f["gpu_allocation_pct"] <= 100
        assert all(v is None or 0 <= v <= 1 for v in f["cache_hit_rate"].values())
        for tier in ("Interactive", "Nearline", "Offline"):
            w = f["queue_wait"][tier]
            assert w["placed"] >= 0 and (
                w["p50_s"] is None or 0 <= w["p50_s"] <= w["p95_s"] <= w["p99_s"]
            )
    assert "fragmentation" in capsys.readouterr().out
