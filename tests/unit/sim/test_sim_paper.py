"""The FGD authors' experiment setup (sim/paper.py): ordering, resizing, levels, names, runs."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sim_fixtures import write_openb

from ballast.placement.objects import MILLI, Pod
from ballast.sim.paper import (
    level_means,
    level_of,
    mean_levels,
    prefixed,
    resize,
    run_paper,
    shuffled,
    workload,
)
from ballast.sim.traces import load_openb_nodes, load_openb_pods


def _pod(i: int, gpus: int = 0, milli: int = 0) -> Pod:
    return Pod("ns", f"p{i:03d}", uid=f"p{i:03d}", gpus=gpus, gpu_milli=milli, cpu_milli=1000)


def test_order_is_by_name_then_seeded_shuffle() -> None:
    pods = [_pod(i, gpus=1) for i in range(30)]
    a = shuffled(pods, random.Random(7))
    b = shuffled(list(reversed(pods)), random.Random(7))  # input order does not matter
    assert a == b and sorted(a, key=lambda p: p.name) == pods
    assert a != shuffled(pods, random.Random(8))


def test_resize_prunes_a_long_trace_keeping_its_order() -> None:
    pods = [_pod(i, gpus=1 + i % 3) for i in range(40)]
    out = resize(pods, pods, capacity_milli=20 * MILLI, ratio=1.3, rng=random.Random(1))
    total = sum(p.demand_milli for p in out)
    assert total <= 26 * MILLI and total > 26 * MILLI - 3 * MILLI
    pos = [pods.index(p) for p in out]
    assert pos == sorted(pos)


def test_resize_extends_a_short_trace_after_it() -> None:
    pods = [_pod(i, milli=500) for i in range(10)] + [_pod(99)]  # 5 GPUs asked, 1 CPU-only
    out = resize(pods, pods, capacity_milli=10 * MILLI, ratio=1.3, rng=random.Random(2))
    assert out[: len(pods)] == pods
    extra = out[len(pods) :]
    assert extra and all("-tuned-" in p.name for p in extra)
    assert len({p.uid for p in out}) == len(out)
    total = sum(p.demand_milli for p in out)
    assert 13 * MILLI - 500 < total <= 13 * MILLI


@settings(max_examples=80, deadline=None)
@given(
    demands=st.lists(
        st.tuples(st.sampled_from((0, 1, 2, 4, 8)), st.sampled_from((0, 250, 500))),
        min_size=1,
        max_size=40,
    ),
    gpus=st.integers(1, 64),
    seed=st.integers(0, 10**6),
)
def test_resize_lands_next_to_the_target(demands, gpus, seed) -> None:  # type: ignore[no-untyped-def]
    pods = [
        _pod(i, milli=m) if (m and not k) else _pod(i, gpus=k) for i, (k, m) in enumerate(demands)
    ]
    target = 1.3 * gpus * MILLI
    out = resize(pods, pods, gpus * MILLI, 1.3, random.Random(seed))
    total = sum(p.demand_milli for p in out)
    if sum(p.demand_milli for p in pods) > target:
        uids = {p.uid for p in pods}
        assert total <= target and all(p.uid in uids for p in out)
    elif any(p.demand_milli for p in pods):
        # Stops at the first draw whose per-GPU request would pass the target.
        assert total > target - MILLI and total <= target + 7 * MILLI
    assert out == resize(pods, pods, gpus * MILLI, 1.3, random.Random(seed))


def test_levels_round_half_to_even_and_fall_back_to_neighbours() -> None:
    assert [level_of(x) for x in (99.5, 100.5, 101.5, 100.49)] == [100, 100, 102, 100]
    cap = 1024  # arrived shares below are exact binary fractions
    arrived = [0, 1014, 1020, 1028, 1045]  # 0, 99.02, 99.61, 100.39, 102.05 → 0, 99, 100, 100, 102
    alloc = [0, 1000, 1010, 1015, 1016]
    lv = level_means(arrived, alloc, cap, 103)
    assert lv[99] == round(1000 / cap * 100, 2)
    assert lv[100] == round((round(1010 / cap * 100, 2) + round(1015 / cap * 100, 2)) / 2, 2)
    # 101 has no record: the records of 100..102 stand in.
    want = [round(u / cap * 100, 2) for u in (1010, 1015, 1016)]
    assert lv[101] == round(sum(want) / 3, 2)
    assert 50 not in lv and lv[0] == 0.0


def test_node_prefixes_are_a_seeded_permutation() -> None:
    nodes = load_openb_nodes(write_openb(_tmp())[0])
    a = prefixed(nodes, random.Random(5))
    assert [n.name.split("-", 1)[1] for n in a] == sorted(n.name for n in nodes)
    assert sorted(n.name.split("-", 1)[0] for n in a) == [f"{i:04d}" for i in range(len(nodes))]
    assert all(n.labels["kubernetes.io/hostname"] == n.name for n in a)
    assert a == prefixed(nodes, random.Random(5)) and a != prefixed(nodes, random.Random(6))


_TMP: list[Path] = []


def _tmp() -> Path:
    import tempfile

    if not _TMP:
        _TMP.append(Path(tempfile.mkdtemp(prefix="ballast-paper-")))
    return _TMP[0]


@pytest.mark.parametrize("policy", ["fgd", "best-fit", "ballast"])
def test_run_counts_failed_pods_as_arrived_and_is_deterministic(
    tmp_path: Path, policy: str
) -> None:
    nodes_csv, pods_csv = write_openb(tmp_path, pods=60)
    nodes = load_openb_nodes(nodes_csv)
    pods = [t.pod for t in load_openb_pods(pods_csv)]
    r = run_paper(nodes, pods, policy, seed=42)
    _, order = workload(nodes, pods, 42)
    n = len(r.arrived_milli) - 1  # the record before the first pod
    assert r.placed + r.failed == n
    assert r.arrived_milli[-1] == sum(p.demand_milli for p in order[:n])
    assert all(u <= a for a, u in zip(r.arrived_milli, r.allocated_milli, strict=True))
    assert r.failed > 0  # 130% of capacity cannot all fit
    again = run_paper(nodes, pods, policy, seed=42)
    assert again.allocated_milli == r.allocated_milli
    lv = mean_levels([r, again], 130)
    assert lv == r.levels(130) and lv
    assert all(0 <= v <= 100 for v in lv.values())
    top = max(lv)
    assert r.unallocated_at(top) == 100 - lv[top]


def test_simulate_command_runs_the_paper_setup(tmp_path: Path) -> None:
    import json

    from ballast.cli import main

    nodes_csv, pods_csv = write_openb(tmp_path, pods=40)
    out = tmp_path / "out"
    rc = main(
        [
            "simulate",
            "--only",
            "fragmentation",
            "--setup",
            "paper",
            "--seeds",
            "42,43",
            "--policies",
            "fgd,best-fit",
            "--trace",
            str(pods_csv),
            "--nodes",
            str(nodes_csv),
            "--out",
            str(out),
            "--no-plot",
        ]
    )
    assert rc == 0
    frag = json.loads((out / "report.json").read_text())["fragmentation"]
    assert frag["setup"] == "paper" and frag["seeds"] == [42, 43]
    for f in frag["policies"].values():
        assert len(f["per_seed"]) == 2 and f["curve"]
