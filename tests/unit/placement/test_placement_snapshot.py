"""The snapshot: incremental assume/forget, node changes, telemetry and caches."""

from __future__ import annotations

import pytest
from placement_builders import NOW, make_node, make_pod, snapshot

from ballast.api.wellknown import CacheItem
from ballast.placement.objects import NodeInfo
from ballast.placement.snapshot import PlacementError


def test_assume_and_forget_update_aggregates() -> None:
    snap = snapshot(make_node("a").gpus(4).cpu(32000, 65536))
    pod = make_pod("p").share(300).cpu(4000, 1024).obj
    p = snap.assume(pod, "a", (2,), start_time=5.0, tier="Nearline")
    r = snap.row("a")
    assert snap.free[r].tolist()[:4] == [1000, 1000, 700, 1000]
    assert (snap.whole_free[r], snap.max_free[r], snap.free_sum[r]) == (3, 1000, 3700)
    assert (snap.cpu_free[r], snap.mem_free[r]) == (28000, 64512)
    assert snap.tenant_usage("team-a").by_tier == {"Nearline": 300}
    assert snap.placements_on("a") == [p]
    assert snap.allocated_milli() == 300
    assert snap.forget(pod.id) == p
    assert snap.forget(pod.id) is None
    assert snap.free_sum[r] == 4000 and snap.cpu_free[r] == 32000
    assert snap.tenant_usage("team-a").total_milli == 0


@pytest.mark.parametrize(
    ("name", "gpus", "want_error"),
    [
        ("wrong count", (0,), "needs 2 distinct"),
        ("duplicate index", (1, 1), "needs 2 distinct"),
        ("used GPU", (0, 3), "GPU 3 lacks"),
        ("no such GPU", (0, 9), "GPU 9 lacks"),
    ],
)
def test_assume_refuses_what_does_not_fit(
    name: str, gpus: tuple[int, ...], want_error: str
) -> None:
    snap = snapshot(make_node("a").gpus(4))
    snap.assume(make_pod("x").share(1).obj, "a", (3,), start_time=0.0)
    with pytest.raises(ValueError, match=want_error):
        snap.assume(make_pod("p").gpu(2).obj, "a", gpus, start_time=0.0)


def test_update_node_keeps_allocations_and_remove_forgets_pods() -> None:
    snap = snapshot(make_node("a").gpus(2))
    snap.assume(make_pod("x").gpu(1).obj, "a", (0,), start_time=0.0)
    snap.update_node(NodeInfo("a", gpu_count=4, gpu_memory_mib=1, cpu_milli=10, memory_mib=10))
    r = snap.row("a")
    assert snap.free[r].tolist()[:4] == [0, 1000, 1000, 1000]
    gone = snap.remove_node("a")
    assert [p.name for p in gone] == ["x"] and "a" not in snap and len(snap.rows()) == 0
    again = snap.add_node(make_node("b").gpus(1).obj)
    assert again == r and snap.free_sum[r] == 1000  # the row is reused, clean


def test_widening_for_nodes_with_many_gpus() -> None:
    snap = snapshot(make_node("a").gpus(2))
    snap.add_node(make_node("big").gpus(16).obj)
    assert snap.free.shape[1] == 16 and snap.whole_free[snap.row("big")] == 16


def test_growth_past_initial_capacity() -> None:
    snap = snapshot(*(make_node(f"n{i}").gpus(1) for i in range(100)))
    assert len(snap) == 100 and snap.capacity_milli() == 100_000


def test_telemetry_freshness_and_sick_gpus_read_as_full() -> None:
    snap = snapshot(make_node("a").gpus(2).telemetry(sick=(1,)), make_node("b").gpus(2))
    fresh = snap.freshness(NOW, 60)
    assert fresh[snap.row("a")] and not fresh[snap.row("b")]
    sick = snap.known_sick()
    view = snap.usable_free(sick)
    assert view[snap.row("a")].tolist()[:2] == [1000, 0]
    assert snap.free[snap.row("a")].tolist()[:2] == [1000, 1000]
    assert snap.usable_free(()) is snap.free
    stale = snap.freshness(NOW + 3600, 60)
    assert not stale.any() and snap.known_sick() == (snap.row("a"),)  # last known health holds
    snap.set_telemetry("a", None)
    assert snap.known_sick() == ()


def test_gpus_allocated_since_the_report_count_as_load() -> None:
    snap = snapshot(make_node("a").gpus(4).telemetry(), make_node("b").gpus(4))
    rows = snap.rows()
    assert snap.load_since_report(rows).tolist() == [0.0, 0.0]
    snap.assume(make_pod("p").gpu(2).obj, "a", (0, 1), start_time=0.0)
    snap.assume(make_pod("q").gpu(1).obj, "b", (0,), start_time=0.0)
    # Half of a's capacity was allocated after its report; b has no report.
    assert snap.load_since_report(rows).tolist() == [0.5, 0.0]
    snap.update_node(make_node("a").gpus(4).telemetry().obj)  # the same report again
    assert snap.load_since_report(rows).tolist() == [0.5, 0.0]
    fresh = make_node("a").gpus(4).telemetry(age_s=-5).obj.telemetry
    snap.set_telemetry("a", fresh)
    assert snap.load_since_report(rows).tolist() == [0.0, 0.0]
    snap.forget(next(iter(snap.row_pods[snap.row("a")])))
    assert snap.load_since_report(rows).tolist() == [0.0, 0.0]  # freed GPUs never go negative


def test_cache_index_tracks_puts_and_evictions() -> None:
    snap = snapshot(make_node("a").cache(("model/m", 5)), make_node("b"))
    assert snap.caches.holders("model/m").tolist() == [snap.row("a")]
    snap.cache_put("b", CacheItem("model", "m", 5))
    assert snap.caches.holders("model/m").tolist() == [0, 1]
    snap.cache_evict("a", "model/m")
    snap.cache_evict("a", "model/unknown")
    assert snap.caches.holders("model/m").tolist() == [snap.row("b")]
    assert snap.caches.size_of("model/m") == 5


def test_impossible_updates_are_refused_with_a_typed_error() -> None:
    snap = snapshot(make_node("a").gpus(2))
    snap.assume(make_pod("x").gpu(1).obj, "a", (0,), start_time=0.0)
    before = snap.free.copy()
    for gpus, milli in (((0,), 500), ((2,), 1000), ((-1,), 1000), ((1, 1), 1000), ((1,), 1001)):
        with pytest.raises(PlacementError):
            snap.account(make_pod("y").gpu(len(gpus)).obj, "a", gpus, milli, start_time=0.0)
    with pytest.raises(PlacementError):
        snap.assume(make_pod("z").share(500).obj, "a", (0,), start_time=0.0)
    with pytest.raises(PlacementError):
        snap.account(make_pod("w").gpu(1).obj, "nowhere", (0,), 1000, start_time=0.0)
    assert (snap.free == before).all() and len(snap.pods) == 1
    snap.account(make_pod("y").share(300).obj, "a", (1,), 300, start_time=0.0)
    assert snap.free[snap.row("a"), 1] == 700 and snap.free_gpus("a") == [(0, 0), (1, 700)]


def test_shrinking_a_node_drops_the_lost_gpus_even_when_a_pod_held_one() -> None:
    snap = snapshot(make_node("a").gpus(4))
    snap.assume(make_pod("x").gpu(1).obj, "a", (3,), start_time=0.0)
    snap.update_node(make_node("a").gpus(2).obj)
    r = snap.row("a")
    assert snap.whole_free[r] == 2 and snap.free_sum[r] == 2000
    snap.forget("team-a/x")
    assert snap.whole_free[r] == 2 and snap.free_sum[r] == 2000 and snap.free[r, 3] == 0
