"""The FGD authors' forms of FragmentationGradient and BestFit, their typical pods and NodeName."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from placement_builders import make_node, make_pod
from placement_frag_reference import node_frag

from ballast.placement.engine import Engine
from ballast.placement.fragmentation import (
    PerTypeCache,
    TypicalPods,
    WorkloadMix,
    _per_type,
    delta_node,
    delta_share,
    expected_frag,
)
from ballast.placement.objects import Pod
from ballast.placement.plugins.best_fit import paper_normalize
from ballast.placement.plugins.fragmentation_gradient import paper_score
from ballast.placement.snapshot import Snapshot


def _pods(spec: list[tuple[int, int, int, int]]) -> list[Pod]:
    """(count, gpus, milli, cpu) → pods."""
    out: list[Pod] = []
    for c, (n, k, m, cpu) in enumerate(spec):
        for i in range(n):
            kw = {"gpu_milli": m} if m else {"gpus": k}
            out.append(Pod("ns", f"p{c}-{i}", cpu_milli=cpu, memory_mib=999, **kw))  # type: ignore[arg-type]
    return out


def test_typical_pods_cover_the_share_asked_and_renormalise() -> None:
    pods = _pods([(5, 1, 500, 4000), (3, 1, 0, 8000), (2, 0, 0, 2000)])
    every = TypicalPods(pods, coverage=0.95)
    assert every.types == {
        (1, 500, (), 4000): 0.5,
        (1, 1000, (), 8000): 0.3,
        (0, 0, (), 2000): 0.2,
    }
    arrays = every.arrays(("A",))
    assert arrays is not None and arrays.cpu_only == 0.2
    assert arrays.mem.tolist() == [0, 0]  # memory plays no part
    most = TypicalPods(pods, coverage=0.75)  # 5 + 3 of 10 pods cover 75%
    assert most.types == {(1, 500, (), 4000): 5 / 8, (1, 1000, (), 8000): 3 / 8}
    # Equal counts: the larger CPU first.
    tie = TypicalPods(_pods([(2, 1, 0, 1000), (2, 1, 0, 9000)]), coverage=0.5)
    assert list(tie.types) == [(1, 1000, (), 9000)]


def test_typical_pods_do_not_follow_arrivals() -> None:
    mix = TypicalPods(_pods([(1, 1, 0, 1000)]))
    before = mix.arrays(())
    mix.observe(make_pod("x").share(300).obj)
    assert mix.arrays(()) is before and mix.copy() is mix


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    frees=st.lists(
        st.lists(st.sampled_from((0, 50, 300, 500, 999, 1000)), min_size=1, max_size=8),
        min_size=1,
        max_size=5,
    ),
    mix_pods=st.lists(
        st.tuples(
            st.sampled_from((0, 1, 2, 8)),
            st.sampled_from((0, 200, 500)),
            st.sampled_from((0, 4000, 6000)),
        ),
        min_size=1,
        max_size=12,
    ),
    pod=st.tuples(
        st.sampled_from((0, 1, 2)), st.sampled_from((100, 400)), st.sampled_from((0, 2000))
    ),
)
def test_typical_pods_fragmentation_matches_the_definition(frees, mix_pods, pod) -> None:  # type: ignore[no-untyped-def]
    pods = []
    for i, (k, milli, cpu) in enumerate(mix_pods):
        kw = {"gpu_milli": milli} if (milli and k) else {"gpus": k}
        pods.append(Pod("n", f"m{i}", cpu_milli=cpu, **kw))  # type: ignore[arg-type]
    arrays = TypicalPods(pods).arrays(("A",))
    if arrays is None:
        return
    free = np.zeros((len(frees), 8), dtype=np.int32)
    for i, row in enumerate(frees):
        free[i, : len(row)] = row
    cpu = np.array([8000 - 3000 * (i % 3) for i in range(len(frees))], dtype=np.int64)
    mem = np.zeros(len(frees), dtype=np.int64)
    prod = np.zeros(len(frees), dtype=np.int32)
    k, m, pcpu = pod
    ref = [node_frag(free[i].tolist(), int(cpu[i]), 0, 0, arrays) for i in range(len(frees))]
    assert np.allclose(expected_frag(free, cpu, mem, prod, arrays), ref)
    cache = PerTypeCache()
    rows = np.arange(len(frees), dtype=np.int64)
    cached = cache.get(free, rows, arrays)
    for a, b in zip(cached, _per_type(free, arrays), strict=True):
        assert np.array_equal(a, b)
    ds = delta_share(free, cpu, mem, prod, arrays, m, pcpu, 0, cached)
    dn = delta_node(free, cpu, mem, prod, arrays, k, pcpu, 0)
    for i in range(len(frees)):
        for g in range(8):
            if free[i, g] < m:
                assert ds[i, g] == np.inf
                continue
            after = free[i].tolist()
            after[g] -= m
            assert (
                abs(ds[i, g] - (node_frag(after, int(cpu[i]) - pcpu, 0, 0, arrays) - ref[i])) < 1e-6
            )
        whole = [g for g in range(8) if free[i, g] >= 1000][:k]
        if len(whole) == k:
            after = free[i].tolist()
            for g in whole:
                after[g] = 0
            want = node_frag(after, int(cpu[i]) - pcpu, 0, 0, arrays) - ref[i]
            assert abs(dn[i] - want) < 1e-6


def test_per_type_cache_recomputes_changed_rows_only() -> None:
    arrays = TypicalPods(_pods([(1, 1, 500, 0), (1, 2, 0, 0)])).arrays(())
    assert arrays is not None
    free = np.full((3, 4), 1000, dtype=np.int32)
    cache = PerTypeCache()
    rows = np.arange(3, dtype=np.int64)
    cache.get(free, rows, arrays)
    free[1, 0] = 300
    cnt, small = cache.get(free, rows, arrays)
    want_cnt, want_small = _per_type(free, arrays)
    assert np.array_equal(cnt, want_cnt) and np.array_equal(small, want_small)


def test_paper_score_is_the_authors_integer_sigmoid() -> None:
    growth = np.array([0.0, 1000.0, -1000.0, np.inf, -1e9])
    assert paper_score(growth).tolist() == [50.0, 26.0, 73.0, -1.0, 100.0]


def test_paper_best_fit_score_and_integer_normalisation() -> None:
    snap = Snapshot(gpus_per_node=2, mix=WorkloadMix(window=0))
    snap.add_node(make_node("a").gpus(2, "T4").cpu(64000).obj)
    engine = Engine("best-fit")
    d = engine.decide(snap, make_pod("p").gpu(1).cpu(8000).obj, now=0.0)
    # (1 - (56000 / 128000 / 2 + 1000 / 8000 / 2)) * 100 = 71.875 → 71
    assert d.scores[0].plugins[0].raw == 71.0
    assert paper_normalize(np.array([71.0, 50.0, 60.0])).tolist() == [100.0, 0.0, 47.0]
    assert paper_normalize(np.array([5.0, 5.0])).tolist() == [0.0, 0.0]


def test_paper_fgd_takes_the_lowest_index_among_equal_gpus() -> None:
    snap = Snapshot(gpus_per_node=2, mix=TypicalPods(_pods([(1, 1, 500, 0)])))
    snap.add_node(make_node("a").gpus(2, "T4").cpu(64000).obj)
    first = Engine("fgd").decide(snap, make_pod("s0").share(400).obj, now=0.0)
    snap.assume(make_pod("s0").share(400).obj, "a", first.gpus, start_time=0.0)  # GPU 0: 600 free
    # 100 more on either GPU leaves it at or above 500: both grow nothing; the
    # authors' score takes GPU 0, the exact gradient the fuller GPU (also 0 here).
    d = Engine("fgd").decide(snap, make_pod("s1").share(100).obj, now=0.0)
    assert first.gpus == (0,) and d.gpus == (0,)
    snap2 = Snapshot(gpus_per_node=2, mix=TypicalPods(_pods([(1, 1, 500, 0)])))
    snap2.add_node(make_node("a").gpus(2, "T4").cpu(64000).obj)
    snap2.assume(make_pod("w").share(400).obj, "a", (1,), start_time=0.0)  # GPU 1: 600 free
    d2 = Engine("fgd").decide(snap2, make_pod("s2").share(100).obj, now=0.0)
    assert d2.gpus == (0,)  # equal scores: lowest index, not the fullest GPU


def test_ties_go_to_the_smallest_node_name() -> None:
    for policy in ("fgd", "best-fit"):
        snap = Snapshot(gpus_per_node=2, mix=TypicalPods(_pods([(1, 1, 0, 0)])))
        for name in ("0007-x", "0002-z", "0005-a"):
            snap.add_node(make_node(name).gpus(2, "T4").cpu(64000).obj)
        d = Engine(policy).decide(snap, make_pod("p").gpu(1).obj, now=0.0, seed=3)
        assert d.node == "0002-z"
